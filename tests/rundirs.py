"""Writes fake run directories that follow the run-directory contract (README, "The run directory") exactly."""

import csv
import json
import math
from pathlib import Path

import yaml

from experiments.rundir import METRIC_COLUMNS


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
    noise: float = 0.0,
    noise_type: str = "uniform",
    seed: int = 0,
    holdout: int = 0,
    val_acc: list[float] | None = None,
    lr: list[float] | None = None,
    train_loss: list[float] | None = None,
    epochs: int | None = None,
    status: str | None = "complete",
    error: str | None = None,
    subdir: str | None = None,
) -> Path:
    """One run directory below `root`; returns its path.

    `test_acc` (and `val_acc`, required when holdout > 0) give one value per logged epoch; `epochs` is the
    planned number (default: as many as logged). status=None writes no summary.json (a run that has not
    written one yet, or was killed before it could).
    """
    logged = len(test_acc)
    epochs = logged if epochs is None else epochs
    lr = step_lr(epochs)[:logged] if lr is None else lr
    train_loss = [1.0] * logged if train_loss is None else train_loss
    val_acc = [None] * logged if val_acc is None else val_acc
    setting = f"tce-a{alpha:g}" if loss == "tce" else loss
    run_dir = root / (subdir or f"{dataset}/{setting}/noise{noise:g}-{noise_type}-holdout{holdout}-seed{seed}")
    run_dir.mkdir(parents=True)

    config = {
        "dataset": {"name": dataset, "root": "~/.cache/tce/datasets", "train_size": None},
        "loss": {"name": loss, "alpha": alpha},
        "model": {"depth": 20},
        "optim": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
        "noise": noise,
        "noise_type": noise_type,
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
            "val_acc": "" if val_acc[i] is None else val_acc[i],
            "test_acc": test_acc[i],
            "seconds": 1.5,
        }
        for i, e in enumerate(range(1, logged + 1))
    ]
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    if status is not None:
        # The engine writes strict JSON (allow_nan=False): a non-finite value becomes null.
        final = {k: _json_value(v) for k, v in rows[-1].items() if k != "seconds"} if rows else None
        best_val = max(range(logged), key=lambda i: (val_acc[i], -i)) + 1 if holdout and logged else None
        summary = {
            "status": status,
            "config": config,
            "noise": {"rate": noise, "type": noise_type, "seed": seed, "realized": round(noise * 0.9, 4)},
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
