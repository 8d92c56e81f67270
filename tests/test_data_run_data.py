"""prepare_run_data: which images and labels end up where."""

import pytest
import torch

from data import Dataset
from data.dataset import channel_stats
from rundata import run_data

NUM_TRAIN, NUM_TEST, NUM_CLASSES = 200, 30, 5


def _indexed_dataset(flip: bool = True) -> Dataset:
    """Image i is uniformly grey with value i + 1 (never 0, the padding), so a batch shows which images it holds."""
    values = torch.arange(1, NUM_TRAIN + NUM_TEST + 1, dtype=torch.uint8)
    images = values.view(-1, 1, 1, 1).expand(-1, 1, 32, 32).contiguous()
    labels = torch.arange(NUM_TRAIN + NUM_TEST) % NUM_CLASSES
    return Dataset(
        "indexed", images[:NUM_TRAIN], labels[:NUM_TRAIN], images[NUM_TRAIN:], labels[NUM_TRAIN:], NUM_CLASSES, flip
    )


DATASET = _indexed_dataset()
MEAN, STD = channel_stats(DATASET.train_images)


def _indices(x: torch.Tensor) -> torch.Tensor:
    """The index of each image in a batch, read at its centre (never reached by the padding)."""
    raw = x[:, 0, 16, 16] * STD[0] * 255 + MEAN[0] * 255
    return raw.round().to(torch.int64) - 1


def _run_data(**overrides):
    settings = {"noise": 0.4, "noise_type": "symmetric", "noise_seed": 1, "holdout": 50, "batch_size": 32}
    return run_data(DATASET, **{**settings, **overrides})


def test_loader_serves_the_training_portion_with_noisy_labels():
    run = _run_data()
    seen, labels = [], []
    for x, y in run.loader:
        seen.append(_indices(x))
        labels.append(y)
    seen, labels = torch.cat(seen), torch.cat(labels)
    assert torch.equal(labels, run.noisy_labels[seen])
    assert len(seen) == NUM_TRAIN - 50 and len(seen.unique()) == NUM_TRAIN - 50
    assert not (labels == DATASET.train_labels[seen]).all()
    val_images = set(_indices(next(run.eval_sets["val"].batches(1000))[0]).tolist())
    assert val_images.isdisjoint(seen.tolist())


