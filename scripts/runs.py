"""Run directories as aggregation reads them (docs/run-directory.md): each found below a runs folder, identified
from its files (config.yaml, else summary.json's config; never from its folder's name) and given a status (the
summary's: complete, running, interrupted, diverged, failed; running without a summary, which a live process cannot
be told from a dead one by; corrupt when a file cannot be read or contradicts another) and, unless complete, the
reason; and the tidy tables of runs and of their curves. The files are read by experiments/rundir.py, their one
reader.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import tce
from data import FINGERPRINT_KEYS, DatasetError, NoiseSpec, class_count
from data.sources import test_set_size
from experiments.evaluation import METRIC_COLUMNS
from experiments.identity import loss_tag, recipe, recipe_tag
from experiments.lifecycle import COMPLETE, CORRUPT, INTERRUPTED, RUNNING, STATUSES
from experiments.rundir import CONFIG, METRICS, SUMMARY, CorruptRun, RunDir, find_run_dirs
from experiments.schema import LOSS_KEY_TYPES, LOSS_KEYS
from scripts.loss_settings import setting

# The statuses a run read from disk can have, in the status report's order: the engine's (complete first), and
# corrupt for files that cannot be read or contradict each other.
FOUND_STATUSES = (COMPLETE, *(status for status in STATUSES if status != COMPLETE), CORRUPT)

SETTING_COLUMNS = ["loss", *LOSS_KEYS]
IDENTITY_COLUMNS = [
    "recipe", "dataset", "setting", *SETTING_COLUMNS, "noise", "noise_type", "noise_variant", "noise_seed", "seed",
    "holdout", "epochs", "num_classes", "test_images",
]
# What a run's summary.json says of its noisy labels: the realized rate and the fingerprint (data/fingerprint.py).
NOISE_COLUMNS = ["noise_realized", *FINGERPRINT_KEYS]
RUN_COLUMNS = [
    "run_dir",
    "status",
    "reason",
    *IDENTITY_COLUMNS,
    *NOISE_COLUMNS,
    "epochs_completed",
    "best_val_epoch",
    *(f"final_{c}" for c in METRIC_COLUMNS),
    "best_test_acc",
    "best_test_epoch",
]
CURVE_COLUMNS = ["run_dir", "status", *IDENTITY_COLUMNS, *METRIC_COLUMNS]
# The columns of runs.csv and curves.csv that hold whole numbers (nullable_integers).
RUN_INTEGER_COLUMNS = ("t", "noise_seed", "seed", "holdout", "epochs", "num_classes", "test_images", "epochs_completed",
                       "best_val_epoch", "final_epoch", "best_test_epoch")


@dataclass
class RunRecord:
    """A run directory as aggregation reads it from disk (experiments.run trains runs; this only reads them)."""

    run_dir: str
    status: str
    reason: str  # why the run is not complete; empty for complete runs
    identity: dict | None  # IDENTITY_COLUMNS -> value; None when no config could be read
    metrics: pd.DataFrame | None  # METRIC_COLUMNS, epochs 1..n; None when missing or the run is corrupt
    epochs_completed: int | None
    noise: dict  # NOISE_COLUMNS -> value, None where summary.json does not say (older versions, or no summary)
    recipe: dict | None = None  # experiments.identity.recipe of its config; identity["recipe"] is its tag


def read_runs(runs_dir: Path) -> list[RunRecord]:
    """Every run directory below `runs_dir`, read (none when it does not exist)."""
    return [read_run(d) for d in find_run_dirs(runs_dir)] if runs_dir.is_dir() else []


def read_run(run_dir: Path) -> RunRecord:
    """Reads one run directory; never raises on bad contents (the run is then "corrupt" with a reason)."""
    identity = values = None
    files = RunDir(run_dir)
    try:
        config = files.read_config()
        source = CONFIG
        summary = None
        if config is None:
            summary = files.read_summary()
            if summary is None:
                raise CorruptRun(f"{METRICS} without {CONFIG} or {SUMMARY}: the run cannot be identified")
            config, source = summary.get("config"), f"{SUMMARY}'s config"
        identity, values = _identity(config, source)
        summary = summary or files.read_summary()
        metrics = files.read_metrics()
        status, reason, epochs_completed = _classify(summary, metrics, identity)
    except CorruptRun as problem:
        return RunRecord(str(run_dir), CORRUPT, str(problem), identity, None, None, _noise(None), values)
    return RunRecord(str(run_dir), status, reason, identity, metrics, epochs_completed, _noise(summary), values)


def _noise(summary: dict | None) -> dict:
    noise = (summary or {}).get("noise")
    noise = noise if isinstance(noise, dict) else {}
    fingerprint = noise.get("fingerprint") if isinstance(noise.get("fingerprint"), dict) else {}
    return {"noise_realized": noise.get("realized"), **{key: fingerprint.get(key) for key in FINGERPRINT_KEYS}}


def _identity(config: object, source: str) -> tuple[dict, dict]:
    """(IDENTITY_COLUMNS -> value, the recipe) of a run's config."""
    try:
        loss_config = config["loss"]
        name = str(loss_config["name"])
        params = {key: loss_config.get(key) for key in tce.LOSS_PARAMS[name]}
        loss = setting(name, **{key: LOSS_KEY_TYPES[key](v) for key, v in params.items()})
        dataset = str(config["dataset"]["name"])
        values = recipe(config)
        identity = {
            "recipe": recipe_tag(values),
            "dataset": dataset,
            "setting": loss_tag(loss),
            "loss": name,
            **{key: loss[key] for key in LOSS_KEYS},
            # Rounded so that a noise level read back from YAML or JSON always lands in the same cell.
            "noise": round(float(config["noise"]), 6),
            "noise_type": str(config["noise_type"]),
            "noise_variant": NoiseSpec.of(config).variant,
            "noise_seed": int(config["noise_seed"]),
            "seed": int(config["seed"]),
            "holdout": int(config["holdout"]),
            "epochs": int(config["epochs"]),
            "num_classes": class_count(dataset, config["dataset"].get("num_classes")),
            "test_images": test_set_size(dataset, config["dataset"].get("test_size")),
        }
    except (KeyError, TypeError, ValueError, AttributeError, DatasetError) as error:
        raise CorruptRun(f"{source} lacks a valid identity key ({type(error).__name__}: {error})") from None
    return identity, values


