"""The engine end to end on tiny synthetic runs: the run directory contract, determinism, resume, skip, divergence."""

import csv
import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from processes import cli, wait_for_epochs

from compose import tiny, train_tiny
from data import load_dataset
from experiments.config import LOSS_KEYS
from experiments.rundir import METRIC_COLUMNS
from models import ResNet

RESNET8_PARAMS = sum(p.numel() for p in ResNet(8, 3, 10).parameters())


def metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_cli_run_writes_the_whole_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    proc = cli(*tiny(tmp_path, "epochs=2", "noise=0.5", "loss=tce", "loss.alpha=1.5"), f"hydra.run.dir={run_dir}")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "epoch 2/2" in out

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["loss"] == {"name": "tce", "alpha": 1.5, **{key: None for key in LOSS_KEYS if key != "alpha"}}
    assert config["noise"] == 0.5 and config["noise_seed"] == 0 and config["precision"] == "fp32"

    rows = metrics(run_dir)
    assert list(rows[0]) == list(METRIC_COLUMNS) and [r["epoch"] for r in rows] == ["1", "2"]
    assert [r["lr"] for r in rows] == ["0.1", "0.01"]  # milestones at 0.5 and 0.75 of 2 epochs: lr / 10 after epoch 1
    for row in rows:
        for key in ("train_acc", "train_clean_acc", "val_acc", "test_acc"):
            assert 0 <= float(row[key]) <= 100
        assert np.isfinite(float(row["train_loss"])) and float(row["seconds"]) > 0

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["epochs_completed"] == 2
    assert summary["config"] == config
    assert summary["params"] == RESNET8_PARAMS
    assert summary["noise"]["rate"] == 0.5 and summary["noise"]["type"] == "uniform" and summary["noise"]["seed"] == 0
    assert 0.3 < summary["noise"]["realized"] < 0.5  # about 0.5 * (1 - 1/10)
    assert summary["best_val_epoch"] in (1, 2)
    assert summary["final"]["epoch"] == 2 and summary["final"]["test_acc"] == pytest.approx(float(rows[-1]["test_acc"]))
    assert {"torch", "python", "hydra-core"} <= set(summary["versions"]) and "git_commit" in summary
    assert summary["device"].startswith("cpu")

    for row in rows:  # memorization and calibration, measured in the same evaluation passes
        assert 0 <= float(row["noisy_fit"]) <= 100 and 0 <= float(row["noisy_true"]) <= 100
        assert float(row["test_nll"]) > 0 and 0 <= float(row["test_ece"]) <= 100 and float(row["val_nll"]) > 0
    assert summary["train_eval"]["images"] == summary["train_eval"]["of"] == 128  # holdout 32 of 160
    assert 0 < summary["train_eval"]["relabelled"] < 128
    assert summary["compiled"] is False

    labels = np.load(run_dir / "noisy_labels.npy")
    assert labels.dtype == np.int64 and labels.shape == (160,) and labels.min() >= 0 and labels.max() < 10
    # The transition matrix of the noise: clean class (rows) -> noisy label (columns), over the training set.
    matrix = np.loadtxt(run_dir / "noise_matrix.csv", delimiter=",", skiprows=1, dtype=np.int64)[:, 1:]
    clean = load_dataset("synthetic", "", train_size=160, test_size=64, num_classes=10, seed=0).train_labels.numpy()
    assert matrix.shape == (10, 10) and matrix.sum() == 160
    assert (matrix == np.histogram2d(clean, labels, bins=10, range=[[0, 10], [0, 10]])[0]).all()
    assert 1 - np.trace(matrix) / 160 == pytest.approx(summary["noise"]["realized"])
    # The ECE's bin sums, per epoch and split: every test image in one bin.
    calibration = (run_dir / "calibration.csv").read_text().splitlines()
    assert calibration[0] == "epoch,split,bin,count,confidence_sum,correct_sum" and len(calibration) == 1 + 2 * 2 * 15
    test_counts = [float(line.split(",")[3]) for line in calibration[1:] if line.startswith("2,test,")]
    assert sum(test_counts) == 64
    # Replaced labels: exactly round(0.5 * 160) were redrawn, so at most that many differ from the clean ones.
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 2 and len(checkpoint["metrics"]) == 2
    assert set(checkpoint) >= {"model", "momentum", "loader", "rng"}
    assert any(f.name.startswith("events.out.tfevents") for f in (run_dir / "tb").iterdir())


