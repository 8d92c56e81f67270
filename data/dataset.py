"""The decoded dataset every source returns, and its per-channel standardization ("we normalize the data using
the channel means and standard deviation")."""

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# Chunked so that the float64 copy of a 60000-image training set never exists at once.
_STATS_CHUNK = 4096


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) standard deviation of uint8 images, on the [0, 1] scale."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for start in range(0, len(images), _STATS_CHUNK):
        chunk = images[start : start + _STATS_CHUNK].to(torch.float64) / 255.0
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    count = images.numel() // images.shape[1]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0.0).sqrt()
    return mean.tolist(), std.tolist()


class ChannelNormalizer:
    """Maps uint8 (B, C, H, W) images to float32 (x / 255 - mean) / std, per channel, on `device`."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device | str):
        mean64 = torch.tensor(mean, dtype=torch.float64)
        std64 = torch.tensor(std, dtype=torch.float64)
        # One multiply-add per pixel: x * scale + shift.
        self.scale = (1.0 / (255.0 * std64)).to(torch.float32).view(1, -1, 1, 1).to(device)
        self.shift = (-mean64 / std64).to(torch.float32).view(1, -1, 1, 1).to(device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, images.to(torch.float32), self.scale)


@dataclass(frozen=True)
class Dataset:
    """Both splits of an image classification dataset, decoded, on the CPU.

    Images are uint8 (N, C, H, W), 32 x 32 except smaller synthetic ones; labels are int64 (N,) and clean (no noise
    added). `superclass` is the fine -> coarse label map, int64 (num_classes,), for datasets that define one
    (CIFAR-100, read from its own files; -1 for a fine label absent from them), None for the others.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    flip: bool  # horizontal flips keep the class (objects, textures) -- not for digits
    superclass: torch.Tensor | None = None

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1]

    @functools.cached_property
    def channel_stats(self) -> tuple[list[float], list[float]]:
        """The per-channel mean and std of the training split (channel_stats), computed once: every
        run of the dataset normalizes with them."""
        return channel_stats(self.train_images)
