"""Runs with the noise the field measures now, through the engine, on tiny datasets in their real on-disk formats:
CIFAR-10N's human labels and CIFAR-100's within-superclass asymmetric noise."""

import json

import numpy as np
import pytest
import torch
from test_data_sources import NEXT_IN_SUPERCLASS, write_cifar10, write_cifar100_superclasses

from compose import train_run
from data import ENV_ROOT, noise_fingerprint


@pytest.fixture(autouse=True)
def _configured_root_only(monkeypatch):
    monkeypatch.delenv(ENV_ROOT, raising=False)


def _run(root, *overrides: str) -> tuple[str, object]:
    return train_run(f"dataset.root={root}", "model.depth=8", "epochs=1", "batch_size=4", "device=cpu",
                     "progress=false", f"runs_dir={root / 'runs'}", *overrides)


def _noise_matrix(run_dir) -> np.ndarray:
    return np.loadtxt(run_dir / "noise_matrix.csv", delimiter=",", skiprows=1, dtype=np.int64)[:, 1:]


def test_a_cifar10n_run_trains_on_the_files_labels(tmp_path, monkeypatch):
    _, clean, _, _ = write_cifar10(tmp_path, monkeypatch)
    worst = (clean + np.array([0, 1, 0, 0, 3, 0, 0, 2, 0, 0])) % 10  # 3 of the 10 labels wrong
    content = {key: np.asarray(clean, dtype=np.int64) for key in
               ("clean_label", "aggre_label", "random_label1", "random_label2", "random_label3")}
    (tmp_path / "cifar-n").mkdir()
    torch.save({**content, "worse_label": worst.astype(np.int64)}, tmp_path / "cifar-n" / "CIFAR-10_human.pt")

    status, run_dir = _run(tmp_path, "cifar_n=cifar10-worst", "holdout=2")
    assert status == "complete"
    assert run_dir.relative_to(tmp_path / "runs").as_posix() == "cifar10/ce/noise0-human-worst-holdout2-seed0"
    assert np.array_equal(np.load(run_dir / "noisy_labels.npy"), worst)
    summary = json.loads((run_dir / "summary.json").read_text())
    fingerprint = summary["noise"].pop("fingerprint")
    assert summary["noise"] == {"rate": 0.0, "type": "human", "set": "worst", "seed": 0, "instance_std": None,
                                "file": None, "sha256": None, "realized": 0.3}
    matrix = _noise_matrix(run_dir)
    assert matrix.sum() == 10 and np.trace(matrix) == 7
    # The fingerprint is that of all 10 training labels, the 2 held out included: as noise_matrix.csv.
    assert fingerprint == noise_fingerprint(torch.from_numpy(matrix))


def test_asymmetric_cifar100_noise_flips_to_the_next_class_of_the_true_superclass(tmp_path, monkeypatch):
    fine = write_cifar100_superclasses(tmp_path, monkeypatch)  # one training image of each class
    status, run_dir = _run(tmp_path, "dataset=cifar100", "noise_type=asymmetric", "noise=1.0", "holdout=10")
    assert status == "complete"
    noisy = np.load(run_dir / "noisy_labels.npy")
    assert np.array_equal(noisy, np.array(NEXT_IN_SUPERCLASS)[fine])  # every one flipped: round(1.0 * 1)
    matrix = _noise_matrix(run_dir)
    assert matrix.shape == (100, 100) and (matrix.sum(1) == 1).all() and np.trace(matrix) == 0
    # The common code's blocks of 5 consecutive indices instead:
    status, run_dir = _run(tmp_path, "dataset=cifar100", "noise_type=asymmetric_block", "noise=1.0", "holdout=10")
    assert status == "complete"
    block = np.load(run_dir / "noisy_labels.npy")
    assert np.array_equal(block, fine - fine % 5 + (fine + 1) % 5)
