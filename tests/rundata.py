"""prepare_run_data with defaults (no noise, no holdout, CPU), so a test names only what it is about."""

from data import Dataset, RunData, prepare_run_data

DEFAULTS = dict(noise=0.0, noise_type="uniform", noise_seed=0, holdout=0, clean_val=False, split_seed=0,
                batch_size=128, drop_last=False, seed=0, device="cpu")


def run_data(dataset: Dataset, **overrides) -> RunData:
    return prepare_run_data(dataset, **{**DEFAULTS, **overrides})
