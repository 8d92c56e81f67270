"""Evaluation data: on the device, normalized like the training data, never augmented."""

from collections.abc import Iterator, Sequence

import torch

from data.normalize import ChannelNormalizer


class EvalSet:
    """uint8 images (N, C, H, W) and int64 labels (N,) on one device, read in order by batches()."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, mean: Sequence[float], std: Sequence[float]):
        self.images = images
        self.labels = labels.to(images.device)
        self.normalize = ChannelNormalizer(mean, std, images.device)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x float32 normalized, y int64) in dataset order, `size` at a time (the last batch may be smaller)."""
        for start in range(0, len(self.labels), size):
            yield self.normalize(self.images[start : start + size]), self.labels[start : start + size]
