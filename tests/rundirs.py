"""Writes fake run directories that follow the run-directory contract (README, "The run directory") exactly."""

import csv
import json
import math
from pathlib import Path

import yaml

from experiments.config import loss_tag
from experiments.evaluation import ECE_BINS, METRIC_COLUMNS
from experiments.rundir import CALIBRATION_COLUMNS
from scripts.aggregate import REQUIRED_METRICS


def step_lr(epochs: int) -> list[float]:
    """The paper's schedule scaled to `epochs`: 0.1, divided by 10 after half and after three quarters."""
    return [0.1 * 0.1 ** ((e > epochs // 2) + (e > 3 * epochs // 4)) for e in range(1, epochs + 1)]


def write_run(
    root: Path,
    *,
    test_acc: list[float],
    dataset: str = "cifar10",
    loss: str = "ce",
    alpha: float | None = None,
    params: dict | None = None,
    noise: float = 0.0,
    noise_type: str = "uniform",
    noise_set: str | None = None,
    seed: int = 0,
    holdout: int = 0,
    val_acc: list[float] | None = None,
    noisy_fit: list[float] | None = None,
    test_ece: list[float] | None = None,
    lr: list[float] | None = None,
    train_loss: list[float] | None = None,
    epochs: int | None = None,
    status: str | None = "complete",
    error: str | None = None,
    subdir: str | None = None,
    legacy: bool = False,
    confidence: list[float] | None = None,
) -> Path:
    """One run directory below `root`; returns its path.

    `test_acc` (and `val_acc`, required when holdout > 0) give one value per logged epoch; `epochs` is the
    planned number (default: as many as logged). status=None writes no summary.json (a run that has not
    written one yet, or was killed before it could). `params` are the loss's other parameters (besides alpha);
    legacy=True writes metrics.csv with the first version's columns only (and no calibration.csv).
    calibration.csv puts each epoch's 100 test predictions into one bin, with mean confidence `confidence[i]`
    (default: the test accuracy, i.e. calibrated) and test_acc[i] of them correct.
    """
    logged = len(test_acc)
    epochs = logged if epochs is None else epochs
    lr = step_lr(epochs)[:logged] if lr is None else lr
    train_loss = [1.0] * logged if train_loss is None else train_loss
    val_acc = [None] * logged if val_acc is None else val_acc
    noisy_fit = [None] * logged if noisy_fit is None else noisy_fit
    test_ece = [None] * logged if test_ece is None else test_ece
    loss_config = {"name": loss, "alpha": alpha, **(params or {})}
    setting = loss_tag(loss_config)
    where = f"noise{noise:g}-{noise_type}{'-' + noise_set if noise_set else ''}-holdout{holdout}-seed{seed}"
    run_dir = root / (subdir or f"{dataset}/{setting}/{where}")
    run_dir.mkdir(parents=True)

    config = {
        "dataset": {"name": dataset, "root": "~/.cache/tce/datasets", "train_size": None},
        "loss": loss_config,
        "model": {"depth": 20},
        "optim": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
        "noise": noise,
        "noise_type": noise_type,
        "noise_set": noise_set,
        "noise_seed": seed,
        "seed": seed,
        "holdout": holdout,
        "epochs": epochs,
        "batch_size": 128,
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    rows = [
        {
            "epoch": e,
            "lr": lr[i],
            "train_loss": train_loss[i],
            "train_acc": 50.0,
            "train_clean_acc": 55.0,
            "noisy_fit": "" if noisy_fit[i] is None else noisy_fit[i],
            "val_acc": "" if val_acc[i] is None else val_acc[i],
            "test_acc": test_acc[i],
            "test_ece": "" if test_ece[i] is None else test_ece[i],
            "seconds": 1.5,
        }
        for i, e in enumerate(range(1, logged + 1))
    ]
    columns = REQUIRED_METRICS if legacy else METRIC_COLUMNS
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    if not legacy:
        confidence = [a / 100 for a in test_acc] if confidence is None else confidence
        with open(run_dir / "calibration.csv", "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(CALIBRATION_COLUMNS)
            for i, e in enumerate(range(1, logged + 1)):
                home = min(int(confidence[i] * ECE_BINS - 1e-9), ECE_BINS - 1)  # the (lo, hi] bin of the confidence
                for b in range(ECE_BINS):
                    sums = (100, 100 * confidence[i], test_acc[i]) if b == home else (0, 0, 0)
                    writer.writerow([e, "test", b, *sums])

    if status is not None:
        # The engine writes strict JSON (allow_nan=False): a non-finite value becomes null.
        final = {k: _json_value(rows[-1].get(k, "")) for k in columns} if rows else None
        best_val = max(range(logged), key=lambda i: (val_acc[i], -i)) + 1 if holdout and logged else None
        summary = {
            "status": status,
            "config": config,
            "noise": {
                "rate": noise, "type": noise_type, "set": noise_set, "seed": seed, "realized": round(noise * 0.9, 4)
            },
            "params": 272474,
            "epochs_completed": logged,
            "best_val_epoch": best_val,
            "final": final,
            "versions": {"python": "3.11.0", "torch": "2.4.0"},
            "git_commit": "0123456789abcdef",
            "device": "cpu",
        }
        if error is not None:
            summary["error"] = error
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    return run_dir


def _json_value(value: object) -> object:
    if value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value
