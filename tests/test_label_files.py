"""noise_type=file: every format of the published noisy-label files, from tiny files written as those are; the
checks (SHA-256, length, clean labels) before training; pickles that would run code; and a run's labels exported
with scripts.export_labels and trained on again."""

import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from compose import compose_train, tiny, train_tiny
from data import DatasetError
from data.label_files import LabelFileError, label_file_bytes, read_label_file, sha256_of
from data.safe_pickle import load_torch_file
from data.synthetic import make_synthetic
from experiments.identity import run_name
from experiments.resolve import resolve
from experiments.run import run_data_for
from experiments.rundir import RunDir, RunDirError
from experiments.schema import ConfigError
from rundata import run_data
from scripts.export_labels import main as export_main

REPO = pathlib.Path(__file__).resolve().parents[1]
CLEAN = np.array([6, 9, 9, 4, 1, 1, 2, 7, 8, 3])
NOISY = np.array([6, 9, 5, 4, 1, 0, 2, 7, 8, 5])


def _legacy_pt(path: pathlib.Path, content) -> pathlib.Path:
    """torch.save in the legacy (pre-zip) format, as UCSC-REAL/CAL's IDN_{rate}_C{10,100}.pt files are."""
    torch.save(content, path, _use_new_zipfile_serialization=False)
    return path


def _write(path: pathlib.Path, noisy=NOISY, clean=CLEAN) -> pathlib.Path:
    """A label file in the format of `path`'s suffix, laid out as the published files of that format."""
    fmt = path.name.split(".", 1)[1]
    if fmt == "npy":
        np.save(path, np.asarray(noisy, dtype=np.int64))
    elif fmt == "csv":  # chenpf1025/IDN
        path.write_text("label,label_noisy\n" + "".join(f"{c},{n}\n" for c, n in zip(clean, noisy, strict=True)))
    elif fmt == "json":  # LogitClip, ε-softmax, JAL
        path.write_text(json.dumps([int(v) for v in noisy]))
    elif fmt == "legacy.pt":
        _legacy_pt(path, {"noise_label_train": torch.tensor(noisy), "clean_label_train": torch.tensor(clean)})
    elif fmt == "zip.pt":
        torch.save({"noise_label_train": torch.tensor(noisy), "clean_label_train": torch.tensor(clean)}, path)
    return path


@pytest.mark.parametrize("name, carries_clean", [("labels.npy", False), ("labels.csv", True), ("labels.json", False),
                                                 ("labels.legacy.pt", True), ("labels.zip.pt", True)])
def test_each_format_loads(tmp_path, name, carries_clean):
    path = _write(tmp_path / name)
    file = read_label_file(path, 10)
    assert file.noisy.dtype == np.int64 and file.noisy.tolist() == NOISY.tolist()
    assert (file.clean.tolist() if carries_clean else file.clean) == (CLEAN.tolist() if carries_clean else None)
    assert file.sha256 == sha256_of(path) and len(file.sha256) == 64


def test_the_legacy_reader_follows_storage_offsets_and_strides(tmp_path):
    base = torch.arange(20, dtype=torch.int32)
    path = _legacy_pt(tmp_path / "views.pt", {"a": base[3:8], "b": base[::4], "c": torch.tensor([], dtype=torch.int64),
                                             "d": [torch.tensor([1, 2], dtype=torch.uint8)]})
    content = load_torch_file(path.read_bytes())
    assert content["a"].tolist() == [3, 4, 5, 6, 7] and content["b"].tolist() == [0, 4, 8, 12, 16]
    assert content["c"].tolist() == [] and content["d"][0].tolist() == [1, 2]
    assert content["a"].dtype == np.int32 and content["d"][0].dtype == np.uint8


def test_exported_bytes_are_laid_out_as_the_published_files():
    assert label_file_bytes(NOISY[:3], CLEAN[:3], "csv") == b"label,label_noisy\n6,6\n9,9\n9,5\n"
    assert label_file_bytes(NOISY[:3], None, "json") == b"[6, 9, 5]"
    npy = label_file_bytes(np.zeros(45_000, dtype=np.int32), None, "npy")
    assert len(npy) == 360_128 and npy.startswith(b"\x93NUMPY")  # PLC's files: 128-byte header, int64
    assert np.load(io.BytesIO(npy)).dtype == np.int64
    with pytest.raises(ValueError, match="clean"):
        label_file_bytes(NOISY, None, "csv")


