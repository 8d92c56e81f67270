"""The peers' augmentation on the device: crop on or off, the rotation against torchvision's RandomRotation on PIL
images, the fill of the padding and the corners, rotation inside a pack, and the random stream of the paper's
recipe unchanged by it all."""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from data import DeviceLoader
from data.loader import PackLoader, crop_and_flip, pad_images

RAW = {"mean": [0.0], "std": [1.0]}  # x = pixel / 255: the raw pixels read back exactly


def _images(count: int, seed: int) -> torch.Tensor:
    """Random pixels of 1 to 255, so that a 0 can only be padding or a rotation's corner."""
    return torch.randint(1, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _loader(images, labels=None, **overrides) -> DeviceLoader:
    settings = dict(**RAW, batch_size=16, drop_last=False, shift=4, flip=True, seed=0)
    settings.update(overrides)
    labels = torch.arange(len(images)) if labels is None else labels
    return DeviceLoader(pad_images(images, settings["shift"]), labels, **settings)


def _torchvision(padded: torch.Tensor, offset: tuple[int, int], flip: bool, degrees: float) -> np.ndarray:
    """What the peers' transforms give for one image: RandomCrop(32, padding=4) at `offset` (the padded image's
    top-left corner to crop at, black padding), RandomHorizontalFlip, RandomRotation at `degrees` (nearest
    neighbour, black corners), on a PIL image. (H, W, C) uint8."""
    image = Image.fromarray(padded.permute(1, 2, 0).numpy())
    image = TF.crop(image, offset[0], offset[1], 32, 32)
    if flip:
        image = TF.hflip(image)
    image = TF.rotate(image, degrees, interpolation=InterpolationMode.NEAREST, fill=0)
    return np.asarray(image)


def _on_an_edge(degrees: float, size: int = 32, tolerance: float = 1e-3) -> torch.Tensor:
    """Where the rotation's source point of an output pixel lies within `tolerance` of a pixel edge (H, W): there
    the two may pick neighbours. Pillow maps nearest-neighbour rotations in 16.16 fixed point (Geometry.c,
    affine_fixed), adding the per-pixel step along a row: up to some 32 x 2^-16 = 5e-4 off the exact point."""
    t = math.radians(degrees)
    d = torch.arange(size, dtype=torch.float64) + 0.5 - size / 2
    dy, dx = d[:, None], d[None, :]
    points = (math.cos(t) * dx - math.sin(t) * dy, math.sin(t) * dx + math.cos(t) * dy)
    return torch.stack([(p - p.round()).abs() < tolerance for p in points]).any(0)


# Angles of RandomRotation(20) and beyond, signs, the right angles and a half turn; offsets and flips mixed.
CASES = [(7.0, (4, 4), False), (-13.5, (4, 4), True), (20.0, (0, 8), False), (-20.0, (6, 1), True),
         (45.0, (4, 4), False), (90.0, (2, 3), True), (180.0, (4, 4), False), (-179.0, (8, 0), True)]


@pytest.mark.parametrize("degrees, offset, flip", CASES)
def test_rotation_is_torchvisions_random_rotation_on_pil_images(degrees, offset, flip):
    images = _images(4, seed=1)
    padded = pad_images(images, 4)
    edges = _on_an_edge(degrees)
    for i in range(len(images)):
        crops, inside = crop_and_flip(padded, torch.tensor([[i]]), torch.tensor([[offset]]), torch.tensor([[flip]]),
                                      32, 4, torch.tensor([[math.radians(degrees)]]))
        got = crops[0, 0].permute(1, 2, 0).numpy()
        expected = _torchvision(padded[i], offset, flip, degrees)
        shows_image = torch.from_numpy((expected != 0).all(axis=2))  # black: padding or a corner
        differ = torch.from_numpy((got != expected).any(axis=2)) & inside[0, 0, 0]
        # Only where a source point is on a pixel edge may the two disagree, and there only rarely.
        assert not (differ & ~edges).any(), (degrees, i, differ.nonzero().tolist())
        assert torch.equal(inside[0, 0, 0] | edges, shows_image | edges)
    assert edges.sum() <= (64 if degrees == 45 else 12)  # of 1,024 (at 45 degrees the diagonals' symmetric points)


def test_an_epoch_of_rotations_is_the_peers_pipeline_image_by_image():
    """The loader's own draws (the offsets, flips and angles of the epoch) through torchvision's transforms give
    its batches: RandomCrop with black padding, RandomHorizontalFlip, RandomRotation(20)."""
    images = _images(48, seed=2)
    loader = _loader(images, rotate=20.0, fill="black", seed=3)
    state = loader.state_dict()
    order, offsets, flips, angles = loader.draw()
    loader.load_state_dict(state)
    x = torch.cat([x for x, _ in loader])
    assert angles.abs().max() <= math.radians(20) and angles.abs().min() < math.radians(5) < angles.abs().max()
    mismatched = 0
    for b, i in enumerate(order.tolist()):
        degrees = math.degrees(angles[b].item())  # the draws of batch position b, of image order[b]
        expected = _torchvision(pad_images(images, 4)[i], tuple(offsets[b].tolist()), bool(flips[b]), degrees)
        got = (x[b] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        differ = torch.from_numpy((got != expected).any(axis=2))
        assert not (differ & ~_on_an_edge(degrees)).any()
        mismatched += int(differ.sum())
    assert mismatched <= 10  # of 48 x 1,024 pixels (6 with these seeds)


def test_the_fill_is_the_channel_mean_or_black():
    """A white image turned by 45 degrees shows the fill in its corners: 0 after normalization with "mean" (the
    paper's padding), pixel 0 normalized, -mean / std, with "black" (torchvision's); inside, white either way."""
    images = torch.full((16, 3, 32, 32), 255, dtype=torch.uint8)
    mean, std = [0.2, 0.4, 0.6], [0.3, 0.2, 0.1]
    white = torch.tensor([(1 - m) / s for m, s in zip(mean, std, strict=True)])
    black = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)])
    for fill, corner in (("mean", torch.zeros(3)), ("black", black)):
        x = torch.cat([x for x, _ in _loader(images, mean=mean, std=std, rotate=45.0, fill=fill, crop=False,
                                              flip=False)])
        # Rotated by up to 45 degrees, a 32 x 32 square keeps its centre and loses its corner pixel from 3 degrees on.
        turned = (x[:, :, 0, 0] - white).abs().amax(1) > 1e-3
        assert turned.sum() >= 3
        assert torch.allclose(x[turned, :, 0, 0], corner.expand(int(turned.sum()), 3), atol=1e-5)
        assert torch.allclose(x[:, :, 16, 16], white.expand(16, 3), atol=1e-5)


