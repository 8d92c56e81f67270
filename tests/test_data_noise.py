"""Label noise: exact counts, realized rates, determinism, and independence from everything a loss changes."""

import pytest
import torch

from data import NoiseSpec, class_map, corrupt_labels, holdout_split, noise_matrix
from data.synthetic import make_synthetic
from rundata import run_data


def check_noise(dataset: str, noise_type: str, noise: float, noise_set: str | None, train_size: int | None = None):
    NoiseSpec(rate=noise, type=noise_type, set=noise_set).check(dataset, train_size, None)

LABELS = torch.arange(100_000) % 10


def test_symmetric_replaces_exactly_the_rate():
    noisy = corrupt_labels(LABELS, 0.4, 10, "symmetric", seed=0)
    # Every replaced label differs from the true one, so the realized rate is the rate, exactly.
    assert int((noisy != LABELS).sum()) == 40_000
    assert noisy.dtype == torch.int64 and noisy.min() >= 0 and noisy.max() <= 9


def test_uniform_replaces_exactly_round_rate_n():
    # With a million classes a redrawn label practically never equals the true one, so every replaced sample
    # shows: exactly round(rate * N) of them.
    labels = torch.zeros(1000, dtype=torch.int64)
    assert int((corrupt_labels(labels, 0.2, 10**6, "uniform", seed=3) != labels).sum()) == 200
    assert int((corrupt_labels(labels, 0.0123, 10**6, "uniform", seed=3) != labels).sum()) == 12


def test_uniform_rate_loses_the_labels_that_stay_right():
    noisy = corrupt_labels(LABELS, 0.4, 10, "uniform", seed=0)
    realized = (noisy != LABELS).double().mean().item()
    assert realized == pytest.approx(0.4 * (1 - 1 / 10), abs=0.006)  # 3 standard deviations
    # The wrong labels are spread over all classes.
    wrong = torch.bincount(noisy[noisy != LABELS], minlength=10).double()
    assert (wrong / wrong.mean() - 1).abs().max() < 0.05


def test_symmetric_new_labels_cover_the_other_classes_evenly():
    labels = torch.zeros(50_000, dtype=torch.int64)
    noisy = corrupt_labels(labels, 1.0, 5, "symmetric", seed=1)
    counts = torch.bincount(noisy, minlength=5)
    assert counts[0] == 0
    assert (counts[1:].double() / 12_500 - 1).abs().max() < 0.03


@pytest.mark.parametrize("kind", ["uniform", "symmetric"])
def test_deterministic_in_the_seed(kind):
    first = corrupt_labels(LABELS, 0.3, 10, kind, seed=7)
    assert torch.equal(first, corrupt_labels(LABELS, 0.3, 10, kind, seed=7))
    assert not torch.equal(first, corrupt_labels(LABELS, 0.3, 10, kind, seed=8))
    assert torch.equal(LABELS, torch.arange(100_000) % 10)  # the input is left alone


def test_zero_rate_changes_nothing():
    assert torch.equal(corrupt_labels(LABELS, 0.0, 10, "uniform", seed=0), LABELS)


def test_rejects_unknown_kind_and_bad_rate():
    with pytest.raises(ValueError, match="noise_type"):
        corrupt_labels(LABELS, 0.2, 10, "bogus", seed=0)
    with pytest.raises(ValueError, match="rate"):
        corrupt_labels(LABELS, 1.5, 10, "uniform", seed=0)


def _run_data(dataset, **overrides):
    return run_data(dataset, **{"noise": 0.4, "noise_seed": 5, "holdout": 60, "batch_size": 32, **overrides})


def test_every_run_sees_the_same_noisy_labels():
    dataset = make_synthetic(300, 10, 10, seed=0)
    reference = _run_data(dataset)
    # What differs between the runs of one comparison (the loss only changes the model, not the data call):
    # the run seed, the batch size, drop_last.
    for overrides in ({"seed": 1}, {"batch_size": 100, "drop_last": True}):
        assert torch.equal(_run_data(dataset, **overrides).noisy_labels, reference.noisy_labels)
    assert not torch.equal(_run_data(dataset, noise_seed=6).noisy_labels, reference.noisy_labels)
    assert torch.equal(reference.clean_labels, dataset.train_labels)
    assert reference.realized_rate == (reference.noisy_labels != dataset.train_labels).double().mean().item()
    assert _run_data(dataset, noise=0.5, noise_type="symmetric").realized_rate == 0.5