class _Exploit:
    """Pickles as a call of os.system: a file that runs it when unpickled with plain pickle."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _hostile(tmp_path: pathlib.Path, name: str) -> tuple[pathlib.Path, pathlib.Path]:
    marker = tmp_path / f"{name}.exploited"
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, np.array([_Exploit(marker)], dtype=object), allow_pickle=True)
    elif name.endswith("zip.pt"):
        torch.save({"noise_label_train": _Exploit(marker)}, path)
    else:
        _legacy_pt(path, {"noise_label_train": _Exploit(marker), "clean_label_train": torch.tensor(CLEAN)})
    return path, marker


@pytest.mark.parametrize("name", ["hostile.legacy.pt", "hostile.zip.pt", "hostile.npy"])
def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, name):
    path, marker = _hostile(tmp_path, name)
    with pytest.raises(LabelFileError) as caught:
        read_label_file(path, 10)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert ("refused global" in message and "system" in message) if name.endswith(".pt") else "pickle" in message
    assert not marker.exists()


def test_the_cli_refuses_a_hostile_file_before_anything_runs(tmp_path):
    path, marker = _hostile(tmp_path, "hostile.legacy.pt")
    result = subprocess.run(
        [sys.executable, "train.py", "dataset=synthetic", "dataset.train_size=10", "noise_type=file",
         f"noise_file={path}", "holdout=0", f"runs_dir={tmp_path / 'runs'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: noise_file:") and len(result.stderr.strip().splitlines()) == 1
    assert "refused global posix.system" in result.stderr or "refused global os.system" in result.stderr
    assert not marker.exists() and not list((tmp_path / "runs").rglob("summary.json"))
    # The exploit is real: unpickled by torch.load(weights_only=False), the file runs its command.
    assert torch.load(path, weights_only=False)["noise_label_train"] == 0 and marker.exists()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("labels.txt", b"6\n9\n", "unknown format '.txt'"),
        ("labels.json", b"[6, 9.5]", "is not a JSON list of integers"),
        ("labels.json", b"[true, false]", "is not a JSON list of integers"),
        ("labels.json", b'{"labels": [1]}', "is not a JSON list of integers"),
        ("labels.csv", b"label,noisy\n1,2\n", "has no column 'label_noisy'"),
        ("labels.csv", b"label,label_noisy\n1,x\n", "cannot be read as .csv"),
        ("labels.json", b"[1, 2, 10]", "its noisy labels has labels outside [0, 10)"),
        ("labels.csv", b"label,label_noisy\n-1,2\n", "its clean labels has labels outside [0, 10)"),
    ],
)
def test_malformed_files_are_named_in_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LabelFileError) as caught:
        read_label_file(path, 10)
    assert message in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_float_arrays_and_tensors_are_refused(tmp_path):
    np.save(tmp_path / "float.npy", NOISY.astype(np.float32))
    _legacy_pt(tmp_path / "float.pt", {"noise_label_train": torch.tensor(NOISY, dtype=torch.float32)})
    _legacy_pt(tmp_path / "keys.pt", {"labels": torch.tensor(NOISY)})
    for name, message in (("float.npy", "not a 1-D integer array (float32"), ("float.pt", "torch.FloatStorage"),
                          ("keys.pt", "holds no 'noise_label_train' (found: labels)")):
        with pytest.raises(LabelFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_label_file(tmp_path / name, 10)


# The checks before training: through the config, so that train.py prints one line and exits with 2.


TINY_FILE = ("dataset=synthetic", "dataset.train_size=10", "noise_type=file", "holdout=0")


def test_sha256_is_checked_when_given_and_always_recorded(tmp_path):
    path = _write(tmp_path / "labels.json")
    sha = sha256_of(path)
    cfg = resolve(compose_train(*TINY_FILE, f"noise_file={path}"))
    assert cfg.noise_sha256 == sha  # computed when not given
    assert run_name(cfg) == f"synthetic/ce/noise0-file-{sha[:12]}-holdout0-seed0"
    assert resolve(compose_train(*TINY_FILE, f"noise_file={path}", f"noise_sha256={sha.upper()}")).noise_sha256 == sha
    for overrides, message in (
        ((f"noise_file={path}", f"noise_sha256={'0' * 64}"), f"noise_file: {path} has sha256 {sha}, not the"),
        ((f"noise_file={path}", "noise_sha256=abc"), "noise_sha256: must be 64 hex digits"),
        ((f"noise_file={tmp_path / 'missing.json'}",), f"noise_file: {tmp_path / 'missing.json'}: no such file"),
        ((), "noise_file: required with noise_type=file"),
        ((f"noise_file={path}", "noise=0.2"), "noise: must be 0 with file noise"),
        ((f"noise_file={path}", "noise_type=uniform"), "noise_file: only used with noise_type=file"),
        ((f"noise_sha256={sha}", "noise_type=uniform"), "noise_sha256: only used with noise_type=file"),
    ):
        with pytest.raises(ConfigError) as caught:
            resolve(compose_train(*TINY_FILE, *overrides))
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_the_length_must_be_the_training_sets(tmp_path):
    path = _write(tmp_path / "labels.npy")  # 10 labels
    with pytest.raises(ConfigError) as caught:
        resolve(compose_train("dataset=synthetic", "dataset.train_size=12", "noise_type=file", f"noise_file={path}"))
    assert str(caught.value) == (f"noise_file: {path} holds 10 labels but the training set of synthetic has 12; a "
                                 "file of the first 10 training labels needs dataset.train_size=10")
    # PLC's files label the first 45,000 CIFAR images: accepted with train_size=45000 only (nothing is read).
    plc = tmp_path / "cifar10-1-0.35.npy"
    np.save(plc, np.arange(45_000) % 10)
    cfg = resolve(compose_train("noise_type=file", f"noise_file={plc}", "dataset.train_size=45000"))
    assert cfg.noise_file == str(plc)
    with pytest.raises(ConfigError, match="holds 45000 labels but the training set of cifar10 has 50000; a file of "
                                          "the first 45000 training labels needs dataset.train_size=45000"):
        resolve(compose_train("noise_type=file", f"noise_file={plc}"))


def test_clean_labels_must_equal_the_datasets(tmp_path):
    dataset = make_synthetic(10, 4, 10, seed=0)
    clean = dataset.train_labels.numpy()
    good = _write(tmp_path / "good.csv", noisy=(clean + 1) % 10, clean=clean)
    labels = run_data(dataset, noise_type="file", noise_file=str(good)).noisy_labels
    assert labels.tolist() == ((clean + 1) % 10).tolist()
    swapped = clean.copy()
    first, second = 0, int(np.flatnonzero(clean != clean[0])[0])
    swapped[[first, second]] = swapped[[second, first]]
    bad = _write(tmp_path / "bad.legacy.pt", noisy=clean, clean=swapped)
    with pytest.raises(DatasetError) as caught:
        run_data(dataset, noise_type="file", noise_file=str(bad))
    assert str(caught.value) == (f"noise_file: the clean labels of {bad} differ from the synthetic training labels "
                                 f"at 2 of 10 positions (first at index 0); the file belongs to another dataset or "
                                 "order")
    # A file that changed after the run was configured (its SHA-256 recorded then) is refused too.
    with pytest.raises(DatasetError, match="has sha256 .*, not the noise_sha256 given"):
        run_data(dataset, noise_type="file", noise_file=str(good), noise_sha256="0" * 64)


def test_the_file_path_is_a_location_and_its_sha256_the_identity(tmp_path):
    first = _write(tmp_path / "a.json")
    cfg = resolve(compose_train(*TINY_FILE, f"noise_file={first}"))
    run_dir = RunDir(tmp_path / "run")
    run_dir.path.mkdir()
    run_dir.write_config(cfg)
    moved = tmp_path / "b.json"
    first.rename(moved)
    moved_cfg = resolve(compose_train(*TINY_FILE, f"noise_file={moved}"))
    run_dir.check_config(moved_cfg)  # the same labels from elsewhere: the run resumes
    assert run_name(moved_cfg) == run_name(cfg)
    _write(moved, noisy=CLEAN)
    with pytest.raises(RunDirError, match="noise_sha256"):
        run_dir.check_config(resolve(compose_train(*TINY_FILE, f"noise_file={moved}")))


def test_a_relative_path_is_made_absolute(tmp_path, monkeypatch):
    _write(tmp_path / "labels.json")
    monkeypatch.chdir(tmp_path)
    assert resolve(compose_train(*TINY_FILE, "noise_file=labels.json")).noise_file == str(tmp_path / "labels.json")


# scripts.export_labels


def test_exported_labels_round_trip_through_noise_type_file(tmp_path, capsys):
    status, source = train_tiny(tmp_path / "source", "noise=0.5", "noise_type=symmetric", "epochs=1")
    assert status == "complete"
    labels = np.load(source / "noisy_labels.npy")
    summary = json.loads((source / "summary.json").read_text())
    dataset = make_synthetic(160, 64, 10, seed=0)  # tiny()'s
    for fmt in ("npy", "csv", "json"):
        output = tmp_path / f"exported.{fmt}"
        export_main([str(source), "--format", fmt, "--output", str(output)])
        sha = sha256_of(output)
        assert capsys.readouterr().out.strip() == (f"wrote {output} (sha256 {sha}); load it with noise_type=file "
                                                   f"noise_file={output} noise_sha256={sha}")
        overrides = ("noise_type=file", f"noise_file={output}", f"noise_sha256={sha}", "epochs=1")
        cfg = resolve(compose_train(*tiny(tmp_path / fmt, *overrides)))
        assert np.array_equal(run_data_for(cfg, dataset, torch.device("cpu")).noisy_labels.numpy(), labels)
    assert (tmp_path / "exported.npy").read_bytes() == (source / "noisy_labels.npy").read_bytes()
    # And trained on, end to end.
    status, run_dir = train_tiny(tmp_path / "again", *overrides)
    assert status == "complete" and np.array_equal(np.load(run_dir / "noisy_labels.npy"), labels)
    noise = json.loads((run_dir / "summary.json").read_text())["noise"]
    assert (noise["type"], noise["file"], noise["sha256"]) == ("file", str(output), sha)
    assert (noise["realized"], noise["fingerprint"]) == (summary["noise"]["realized"], summary["noise"]["fingerprint"])


def test_export_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        export_main([str(tmp_path / "nothing"), "--format", "json"])
    assert caught.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith(f"error: {tmp_path / 'nothing'} is not a run directory") and message.count("\n") == 1
