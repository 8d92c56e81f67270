"""Collects run directories (README, "The run directory") into tidy tables and applies the paper's protocol.

    python -m scripts.aggregate RUNS_DIR --out OUT_DIR

writes three CSV files and prints a status report:

- runs.csv: one row per run directory found at any depth below RUNS_DIR (a folder holding summary.json,
  metrics.csv or config.yaml; hidden folders such as Hydra's .hydra/ are not runs). The identity comes from
  the files (config.yaml, else summary.json's config), never from the folder name. `status` is the one in
  summary.json (complete, running, interrupted, diverged, failed), "running" when summary.json is missing (not
  started, running or killed: a live process cannot be told from a dead one by the files), or "corrupt" when a
  file cannot be read or contradicts another; `reason` says why a run is not complete.
- curves.csv: one row per (run, epoch), wide: run_dir, status, the identity columns and the metrics.csv
  columns, so a plot filters rows and groups by epoch without reshaping. Corrupt runs are left out.
- cells.csv: one row per cell (dataset, loss setting, noise, noise type, noise set), see `cells_table` for the
  protocol.

Run directories written before metrics.csv gained noisy_fit, noisy_true and the nll and ece columns aggregate
too: those columns are empty for them.
"""

import argparse
import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import tce
from data.errors import one_line
from experiments.config import LOSS_KEYS, loss_tag
from experiments.evaluation import METRIC_COLUMNS
from experiments.rundir import CALIBRATION_COLUMNS

RUN_FILES = ("summary.json", "metrics.csv", "config.yaml")
STATUSES = ("complete", "running", "interrupted", "diverged", "failed")  # as summary.json spells them
CORRUPT = "corrupt"
STATUS_LABELS = {
    "complete": "complete",
    "running": "running",
    "interrupted": "interrupted",
    "diverged": "diverged",
    "failed": "failed",
    CORRUPT: "corrupt",
}
# The columns of the first metrics.csv, which every run directory has; later ones added the others.
REQUIRED_METRICS = ("epoch", "lr", "train_loss", "train_acc", "train_clean_acc", "val_acc", "test_acc", "seconds")

# A cell: what the protocol averages over seeds. The loss's parameters are in `setting` (and in their own
# columns, for reading); noise_set is "" except for human noise.
CELL_KEYS = ["dataset", "setting", "noise", "noise_type", "noise_set"]
SETTING_COLUMNS = ["loss", *LOSS_KEYS]
IDENTITY_COLUMNS = [
    "dataset", "setting", *SETTING_COLUMNS, "noise", "noise_type", "noise_set", "noise_seed", "seed", "holdout",
    "epochs",
]
RUN_COLUMNS = [
    "run_dir",
    "status",
    "reason",
    *IDENTITY_COLUMNS,
    "noise_realized",
    "epochs_completed",
    "best_val_epoch",
    *(f"final_{c}" for c in METRIC_COLUMNS),
    "best_test_acc",
    "best_test_epoch",
]
CURVE_COLUMNS = ["run_dir", "status", *IDENTITY_COLUMNS, *METRIC_COLUMNS]
CELL_COLUMNS = [
    *CELL_KEYS[:2],
    *SETTING_COLUMNS,
    *CELL_KEYS[2:],
    "noise_realized",
    "val_run_dir",
    "best_epoch",
    "protocol_mean",
    "protocol_std",
    "n",
    "n_full",
    "n_diverged",
    "n_incomplete",
    "last_epoch_mean",
    "last_epoch_std",
    "oracle_best_test_mean",
    "oracle_best_test_std",
    "protocol_noisy_fit_mean",
    "protocol_test_nll_mean",
    "protocol_test_ece_mean",
]
INTEGER_COLUMNS = [
    "t",
    "noise_seed",
    "seed",
    "holdout",
    "epochs",
    "epochs_completed",
    "best_val_epoch",
    "final_epoch",
    "best_test_epoch",
    "best_epoch",
    "n",
    "n_full",
    "n_diverged",
    "n_incomplete",
]

