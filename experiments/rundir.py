"""The run directory, a contract that aggregation, sweeps and people read (see README, "The run directory").

config.yaml, metrics.csv, summary.json, noisy_labels.npy, checkpoint.pt and tb/ live here; every file is written
atomically, so a run killed at any moment leaves a directory that resumes exactly.
"""

import csv
import io
import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from experiments.files import save_torch, write_atomic, write_json, write_text

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "train_clean_acc", "val_acc", "test_acc", "seconds")
# Keys that change how a run executes but not what it computes; they may differ when a run resumes.
EXECUTION_KEYS = ("device", "force", "progress", "pack", "threads", "runs_dir", "compile", "eval_batch_size")


class RunDirError(RuntimeError):
    """The directory cannot take this run; the message is one line."""


class RunDir:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.metrics = self.path / "metrics.csv"
        self.summary = self.path / "summary.json"
        self.noisy_labels = self.path / "noisy_labels.npy"
        self.checkpoint = self.path / "checkpoint.pt"
        self.tb = self.path / "tb"
        self.lock_file = self.path / ".lock"

    def read_summary(self) -> dict | None:
        try:
            return json.loads(self.summary.read_text())
        except (OSError, ValueError):
            return None

    def status(self) -> str | None:
        summary = self.read_summary()
        return summary.get("status") if summary else None

    def clear(self) -> None:
        """Forget a previous run here (force=true); Hydra's own files stay."""
        for f in (self.config, self.metrics, self.summary, self.noisy_labels, self.checkpoint):
            f.unlink(missing_ok=True)
        shutil.rmtree(self.tb, ignore_errors=True)

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

    def write_metrics(self, rows: list[dict]) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if row[k] is None else row[k]) for k in METRIC_COLUMNS} for row in rows)
        write_text(self.metrics, out.getvalue())

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary, summary)

    def save_checkpoint(self, state: dict) -> None:
        save_torch(self.checkpoint, state)

    def acquire(self) -> None:
        """Claim the directory for this process, so that two jobs of a sweep never train the same run."""
        self.path.mkdir(parents=True, exist_ok=True)
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not self._lock_is_stale():
                    raise RunDirError(f"{self.path} is being trained by {self.lock_file.read_text()!r}") from None
                self.lock_file.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            return

    def release(self) -> None:
        self.lock_file.unlink(missing_ok=True)

    def _lock_is_stale(self) -> bool:
        try:
            host, pid = self.lock_file.read_text().split()
        except (OSError, ValueError):
            return True
        if host != socket.gethostname():
            return False  # another machine's job: only its owner (or a person) can tell
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return int(pid) == os.getpid()  # this very process left it behind (a run that raised); it is free


def _identity(config: dict) -> dict:
    """The flattened config without the keys that only say how to execute it."""
    flat = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(config, "")
    for key in (*EXECUTION_KEYS, "dataset.root"):
        flat.pop(key, None)
    return flat
