"""The run directory, a contract that aggregation, sweeps and people read (docs/run-directory.md).

config.yaml, metrics.csv, calibration.csv, summary.json, noisy_labels.npy, checkpoint.pt and tb/ live here; every
file is written atomically, but metrics.csv and calibration.csv, which each epoch appends to and a resumed run
rewrites from its checkpoint, so a run killed at any moment leaves a directory that resumes exactly.
"""

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from data.files import append, load_torch, save_torch, write_atomic, write_text
from experiments.config import EXECUTION_KEYS, LOCATION_KEYS, covered, with_schema_defaults
from experiments.evaluation import CALIBRATED, METRIC_COLUMNS
from experiments.lifecycle import Lifecycle
from experiments.lock import LockBusy, RunLock

# One row per (epoch, evaluation set, confidence bin): the sums behind the ECE, for reliability diagrams.
CALIBRATION_COLUMNS = ("epoch", "split", "bin", "count", "confidence_sum", "correct_sum")


class RunDirError(RuntimeError):
    """The directory cannot take this run; the message is one line."""


class RunDir:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.metrics = self.path / "metrics.csv"
        self.calibration = self.path / "calibration.csv"
        self.summary = self.path / "summary.json"
        self.noisy_labels = self.path / "noisy_labels.npy"
        self.noise_matrix = self.path / "noise_matrix.csv"
        self.checkpoint = self.path / "checkpoint.pt"
        self.tb = self.path / "tb"
        self.lock_file = self.path / ".lock"
        self._lock: RunLock | None = None
        self.lifecycle: Lifecycle | None = None  # the run's status, read once the lock is held (acquire)

    def clear(self) -> None:
        """Forget a previous run here (force=true), which only the lock's holder may do; Hydra's own files stay."""
        if self._lock is None:
            raise RunDirError(f"{self.path}: clearing a run directory needs its lock")
        files = (self.config, self.metrics, self.calibration, self.summary, self.noisy_labels, self.noise_matrix,
                 self.checkpoint)
        for f in files:
            f.unlink(missing_ok=True)
        shutil.rmtree(self.tb, ignore_errors=True)
        self.lifecycle = Lifecycle(self.summary)

    def check_config(self, cfg: DictConfig) -> None:
        """A directory holds one configuration: refuse to resume or skip a run whose config differs."""
        if not self.config.exists():
            return
        old, new = (_identity(OmegaConf.to_container(c)) for c in (OmegaConf.load(self.config), cfg))
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if changed:
            key = changed[0]
            raise RunDirError(
                f"{self.path} holds a run with another config ({key}: {old.get(key)} there, {new.get(key)} now); "
                "use force=true to replace it or choose another runs_dir"
            )

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

    def save_checkpoint(self, state: dict) -> None:
        save_torch(self.checkpoint, state)

    def load_checkpoint(self) -> dict:
        """What save_checkpoint wrote, read safely (data.files.load_torch); raises whatever reading
        it raises."""
        return load_torch(self.checkpoint)

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
