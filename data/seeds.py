"""Random streams per purpose, so that equal seeds never give correlated draws.

The label noise, the holdout split and the batch order are all seeded by small integers that are often equal
(noise_seed defaults to the run seed; split_seed is 0). Seeding torch.Generator with them directly would give
each the very same permutation: the holdout would then be drawn from exactly the samples the noise replaced.
"""

import hashlib

import torch


def generator(purpose: str, seed: int) -> torch.Generator:
    """A CPU torch.Generator whose stream depends on both `purpose` and `seed`."""
    digest = hashlib.sha256(f"{purpose}:{seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