def _classify(summary: dict | None, metrics: pd.DataFrame | None, identity: dict) -> tuple[str, str, int]:
    """(status, reason, epochs completed), raising CorruptRun when a complete run lacks usable metrics."""
    rows = 0 if metrics is None else len(metrics)
    if summary is None:
        return RUNNING, f"no {SUMMARY}: not started, running or killed ({rows} epochs logged)", rows
    status = summary["status"]
    completed = summary.get("epochs_completed", rows)
    if not isinstance(completed, int):
        raise CorruptRun(f"{SUMMARY} has a non-integer epochs_completed")
    if status == COMPLETE:
        if metrics is None or rows == 0:
            raise CorruptRun(f"{SUMMARY} says complete but {METRICS} is missing or has no rows")
        if rows != completed:
            raise CorruptRun(f"{METRICS} has {rows} epochs but {SUMMARY} says {completed} were completed")
        if rows != identity["epochs"]:
            raise CorruptRun(f"{SUMMARY} says complete after {rows} of {identity['epochs']} epochs")
        if not np.isfinite(metrics["test_acc"]).all():
            raise CorruptRun(f"{METRICS} lacks test_acc in some epochs of a complete run")
        if identity["holdout"] > 0 and not np.isfinite(metrics["val_acc"]).all():
            raise CorruptRun(f"{METRICS} lacks val_acc in some epochs of a validation run (holdout > 0)")
        return status, "", completed
    if status in (RUNNING, INTERRUPTED):
        return status, f"{status} after epoch {completed} of {identity['epochs']}", completed
    return (
        status,
        f"{status} after {completed} epochs: {summary.get('error') or 'no error message'}",
        completed,
    )


def argmax_epoch(metrics: pd.DataFrame, column: str) -> tuple[int, float] | None:
    """(epoch, value) of the highest `column`, the earliest epoch on ties; None when it is never recorded."""
    values = metrics[column]
    if not values.notna().any():
        return None
    index = values.idxmax()  # the first occurrence of the maximum
    return int(metrics.at[index, "epoch"]), float(values[index])


def runs_table(runs: list[RunRecord]) -> pd.DataFrame:
    rows = []
    for run in runs:
        row = {"run_dir": run.run_dir, "status": run.status, "reason": run.reason, **(run.identity or {})}
        row.update(epochs_completed=run.epochs_completed, **run.noise)
        if run.metrics is not None and len(run.metrics):
            row.update({f"final_{c}": run.metrics[c].iloc[-1] for c in METRIC_COLUMNS})
            best_val = argmax_epoch(run.metrics, "val_acc")
            best_test = argmax_epoch(run.metrics, "test_acc")
            row["best_val_epoch"] = best_val[0] if best_val else None
            row["best_test_epoch"], row["best_test_acc"] = best_test or (None, None)
        rows.append(row)
    return nullable_integers(pd.DataFrame(rows, columns=RUN_COLUMNS))


def curves_table(runs: list[RunRecord]) -> pd.DataFrame:
    frames = [
        run.metrics.assign(run_dir=run.run_dir, status=run.status, **run.identity)
        for run in runs
        if run.metrics is not None and len(run.metrics)
    ]
    if not frames:
        return nullable_integers(pd.DataFrame(columns=CURVE_COLUMNS))
    return nullable_integers(pd.concat(frames, ignore_index=True)[CURVE_COLUMNS])


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); NaN where undefined (no value, or one for the std)."""
    mean = float(np.mean(values)) if values else math.nan
    std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return mean, std


def nullable_integers(frame: pd.DataFrame, columns: tuple[str, ...] = RUN_INTEGER_COLUMNS) -> pd.DataFrame:
    """Integer columns as nullable integers: the CSV then says 140, not 140.0, and is blank when unknown."""
    for column in columns:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    return frame
