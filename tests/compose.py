"""The config tree composed as train.py composes it, for in-process tests, and a run small enough for them."""

from pathlib import Path

from experiments.config import compose as compose_train

__all__ = ["compose_train", "tiny"]


def tiny(run_dir_root: Path, *overrides: str) -> list[str]:
    """Overrides for a run that trains in seconds on the CPU: a small synthetic set and ResNet-8."""
    return [
        "dataset=synthetic", "dataset.train_size=160", "dataset.test_size=64", "holdout=32", "model.depth=8",
        "epochs=3", "batch_size=32", "eval_batch_size=256", "device=cpu", "progress=false",
        f"runs_dir={run_dir_root}", *overrides,
    ]