def test_noise_is_applied_before_the_holdout():
    """The noisy labels of the whole training set do not depend on the holdout: validation is as noisy."""
    dataset = make_synthetic(300, 10, 10, seed=0)
    assert torch.equal(_run_data(dataset, holdout=0).noisy_labels, _run_data(dataset, holdout=100).noisy_labels)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_noise_is_independent_of_the_holdout_with_equal_seeds(seed):
    """Equal noise and split seeds must not pick the same samples: the validation set gets its share of noise."""
    labels = torch.arange(5000) % 10
    noisy = corrupt_labels(labels, 0.6, 10, "symmetric", seed)
    train_idx, val_idx = holdout_split(labels, 1000, seed)
    assert (noisy[val_idx] != labels[val_idx]).double().mean().item() == pytest.approx(0.6, abs=0.05)
    assert (noisy[train_idx] != labels[train_idx]).double().mean().item() == pytest.approx(0.6, abs=0.03)


def test_uniform_and_symmetric_draws_are_unchanged():
    """The class-dependent kinds came later; the paper's two kinds still give the very same labels (pinned with
    torch 2.14's CPU generator: a torch release that changes randperm/randint streams moves these)."""
    labels = torch.arange(20) % 10
    assert corrupt_labels(labels, 0.5, 10, "uniform", seed=3).tolist() == [
        0, 8, 2, 3, 8, 2, 6, 7, 8, 9, 0, 1, 6, 7, 4, 2, 6, 6, 8, 2,
    ]  # fmt: skip
    assert corrupt_labels(labels, 0.5, 10, "symmetric", seed=3).tolist() == [
        0, 0, 2, 3, 3, 9, 6, 7, 8, 9, 0, 7, 8, 0, 4, 8, 6, 2, 2, 1,
    ]  # fmt: skip


# Class-dependent noise.

# Patrini et al.'s maps as (C,) targets, -1 = stays clean.
MNIST_MAP = [-1, -1, 7, 8, -1, 6, 5, 1, -1, -1]  # 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1
CIFAR10_MAP = [-1, -1, 0, 5, 7, 3, -1, -1, -1, 1]  # bird -> airplane, cat <-> dog, deer -> horse, truck -> automobile


def _unbalanced(num_classes: int, base: int = 7) -> torch.Tensor:
    """Class c has base + c samples, in a shuffled order."""
    labels = torch.cat([torch.full((base + c,), c, dtype=torch.int64) for c in range(num_classes)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]


def _check_exact_flips(labels, noisy, rate, targets):
    """Each source class c flips exactly round(rate * n_c) of its samples, all to targets[c]; the rest stay."""
    for c, target in enumerate(targets):
        members = labels == c
        flipped = members & (noisy != labels)
        if target < 0:
            assert not flipped.any(), f"class {c} is not mapped but changed"
        else:
            assert int(flipped.sum()) == round(rate * int(members.sum())), f"class {c}"
            assert (noisy[flipped] == target).all()


def test_maps_of_each_dataset():
    assert class_map("mnist", "asymmetric", 10, None).tolist() == MNIST_MAP
    assert class_map("svhn", "asymmetric", 10, None).tolist() == MNIST_MAP  # this project's choice
    assert class_map("cifar10", "asymmetric", 10, None).tolist() == CIFAR10_MAP
    assert class_map("synthetic", "asymmetric", 4, None).tolist() == [1, 2, 3, 0]
    for dataset in ("mnist", "cifar10", "synthetic", "cifar100"):
        assert class_map(dataset, "pairflip", 3, None).tolist() == [1, 2, 0]
    assert class_map("mnist", "asymmetric", 10, None).dtype == torch.int64
    with pytest.raises(ValueError, match="no class map"):
        class_map("cifar10", "symmetric", 10, None)


def test_asymmetric_block_cycles_within_blocks_of_five():
    block = class_map("cifar100", "asymmetric_block", 100, None)
    assert block[:10].tolist() == [1, 2, 3, 4, 0, 6, 7, 8, 9, 5]
    assert block[95:].tolist() == [96, 97, 98, 99, 95]
    index = torch.arange(100)
    assert torch.equal(block // 5, index // 5) and (block != index).all()
    with pytest.raises(ValueError, match="noise_type: asymmetric_block is defined for cifar100 only"):
        class_map("cifar10", "asymmetric_block", 10, None)


@pytest.mark.parametrize(
    "dataset, kind, num_classes",
    [
        ("mnist", "asymmetric", 10),
        ("svhn", "asymmetric", 10),
        ("cifar10", "asymmetric", 10),
        ("synthetic", "asymmetric", 6),
        ("cifar10", "pairflip", 10),
        ("synthetic", "pairflip", 3),
        ("cifar100", "asymmetric_block", 100),
    ],
)
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 0.55, 1.0])
def test_mapped_kinds_flip_exactly_round_rate_per_class(dataset, kind, num_classes, rate):
    labels = _unbalanced(num_classes)
    targets = class_map(dataset, kind, num_classes, None)
    noisy = corrupt_labels(labels, rate, num_classes, kind, seed=4, class_map=targets)
    _check_exact_flips(labels, noisy, rate, targets.tolist())
    assert noisy.dtype == torch.int64 and labels.equal(_unbalanced(num_classes))  # the input is left alone


