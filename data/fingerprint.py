"""What a label noise really is, in five fractions computed from its noise matrix (clean x noisy counts).

Noise types of one name behave very differently (docs/datasets-and-noise.md, the noise fingerprint): CAL's "IDN" sends
86.6 % of all CIFAR-10 flips to "bird", pixel-projection IDN keeps the chance share (~4 %) of CIFAR-100 flips
inside the true superclass, human noise (CIFAR-100N) 34.3 %. The fingerprint puts such facts next to every run.
"""

import torch

# The fingerprint's figures, in the order tables show them.
FINGERPRINT_KEYS = ("class_rate_min", "class_rate_max", "top_target_share", "top_class_share",
                    "same_superclass_share")


def noise_fingerprint(matrix: torch.Tensor, superclass: torch.Tensor | None = None) -> dict[str, float | None]:
    """The fingerprint of the noise whose (C, C) counts are `matrix` (row = clean class, column = noisy label,
    as data.noise.noise_matrix and noise_matrix.csv); every figure a fraction in [0, 1], all None when nothing
    is flipped:
      class_rate_min, class_rate_max: the lowest and highest share of wrong labels among the classes present;
      top_target_share: for each clean class with flips, the share of its flips that go to its most frequent
        wrong label, averaged over those classes (1 for a class-to-class map, about 1/(C-1) for uniform noise);
      top_class_share: the share of all flips that go to the single most frequent wrong label;
      same_superclass_share: the share of flips that stay inside the true superclass, given the fine -> coarse
        map `superclass` (CIFAR-100's); None without one.
    """
    counts = matrix.to(torch.float64)
    kept = counts.diagonal()
    flips = counts - torch.diag(kept)  # off-diagonal: the wrong labels
    flipped = flips.sum(1)
    total = float(flipped.sum())
    if total == 0:
        return dict.fromkeys(FINGERPRINT_KEYS)
    present = counts.sum(1) > 0
    class_rate = flipped[present] / counts.sum(1)[present]
    with_flips = flipped > 0
    same = None
    if superclass is not None:
        same = float((flips * (superclass[:, None] == superclass[None, :])).sum()) / total
    return {
        "class_rate_min": float(class_rate.min()),
        "class_rate_max": float(class_rate.max()),
        "top_target_share": float((flips.max(1).values[with_flips] / flipped[with_flips]).mean()),
        "top_class_share": float(flips.sum(0).max()) / total,
        "same_superclass_share": same,
    }
