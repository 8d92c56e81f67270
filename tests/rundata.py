"""prepare_run_data with defaults (no noise, no holdout, CPU), so a test names only what it is about; the noise is
given by the config's keys (noise, noise_type, noise_seed, ...), as a run's config says it."""

from data import Dataset, NoiseSpec, RunData, prepare_run_data

NOISE_KEYS = ("noise", "noise_type", "noise_seed", "noise_set", "instance_std", "noise_file", "noise_sha256")
DEFAULTS = dict(noise=0.0, noise_type="uniform", noise_seed=0, holdout=0, clean_val=False, split_seed=0,
                batch_size=128, drop_last=False, seed=0, device="cpu")


def run_data(dataset: Dataset, **overrides) -> RunData:
    given = {**DEFAULTS, **overrides}
    noise = NoiseSpec.of({key: given.pop(key) for key in NOISE_KEYS if key in given})
    return prepare_run_data(dataset, noise, **given)