DATASET_LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10+", "cifar100": "CIFAR-100+", "svhn": "SVHN"}
PAPER_LOSSES = ("ce", "mse", "mae", "tce")
LOSS_LABELS = {
    "ce": "CE", "mse": "MSE", "mae": "MAE", "tce": "TCE", "gce": "GCE", "rce": "RCE", "sce": "SCE", "nce": "NCE",
    "nce+rce": "NCE+RCE", "nce+mae": "NCE+MAE", "focal": "Focal", "taylor": "Taylor-CE", "poly1": "Poly-1",
    "label_smoothing": "LS", "bootstrap_soft": "Bootstrap-soft", "bootstrap_hard": "Bootstrap-hard",
}
PARAM_SYMBOLS = {"alpha": "α", "beta": "β", "q": "q", "A": "A", "gamma": "γ", "t": "t", "epsilon": "ε"}


def setting(name: str, **params) -> dict:
    """A loss setting as aggregation handles it: {"name": ..., and every key of LOSS_KEYS, None where unused}."""
    return {"name": name, **{key: params.get(key) for key in LOSS_KEYS}}


# The rows of the paper's Tables 1 and 2.
PAPER_SETTINGS = [setting("ce"), setting("mse"), setting("mae"), *(setting("tce", alpha=a) for a in (0.5, 1, 1.5, 2))]


def format_level(value: float) -> str:
    """0.4 -> "0.4", 1 -> "1.0" (the paper's style), 0.25 -> "0.25" (never rounded away)."""
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


def setting_of(row: Mapping) -> dict:
    """The setting of a row of runs.csv, curves.csv or cells.csv (its `loss` and parameter columns)."""
    return setting(row["loss"], **{key: _none_if_nan(row[key]) for key in LOSS_KEYS})


def _none_if_nan(value):
    return None if pd.isna(value) else value


def setting_label(loss: Mapping) -> str:
    """E.g. "CE", "TCE α=1.5", "SCE α=0.1 β=1 A=-9.21034"."""
    params = [f"{PARAM_SYMBOLS[k]}={format_level(v) if k == 'alpha' and loss['name'] == 'tce' else f'{v:g}'}"
              for k, v in ((k, loss.get(k)) for k in LOSS_KEYS) if v is not None]
    return " ".join([LOSS_LABELS.get(loss["name"], loss["name"]), *params])


def setting_order(loss: Mapping) -> tuple:
    """The paper's row order: CE, MSE, MAE, then TCE by increasing alpha; then the other losses in tce.LOSSES
    order, each by its parameters; unknown losses last."""
    rank = tce.LOSSES.index(loss["name"]) if loss["name"] in tce.LOSSES else len(tce.LOSSES)
    return rank, loss["name"], tuple(math.inf if loss.get(k) is None else loss[k] for k in LOSS_KEYS)


def ordered_settings(losses: Iterable[Mapping]) -> list[dict]:
    """The distinct settings (by loss_tag), in the paper's row order."""
    unique = {loss_tag(loss): setting(loss["name"], **{key: loss.get(key) for key in LOSS_KEYS}) for loss in losses}
    return sorted(unique.values(), key=setting_order)


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


@dataclass
class Run:
    run_dir: str
    status: str
    reason: str  # why the run is not complete; empty for complete runs
    identity: dict | None  # IDENTITY_COLUMNS -> value; None when no config could be read
    metrics: pd.DataFrame | None  # METRIC_COLUMNS, epochs 1..n; None when missing or the run is corrupt
    epochs_completed: int | None
    noise_realized: float | None


class _Corrupt(Exception):
    """A run-directory file that cannot be read or contradicts another; the message is one line."""


def find_run_dirs(runs_dir: Path) -> list[Path]:
    found = set()
    for name in RUN_FILES:
        for path in runs_dir.rglob(name):
            if not any(part.startswith(".") for part in path.relative_to(runs_dir).parts):
                found.add(path.parent)
    return sorted(found)


def read_run(run_dir: Path) -> Run:
    """Reads one run directory; never raises on bad contents (the run is then "corrupt" with a reason)."""
    identity = None
    try:
        config = _read_config(run_dir / "config.yaml")
        if config is not None:
            identity = _identity(config, "config.yaml")
        summary = _read_summary(run_dir / "summary.json")
        if identity is None:
            if summary is None:
                raise _Corrupt("metrics.csv without config.yaml or summary.json: the run cannot be identified")
            identity = _identity(summary.get("config"), "summary.json's config")
        metrics = _read_metrics(run_dir / "metrics.csv")
        status, reason, epochs_completed = _classify(summary, metrics, identity)
    except _Corrupt as problem:
        return Run(str(run_dir), CORRUPT, str(problem), identity, None, None, None)
    noise = (summary or {}).get("noise")
    realized = noise.get("realized") if isinstance(noise, dict) else None
    return Run(str(run_dir), status, reason, identity, metrics, epochs_completed, realized)


