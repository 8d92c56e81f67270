"""A procedurally generated, class-structured RGB dataset: deterministic from a seed, made in seconds, no files.

Each class is a texture: a few oriented sinusoidal colour gratings plus a few coloured Gaussian blobs. A sample
renders its class's texture with a random phase per grating and a random translation of the blobs, mixes in a
weaker texture of another class, then applies a random contrast, a random colour cast and pixel noise. The
class is thus a matter of orientations, frequencies and colour layout, not of the mean colour or of fixed pixel
positions: a linear model on pixels does poorly, a small convnet learns it within a few epochs.

Smaller images (`image_size` < 32) are the same textures rendered at 32 x 32 and area-averaged down, before the
colour cast and the pixel noise are added: the same classes, at a fraction of a network's cost per image.
"""

import math

import torch
import torch.nn.functional as F

from data.dataset import Dataset

SIZE = 32  # the size textures are rendered at, and the largest image_size
MIN_SIZE = 8  # ResNet's two stride-2 stages leave 2 x 2 pixels
# Difficulty knobs. Harder: fewer gratings/blobs per class (classes look more alike), a narrower frequency
# range, more translation, a stronger mix-in, more pixel noise.
GRATINGS_PER_CLASS = 2
BLOBS_PER_CLASS = 2
FREQUENCY_RANGE = (1.5, 6.0)  # cycles per image width
ANGLE_JITTER = 0.2  # radians, per sample and grating: nearby classes overlap a little
FREQUENCY_JITTER = 0.15  # relative, per sample and grating
BLOB_SIGMA_RANGE = (2.5, 5.0)  # pixels
BLOB_GAIN = 1.0  # blob peak relative to a grating's amplitude
MAX_TRANSLATION = 10  # pixels, blobs only (gratings get a random phase)
CONTRAST_RANGE = (0.6, 1.4)
COLOUR_CAST_STD = 0.4  # per-channel brightness offset, in grating amplitudes
MIX_RANGE = (0.0, 0.35)  # weight of another class's texture
PIXEL_NOISE_STD = 0.35
GREY_LEVELS_PER_UNIT = 40  # one grating amplitude in uint8 steps around mid-grey

# Rendering is vectorised over this many samples at a time to bound memory.
_CHUNK = 2048


def _uniform(bounds: tuple[float, float], shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=generator)


def _colours(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Random RGB directions of unit length (signed: a texture modulates colours around grey)."""
    colour = torch.randn(shape, generator=generator)
    return colour / colour.norm(dim=-1, keepdim=True)


class _ClassTextures:
    """The per-class parameters, drawn once from the dataset seed."""

    def __init__(self, num_classes: int, generator: torch.Generator):
        shape = (num_classes, GRATINGS_PER_CLASS)
        self.angle = _uniform((0.0, math.pi), shape, generator)
        self.frequency = _uniform(FREQUENCY_RANGE, shape, generator) * 2 * math.pi / SIZE  # radians per pixel
        self.grating_colour = _colours((*shape, 3), generator)  # (K, G, 3)
        self.blob_centre = _uniform((SIZE * 0.2, SIZE * 0.8), (num_classes, BLOBS_PER_CLASS, 2), generator)
        self.blob_sigma = _uniform(BLOB_SIGMA_RANGE, (num_classes, BLOBS_PER_CLASS), generator)
        self.blob_colour = _colours((num_classes, BLOBS_PER_CLASS, 3), generator) * BLOB_GAIN  # (K, B, 3)
        rows, cols = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        self.grid = torch.stack([rows, cols], dim=-1).float()  # (H, W, 2)

    def render(self, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(n, 3, SIZE, SIZE) float textures of `classes`, each with its own phases and translation."""
        n = len(classes)
        shape = (n, GRATINGS_PER_CLASS)
        angle = self.angle[classes] + _uniform((-ANGLE_JITTER, ANGLE_JITTER), shape, generator)
        frequency = self.frequency[classes] * _uniform((1 - FREQUENCY_JITTER, 1 + FREQUENCY_JITTER), shape, generator)
        wave_vector = torch.stack([angle.cos(), angle.sin()], dim=-1) * frequency[..., None]  # (n, G, 2)
        phase = torch.rand(n, GRATINGS_PER_CLASS, 1, 1, generator=generator) * 2 * math.pi
        gratings = torch.cos(torch.einsum("hwd,ngd->nghw", self.grid, wave_vector) + phase)
        image = torch.einsum("nghw,ngc->nchw", gratings, self.grating_colour[classes])

        translation = torch.randint(-MAX_TRANSLATION, MAX_TRANSLATION + 1, (n, 1, 2), generator=generator)
        centre = self.blob_centre[classes] + translation  # (n, B, 2)
        distance_sq = (self.grid[None, None] - centre[:, :, None, None, :]).square().sum(-1)  # (n, B, H, W)
        sigma = self.blob_sigma[classes][..., None, None]
        blobs = torch.exp(-distance_sq / (2 * sigma.square()))
        return image + torch.einsum("nbhw,nbc->nchw", blobs, self.blob_colour[classes])


def _samples(textures: _ClassTextures, count: int, num_classes: int, image_size: int, generator: torch.Generator):
    # Balanced classes in random order.
    labels = (torch.arange(count) % num_classes)[torch.randperm(count, generator=generator)]
    images = torch.empty(count, 3, image_size, image_size, dtype=torch.uint8)
    for start in range(0, count, _CHUNK):
        classes = labels[start : start + _CHUNK]
        n = len(classes)
        # Another class's texture (never the sample's own), weaker, as clutter.
        others = (classes + torch.randint(1, num_classes, (n,), generator=generator)) % num_classes
        mix = _uniform(MIX_RANGE, (n, 1, 1, 1), generator)
        contrast = _uniform(CONTRAST_RANGE, (n, 1, 1, 1), generator)
        cast = COLOUR_CAST_STD * torch.randn(n, 3, 1, 1, generator=generator)
        noise = PIXEL_NOISE_STD * torch.randn(n, 3, image_size, image_size, generator=generator)
        signal = contrast * (textures.render(classes, generator) + mix * textures.render(others, generator))
        if image_size != SIZE:
            signal = F.interpolate(signal, size=image_size, mode="area")
        pixels = 128 + GREY_LEVELS_PER_UNIT * (signal + cast + noise)
        images[start : start + n] = pixels.round().clamp(0, 255).to(torch.uint8)
    return images, labels


def make_synthetic(train_size: int, test_size: int, num_classes: int, seed: int, image_size: int = SIZE) -> Dataset:
    """The synthetic dataset of image_size x image_size images; the same arguments always give the same tensors."""
    if num_classes < 2:
        raise ValueError(f"the synthetic dataset needs num_classes >= 2, got {num_classes}")
    if not MIN_SIZE <= image_size <= SIZE:
        raise ValueError(f"the synthetic dataset's image_size must lie in [{MIN_SIZE}, {SIZE}], got {image_size}")
    generator = torch.Generator().manual_seed(seed)
    textures = _ClassTextures(num_classes, generator)
    # Separate streams, so the test set does not depend on train_size.
    train_seed, test_seed = torch.randint(2**62, (2,), generator=generator).tolist()

    def samples(count: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _samples(textures, count, num_classes, image_size, torch.Generator().manual_seed(stream))

    train_images, train_labels = samples(train_size, train_seed)
    test_images, test_labels = samples(test_size, test_seed)
    # Flip augmentation is allowed, as for CIFAR: a mirrored texture is learned as the same class.
    return Dataset("synthetic", train_images, train_labels, test_images, test_labels, num_classes, flip=True)
