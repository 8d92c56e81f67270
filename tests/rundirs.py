"""Writes fake run directories that follow the run-directory contract (docs/run-directory.md) exactly: the
engine's config, summary and metrics schemas (tests/test_rundirs.py checks them against a directory train.py wrote),
with made-up numbers."""

import csv
import functools
import json
import math
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from data import FINGERPRINT_KEYS, class_count
from experiments.evaluation import ECE_BINS, METRIC_COLUMNS
from experiments.identity import loss_tag
from experiments.provenance import LIBRARIES
from experiments.resolve import CONFIGS, with_defaults
from experiments.rundir import CALIBRATION_COLUMNS, REQUIRED_METRICS
from experiments.schema import TrainConfig

# ResNet-20's parameters less its last layer (64 -> C weights and C biases), counted by hand from the layer list.
RESNET20_BODY_PARAMS = 269_722 - 65 * 10
PAPER_EPOCHS = 256


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
    seed: int | None = None,
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
    recipe: dict | None = None,
    fingerprint: dict | None = None,
) -> Path:
    """One run directory below `root`; returns its path.

    `test_acc` (and `val_acc`, required when holdout > 0) give one value per logged epoch; `epochs` is the
    planned number, by default the paper's 256 (with the engine's other defaults, the run is of the paper's
    recipe). `seed` defaults to the protocol's: 100 for a validation run (holdout > 0), 0 for a full run. A
    complete run's lists are padded to `epochs` by repeating their last value, which changes none of the protocol's
    numbers (the earliest best epoch, the last epoch, the best). status=None writes no
    summary.json (a run that has not written one yet, or was killed before it could). `params` are the loss's
    other parameters (besides alpha); legacy=True writes metrics.csv with the first version's columns only (and
    no calibration.csv). `recipe` overrides other config keys (nested, e.g. {"optim": {"lr": 0.05}}); the rest
    are the engine's defaults; `fingerprint` is summary.json's noise fingerprint (data.noise_fingerprint's keys; all
    null by default). calibration.csv puts each epoch's 100 test predictions into one bin, with mean
    confidence `confidence[i]` (default: the test accuracy, i.e. calibrated) and test_acc[i] of them correct.
    """
    complete = status == "complete"
    epochs = epochs or PAPER_EPOCHS
    if seed is None:  # protocol=val's seed for a validation run, full0's for a full run
        seed = 100 if holdout else 0

    def per_epoch(values: list | None, default=None) -> list:
        """One value per logged epoch: the given ones, padded to `epochs` for a complete run."""
        values = [default] * len(test_acc) if values is None else list(values)
        return values + values[-1:] * (epochs - len(values)) if complete else values

    confidence = per_epoch([a / 100 for a in test_acc] if confidence is None else confidence)
    test_acc, val_acc, train_loss = per_epoch(test_acc), per_epoch(val_acc), per_epoch(train_loss, 1.0)
    noisy_fit, test_ece = per_epoch(noisy_fit), per_epoch(test_ece)
    logged = len(test_acc)
    lr = step_lr(epochs)[:logged] if lr is None else per_epoch(lr)
    config = _config(
        {"dataset": {"name": dataset}, "loss": {"name": loss, "alpha": alpha, **(params or {})}, "noise": noise,
         "noise_type": noise_type, "noise_set": noise_set, "seed": seed, "holdout": holdout, "epochs": epochs},
        recipe or {},
    )
    where = f"noise{noise:g}-{noise_type}{'-' + noise_set if noise_set else ''}-holdout{holdout}-seed{seed}"
    run_dir = root / (subdir or f"{dataset}/{loss_tag(config['loss'])}/{where}")
    run_dir.mkdir(parents=True)
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
                "rate": noise, "type": noise_type, "set": noise_set, "seed": seed,
                "instance_std": config["instance_std"], "file": config["noise_file"], "sha256": config["noise_sha256"],
                "realized": round(noise * 0.9, 4),
                "fingerprint": {**dict.fromkeys(FINGERPRINT_KEYS), **(fingerprint or {})},
            },
            "train_eval": {"images": 5000, "of": 45000, "relabelled": round(5000 * noise * 0.9)},
            "params": RESNET20_BODY_PARAMS + 65 * _classes(config),
            "epochs_completed": logged,
            "best_val_epoch": best_val,
            "final": final,
            "versions": {"python": "3.11.0", **dict.fromkeys(LIBRARIES, "1.0.0")},
            "git_commit": "0123456789abcdef",
            "device": "cpu (x86_64 AVX2, 1 threads)",
            "compiled": False,
            "compile": {"graphs": 0, "eager_steps": 4 * logged},
            "pack": {"size": 1, "members": [str(run_dir.relative_to(root))]},
            "cuda": None,
        }
        if error is not None:
            summary["error"] = error
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    return run_dir


def _json_value(value: object) -> object:
    if value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


@functools.cache
def _dataset_group(name: str) -> dict:
    """configs/dataset/<name>.yaml, as train.py's `dataset=<name>` composes it."""
    return yaml.safe_load((CONFIGS / "dataset" / f"{name}.yaml").read_text())


def _config(run: dict, recipe: dict) -> dict:
    """The resolved config a CPU run of these keys records: the schema's defaults, the dataset's group, the keys,
    the derived values (experiments.resolve.with_defaults) and resolve's device defaults."""
    dataset = run["dataset"]["name"]
    group = _dataset_group(dataset) if (CONFIGS / "dataset" / f"{dataset}.yaml").exists() else {"name": dataset}
    cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), {"dataset": group}, run, recipe,
                          {"device": "cpu", "compile": False, "eval_batch_size": 256})
    return OmegaConf.to_container(with_defaults(cfg))


def _classes(config: dict) -> int:
    return class_count(config["dataset"]["name"], config["dataset"]["num_classes"])