def test_seven_samples_at_rate_point_four_flip_three():
    labels = torch.full((7,), 2, dtype=torch.int64)  # birds
    noisy = corrupt_labels(labels, 0.4, 10, "asymmetric", 0, class_map("cifar10", "asymmetric", 10, None))
    assert sorted(noisy.tolist()) == [0, 0, 0, 2, 2, 2, 2]  # round(2.8) = 3 airplanes


@pytest.mark.parametrize("dataset, pair", [("cifar10", (3, 5)), ("mnist", (5, 6))])
@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_swapped_pairs_are_not_flipped_twice(dataset, pair, rate):
    """cat <-> dog (MNIST: 5 <-> 6): both sides get exactly round(rate * n) wrong labels; flipping class after
    class on the current labels would flip some cats back (realized n(1 - n) instead of n)."""
    a, b = pair
    labels = torch.tensor([a] * 5000 + [b] * 4000 + [0] * 100)
    noisy = corrupt_labels(labels, rate, 10, "asymmetric", 1, class_map(dataset, "asymmetric", 10, None))
    for source, other, count in ((a, b, 5000), (b, a, 4000)):
        wrong = noisy[labels == source]
        assert int((wrong != source).sum()) == round(rate * count)
        assert set(wrong.tolist()) == {source, other}
    assert (noisy[labels == 0] == 0).all()
    matrix = noise_matrix(labels, noisy, 10)
    assert matrix[a, b] == round(rate * 5000) and matrix[b, a] == round(rate * 4000)


def test_cifar10_noise_matrix_is_the_map():
    labels = torch.arange(10).repeat_interleave(50)
    noisy = corrupt_labels(labels, 0.3, 10, "asymmetric", 2, class_map("cifar10", "asymmetric", 10, None))
    expected = torch.diag(torch.full((10,), 50))
    for source, target in enumerate(CIFAR10_MAP):
        if target >= 0:
            expected[source, source], expected[source, target] = 35, 15
    assert torch.equal(noise_matrix(labels, noisy, 10), expected)


@pytest.mark.parametrize("kind", ["asymmetric", "pairflip"])
def test_mapped_kinds_are_deterministic_in_the_seed(kind):
    labels = _unbalanced(10, base=40)
    targets = class_map("cifar10", kind, 10, None)
    first = corrupt_labels(labels, 0.3, 10, kind, 7, class_map=targets)
    assert torch.equal(first, corrupt_labels(labels, 0.3, 10, kind, 7, class_map=targets))
    other = corrupt_labels(labels, 0.3, 10, kind, 8, class_map=targets)
    # Another seed picks other samples, in the same exact numbers.
    assert not torch.equal(first != labels, other != labels)
    assert torch.equal(noise_matrix(labels, first, 10), noise_matrix(labels, other, 10))


def test_mapped_kinds_need_a_valid_map():
    labels = torch.arange(10)
    with pytest.raises(ValueError, match="class_map"):
        corrupt_labels(labels, 0.2, 10, "asymmetric", 0)
    with pytest.raises(ValueError, match="class_map"):
        corrupt_labels(labels, 0.2, 10, "uniform", 0, class_map=class_map("cifar10", "pairflip", 10, None))
    with pytest.raises(ValueError, match="class_map"):
        corrupt_labels(labels, 0.2, 10, "pairflip", 0, class_map=torch.arange(5))
    with pytest.raises(ValueError, match="class_map"):
        corrupt_labels(labels, 0.2, 10, "pairflip", 0, class_map=torch.full((10,), 10))
    with pytest.raises(ValueError, match="human"):
        corrupt_labels(labels, 0.0, 10, "human", 0)
    with pytest.raises(ValueError, match="superclass"):
        class_map("cifar100", "asymmetric", 100, None)
    incomplete = torch.arange(100) // 5
    incomplete[17] = -1  # a fine label absent from the files
    with pytest.raises(ValueError, match=r"superclass: fine labels \[17\]"):
        class_map("cifar100", "asymmetric", 100, incomplete)


