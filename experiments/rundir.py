"""The run directory, a contract that aggregation, sweeps and people read (docs/run-directory.md): its one writer
and its one reader. The file names are here and nowhere else.

config.yaml, metrics.csv, calibration.csv, summary.json, noisy_labels.npy, noise_matrix.csv, checkpoint.pt, tb/ and,
for a run that detects label errors (detect=true), samples.npz and snapshots/ live here; every file is written
atomically, but metrics.csv and calibration.csv, which each epoch appends to and a resumed run rewrites from its
checkpoint, so a run killed at any moment leaves a directory that resumes exactly. An epoch's records are written
in WRITE_ORDER, checkpoint first, so that the files never run ahead of what can be resumed (experiments/run.py;
the tests' kill points stop a run between any two of them). The readers check what they read (CorruptRun, one line,
where a file cannot be read or is not what the engine writes).
"""

import csv
import io
import json
import math
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from data.errors import one_line
from data.files import append, load_torch, save_torch, write_atomic, write_text
from experiments.evaluation import CALIBRATED, METRIC_COLUMNS
from experiments.identity import EXECUTION_KEYS, LOCATION_KEYS, run_name
from experiments.lifecycle import STATUSES, Lifecycle
from experiments.lock import LockBusy, RunLock
from experiments.schema import covered, with_schema_defaults

CONFIG, METRICS, CALIBRATION, SUMMARY = "config.yaml", "metrics.csv", "calibration.csv", "summary.json"
NOISY_LABELS, NOISE_MATRIX, CHECKPOINT, TENSORBOARD, LOCK, SAMPLES, SNAPSHOTS = (
    "noisy_labels.npy", "noise_matrix.csv", "checkpoint.pt", "tb", ".lock", "samples.npz", "snapshots")
# A folder holding any of these is a run (a run killed before its first summary has a config and metrics).
RUN_FILES = (SUMMARY, METRICS, CONFIG)
# The records of an epoch in the order they are written, checkpoint first: the names of their kill points.
WRITE_ORDER = ("checkpoint", "metrics", "calibration", "summary")
# The keys of checkpoint.pt ("momentum" holds the optimizer's state, experiments.optimizer.state_of, by the name it had
# when SGD was the only optimizer), and of the state of a loss that keeps one (ELR's memory; absent for the others).
CHECKPOINT_KEYS = ("epoch", "model", "momentum", "loader", "metrics")
LOSS_STATE = "loss_state"
# The key of a detecting run's per-sample dynamics in checkpoint.pt (experiments/sample_dynamics.py).
SAMPLE_STATE = "sample_state"
# What samples.npz holds besides the dynamics: each training-portion image's index in the dataset's training set,
# the label it trained on and its clean label (for detection metrics only; never read by training).
SAMPLE_TRUTH = ("index", "given", "clean")
# The same of the holdout, in a validation run's samples.npz: for out-of-sample detection and calibration.
VAL_TRUTH = ("val_index", "val_given", "val_clean")
# The test set's labels, in samples.npz: what the snapshots' test predictions are scored against.
TEST_LABELS = "test_labels"
# A snapshot's sets (PackTrainer.snapshot; "val" only where there is a holdout), each an (N, C) float16 log-softmax.
SNAPSHOT_SETS = ("portion", "val", "test")
# One row per (epoch, evaluation set, confidence bin): the sums behind the ECE, for reliability diagrams.
CALIBRATION_COLUMNS = ("epoch", "split", "bin", "count", "confidence_sum", "correct_sum")
# The columns of the first metrics.csv, which every run directory has; later ones added the others.
REQUIRED_METRICS = ("epoch", "lr", "train_loss", "train_acc", "train_clean_acc", "val_acc", "test_acc", "seconds")


class RunDirError(RuntimeError):
    """The directory cannot take this run; the message is one line."""


class CorruptRun(Exception):
    """A run-directory file that cannot be read or is not what the engine writes; the message is one line."""