def _read_config(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise _Corrupt(f"config.yaml unreadable: {one_line(error)}") from None
    if not isinstance(config, dict):
        raise _Corrupt("config.yaml is not a mapping")
    return config


def _read_summary(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise _Corrupt(f"summary.json unreadable: {one_line(error)}") from None
    if not isinstance(summary, dict) or summary.get("status") not in STATUSES:
        raise _Corrupt("summary.json has no valid status")
    return summary


def _identity(config: object, source: str) -> dict:
    try:
        loss_config = config["loss"]
        name = str(loss_config["name"])
        params = {key: loss_config.get(key) for key in tce.LOSS_PARAMS[name]}
        loss = setting(name, **{key: float(v) if key != "t" else int(v) for key, v in params.items()})
        return {
            "dataset": str(config["dataset"]["name"]),
            "setting": loss_tag(loss),
            "loss": name,
            **{key: loss[key] for key in LOSS_KEYS},
            # Rounded so that a noise level read back from YAML or JSON always lands in the same cell.
            "noise": round(float(config["noise"]), 6),
            "noise_type": str(config["noise_type"]),
            "noise_set": str(config.get("noise_set") or ""),
            "noise_seed": int(config["noise_seed"]),
            "seed": int(config["seed"]),
            "holdout": int(config["holdout"]),
            "epochs": int(config["epochs"]),
        }
    except (KeyError, TypeError, ValueError) as error:
        raise _Corrupt(f"{source} lacks a valid identity key ({type(error).__name__}: {error})") from None


def _read_metrics(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise _Corrupt(f"metrics.csv unreadable: {one_line(error)}") from None
    if not text:
        raise _Corrupt("metrics.csv is empty")
    # Every row the engine writes ends with a newline, so a missing one means the last row was cut off.
    if not text.endswith("\n"):
        raise _Corrupt("metrics.csv is truncated (its last line is cut off)")
    header, *rows = csv.reader(io.StringIO(text))
    if not set(REQUIRED_METRICS) <= set(header) <= set(METRIC_COLUMNS) or len(set(header)) != len(header):
        raise _Corrupt(f"metrics.csv has an unexpected header {','.join(header)!r}")
    values = []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise _Corrupt(f"metrics.csv line {line} has {len(row)} fields instead of {len(header)}")
        try:
            values.append([float(v) if v else math.nan for v in row])
        except ValueError:
            raise _Corrupt(f"metrics.csv line {line} holds a value that is not a number") from None
    metrics = pd.DataFrame(np.array(values, dtype=float).reshape(-1, len(header)), columns=header)
    metrics = metrics.reindex(columns=list(METRIC_COLUMNS))  # the columns an older run lacks are empty
    if metrics["epoch"].tolist() != list(range(1, len(metrics) + 1)):
        raise _Corrupt("metrics.csv epochs do not run 1, 2, 3, ...")
    return metrics.astype({"epoch": int})


def _classify(summary: dict | None, metrics: pd.DataFrame | None, identity: dict) -> tuple[str, str, int]:
    """(status, reason, epochs completed), raising _Corrupt when a complete run lacks usable metrics."""
    rows = 0 if metrics is None else len(metrics)
    if summary is None:
        return "running", f"no summary.json: not started, running or killed ({rows} epochs logged)", rows
    status = summary["status"]
    completed = summary.get("epochs_completed", rows)
    if not isinstance(completed, int):
        raise _Corrupt("summary.json has a non-integer epochs_completed")
    if status == "complete":
        if metrics is None or rows == 0:
            raise _Corrupt("summary.json says complete but metrics.csv is missing or has no rows")
        if rows != completed:
            raise _Corrupt(f"metrics.csv has {rows} epochs but summary.json says {completed} were completed")
        if not np.isfinite(metrics["test_acc"]).all():
            raise _Corrupt("metrics.csv lacks test_acc in some epochs of a complete run")
        if identity["holdout"] > 0 and not np.isfinite(metrics["val_acc"]).all():
            raise _Corrupt("metrics.csv lacks val_acc in some epochs of a validation run (holdout > 0)")
        return status, "", completed
    if status in ("running", "interrupted"):
        return status, f"{status} after epoch {completed} of {identity['epochs']}", completed
    return (
        status,
        f"{status} after {completed} epochs: {summary.get('error') or 'no error message'}",
        completed,
    )


def read_calibration(run_dir: str | Path) -> pd.DataFrame | None:
    """A run's calibration.csv (experiments/rundir.py): the ECE's bin sums per epoch and split; None if missing or
    unreadable (runs of versions before it, or a damaged file)."""
    try:
        frame = pd.read_csv(Path(run_dir) / "calibration.csv")
    except (OSError, ValueError):
        return None
    return frame if list(frame.columns) == list(CALIBRATION_COLUMNS) else None


def argmax_epoch(metrics: pd.DataFrame, column: str) -> tuple[int, float] | None:
    """(epoch, value) of the highest `column`, the earliest epoch on ties; None when it is never recorded."""
    values = metrics[column]
    if not values.notna().any():
        return None
    index = values.idxmax()  # the first occurrence of the maximum
    return int(metrics.at[index, "epoch"]), float(values[index])


@dataclass
class Aggregation:
    runs_dir: Path
    runs: list[Run]
    runs_table: pd.DataFrame
    curves: pd.DataFrame
    cells: pd.DataFrame


def aggregate(runs_dir: Path | str) -> Aggregation:
    """All runs below `runs_dir` (none when it does not exist) and the tables built from them."""
    runs_dir = Path(runs_dir)
    runs = [read_run(d) for d in find_run_dirs(runs_dir)] if runs_dir.is_dir() else []
    return Aggregation(runs_dir, runs, runs_table(runs), curves_table(runs), cells_table(runs))


def runs_table(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        row = {"run_dir": run.run_dir, "status": run.status, "reason": run.reason, **(run.identity or {})}
        row.update(epochs_completed=run.epochs_completed, noise_realized=run.noise_realized)
        if run.metrics is not None and len(run.metrics):
            row.update({f"final_{c}": run.metrics[c].iloc[-1] for c in METRIC_COLUMNS})
            best_val = argmax_epoch(run.metrics, "val_acc")
            best_test = argmax_epoch(run.metrics, "test_acc")
            row["best_val_epoch"] = best_val[0] if best_val else None
            row["best_test_epoch"], row["best_test_acc"] = best_test or (None, None)
        rows.append(row)
    return nullable_integers(pd.DataFrame(rows, columns=RUN_COLUMNS))


def curves_table(runs: list[Run]) -> pd.DataFrame:
    frames = [
        run.metrics.assign(run_dir=run.run_dir, status=run.status, **run.identity)
        for run in runs
        if run.metrics is not None and len(run.metrics)
    ]
    if not frames:
        return nullable_integers(pd.DataFrame(columns=CURVE_COLUMNS))
    return nullable_integers(pd.concat(frames, ignore_index=True)[CURVE_COLUMNS])


def cells_table(runs: list[Run]) -> pd.DataFrame:
    """The paper's protocol (Section 3.1), one row per cell (dataset, loss setting, noise, noise type and set).

    The cell's validation run is its complete run with holdout > 0 (the lowest seed if there are several);
    best_epoch is the epoch of its highest val_acc (lowest validation error), the earliest on ties. Each
    complete full run (holdout == 0) contributes its test_acc at best_epoch: protocol_mean, protocol_std
    (sample std, ddof=1; empty when n = 1) and n, and likewise the means of noisy_fit, test_nll and test_ece at
    that epoch (empty where the runs did not record them). Without a complete validation run the protocol values
    are empty. For comparison, over the same full runs: last_epoch_* (test_acc at each run's final epoch) and
    oracle_best_test_* (each run's highest test_acc over all epochs: an oracle that peeks at the test set, not a
    valid result). noise_realized is the mean fraction of wrong training labels of the cell's complete full runs
    (of any of its runs when it has none). Diverged full runs are counted in n_diverged and left out of every
    mean; running, interrupted, failed and corrupt ones are counted in n_incomplete.
    """
    cells: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.identity is not None:
            cells.setdefault(tuple(run.identity[k] for k in CELL_KEYS), []).append(run)
    rows = [_cell(members) for members in cells.values()]
    rows.sort(key=lambda r: (r["dataset"], setting_order(setting_of(r)), r["noise_type"], r["noise_set"], r["noise"]))
    return nullable_integers(pd.DataFrame(rows, columns=CELL_COLUMNS))


def _cell(members: list[Run]) -> dict:
    complete = [r for r in members if r.status == "complete"]
    validation = sorted(
        (r for r in complete if r.identity["holdout"] > 0), key=lambda r: (r.identity["seed"], r.run_dir)
    )
    full = [r for r in complete if r.identity["holdout"] == 0]
    unfinished = [r.status for r in members if r.identity["holdout"] == 0 and r.status != "complete"]
    best = argmax_epoch(validation[0].metrics, "val_acc") if validation else None
    best_epoch = best[0] if best else None
    at_best = [r.metrics.iloc[best_epoch - 1] for r in full if best_epoch and best_epoch <= len(r.metrics)]
    realized = [r.noise_realized for r in (full or members) if r.noise_realized is not None]
    row = {
        **{key: members[0].identity[key] for key in (*CELL_KEYS, *SETTING_COLUMNS)},
        "noise_realized": float(np.mean(realized)) if realized else math.nan,
        "val_run_dir": validation[0].run_dir if validation else None,
        "best_epoch": best_epoch,
        "n": len(at_best),
        "n_full": len(full),
        "n_diverged": unfinished.count("diverged"),
        "n_incomplete": len(unfinished) - unfinished.count("diverged"),
    }
    row["protocol_mean"], row["protocol_std"] = mean_std([r["test_acc"] for r in at_best])
    for column in ("noisy_fit", "test_nll", "test_ece"):
        values = [r[column] for r in at_best if not math.isnan(r[column])]
        row[f"protocol_{column}_mean"] = float(np.mean(values)) if values else math.nan
    row["last_epoch_mean"], row["last_epoch_std"] = mean_std([r.metrics["test_acc"].iloc[-1] for r in full])
    row["oracle_best_test_mean"], row["oracle_best_test_std"] = mean_std([r.metrics["test_acc"].max() for r in full])
    return row


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); NaN where undefined (no value, or one for the std)."""
    mean = float(np.mean(values)) if values else math.nan
    std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return mean, std


def nullable_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as nullable integers: the CSV then says 140, not 140.0, and is blank when unknown."""
    for column in INTEGER_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    return frame


def status_report(aggregation: Aggregation) -> str:
    runs, cells = aggregation.runs, aggregation.cells
    if not aggregation.runs_dir.is_dir():
        return f"{aggregation.runs_dir} does not exist: no runs to aggregate."
    counts = Counter(r.status for r in runs)
    lines = [
        f"{len(runs)} run directories under {aggregation.runs_dir}: "
        + ", ".join(f"{counts[status]} {label}" for status, label in STATUS_LABELS.items())
    ]
    not_complete = [r for r in runs if r.status != "complete"]
    if not_complete:
        lines.append("Not complete, so not used by the protocol:")
        lines += [f"  {r.status:<11} {r.run_dir}: {r.reason}" for r in not_complete]
    lines.append(
        f"{len(cells)} cells, {int(cells['protocol_mean'].notna().sum())} with a protocol value; "
        f"{int(cells['n_diverged'].sum())} diverged full runs left out of the means."
    )
    return "\n".join(lines)


def write_csvs(aggregation: Aggregation, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in (
        ("runs", aggregation.runs_table),
        ("curves", aggregation.curves),
        ("cells", aggregation.cells),
    ):
        path = out_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", type=Path, help="folder holding run directories at any depth")
    parser.add_argument("--out", type=Path, required=True, help="folder for runs.csv, curves.csv and cells.csv")
    args = parser.parse_args(argv)
    aggregation = aggregate(args.runs_dir)
    paths = write_csvs(aggregation, args.out)
    print(status_report(aggregation))
    print("wrote " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
