"""The sweeper of train.py's sweeps (configs/hydra/sweeper/packs.yaml). Hydra instantiates only plugins defined in
the hydra_plugins namespace, so it is declared here; its work is experiments/sweep.py's."""

from experiments import sweep


class PackSweeper(sweep.PackSweeper):
    """experiments.sweep.PackSweeper, under the name Hydra accepts."""