class RunDir:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.config = self.path / CONFIG
        self.metrics = self.path / METRICS
        self.calibration = self.path / CALIBRATION
        self.summary = self.path / SUMMARY
        self.noisy_labels = self.path / NOISY_LABELS
        self.noise_matrix = self.path / NOISE_MATRIX
        self.checkpoint = self.path / CHECKPOINT
        self.samples = self.path / SAMPLES
        self.snapshots = self.path / SNAPSHOTS
        self.tb = self.path / TENSORBOARD
        self.lock_file = self.path / LOCK
        self._lock: RunLock | None = None
        self.lifecycle: Lifecycle | None = None  # the run's status, read once the lock is held (acquire)

    def clear(self) -> None:
        """Forget a previous run here (force=true), which only the lock's holder may do; Hydra's own files stay."""
        if self._lock is None:
            raise RunDirError(f"{self.path}: clearing a run directory needs its lock")
        files = (self.config, self.metrics, self.calibration, self.summary, self.noisy_labels, self.noise_matrix,
                 self.checkpoint, self.samples)
        for f in files:
            f.unlink(missing_ok=True)
        shutil.rmtree(self.tb, ignore_errors=True)
        shutil.rmtree(self.snapshots, ignore_errors=True)
        self.lifecycle = Lifecycle(self.summary)

    def check_config(self, cfg: DictConfig) -> None:
        """A directory holds one configuration: refuse to resume or skip a run whose config differs."""
        if not self.config.exists():
            return
        old, new = (_identity(OmegaConf.to_container(c)) for c in (OmegaConf.load(self.config), cfg))
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if changed:  # every key that differs, the safe way out first
            differences = "; ".join(f"{key}: {old.get(key)} there, {new.get(key)} now" for key in changed)
            raise RunDirError(f"{changed[0]}: {self.path} holds a run with another config ({differences}); choose "
                              "another runs_dir, or replace that run with force=true")

    def write_config(self, cfg: DictConfig) -> None:
        write_text(self.config, OmegaConf.to_yaml(cfg))

    def write_noisy_labels(self, labels: np.ndarray) -> None:
        write_atomic(self.noisy_labels, lambda f: np.save(f, labels.astype(np.int64)))

    def write_noise_matrix(self, counts: torch.Tensor) -> None:
        """The C x C counts of (clean, noisy) training labels: row = clean class, column = noisy label."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["clean", *range(len(counts))])
        writer.writerows([c, *row] for c, row in enumerate(counts.tolist()))
        write_text(self.noise_matrix, out.getvalue())

    def write_metrics(self, rows: list[dict]) -> None:
        """metrics.csv with one row per epoch of `rows`, written whole (a run's start, from its checkpoint)."""
        write_text(self.metrics, _metrics_csv(rows, header=True))

    def append_metrics(self, rows: list[dict]) -> None:
        """Appends the rows of epochs that write_metrics' file does not have yet."""
        append(self.metrics, _metrics_csv(rows, header=False).encode())

    def write_calibration(self, rows: list[dict]) -> None:
        write_text(self.calibration, _calibration_csv(rows, header=True))

    def append_calibration(self, rows: list[dict]) -> None:
        append(self.calibration, _calibration_csv(rows, header=False).encode())

    def save_checkpoint(self, epoch: int, model: dict, momentum: dict, loader: dict, metrics: list[dict],
                        loss_state: dict, sample_state: dict | None = None) -> None:
        """checkpoint.pt: what a run needs to resume after `epoch` (CHECKPOINT_KEYS), its loss's state where the
        loss keeps one, and a detecting run's per-sample dynamics."""
        save_torch(self.checkpoint, {"epoch": epoch, "model": model, "momentum": momentum, "loader": loader,
                                     "metrics": metrics, **({LOSS_STATE: loss_state} if loss_state else {}),
                                     **({SAMPLE_STATE: sample_state} if sample_state is not None else {})})

    def write_samples(self, epoch: int, state: dict[str, torch.Tensor], truth: dict[str, np.ndarray]) -> None:
        """samples.npz: the per-sample dynamics after `epoch` (the softmax average in float16), SAMPLE_TRUTH and, for
        a validation run, VAL_TRUTH."""
        arrays = {name: t.numpy().astype(np.float16) if name == "ema" else t.numpy() for name, t in state.items()}
        write_atomic(self.samples, lambda f: np.savez(f, epoch=np.int64(epoch), **arrays, **truth))

    def read_samples(self) -> dict[str, np.ndarray]:
        """samples.npz as plain arrays (never unpickled); CorruptRun where it cannot be read or lacks a field."""
        try:
            with np.load(self.samples, allow_pickle=False) as found:
                arrays = {name: found[name] for name in found.files}
        except (OSError, ValueError) as error:
            raise CorruptRun(f"{self.samples}: unreadable ({one_line(error)})") from None
        missing = {"epoch", *SAMPLE_TRUTH} - set(arrays)
        if missing:
            raise CorruptRun(f"{self.samples}: lacks {', '.join(sorted(missing))}")
        return arrays

    def write_snapshot(self, epoch: int, snapshot: dict[str, torch.Tensor]) -> None:
        """snapshots/epoch-NNNN.npz: a detecting run's snapshot after `epoch` (SNAPSHOT_SETS it has)."""
        self.snapshots.mkdir(exist_ok=True)
        arrays = {name: t.numpy() for name, t in snapshot.items()}
        write_atomic(self.snapshots / f"epoch-{epoch:04d}.npz", lambda f: np.savez(f, **arrays))

    def snapshot_epochs(self) -> list[int]:
        """The epochs of the snapshots written, in order."""
        return sorted(int(p.stem.removeprefix("epoch-")) for p in self.snapshots.glob("epoch-[0-9]*.npz"))

    def latest_snapshot(self, epoch: int | None) -> int | None:
        """The epoch of the latest snapshot at or before `epoch` (the one to read for it); None where there is none."""
        taken = [e for e in self.snapshot_epochs() if epoch is not None and e <= epoch]
        return taken[-1] if taken else None

    def read_snapshot(self, epoch: int) -> dict[str, np.ndarray]:
        """The snapshot after `epoch` as plain arrays (never unpickled); CorruptRun where it cannot be read."""
        path = self.snapshots / f"epoch-{epoch:04d}.npz"
        try:
            with np.load(path, allow_pickle=False) as found:
                arrays = {name: found[name] for name in found.files}
        except (OSError, ValueError) as error:
            raise CorruptRun(f"{path}: unreadable ({one_line(error)})") from None
        if not {"portion", "test"} <= set(arrays):
            raise CorruptRun(f"{path}: lacks {', '.join(sorted({'portion', 'test'} - set(arrays)))}")
        return arrays

    def load_checkpoint(self) -> dict:
        """checkpoint.pt, read safely (data.files.load_torch: tensors and plain containers, nothing that runs code)
        and checked to hold CHECKPOINT_KEYS; RunDirError, one line with the way out, where it cannot be used."""
        way_out = "rerun the run from scratch with force=true"
        try:
            state = load_torch(self.checkpoint)
            if not isinstance(state, dict):
                raise TypeError(f"holds a {type(state).__name__}, not a checkpoint")
            missing = set(CHECKPOINT_KEYS) - set(state)
            if missing:
                raise KeyError(f"lacks {', '.join(sorted(missing))}")
        except pickle.UnpicklingError as error:  # weights_only refused it before calling anything in it
            found = re.search(r"GLOBAL (\S+)|got <class '([^']+)'>", str(error))
            what = (found[1] or found[2]) if found else "object"
            raise RunDirError(f"cannot resume from {self.checkpoint}: it holds a pickled {what}, which no checkpoint "
                              f"holds (refused, nothing of it ran); {way_out}") from None
        except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, the way out is the same
            raise RunDirError(f"cannot resume from {self.checkpoint} ({one_line(error)}); {way_out}") from None
        return state

    # --- reading, for aggregation and export (each raises CorruptRun for a file it cannot use) ---

    def read_config(self) -> dict | None:
        """config.yaml as a plain mapping (YAML's safe loader), or None when there is none."""
        config = _parsed(self.config, yaml.safe_load, yaml.YAMLError)
        if config is not None and not isinstance(config, dict):
            raise CorruptRun(f"{CONFIG} is not a mapping")
        return config

    def read_summary(self) -> dict | None:
        """summary.json, with a status of the lifecycle's, or None when there is none."""
        summary = _parsed(self.summary, json.loads, ValueError)
        if summary is not None and (not isinstance(summary, dict) or summary.get("status") not in STATUSES):
            raise CorruptRun(f"{SUMMARY} has no valid status")
        return summary

    def read_metrics(self) -> pd.DataFrame | None:
        """metrics.csv as floats with METRIC_COLUMNS (those an older run lacks empty) and epochs 1, 2, ..., or None
        when there is none; whole lines only (every row the engine writes ends with a newline)."""
        if not self.metrics.exists():
            return None
        try:
            text = self.metrics.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise CorruptRun(f"{METRICS} unreadable: {one_line(error)}") from None
        if not text:
            raise CorruptRun(f"{METRICS} is empty")
        if not text.endswith("\n"):
            raise CorruptRun(f"{METRICS} is truncated (its last line is cut off)")
        header, *rows = csv.reader(io.StringIO(text))
        if not set(REQUIRED_METRICS) <= set(header) <= set(METRIC_COLUMNS) or len(set(header)) != len(header):
            raise CorruptRun(f"{METRICS} has an unexpected header {','.join(header)!r}")
        values = []
        for line, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise CorruptRun(f"{METRICS} line {line} has {len(row)} fields instead of {len(header)}")
            try:
                values.append([float(v) if v else math.nan for v in row])
            except ValueError:
                raise CorruptRun(f"{METRICS} line {line} holds a value that is not a number") from None
        metrics = pd.DataFrame(np.array(values, dtype=float).reshape(-1, len(header)), columns=header)
        metrics = metrics.reindex(columns=list(METRIC_COLUMNS))
        if metrics["epoch"].tolist() != list(range(1, len(metrics) + 1)):
            raise CorruptRun(f"{METRICS} epochs do not run 1, 2, 3, ...")
        return metrics.astype({"epoch": int})

    def read_calibration(self) -> pd.DataFrame | None:
        """calibration.csv, the ECE's bin sums per epoch and split; None if missing or not of CALIBRATION_COLUMNS
        (runs of versions before it, or a damaged file): the figures that need it leave the run out."""
        try:
            frame = pd.read_csv(self.calibration)
        except (OSError, ValueError):
            return None
        return frame if list(frame.columns) == list(CALIBRATION_COLUMNS) else None

    def read_noisy_labels(self) -> np.ndarray:
        """noisy_labels.npy as a plain array (never unpickled); OSError or ValueError where it cannot be."""
        return np.load(self.noisy_labels, allow_pickle=False)

    def noisy_labels_bytes(self) -> bytes | None:
        """noisy_labels.npy's bytes, None without one: what tells two copies of a run apart."""
        return self.noisy_labels.read_bytes() if self.noisy_labels.is_file() else None

    def read_noise_matrix(self) -> np.ndarray:
        """noise_matrix.csv's (C, C) counts, row = clean class; OSError or ValueError where it cannot be read."""
        return np.loadtxt(self.noise_matrix, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)[:, 1:]

    def acquire(self, timeout: float) -> None:
        """Claim the directory for this process (experiments/lock.py), so that two jobs never train the same run,
        and read its status; raises RunDirError when another live process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = RunLock(self.lock_file, timeout)
        try:
            lock.acquire()
        except LockBusy as busy:
            raise RunDirError(str(busy)) from None
        self._lock = lock
        self.lifecycle = Lifecycle(self.summary)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def located(cfg: DictConfig, path: Path) -> DictConfig:
    """`cfg` with the runs_dir that its run directory `path` lies in, so that config.yaml says where the run is:
    hydra.run.dir or hydra.sweep.dir may put it below another folder than runs_dir (then that folder), and
    hydra.sweep.subdir under another name than run_name (then the run directory itself)."""
    name = Path(run_name(cfg)).parts
    root = Path(*path.parts[:-len(name)]) if path.parts[-len(name):] == name else path
    if root == Path(cfg.runs_dir):  # as the user spelled it
        return cfg
    cfg = cfg.copy()
    cfg.runs_dir = str(root)
    return cfg


def _parsed(path: Path, parse: Callable[[str], object], malformed: type[Exception]) -> object:
    """The file's text parsed, None when there is no file; CorruptRun where it cannot be read or parsed."""
    if not path.exists():
        return None
    try:
        return parse(path.read_text())
    except (OSError, UnicodeDecodeError, malformed) as error:
        raise CorruptRun(f"{path.name} unreadable: {one_line(error)}") from None


def find_run_dirs(root: Path) -> list[Path]:
    """Every run directory at any depth below `root` (a folder holding one of RUN_FILES; hidden folders such as
    Hydra's .hydra/ are not runs), sorted."""
    found = set()
    for name in RUN_FILES:
        for path in root.rglob(name):
            if not any(part.startswith(".") for part in path.relative_to(root).parts):
                found.add(path.parent)
    return sorted(found)


def _metrics_csv(rows: list[dict], header: bool) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, METRIC_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows({k: ("" if row[k] is None else row[k]) for k in METRIC_COLUMNS} for row in rows)
    return out.getvalue()


def _calibration_csv(rows: list[dict], header: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CALIBRATION_COLUMNS)
    for row in rows:
        for split in CALIBRATED:
            for b, sums in enumerate(row.get(f"{split}_bins") or []):
                writer.writerow([row["epoch"], split, b, *(f"{v:.12g}" for v in sums)])
    return out.getvalue()


def _identity(config: dict) -> dict:
    """The flattened config without the keys that only say how to execute it; a key that an older run's config
    lacks takes the schema's default (a run of ResNet-20 written before model.name existed resumes)."""
    return {k: v for k, v in with_schema_defaults(config).items()
            if not covered(k, (*EXECUTION_KEYS, *LOCATION_KEYS))}