def test_without_crop_the_image_itself_and_the_fill_unseen():
    images = _images(20, seed=4)
    for fill in ("mean", "black"):
        x, y = zip(*_loader(images, crop=False, flip=False, fill=fill), strict=True)
        assert torch.equal((torch.cat(x) * 255).round().to(torch.uint8), images[torch.cat(y)])
    # With the flip alone: each image or its mirror.
    x, y = zip(*_loader(images, crop=False, flip=True), strict=True)
    raw, y = (torch.cat(x) * 255).round().to(torch.uint8), torch.cat(y)
    mirrored = torch.tensor([torch.equal(r, images[i].flip(-1)) for r, i in zip(raw, y.tolist(), strict=True)])
    same = torch.tensor([torch.equal(r, images[i]) for r, i in zip(raw, y.tolist(), strict=True)])
    assert (mirrored | same).all() and mirrored.any() and same.any()


def test_pack_members_rotate_each_as_its_own_loader():
    """A pack of a member without rotation and two with their own angles: each member's batches are those of
    its own loader, the one without rotation included (it goes through the rotating gather at angle 0)."""
    images = _images(40, seed=5)
    padded = pad_images(images, 4)

    def loaders():
        return [DeviceLoader(padded, torch.arange(40), **RAW, batch_size=16, drop_last=False, shift=4, flip=True,
                             seed=seed, rotate=rotate, fill="black")
                for seed, rotate in ((0, 0.0), (1, 20.0), (2, 90.0))]

    alone = [[(x.clone(), y.clone()) for x, y in loader] for loader in loaders()]
    for b, (x, y) in enumerate(PackLoader(loaders(), channels_last=True)):
        for k, batches in enumerate(alone):
            assert torch.equal(x[:, 3 * k:3 * (k + 1)], batches[b][0]) and torch.equal(y[:, k], batches[b][1])


def test_without_rotation_the_random_stream_is_what_it_was():
    """The draws of the paper's augmentation (crop and flip, no rotation), pinned as the loader drew them before
    the rotation existed (main at 1ceee53): the same order, offsets and flips in two epochs, and the same pixels."""
    loader = _loader(torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8,
                                   generator=torch.Generator().manual_seed(3)), batch_size=64, seed=7)
    expected = [([82, 78, 88, 85, 68, 93, 62, 98], [[1, 6], [1, 7], [5, 2], [8, 1]], [0, 1, 1, 0, 1, 1, 1, 0]),
                ([87, 26, 81, 46, 36, 63, 44, 75], [[2, 2], [6, 7], [2, 5], [0, 1]], [0, 0, 1, 1, 0, 1, 0, 1])]
    state = loader.state_dict()
    for order, offsets, flips in expected:
        o, off, f, angles = loader.draw()
        assert (o[:8].tolist(), off[:4].tolist(), f[:8].int().tolist()) == (order, offsets, flips)
        assert not angles.any()
    loader.load_state_dict(state)
    x = torch.cat([x for x, _ in loader]).double()
    weights = torch.arange(x.numel(), dtype=torch.float64).view_as(x).remainder(97)
    assert x.sum().item() == pytest.approx(132690.10980504518, rel=1e-12)
    assert (x * weights).sum().item() == pytest.approx(6374435.7376580965, rel=1e-12)
