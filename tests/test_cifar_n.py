"""Human label noise (CIFAR-10N / CIFAR-100N): the official file format, the alignment checks, safe loading and the
verified download. Files are tiny but written as the official ones are: torch.save of a dict of numpy arrays."""

import hashlib
import io
import os
import pathlib
import pickle
import urllib.error
import zipfile

import numpy as np
import pytest
import torch

import data.cifar_n as cifar_n
from data import ENV_ROOT, NOISE_SETS, DatasetError, human_noisy_labels

RNG = np.random.default_rng(0)
SIZE = 12
CLEAN = RNG.integers(0, 10, SIZE)
# One array per CIFAR-10N key, each different from the others, so reading the wrong key would show.
CIFAR10_FILE = {
    "clean_label": CLEAN,
    "aggre_label": (CLEAN + np.arange(SIZE) % 2) % 10,
    "random_label1": (CLEAN + 1) % 10,
    "random_label2": (CLEAN + 2) % 10,
    "random_label3": (CLEAN + 3) % 10,
    "worse_label": (CLEAN + 4) % 10,
}
EXPECTED = {
    "aggre": "aggre_label",
    "random1": "random_label1",
    "random2": "random_label2",
    "random3": "random_label3",
    "worst": "worse_label",
}


@pytest.fixture(autouse=True)
def _no_root_override(monkeypatch):
    monkeypatch.delenv(ENV_ROOT, raising=False)


def _write(root: pathlib.Path, name: str, content) -> pathlib.Path:
    path = root / "cifar-n" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, path)
    return path


def _cifar10_file(root: pathlib.Path, **changes) -> pathlib.Path:
    content = {key: np.asarray(value, dtype=np.int64) for key, value in {**CIFAR10_FILE, **changes}.items()}
    return _write(root, "CIFAR-10_human.pt", content)


def _train_labels() -> torch.Tensor:
    return torch.from_numpy(CLEAN.copy())


@pytest.mark.parametrize("noise_set", NOISE_SETS["cifar10"])
def test_cifar10_noise_sets_read_their_keys(noise_set, tmp_path):
    _cifar10_file(tmp_path)
    noisy = human_noisy_labels("cifar10", tmp_path, noise_set, _train_labels(), download=False)
    assert noisy.dtype == torch.int64
    assert noisy.tolist() == CIFAR10_FILE[EXPECTED[noise_set]].tolist()


