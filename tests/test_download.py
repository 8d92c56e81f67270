"""Getting data without training: `python -m data.download`, and dataset.download=false, which never fetches. No
test reaches the network (tests/conftest.py refuses it): the downloads here are served by the test itself."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import data.cifar_n as cifar_n
from data import ENV_ROOT
from data.download import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_root_override(monkeypatch):
    monkeypatch.delenv(ENV_ROOT, raising=False)


def download(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data.download", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_a_dataset_already_there_is_decoded_into_the_cache_without_a_model(tmp_path, mnist_writer, capsys):
    rng = np.random.default_rng(0)
    mnist_writer(tmp_path, rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 10, 12),
                 rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5))
    main(["mnist", "--root", str(tmp_path)])
    cache = tmp_path / "tce-cache" / "mnist.pt"
    assert capsys.readouterr().out == f"mnist: 12 training and 5 test images, cached in {cache}\n"
    assert cache.is_file()


def test_a_download_that_cannot_reach_the_network_stops_with_one_line(tmp_path):
    result = download("cifar10", "--root", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == result.stderr.strip().splitlines()[-1]  # one line
    assert result.stderr.startswith("error: cannot load dataset 'cifar10'") and "download failed" in result.stderr


def test_unknown_names_stop_with_one_line(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["mnist", "imagenet"])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and error.count("\n") == 1 and "'imagenet'" in error


def test_cifar_n_files_are_fetched_and_checked_against_their_official_hash(tmp_path, monkeypatch, capsys):
    payload = b"the labels of CIFAR-10N, in miniature"
    tiny = cifar_n._File("CIFAR-10_human.pt", len(payload), hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(cifar_n.FILES, "cifar10", tiny)
    urls = []
    monkeypatch.setattr(cifar_n, "_fetch", lambda url, file: urls.append(url) or file.write(payload))
    main(["cifar10n", "--root", str(tmp_path)])
    path = tmp_path / "cifar-n" / "CIFAR-10_human.pt"
    assert capsys.readouterr().out == f"cifar10n: {path}, the official file\n"
    assert path.read_bytes() == payload and len(urls) == 1

    path.write_bytes(b"an older version of the file")  # there already, but not the official file
    with pytest.raises(SystemExit) as stopped:
        main(["cifar10n", "--root", str(tmp_path)])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and len(urls) == 1  # nothing fetched: it was there
    assert error.startswith(f"error: {path} is not the official CIFAR-10_human.pt") and error.count("\n") == 1


def test_dataset_download_false_never_fetches_and_says_how_to(tmp_path):
    root = tmp_path / "nothing-here"
    result = subprocess.run(
        [sys.executable, "train.py", "dataset=mnist", f"dataset.root={root}", "dataset.download=false", "epochs=1",
         "device=cpu", f"hydra.run.dir={tmp_path}/run"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(root) in result.stderr
    assert "download=false (python -m data.download mnist fetches them)" in result.stderr
    assert "Downloading" not in result.stdout + result.stderr  # torchvision's word when it fetches
    assert not (tmp_path / "run").exists()  # the run directory this launch made is gone: nothing claims a run
