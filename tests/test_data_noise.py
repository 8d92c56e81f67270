"""Label noise: exact counts, realized rates, determinism, and independence from everything a loss changes."""

import pytest
import torch

from data import corrupt_labels, holdout_split
from data.synthetic import make_synthetic
from rundata import run_data

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
        corrupt_labels(LABELS, 0.2, 10, "pairflip", seed=0)
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
