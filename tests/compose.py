"""The config tree composed as train.py composes it, for in-process tests, a run small enough for them, and training
a run in the test's process."""

from pathlib import Path

from experiments.identity import run_name
from experiments.resolve import compose as compose_train
from experiments.resolve import resolve
from experiments.run import run_pack

__all__ = ["compose_train", "tiny", "train_run", "train_tiny"]


def tiny(run_dir_root: Path, *overrides: str) -> list[str]:
    """Overrides for a run that trains in seconds on the CPU: a small synthetic set and ResNet-8."""
    return [
        "dataset=synthetic", "dataset.train_size=160", "dataset.test_size=64", "holdout=32", "model.depth=8",
        "epochs=3", "batch_size=32", "eval_batch_size=256", "device=cpu", "progress=false",
        f"runs_dir={run_dir_root}", *overrides,
    ]


def train_run(*overrides: str) -> tuple[str, Path]:
    """Trains the run that `overrides` compose, in this process: its final status and its directory."""
    cfg = resolve(compose_train(*overrides))
    run_dir = Path(cfg.runs_dir) / run_name(cfg)
    return run_pack([(cfg, run_dir)])[0], run_dir


def train_tiny(run_dir_root: Path, *overrides: str) -> tuple[str, Path]:
    """train_run of the tiny() run under `run_dir_root`."""
    return train_run(*tiny(run_dir_root, *overrides))
