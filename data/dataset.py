"""The decoded dataset every source returns."""

import functools
from dataclasses import dataclass

import torch

from data.normalize import channel_stats


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
        """The per-channel mean and std of the training split (data.normalize.channel_stats), computed once: every
        run of the dataset normalizes with them."""
        return channel_stats(self.train_images)
