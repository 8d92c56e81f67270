"""The validation holdout (the paper's Section 3.1: 5000 training images held out to pick the epoch)."""

import torch

from data.seeds import generator


def holdout_split(labels: torch.Tensor, holdout: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx): sorted int64 indices into `labels`, with `holdout` of them in val.

    The split is class-stratified by proportional allocation: class c gets floor(holdout * n_c / N) images,
    and the images still missing from the total go to the classes with the largest remainders (ties: lower
    class index). Which images of a class go to val is fixed by `seed` alone.
    """
    total = len(labels)
    if not 0 <= holdout < total:
        raise ValueError(f"holdout must lie in [0, {total}) (the training set has {total} images), got {holdout}")
    counts = torch.bincount(labels)
    quota = holdout * counts // total
    remainders = holdout * counts - quota * total
    missing = holdout - int(quota.sum())
    # A stable sort on the negated remainders breaks ties by class index.
    quota[torch.sort(-remainders, stable=True).indices[:missing]] += 1

    # Shuffle, then group by class keeping the shuffled order: each class's first `quota` images go to val.
    shuffled = torch.randperm(total, generator=generator("holdout", seed))
    by_class = shuffled[torch.sort(labels[shuffled], stable=True).indices]
    class_of = labels[by_class]
    class_start = torch.cumsum(counts, 0) - counts
    rank_in_class = torch.arange(total) - class_start[class_of]
    to_val = rank_in_class < quota[class_of]
    return torch.sort(by_class[~to_val]).values, torch.sort(by_class[to_val]).values
