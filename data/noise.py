"""Artificial label noise (the paper's Section 3.3: a proportion of the training labels replaced randomly)."""

import torch

from data.seeds import generator as seeded

NOISE_TYPES = ("uniform", "symmetric")


def corrupt_labels(labels: torch.Tensor, rate: float, num_classes: int, kind: str, seed: int) -> torch.Tensor:
    """A copy of `labels` in which exactly round(rate * N) samples, chosen without replacement, are relabelled.

    kind "uniform": the new label is drawn from all `num_classes` classes and may equal the old one, so about
    rate * (1 - 1/C) of the labels end up wrong (the paper's "labels replaced randomly").
    kind "symmetric": the new label is drawn from the other C - 1 classes, so exactly `rate` of them are wrong.
    The result depends only on (labels, rate, num_classes, kind, seed): every loss sees the same noisy labels.
    """
    if kind not in NOISE_TYPES:
        raise ValueError(f"noise_type must be one of {NOISE_TYPES}, got {kind!r}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate must lie in [0, 1], got {rate}")
    generator = seeded("label-noise", seed)
    noisy = labels.clone()
    count = round(rate * len(labels))
    chosen = torch.randperm(len(labels), generator=generator)[:count]
    if kind == "uniform":
        noisy[chosen] = torch.randint(0, num_classes, (count,), generator=generator)
    else:
        # A non-zero offset modulo C lands uniformly on each of the other C - 1 classes.
        offsets = torch.randint(1, num_classes, (count,), generator=generator)
        noisy[chosen] = (labels[chosen] + offsets) % num_classes
    return noisy
