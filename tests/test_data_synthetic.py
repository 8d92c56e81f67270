"""The synthetic dataset: deterministic, balanced, class-structured, and not linearly trivial."""

import pytest
import torch
import torch.nn.functional as F

from data.synthetic import make_synthetic
from rundata import run_data

DATASET = make_synthetic(3000, 1000, 10, seed=0)


def test_shapes_and_balance():
    assert DATASET.train_images.shape == (3000, 3, 32, 32) and DATASET.train_images.dtype == torch.uint8
    assert DATASET.test_images.shape == (1000, 3, 32, 32)
    assert DATASET.train_labels.dtype == torch.int64
    assert torch.bincount(DATASET.train_labels).tolist() == [300] * 10
    assert torch.bincount(DATASET.test_labels).tolist() == [100] * 10
    assert (DATASET.num_classes, DATASET.flip, DATASET.in_channels) == (10, True, 3)
    # The pixel range is used without piling up at the ends.
    pixels = DATASET.train_images.double()
    assert 20 < pixels.std() < 60 and ((pixels == 0) | (pixels == 255)).double().mean() < 0.01


def test_deterministic_in_the_seed():
    first = make_synthetic(50, 20, 4, seed=3)
    again = make_synthetic(50, 20, 4, seed=3)
    other = make_synthetic(50, 20, 4, seed=4)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, field), getattr(again, field))
    assert not torch.equal(first.train_images, other.train_images)
    assert first.train_labels.max() == 3


def test_test_set_does_not_depend_on_the_training_size():
    assert torch.equal(make_synthetic(40, 30, 10, seed=0).test_images, make_synthetic(90, 30, 10, seed=0).test_images)


def _median_distance_between_class_means(images: torch.Tensor, labels: torch.Tensor) -> float:
    means = torch.stack([images[labels == c].mean(0) for c in range(10)])
    return torch.pdist(means.flatten(1)).median().item()


def test_class_means_differ():
    """The mean images of the classes lie further apart than those of random groups of the same sizes."""
    images = DATASET.train_images.double()
    observed = _median_distance_between_class_means(images, DATASET.train_labels)
    shuffled = DATASET.train_labels[torch.randperm(3000, generator=torch.Generator().manual_seed(0))]
    chance = _median_distance_between_class_means(images, shuffled)
    assert observed > 1.4 * chance


def test_a_linear_model_on_pixels_does_poorly():
    """Orientation and frequency of randomly phased gratings are invisible to a linear model: it rises above
    chance (the colour layout of the blobs leaks some: about 65% here) but stays far from the accuracy a convnet
    reaches (above 99%, see below and the demo)."""
    torch.manual_seed(0)
    train = DATASET.train_images.flatten(1).float() / 255
    mean, std = train.mean(0), train.std(0)
    train, test = (train - mean) / std, (DATASET.test_images.flatten(1).float() / 255 - mean) / std
    model = torch.nn.Linear(train.shape[1], 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(20):
        for batch in torch.randperm(len(train)).split(128):
            loss = F.cross_entropy(model(train[batch]), DATASET.train_labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        train_accuracy = (model(train).argmax(1) == DATASET.train_labels).double().mean().item()
        test_accuracy = (model(test).argmax(1) == DATASET.test_labels).double().mean().item()
    assert train_accuracy > 0.9  # it memorizes the training images ...
    assert 0.15 < test_accuracy < 0.75  # ... but does not generalize


@pytest.mark.slow
def test_resnet20_learns_it_in_a_few_epochs():
    from models import ResNet

    dataset = make_synthetic(2000, 1000, 10, seed=0)
    run = run_data(dataset)
    torch.manual_seed(0)
    model = ResNet(20, 3, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [6], 0.1)
    for _ in range(8):
        for x, y in run.loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y, _ in run.eval_sets["test"].batches(500))
    assert correct / len(run.eval_sets["test"]) > 0.9
