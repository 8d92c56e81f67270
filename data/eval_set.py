"""Evaluation data: on the device, normalized like the training data, never augmented."""

from collections.abc import Iterator, Sequence

import torch

from data.normalize import ChannelNormalizer


class EvalSet:
    """uint8 images (N, C, H, W) and int64 labels (N,) on one device, read in order by batches().

    The evaluation set of training images also holds the noisy labels the run trains on (`noisy_labels`), so that
    one pass measures both how well the model knows the clean labels and how much of the noise it has memorized.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        noisy_labels: torch.Tensor | None = None,
    ):
        self.images = images
        self.labels = labels.to(images.device)
        self.noisy_labels = None if noisy_labels is None else noisy_labels.to(images.device)
        self.normalize = ChannelNormalizer(mean, std, images.device)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """(x float32 normalized, y int64, noisy y int64 or None) in dataset order, `size` at a time (the last batch
        may be smaller)."""
        for start in range(0, len(self.labels), size):
            part = slice(start, start + size)
            noisy = None if self.noisy_labels is None else self.noisy_labels[part]
            yield self.normalize(self.images[part]), self.labels[part], noisy