def test_cifar100_file_with_list_coarse_fields(tmp_path):
    clean = RNG.integers(0, 100, SIZE)
    noisy = (clean + 1) % 100
    # As in the 2023 file: the fine fields are numpy arrays, the two coarse fields plain lists.
    _write(
        tmp_path,
        "CIFAR-100_human.pt",
        {
            "clean_label": clean.astype(np.int64),
            "noisy_label": noisy.astype(np.int64),
            "clean_coarse_label": (clean // 5).tolist(),
            "noisy_coarse_label": (noisy // 5).tolist(),
        },
    )
    labels = human_noisy_labels("cifar100", str(tmp_path), "noisy", torch.from_numpy(clean), download=False)
    assert labels.tolist() == noisy.tolist()


def test_the_root_override_applies(tmp_path, monkeypatch):
    _cifar10_file(tmp_path / "elsewhere")
    monkeypatch.setenv(ENV_ROOT, str(tmp_path / "elsewhere"))
    assert len(human_noisy_labels("cifar10", "/nonexistent", "worst", _train_labels(), download=False)) == SIZE


def test_clean_labels_must_equal_the_training_labels(tmp_path):
    _cifar10_file(tmp_path)
    train = _train_labels()
    first, second = 0, int(np.flatnonzero(CLEAN[0] != CLEAN)[0])
    train[[first, second]] = train[[second, first]]  # one pair swapped: same sum, same counts
    with pytest.raises(DatasetError) as caught:
        human_noisy_labels("cifar10", tmp_path, "aggre", train, download=False)
    message = str(caught.value)
    assert "\n" not in message
    assert f"clean_label differs from the cifar10 training labels at 2 of {SIZE} positions" in message


def test_a_cut_training_set_is_refused(tmp_path):
    _cifar10_file(tmp_path)
    with pytest.raises(DatasetError) as caught:
        human_noisy_labels("cifar10", tmp_path, "aggre", _train_labels()[:10], download=False)
    message = str(caught.value)
    assert "\n" not in message and f"labels {SIZE} training images" in message and "has 10" in message
    assert "train_size" in message


def test_a_noise_array_of_another_length_is_refused(tmp_path):
    _cifar10_file(tmp_path, worse_label=CIFAR10_FILE["worse_label"][:-1])
    with pytest.raises(DatasetError, match=f"worse_label has {SIZE - 1} labels but clean_label {SIZE}"):
        human_noisy_labels("cifar10", tmp_path, "worst", _train_labels(), download=False)


def test_a_missing_key_is_named(tmp_path):
    content = dict(CIFAR10_FILE)
    del content["random_label2"]
    _write(tmp_path, "CIFAR-10_human.pt", content)
    with pytest.raises(DatasetError, match="no key 'random_label2'"):
        human_noisy_labels("cifar10", tmp_path, "random2", _train_labels(), download=False)


class _Exploit:
    """Pickles as a call of os.system: a file that runs it when unpickled with plain pickle."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_forbidden_global_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "exploited"
    path = _write(tmp_path, "CIFAR-10_human.pt", {**CIFAR10_FILE, "clean_label": _Exploit(marker)})
    with pytest.raises(DatasetError) as caught:
        human_noisy_labels("cifar10", tmp_path, "aggre", _train_labels(), download=False)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "refused global" in message
    assert "system" in message
    assert not marker.exists()


def test_integer_tensors_are_read_as_arrays_and_float_tensors_refused(tmp_path):
    _write(tmp_path, "CIFAR-10_human.pt", {**CIFAR10_FILE, "aggre_label": torch.from_numpy(CLEAN[::-1].copy())})
    assert human_noisy_labels("cifar10", tmp_path, "aggre", _train_labels(), download=False).tolist() == (
        CLEAN[::-1].tolist()
    )
    _write(tmp_path, "CIFAR-10_human.pt", {**CIFAR10_FILE, "clean_label": torch.from_numpy(CLEAN).double()})
    with pytest.raises(DatasetError, match="refused global torch.DoubleStorage"):
        human_noisy_labels("cifar10", tmp_path, "aggre", _train_labels(), download=False)


class _StoragePickler(pickle.Pickler):
    """Pickles the string "storage" as a persistent id, as torch.save does with tensor storages."""

    def persistent_id(self, obj):
        return ("tensor storage", 0) if isinstance(obj, str) and obj == "storage" else None


def test_persistent_ids_are_refused(tmp_path):
    buffer = io.BytesIO()
    _StoragePickler(buffer, protocol=2).dump({**CIFAR10_FILE, "clean_label": "storage"})
    path = tmp_path / "cifar-n" / "CIFAR-10_human.pt"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
    with pytest.raises(DatasetError, match="persistent id"):
        human_noisy_labels("cifar10", tmp_path, "aggre", _train_labels(), download=False)


def test_a_file_that_is_no_archive_is_refused(tmp_path):
    path = tmp_path / "cifar-n" / "CIFAR-10_human.pt"
    path.parent.mkdir()
    path.write_bytes(b"not a zip archive")
    with pytest.raises(DatasetError, match="cannot read the CIFAR-N file"):
        human_noisy_labels("cifar10", tmp_path, "aggre", _train_labels(), download=False)


def test_missing_file_without_download(tmp_path):
    with pytest.raises(DatasetError) as caught:
        human_noisy_labels("cifar10", tmp_path, "aggre", _train_labels(), download=False)
    message = str(caught.value)
    assert "\n" not in message and "CIFAR-10_human.pt" in message and "download=false" in message
    assert "https://github.com/UCSC-REAL/cifar-10-100n/raw/main/data/CIFAR-10_human.pt" in message


def test_unknown_dataset_or_noise_set(tmp_path):
    with pytest.raises(DatasetError, match="cifar10 and cifar100, not 'mnist'"):
        human_noisy_labels("mnist", tmp_path, "aggre", _train_labels())
    with pytest.raises(DatasetError, match="valid: noisy"):
        human_noisy_labels("cifar100", tmp_path, "aggre", _train_labels())


# The download, with the network replaced.


def _payload(tmp_path) -> bytes:
    """The bytes of a valid tiny CIFAR-10N file."""
    return _cifar10_file(tmp_path / "source").read_bytes()


def _serve(monkeypatch, payload: bytes) -> list[str]:
    urls = []

    def fetch(url, file):
        urls.append(url)
        file.write(payload)

    monkeypatch.setattr(cifar_n, "_fetch", fetch)
    return urls


def test_download_with_the_right_hash_is_moved_into_place(tmp_path, monkeypatch):
    payload = _payload(tmp_path)
    # The official size and hash, replaced by the tiny payload's.
    official = cifar_n.FILES["cifar10"]
    tiny = cifar_n._File(official.name, len(payload), hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(cifar_n.FILES, "cifar10", tiny)
    urls = _serve(monkeypatch, payload)
    root = tmp_path / "root"
    noisy = human_noisy_labels("cifar10", root, "worst", _train_labels())
    assert noisy.tolist() == CIFAR10_FILE["worse_label"].tolist()
    assert urls == ["https://github.com/UCSC-REAL/cifar-10-100n/raw/main/data/CIFAR-10_human.pt"]
    folder = root / "cifar-n"
    assert [p.name for p in folder.iterdir()] == ["CIFAR-10_human.pt"]  # no temporary file left
    assert (folder / "CIFAR-10_human.pt").read_bytes() == payload
    # The file is there now: the next call does not download.
    human_noisy_labels("cifar10", root, "aggre", _train_labels())
    assert len(urls) == 1


def test_download_with_a_wrong_hash_is_deleted(tmp_path, monkeypatch):
    payload = _payload(tmp_path)  # a valid file, but not the official one
    _serve(monkeypatch, payload)
    root = tmp_path / "root"
    with pytest.raises(DatasetError) as caught:
        human_noisy_labels("cifar10", root, "aggre", _train_labels())
    message = str(caught.value)
    official = cifar_n.FILES["cifar10"]
    assert "\n" not in message and "CIFAR-10_human.pt" in message
    assert f"expected {official.size} bytes with sha256 {official.sha256}" in message
    assert f"got {len(payload)} bytes with sha256 {hashlib.sha256(payload).hexdigest()}" in message
    assert list((root / "cifar-n").iterdir()) == []


def test_cifar100_official_hash_is_the_2023_file():
    assert cifar_n.FILES["cifar100"].size == 1_000_959
    assert cifar_n.FILES["cifar100"].sha256.startswith("bd2d8040")


def test_network_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(url, file):
        file.write(b"partial")
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(cifar_n, "_fetch", fail)
    root = tmp_path / "root"
    with pytest.raises(DatasetError) as caught:
        human_noisy_labels("cifar100", root, "noisy", _train_labels())
    assert "\n" not in str(caught.value) and "cannot download CIFAR-100_human.pt" in str(caught.value)
    assert list((root / "cifar-n").iterdir()) == []


def test_numpy_1_module_path_is_accepted(tmp_path):
    """The official files were written under numpy 1.x, whose pickles name numpy.core.multiarray._reconstruct."""
    path = _cifar10_file(tmp_path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    (pkl,) = [name for name in members if name.endswith("data.pkl")]
    assert b"numpy._core.multiarray\n_reconstruct" in members[pkl] or b"numpy.core.multiarray" in members[pkl]
    members[pkl] = members[pkl].replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy._core" not in members[pkl]
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    assert human_noisy_labels("cifar10", tmp_path, "random3", _train_labels(), download=False).tolist() == (
        CIFAR10_FILE["random_label3"].tolist()
    )
