"""Evaluation data: on the device, normalized like the training data, never augmented; the runs of a pack share
the images of each set and keep their own labels."""

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from data.dataset import ChannelNormalizer


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


class PackEvalSet:
    """One evaluation set of K runs that share its images: their batches side by side, as the pack's model reads
    them. Each batch is (x float32 (B', K·C, H, W), y (B, K), noisy y (B, K) or None), x holding the B images
    K times over (member k's copy in channels k·C to (k+1)·C), channels-last or contiguous, and, with `pad_to`,
    zero images after them up to `pad_to` rows (B' = pad_to), so that every batch has one shape.
    """

    def __init__(self, sets: list[EvalSet], channels_last: bool):
        first = sets[0]
        if any(s.images is not first.images for s in sets[1:]):
            raise ValueError("the evaluation sets of a pack must share their images")
        self.images, self.normalize, self.channels_last = first.images, first.normalize, channels_last
        self.labels = torch.stack([s.labels for s in sets], dim=1)
        self.noisy_labels = None if first.noisy_labels is None else torch.stack([s.noisy_labels for s in sets], 1)
        self.members = len(sets)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, size: int, pad_to: int | None = None):
        for start in range(0, len(self.labels), size):
            part = slice(start, start + size)
            images = self.images[part]
            if pad_to is not None and len(images) < pad_to:
                images = F.pad(images, (0, 0, 0, 0, 0, 0, 0, pad_to - len(images)))
            x = self.normalize(images)
            b, c, h, w = x.shape
            layout = (b, h, w, self.members, c) if self.channels_last else (b, self.members, c, h, w)
            copies = x.new_empty(layout)
            copies = copies.permute(0, 3, 4, 1, 2) if self.channels_last else copies
            copies.copy_(x[:, None].expand(b, self.members, c, h, w))
            noisy = None if self.noisy_labels is None else self.noisy_labels[part]
            yield copies.reshape(b, self.members * c, h, w), self.labels[part], noisy