def _eval(run, name) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys, _ = zip(*run.eval_sets[name].batches(64), strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_eval_sets():
    run = _run_data()
    assert list(run.eval_sets) == ["train", "val", "test"]
    train_x, train_y = _eval(run, "train")
    val_x, val_y = _eval(run, "val")
    train_idx, val_idx = _indices(train_x), _indices(val_x)
    assert torch.equal(torch.sort(torch.cat([train_idx, val_idx])).values, torch.arange(NUM_TRAIN))
    assert torch.equal(train_y, DATASET.train_labels[train_idx])  # clean
    # ... and the noisy labels of the same images, read in the same pass.
    noisy = torch.cat([n for _, _, n in run.eval_sets["train"].batches(64)])
    assert torch.equal(noisy, run.noisy_labels[train_idx]) and not torch.equal(noisy, train_y)
    assert run.eval_sets["val"].noisy_labels is None and run.eval_sets["test"].noisy_labels is None
    assert torch.equal(val_y, run.noisy_labels[val_idx])  # as noisy as training, by default
    assert not torch.equal(val_y, DATASET.train_labels[val_idx])
    test_x, test_y = _eval(run, "test")
    assert torch.equal(_indices(test_x), torch.arange(NUM_TRAIN, NUM_TRAIN + NUM_TEST))
    assert torch.equal(test_y, DATASET.test_labels)
    # Eval images are not augmented: a uniform image stays uniform (no padding comes in).
    assert (test_x == test_x[:, :, :1, :1]).all()


def test_clean_validation_labels():
    run = _run_data(clean_val=True)
    val_x, val_y = _eval(run, "val")
    assert torch.equal(val_y, DATASET.train_labels[_indices(val_x)])


def test_validation_images_do_not_depend_on_the_run():
    reference = _indices(_eval(_run_data(), "val")[0])
    for overrides in ({"seed": 9}, {"noise": 0.0}, {"noise_seed": 4}, {"batch_size": 7}):
        assert torch.equal(_indices(_eval(_run_data(**overrides), "val")[0]), reference)
    assert not torch.equal(_indices(_eval(_run_data(split_seed=1), "val")[0]), reference)


def test_no_holdout_trains_on_everything():
    run = _run_data(holdout=0)
    assert list(run.eval_sets) == ["train", "test"]
    assert len(run.eval_sets["train"]) == NUM_TRAIN
    assert sum(len(y) for _, y in run.loader) == NUM_TRAIN


def test_normalization_uses_the_whole_training_split():
    with_val = _eval(_run_data(holdout=50), "test")[0]
    without_val = _eval(_run_data(holdout=0), "test")[0]
    assert torch.equal(with_val, without_val)
    train_x = _eval(_run_data(holdout=0), "train")[0]
    assert train_x.mean().item() == pytest.approx(0, abs=1e-5)
    assert train_x.std(unbiased=False).item() == pytest.approx(1, abs=1e-5)


def test_train_evaluation_reads_a_fixed_stratified_subset_of_the_training_portion():
    full = _run_data()
    train_idx = _indices(_eval(full, "train")[0])
    subset = _run_data(eval_train_size=60)
    x, y = _eval(subset, "train")
    chosen = _indices(x)
    assert len(chosen) == 60 and set(chosen.tolist()) <= set(train_idx.tolist())
    assert torch.equal(y, DATASET.train_labels[chosen])
    noisy = torch.cat([n for _, _, n in subset.eval_sets["train"].batches(64)])
    assert torch.equal(noisy, subset.noisy_labels[chosen])
    # 150 training images of 5 balanced classes: 12 of each.
    assert torch.bincount(y, minlength=NUM_CLASSES).tolist() == [12] * NUM_CLASSES
    # Fixed by split_seed like the holdout, whatever the run's seed or noise; the whole portion when larger.
    for overrides in ({"seed": 9}, {"noise": 0.0}, {"noise_seed": 4}):
        assert torch.equal(_indices(_eval(_run_data(eval_train_size=60, **overrides), "train")[0]), chosen)
    assert not torch.equal(_indices(_eval(_run_data(eval_train_size=60, split_seed=1), "train")[0]), chosen)
    assert torch.equal(_indices(_eval(_run_data(eval_train_size=150), "train")[0]), train_idx)


def test_run_summary():
    run = _run_data(noise=0.5)
    assert run.realized_rate == 0.5
    assert torch.equal(run.clean_labels, DATASET.train_labels)
    assert run.noisy_labels.shape == (NUM_TRAIN,) and run.noisy_labels.device.type == "cpu"
    assert (run.num_classes, run.in_channels) == (NUM_CLASSES, 1)
    assert len(run.loader) == 5  # 150 training images in batches of 32


@pytest.mark.parametrize("flip", [False, True])
def test_flip_follows_the_dataset(flip):
    """Digits (MNIST, SVHN) are never mirrored. Images bright on the left half and dark on the right show it:
    a 4-pixel shift never brings the dark half to column 8, a mirror always does."""
    images = torch.full((NUM_TRAIN, 1, 32, 32), 50, dtype=torch.uint8)
    images[:, :, :, :16] = 200
    dataset = Dataset(
        "halves", images, DATASET.train_labels, DATASET.test_images, DATASET.test_labels, NUM_CLASSES, flip
    )
    run = run_data(dataset, batch_size=64)
    mean, std = channel_stats(images)
    raw = torch.cat([x[:, 0, 16, 8] for _ in range(3) for x, _ in run.loader]) * std[0] * 255 + mean[0] * 255
    mirrored = raw.round() == 50
    assert torch.equal(mirrored | (raw.round() == 200), torch.ones_like(mirrored))
    if flip:
        assert mirrored.double().mean().item() == pytest.approx(0.5, abs=0.08)
    else:
        assert not mirrored.any()
