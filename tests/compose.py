"""Compose the real config tree the way train.py does, for in-process tests."""

from pathlib import Path

from hydra import compose, initialize_config_dir

from experiments.config import register_configs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def compose_train(*overrides: str, hydra: bool = False):
    register_configs()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def tiny(run_dir_root: Path, *overrides: str) -> list[str]:
    """Overrides for a run that trains in seconds on the CPU: a small synthetic set and ResNet-8."""
    return [
        "dataset=synthetic", "dataset.train_size=160", "dataset.test_size=64", "holdout=32", "model.depth=8",
        "epochs=3", "batch_size=32", "eval_batch_size=256", "device=cpu", "progress=false",
        f"runs_dir={run_dir_root}", *overrides,
    ]
