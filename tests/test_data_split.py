"""The class-stratified validation holdout."""

import pytest
import torch

from data import holdout_split

# Imbalanced classes: 500, 300, 150, 40, 10 images.
LABELS = torch.cat([torch.full((n,), c) for c, n in enumerate((500, 300, 150, 40, 10))])[
    torch.randperm(1000, generator=torch.Generator().manual_seed(0))
]


def test_partition():
    train, val = holdout_split(LABELS, 123, seed=0)
    assert train.dtype == val.dtype == torch.int64
    assert len(val) == 123
    assert torch.equal(torch.sort(torch.cat([train, val])).values, torch.arange(1000))
    assert torch.equal(train, torch.sort(train).values) and torch.equal(val, torch.sort(val).values)


@pytest.mark.parametrize("holdout", [1, 7, 123, 500, 999])
def test_stratified(holdout):
    _, val = holdout_split(LABELS, holdout, seed=0)
    proportional = holdout * torch.bincount(LABELS).double() / len(LABELS)
    per_class = torch.bincount(LABELS[val], minlength=5).double()
    assert ((per_class - proportional).abs() < 1).all()
    assert int(per_class.sum()) == holdout


def test_largest_remainder_allocation():
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 2)
    # Proportional shares 2.5, 1.5, 1.0: floors 2, 1, 1; the one left goes to the first of the tied remainders.
    _, val = holdout_split(labels, 5, seed=0)
    assert torch.bincount(labels[val], minlength=3).tolist() == [3, 1, 1]


def test_fixed_by_its_seed():
    assert torch.equal(holdout_split(LABELS, 100, seed=4)[1], holdout_split(LABELS, 100, seed=4)[1])
    assert not torch.equal(holdout_split(LABELS, 100, seed=4)[1], holdout_split(LABELS, 100, seed=5)[1])


def test_no_holdout():
    train, val = holdout_split(LABELS, 0, seed=0)
    assert torch.equal(train, torch.arange(1000))
    assert val.shape == (0,) and val.dtype == torch.int64


@pytest.mark.parametrize("holdout", [1000, 5000, -1])
def test_rejects_impossible_holdouts(holdout):
    with pytest.raises(ValueError, match="holdout"):
        holdout_split(LABELS, holdout, seed=0)
