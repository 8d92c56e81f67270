"""Seeded draws: a random stream per purpose, and the class-stratified draws made from them: the validation holdout
(the paper's Section 3.1: 5000 training images held out to pick the epoch), the fixed subset of the training portion
that each epoch's evaluation pass reads, and the per-class choices of class-dependent noise.

Each purpose has its own stream, so that equal seeds never give correlated draws. The label noise, the holdout split
and the batch order are all seeded by small integers that are often equal (noise_seed defaults to the run seed;
split_seed is 0). Seeding torch.Generator with them directly would give each the very same permutation: the
holdout would then be drawn from exactly the samples the noise replaced.
"""

import hashlib

import torch


def generator(purpose: str, seed: int) -> torch.Generator:
    """A CPU torch.Generator whose stream depends on both `purpose` and `seed`."""
    digest = hashlib.sha256(f"{purpose}:{seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def holdout_split(labels: torch.Tensor, holdout: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx): sorted int64 indices into `labels`, with `holdout` of them in val, fixed by `seed`."""
    total = len(labels)
    if not 0 <= holdout < total:
        raise ValueError(f"holdout must lie in [0, {total}) (the training set has {total} images), got {holdout}")
    return stratified_split(labels, holdout, generator("holdout", seed))


def stratified_split(labels: torch.Tensor, size: int, draw: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(rest, chosen): sorted int64 indices into `labels`, `size` (0 <= size <= N) of them chosen.

    Class-stratified by proportional allocation: class c gets floor(size * n_c / N) images, and the images still
    missing from the total go to the classes with the largest remainders (ties: lower class index). Which images
    of a class are chosen is fixed by the generator `draw`.
    """
    total = len(labels)
    counts = torch.bincount(labels)
    quota = size * counts // total
    remainders = size * counts - quota * total
    missing = size - int(quota.sum())
    # A stable sort on the negated remainders breaks ties by class index.
    quota[torch.sort(-remainders, stable=True).indices[:missing]] += 1
    chosen = first_per_class(labels, quota, draw)
    rest = torch.ones(total, dtype=torch.bool)
    rest[chosen] = False
    return rest.nonzero().flatten(), chosen


def first_per_class(labels: torch.Tensor, quota: torch.Tensor, draw: torch.Generator) -> torch.Tensor:
    """Sorted int64 indices into `labels`: quota[c] samples of each class c, chosen at random by the generator `draw`.

    One shuffle of all samples, then grouped by class keeping the shuffled order: each class's first quota[c]
    samples are chosen, so a larger quota of a class chooses a superset of what a smaller one chooses.
    """
    total = len(labels)
    counts = torch.bincount(labels, minlength=len(quota))
    shuffled = torch.randperm(total, generator=draw)
    by_class = shuffled[torch.sort(labels[shuffled], stable=True).indices]
    class_of = labels[by_class]
    rank_in_class = torch.arange(total) - (torch.cumsum(counts, 0) - counts)[class_of]
    return torch.sort(by_class[rank_in_class < quota[class_of]]).values