def test_run_directory_is_named_from_the_config(tmp_path):
    proc = cli(*tiny(tmp_path, "epochs=1", "loss=tce2", "noise=0.2", "seed=4"))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert (tmp_path / "synthetic/tce-a2/noise0.2-uniform-holdout32-seed4/summary.json").exists()


def test_two_identical_runs_give_identical_metrics(tmp_path):
    _, a = train_tiny(tmp_path / "a", "noise=0.4", "loss=tce")
    _, b = train_tiny(tmp_path / "b", "noise=0.4", "loss=tce")
    assert without_seconds(metrics(a)) == without_seconds(metrics(b))
    _, c = train_tiny(tmp_path / "c", "noise=0.4", "loss=tce", "seed=1")
    assert without_seconds(metrics(a)) != without_seconds(metrics(c))


def test_killed_run_resumes_to_the_same_metrics(tmp_path):
    args = tiny(tmp_path / "killed", "epochs=5", "noise=0.4")
    proc = cli(*args)
    summary = tmp_path / "killed" / "synthetic/ce/noise0.4-uniform-holdout32-seed0/summary.json"
    wait_for_epochs(proc, summary, 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    interrupted = json.loads(summary.read_text())
    assert interrupted["status"] == "running" and 2 <= interrupted["epochs_completed"] < 5

    resumed = cli(*args)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "resuming after epoch" in out, out
    reference = cli(*tiny(tmp_path / "reference", "epochs=5", "noise=0.4"))
    ref_out, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, ref_out
    ref_dir = tmp_path / "reference" / "synthetic/ce/noise0.4-uniform-holdout32-seed0"
    assert json.loads(summary.read_text())["status"] == "complete"
    assert without_seconds(metrics(summary.parent)) == without_seconds(metrics(ref_dir))


def test_complete_run_is_skipped_and_force_reruns_it(tmp_path):
    status, run_dir = train_tiny(tmp_path, "epochs=1")
    assert status == "complete"
    stamp = (run_dir / "checkpoint.pt").stat().st_mtime_ns
    status, _ = train_tiny(tmp_path, "epochs=1")
    assert status == "skipped" and (run_dir / "checkpoint.pt").stat().st_mtime_ns == stamp
    status, _ = train_tiny(tmp_path, "epochs=1", "force=true")
    assert status == "complete" and (run_dir / "checkpoint.pt").stat().st_mtime_ns != stamp


def test_a_directory_refuses_another_config(tmp_path):
    train_tiny(tmp_path, "epochs=1")
    status, run_dir = train_tiny(tmp_path, "epochs=2")
    assert status == "failed"
    assert json.loads((run_dir / "summary.json").read_text())["epochs_completed"] == 1


def test_diverged_run_is_recorded_and_returns(tmp_path):
    status, run_dir = train_tiny(tmp_path, "optim.lr=1e12")
    assert status == "diverged"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and "non-finite" in summary["error"]
    rows = metrics(run_dir)
    assert len(rows) == summary["epochs_completed"] >= 1 and not np.isfinite(float(rows[-1]["train_loss"]))


def test_mae_fails_to_learn_without_crashing(tmp_path):
    status, run_dir = train_tiny(tmp_path, "loss=mae")
    assert status == "complete"
    assert all(np.isfinite(float(r["train_loss"])) for r in metrics(run_dir))