def test_noise_matrix_counts_clean_to_noisy():
    clean = torch.tensor([0, 0, 1, 2, 2, 2])
    noisy = torch.tensor([0, 1, 1, 2, 0, 2])
    assert noise_matrix(clean, noisy, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert noise_matrix(clean, noisy, 3).dtype == torch.int64
    with pytest.raises(ValueError):
        noise_matrix(clean, noisy[:5], 3)


# The one validation the config calls before data is touched.


@pytest.mark.parametrize(
    "dataset, noise_type, noise, noise_set",
    [
        ("mnist", "uniform", 0.4, None),
        ("cifar10", "symmetric", 0.0, None),
        ("svhn", "asymmetric", 0.3, None),
        ("cifar100", "asymmetric_block", 0.4, None),
        ("synthetic", "pairflip", 0.45, None),
        ("cifar10", "human", 0.0, "worst"),
        ("cifar10", "human", 0, "aggre"),
        ("cifar100", "human", 0.0, "noisy"),
    ],
)
def test_check_noise_accepts(dataset, noise_type, noise, noise_set):
    check_noise(dataset, noise_type, noise, noise_set)


@pytest.mark.parametrize(
    "args, message",
    [
        (("mnist", "human", 0.0, "aggre"), "noise_type: human noise exists only for cifar10 and cifar100, not mnist"),
        (
            ("cifar10", "human", 0.0, "x"),
            "noise_set: unknown set 'x' for cifar10; valid: aggre, random1, random2, random3, worst",
        ),
        (("cifar100", "human", 0.0, "aggre"), "noise_set: unknown set 'aggre' for cifar100; valid: noisy"),
        (("cifar10", "human", 0.0, None), "noise_set: required with noise_type=human"),
        (
            ("cifar10", "human", 0.2, "aggre"),
            "noise: must be 0 with human noise (the labels come from the file), got 0.2",
        ),
        (("cifar10", "asymmetric_block", 0.2, None), "noise_type: asymmetric_block is defined for cifar100 only"),
        (("cifar10", "uniform", 0.2, "aggre"), "noise_set: only used with noise_type=human"),
        (("cifar10", "gaussian", 0.2, None),
         "noise_type: must be one of uniform, symmetric, symmetric_per_class, asym"),
        (("cifar10", "symmetric", 1.2, None), "noise: must be in [0, 1], got 1.2"),
        (("cifar10", "symmetric", -0.1, None), "noise: must be in [0, 1]"),
    ],
)
def test_check_noise_names_the_key(args, message):
    with pytest.raises(ValueError) as caught:
        check_noise(*args)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_check_noise_human_needs_the_full_training_set():
    check_noise("cifar10", "human", 0.0, "aggre", train_size=None)
    check_noise("cifar10", "human", 0.0, "aggre", train_size=60000)
    with pytest.raises(ValueError, match="dataset.train_size: human noise labels the full 50000-image"):
        check_noise("cifar10", "human", 0.0, "aggre", train_size=1000)
    check_noise("cifar10", "uniform", 0.2, None, train_size=1000)


def test_symmetric_per_class_relabels_the_same_count_of_every_class_as_apl():
    """APL's arithmetic: int(int(0.45 * 1003) / 10) = int(451 / 10) = 45 of every class, whatever its size, each to
    another class; the classes here have 100 or 103 samples."""
    labels = torch.cat([torch.arange(10).repeat(100), torch.tensor([0, 0, 0])])
    noisy = corrupt_labels(labels, 0.45, 10, "symmetric_per_class", seed=3)
    wrong = noisy != labels
    assert [int(wrong[labels == c].sum()) for c in range(10)] == [45] * 10
    assert int(wrong.sum()) == 450
    again = corrupt_labels(labels, 0.45, 10, "symmetric_per_class", seed=3)
    assert torch.equal(noisy, again) and not torch.equal(noisy, corrupt_labels(labels, 0.45, 10,
                                                                                "symmetric_per_class", seed=4))
    with pytest.raises(ValueError, match="symmetric_per_class relabels"):
        corrupt_labels(torch.tensor([0, 0, 0, 1]), 1.0, 2, "symmetric_per_class", seed=0)
