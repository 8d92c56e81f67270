"""The device-resident training iterator and the evaluation sets: augmentation, order, resumption."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F

from data import DeviceLoader, EvalSet
from data.dataset import channel_stats
from data.loader import crop_and_flip, pad_images

RAW = {"mean": [0.0], "std": [1.0]}  # x = pixel / 255, so the raw pixels can be read back exactly


def _loader(images, labels, **overrides):
    settings = dict(**RAW, batch_size=64, drop_last=False, shift=4, flip=True, seed=0)
    settings.update(overrides)
    return DeviceLoader(pad_images(images, settings["shift"]), labels, **settings)


def _random_images(count: int, seed: int, low: int = 0) -> torch.Tensor:
    return torch.randint(low, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _normalized(images: torch.Tensor, mean, std) -> torch.Tensor:
    return (images.double() / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def _raw(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.int64)


@pytest.mark.parametrize(
    "dy, dx, flip",
    [(0, 0, False), (4, 4, False), (8, 8, False), (1, 6, False), (1, 6, True), (8, 0, True), (4, 4, True)],
)
def test_crop_and_flip_moves_markers_exactly(dy, dx, flip):
    image = torch.zeros(1, 2, 32, 32, dtype=torch.uint8)
    markers = [(0, 5, 7, 200), (1, 20, 30, 100), (0, 31, 0, 50)]
    for channel, row, col, value in markers:
        image[0, channel, row, col] = value
    padded = F.pad(image, (4, 4, 4, 4))
    out, inside = crop_and_flip(padded, torch.tensor([[0]]), torch.tensor([[[dy, dx]]]), torch.tensor([[flip]]), 32, 4)
    out, inside = out[:, 0], inside[:, 0]  # one member

    expected = torch.zeros_like(image)
    for channel, row, col, value in markers:
        # Cropping at (dy, dx) of the 4-padded image moves the content by (4 - dy, 4 - dx); the mirror maps
        # column c to 31 - c; what leaves the 32 x 32 window is gone.
        new_row, new_col = row + 4 - dy, col + 4 - dx
        if flip:
            new_col = 31 - new_col
        if 0 <= new_row < 32 and 0 <= new_col < 32:
            expected[0, channel, new_row, new_col] = value
    assert torch.equal(out, expected)
    # The image occupies rows 4 - dy .. 35 - dy of the crop (and columns likewise, mirrored when flipped).
    rows, cols = torch.arange(32) + dy - 4, torch.arange(32) + dx - 4
    cols = cols.flip(0) if flip else cols
    in_image = ((rows >= 0) & (rows < 32))[:, None] & ((cols >= 0) & (cols < 32))[None, :]
    assert inside.shape == (1, 1, 32, 32) and torch.equal(inside[0, 0], in_image)


def _marker_images(count: int) -> torch.Tensor:
    """Identical images with a bright pixel at (10, 12) and a dim one to its right, at (10, 13)."""
    images = torch.zeros(count, 1, 32, 32, dtype=torch.uint8)
    images[:, 0, 10, 12] = 255
    images[:, 0, 10, 13] = 100
    return images


def _shifts_and_flips(loader: DeviceLoader, epochs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows, cols, flipped = [], [], []
    for _ in range(epochs):
        for x, _ in loader:
            raw = _raw(x)[:, 0].flatten(1)  # RAW normalization: the padding is 0 here too
            bright, dim = raw.argmax(1), (raw == 100).int().argmax(1)
            is_flipped = dim % 32 < bright % 32
            rows.append(bright // 32 - 10)
            cols.append(torch.where(is_flipped, 31 - bright % 32, bright % 32) - 12)
            flipped.append(is_flipped)
    return torch.cat(rows), torch.cat(cols), torch.cat(flipped)


def test_translations_cover_the_range_evenly_and_half_the_images_flip():
    rows, cols, flipped = _shifts_and_flips(_loader(_marker_images(3000), torch.zeros(3000)), epochs=1)
    for shifts in (rows, cols):
        counts = torch.bincount(shifts + 4)
        assert len(counts) == 9 and (counts.double() / (3000 / 9) - 1).abs().max() < 0.15
    assert flipped.double().mean().item() == pytest.approx(0.5, abs=0.04)
    # Independent per image: the first batch alone already has many distinct placements.
    assert len(set(zip(rows[:64].tolist(), cols[:64].tolist(), strict=True))) > 20


def test_without_flip_nothing_mirrors():
    rows, _, flipped = _shifts_and_flips(_loader(_marker_images(500), torch.zeros(500), flip=False), epochs=4)
    assert not flipped.any()
    assert rows.unique().tolist() == list(range(-4, 5))


def test_pixel_statistics_survive_augmentation():
    images = _random_images(256, seed=0, low=1)
    mean, std = channel_stats(images)
    loader = _loader(images, torch.zeros(256), mean=mean, std=std, batch_size=100)
    normalized = torch.cat([x for _ in range(20) for x, _ in loader])
    padding = normalized == 0  # the padding is the per-channel mean; no pixel of these images is exactly at it
    raw = normalized * torch.tensor(std).view(1, 3, 1, 1) * 255 + torch.tensor(mean).view(1, 3, 1, 1) * 255
    # A pixel stays inside the image with probability ((9 * 32 - 2 * (1 + 2 + 3 + 4)) / (9 * 32)) ** 2.
    assert padding.double().mean().item() == pytest.approx(1 - (268 / 288) ** 2, abs=0.003)
    original_mean = images.double().mean(dim=(0, 2, 3))
    kept_mean = torch.stack([raw[:, c][~padding[:, c]].double().mean() for c in range(3)])
    assert torch.allclose(kept_mean, original_mean, atol=0.5)


def test_shifts_pad_with_the_channel_mean():
    """fb.resnet.torch, the paper's recipe, normalizes and then zero-pads for its random crop: the padding is the
    per-channel mean, 0 after normalization, not black. A white marker image shifted by the most shows it."""
    images = torch.full((64, 3, 32, 32), 255, dtype=torch.uint8)
    mean, std = [0.2, 0.4, 0.6], [0.3, 0.2, 0.1]
    x = torch.cat([x for x, _ in _loader(images, torch.zeros(64), mean=mean, std=std)])
    white = torch.tensor([(1 - m) / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1)
    padded = (x == 0).all(dim=1, keepdim=True)
    assert padded.any() and (~padded).any()
    assert torch.allclose(x.masked_fill(padded, 0), white.expand_as(x).masked_fill(padded, 0), atol=1e-5)
    # Each image keeps exactly its 32 x 32 window minus what its shift moved out: rows and columns of padding.
    rows_padded, cols_padded = padded[:, 0].all(dim=2).sum(1), padded[:, 0].all(dim=1).sum(1)
    assert ((32 - rows_padded) * (32 - cols_padded) == (~padded[:, 0]).sum(dim=(1, 2))).all()
    assert rows_padded.max() == 4 and cols_padded.max() == 4


def test_no_augmentation_gives_the_normalized_images():
    images = _random_images(50, seed=1)
    mean, std = [0.3, 0.5, 0.7], [0.2, 0.25, 0.3]
    loader = _loader(images, torch.arange(50), mean=mean, std=std, shift=0, flip=False, batch_size=16)
    expected = _normalized(images, mean, std)
    for x, y in loader:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.allclose(x.double(), expected[y], atol=1e-5)


def test_eval_batches_are_the_normalized_originals_in_order():
    images = _random_images(23, seed=2)
    labels = torch.arange(23) % 4
    mean, std = channel_stats(images)
    eval_set = EvalSet(images, labels, mean=mean, std=std)
    batches = list(eval_set.batches(10))
    assert [len(y) for _, y, _ in batches] == [10, 10, 3] and len(eval_set) == 23
    assert all(noisy is None for _, _, noisy in batches)
    x = torch.cat([x for x, _, _ in batches]).double()
    expected = _normalized(images, mean, std)
    assert torch.allclose(x, expected, atol=1e-5)
    assert torch.equal(torch.cat([y for _, y, _ in batches]), labels)
    # Normalized by the statistics of these very images: zero mean and unit variance per channel.
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-5)


@pytest.mark.parametrize("drop_last, sizes", [(False, [4, 4, 2]), (True, [4, 4])])
def test_final_partial_batch(drop_last, sizes):
    loader = _loader(_marker_images(10), torch.arange(10), batch_size=4, drop_last=drop_last)
    batches = [y for _, y in loader]
    assert len(loader) == len(sizes) and [len(y) for y in batches] == sizes
    seen = torch.cat(batches)
    assert len(seen.unique()) == len(seen)  # each image at most once per epoch
    if not drop_last:
        assert torch.equal(torch.sort(seen).values, torch.arange(10))


def _epoch(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(first, second) -> bool:
    return len(first) == len(second) and all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(first, second, strict=True)
    )


def test_order_and_augmentation_follow_the_seed():
    images = _random_images(100, seed=3)
    first = _loader(images, torch.arange(100), seed=5)
    epochs = [_epoch(first), _epoch(first)]
    assert _same(epochs[0], _epoch(_loader(images, torch.arange(100), seed=5)))
    assert not _same(epochs[0], epochs[1])  # every epoch its own permutation
    other = _epoch(_loader(images, torch.arange(100), seed=6))
    assert not torch.equal(torch.cat([y for _, y in other]), torch.cat([y for _, y in epochs[0]]))


def test_restored_state_replays_the_next_epoch_exactly():
    images = _random_images(100, seed=4)
    original = _loader(images, torch.arange(100), seed=5, batch_size=32)
    _epoch(original)
    # The state goes through a checkpoint file, as in a resumed run.
    buffer = io.BytesIO()
    torch.save(copy.deepcopy(original.state_dict()), buffer)
    following = [_epoch(original), _epoch(original)]

    resumed = _loader(images, torch.arange(100), seed=123, batch_size=32)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert _same(_epoch(resumed), following[0])
    assert _same(_epoch(resumed), following[1])


def test_rejects_a_non_positive_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        _loader(_marker_images(4), torch.zeros(4), batch_size=0)
