"""The noise fingerprint, each figure on hand-made noise matrices."""

import pytest
import torch

from data import FINGERPRINT_KEYS, noise_fingerprint

# Row = clean class, column = noisy label. Class 0: 5 of 10 wrong (3 -> 1, 2 -> 2); class 1: none of 10;
# class 2: 6 of 10 wrong (1 -> 0, 1 -> 1, 4 -> 3); class 3: absent. 11 flips, to columns 0: 1, 1: 4, 2: 2, 3: 4.
MATRIX = torch.tensor([
    [5, 3, 2, 0],
    [0, 10, 0, 0],
    [1, 1, 4, 4],
    [0, 0, 0, 0],
])


def test_each_figure_of_a_hand_made_matrix():
    assert noise_fingerprint(MATRIX, superclass=torch.tensor([0, 0, 1, 1])) == pytest.approx({
        "class_rate_min": 0.0,  # class 1; the absent class 3 does not count
        "class_rate_max": 0.6,  # class 2
        "top_target_share": (3 / 5 + 4 / 6) / 2,  # over the classes with flips, 0 and 2
        "top_class_share": 4 / 11,  # columns 1 and 3 tie at 4 of the 11 flips
        "same_superclass_share": (3 + 4) / 11,  # 0 -> 1 and 2 -> 3 stay inside {0, 1} and {2, 3}
    })


def test_without_a_superclass_map_that_figure_is_null():
    fingerprint = noise_fingerprint(MATRIX)
    assert fingerprint["same_superclass_share"] is None and fingerprint["top_class_share"] == pytest.approx(4 / 11)
    assert tuple(fingerprint) == FINGERPRINT_KEYS


def test_uniform_and_class_to_class_noise():
    # Every wrong label equally often: each class's flips spread over the C - 1 others.
    uniform = torch.full((5, 5), 2) + torch.diag(torch.full((5,), 12))
    assert noise_fingerprint(uniform) == pytest.approx({
        "class_rate_min": 8 / 22, "class_rate_max": 8 / 22, "top_target_share": 1 / 4, "top_class_share": 1 / 5,
        "same_superclass_share": None,
    })
    # Every class to one target (pair flip c -> c + 1), classes of unequal size.
    pairflip = torch.tensor([[6, 4, 0], [0, 9, 1], [3, 0, 7]])
    fingerprint = noise_fingerprint(pairflip, superclass=torch.tensor([0, 1, 2]))
    assert fingerprint == pytest.approx({
        "class_rate_min": 0.1, "class_rate_max": 0.4, "top_target_share": 1.0, "top_class_share": 4 / 8,
        "same_superclass_share": 0.0,
    })


def test_nothing_flipped_gives_nulls():
    assert noise_fingerprint(torch.diag(torch.tensor([3, 0, 5]))) == dict.fromkeys(FINGERPRINT_KEYS)
    assert noise_fingerprint(torch.zeros(4, 4, dtype=torch.int64), torch.arange(4)) == dict.fromkeys(FINGERPRINT_KEYS)
