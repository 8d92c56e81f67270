"""The engine end to end on tiny synthetic runs: the run directory contract, its metrics recomputed by hand,
determinism, skip, divergence, the device."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from plain_eval import evaluate_test_split, evaluate_training_images
from processes import cli

from compose import compose_train, tiny, train_tiny
from data import holdout_split, load_dataset
from experiments.resolve import resolve
from experiments.rundir import METRIC_COLUMNS
from experiments.schema import LOSS_KEYS, REPLACED_WEIGHT_DECAY, TRANSITION_KEYS, ConfigError
from models import ResNet

RESNET8_PARAMS = sum(p.numel() for p in ResNet(8, 3, 10).parameters())


def metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_cli_run_writes_the_whole_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    proc = cli(*tiny(tmp_path, "epochs=3", "noise=0.5", "loss=tce", "loss.alpha=1.5"), f"hydra.run.dir={run_dir}")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "epoch 3/3" in out and out.count("device cpu: cpu (") == 1  # the device it trains on, once

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["loss"] == {"name": "tce", "alpha": 1.5,
                              **{key: None for key in (*LOSS_KEYS, *TRANSITION_KEYS, REPLACED_WEIGHT_DECAY)
                                 if key != "alpha"}}
    assert config["noise"] == 0.5 and config["noise_seed"] == 0 and config["precision"] == "fp32"

    rows = metrics(run_dir)
    assert list(rows[0]) == list(METRIC_COLUMNS) and [r["epoch"] for r in rows] == ["1", "2", "3"]
    # Milestones at 0.5 and 0.75 of 3 epochs, floor(1.5) = 1 and floor(2.25) = 2: the lr / 10 after each.
    assert [r["lr"] for r in rows] == ["0.1", "0.01", "0.001"]
    assert all(float(row["seconds"]) > 0 for row in rows)

    dataset = load_dataset("synthetic", "", train_size=160, test_size=64, num_classes=10, seed=0)
    labels = np.load(run_dir / "noisy_labels.npy")
    clean = dataset.train_labels.numpy()
    assert labels.dtype == np.int64 and labels.shape == (160,)
    # round(0.5 * 160) = 80 labels were redrawn from all 10 classes, so at most 80 differ from the clean ones.
    wrong = int((labels != clean).sum())
    assert 0 < wrong <= 80

    # The last row, recomputed from the checkpoint's weights by a plain float64 loop over the images.
    last = {k: float(v) if v else None for k, v in rows[-1].items()}
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 3 and len(checkpoint["metrics"]) == 3
    test = evaluate_test_split(run_dir, 8, dataset)
    assert last["test_acc"] == test["test_acc"]
    assert last["test_nll"] == pytest.approx(test["test_nll"], rel=1e-5)
    assert last["test_ece"] == pytest.approx(test["test_ece"], abs=1e-3)
    train_portion, _ = holdout_split(dataset.train_labels, 32, 0)  # the evaluation reads all 128 of them
    train = evaluate_training_images(run_dir, 8, dataset, train_portion)
    assert (last["train_clean_acc"], last["noisy_fit"], last["noisy_true"]) == (
        train["train_clean_acc"], train["noisy_fit"], train["noisy_true"])

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["epochs_completed"] == 3
    assert summary["config"] == config
    assert summary["params"] == RESNET8_PARAMS
    assert summary["noise"]["rate"] == 0.5 and summary["noise"]["type"] == "uniform" and summary["noise"]["seed"] == 0
    assert summary["noise"]["realized"] == wrong / 160
    val = [float(r["val_acc"]) for r in rows]
    assert summary["best_val_epoch"] == 1 + val.index(max(val))  # the first epoch of the best accuracy
    assert summary["final"] == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in last.items()}
    assert {"torch", "python", "hydra-core"} <= set(summary["versions"]) and "git_commit" in summary
    assert summary["device"].startswith("cpu")
    relabelled = int((labels[train_portion.numpy()] != clean[train_portion.numpy()]).sum())
    assert summary["train_eval"] == {"images": 128, "of": 128, "relabelled": relabelled}  # holdout 32 of 160
    assert summary["compiled"] is False

    # The transition matrix of the noise: clean class (rows) -> noisy label (columns), over the training set.
    matrix = np.loadtxt(run_dir / "noise_matrix.csv", delimiter=",", skiprows=1, dtype=np.int64)[:, 1:]
    assert matrix.shape == (10, 10)
    assert (matrix == np.histogram2d(clean, labels, bins=10, range=[[0, 10], [0, 10]])[0]).all()
    # The ECE's bin sums, per epoch and split: every test image in one bin.
    calibration = (run_dir / "calibration.csv").read_text().splitlines()
    assert calibration[0] == "epoch,split,bin,count,confidence_sum,correct_sum" and len(calibration) == 1 + 3 * 2 * 15
    test_counts = [float(line.split(",")[3]) for line in calibration[1:] if line.startswith("3,test,")]
    assert sum(test_counts) == 64
    test_correct = [float(line.split(",")[5]) for line in calibration[1:] if line.startswith("3,test,")]
    assert 100 * sum(test_correct) / 64 == test["test_acc"]
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


def test_a_diverged_run_is_recorded_and_not_retrained_without_force(tmp_path, caplog):
    status, run_dir = train_tiny(tmp_path, "optim.lr=1e12")
    assert status == "diverged"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and "non-finite" in summary["error"]
    rows = metrics(run_dir)
    assert len(rows) == summary["epochs_completed"] >= 1 and not np.isfinite(float(rows[-1]["train_loss"]))
    stamp = (run_dir / "metrics.csv").stat().st_mtime_ns

    caplog.set_level("INFO", logger="tce")
    status, _ = train_tiny(tmp_path, "optim.lr=1e12")
    assert status == "skipped" and "diverged in" in caplog.text and "force=true reruns it" in caplog.text
    assert (run_dir / "metrics.csv").stat().st_mtime_ns == stamp
    status, _ = train_tiny(tmp_path, "optim.lr=1e12", "force=true")
    assert status == "diverged" and (run_dir / "metrics.csv").stat().st_mtime_ns != stamp


def test_mae_fails_to_learn_without_crashing(tmp_path):
    """As in the paper, MAE does not learn under this recipe: after 3 epochs its test accuracy on 500 balanced test
    images (50 per class) is within a few points of chance (10 %), where CE reaches about 30 %."""
    status, run_dir = train_tiny(tmp_path, "loss=mae", "dataset.test_size=500")
    assert status == "complete"
    assert abs(float(metrics(run_dir)[-1]["test_acc"]) - 10.0) <= 5.0


# --- devices --------------------------------------------------------------------------------------------------


def test_cuda_that_is_visible_but_unusable_stops_with_one_line(monkeypatch):
    """A GPU that torch sees but cannot run a tensor on (here: none at all, torch told otherwise)."""
    if torch.cuda.is_available():
        pytest.skip("CUDA is usable here")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError) as stopped:
        resolve(compose_train(*tiny(Path("runs"), "device=cuda")))
    assert str(stopped.value).startswith("device: 'cuda' asked for, but CUDA is unusable here (")
    assert "\n" not in str(stopped.value)
    assert resolve(compose_train(*tiny(Path("runs"), "device=auto"))).device == "cpu"  # auto takes the CPU then


def test_the_slurm_gpu_launcher_gives_every_job_device_cuda(monkeypatch):
    monkeypatch.delenv("TCE_DEVICE", raising=False)
    composed = compose_train("experiment=table1", "hydra/launcher=slurm_gpu", hydra=True)
    assert composed.hydra.job.env_set.TCE_DEVICE == "cuda"  # set in each job's process, before its config resolves
    assert composed.device == "auto"
    monkeypatch.setenv("TCE_DEVICE", "cuda")  # in the job
    assert compose_train("experiment=table1").device == "cuda"
    assert compose_train("experiment=table1", "device=cpu").device == "cpu"  # the command line still decides
