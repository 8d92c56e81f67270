"""The training iterator: the training set stays on the device as uint8 and is augmented there, batch-wise."""

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from data.normalize import ChannelNormalizer
from data.seeds import generator


def crop_and_flip(
    padded: torch.Tensor, index: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, size: int, shift: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images `index` of `padded` (N, C, H, W), each cropped to size x size at its own top-left `offsets`
    (B, 2) = (row, col), then mirrored left-right where `flips` (B,) is true; in a single gather.

    Returns the crops (B, C, size, size) and where they show the image rather than its `shift`-pixel padding
    (bool, (B, 1, size, size)).
    """
    positions = torch.arange(size, device=padded.device)
    rows = offsets[:, 0:1] + positions
    cols = offsets[:, 1:2] + torch.where(flips[:, None], positions.flip(0), positions)
    channels = torch.arange(padded.shape[1], device=padded.device)
    crops = padded[
        index[:, None, None, None], channels[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]
    ]
    inside_rows = (rows >= shift) & (rows < shift + size)
    inside_cols = (cols >= shift) & (cols < shift + size)
    return crops, (inside_rows[:, None, :, None] & inside_cols[:, None, None, :])


class DeviceLoader:
    """One epoch per iteration: a seeded permutation of the training set in batches of (x, y).

    x is float32 (B, C, H, W): normalized by the per-channel `mean` and `std` (given on the [0, 1] pixel scale),
    then translated by up to `shift` pixels with zero padding (a random crop of the padded image) and, when
    `flip`, mirrored left-right with probability 1/2. The padding is zero after normalization, i.e. the
    per-channel mean, as in fb.resnet.torch (the paper's recipe: ColorNormalize, then RandomCrop(32, 4)).
    y is int64 (B,). Both live on the device of `images_uint8`.
    The final partial batch is kept unless `drop_last`. All randomness comes from one CPU generator seeded
    with `seed`, drawn once at the start of each epoch, so state_dict() taken between epochs lets a resumed
    run replay the following epochs exactly.
    """

    def __init__(
        self,
        images_uint8: torch.Tensor,
        labels: torch.Tensor,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        drop_last: bool,
        shift: int,
        flip: bool,
        seed: int,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = images_uint8.device
        # Padded once in raw pixel space, so every batch is a single gather; the padding is masked to the
        # normalized zero after normalization.
        self.padded = F.pad(images_uint8, (shift, shift, shift, shift))
        self.size = images_uint8.shape[-1]
        self.labels = labels.to(self.device)
        self.normalize = ChannelNormalizer(mean, std, self.device)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.shift = shift
        self.flip = flip
        self.generator = generator("batches", seed)

    def __len__(self) -> int:
        full, partial = divmod(len(self.labels), self.batch_size)
        return full + (partial > 0 and not self.drop_last)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = len(self.labels)
        order = torch.randperm(count, generator=self.generator)
        offsets = torch.randint(0, 2 * self.shift + 1, (count, 2), generator=self.generator)
        flips = (torch.rand(count, generator=self.generator) < 0.5) & self.flip
        return self._batches(order.to(self.device), offsets.to(self.device), flips.to(self.device))

    def _batches(self, order: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor):
        for batch in range(len(self)):
            part = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            index = order[part]
            crops, inside = crop_and_flip(self.padded, index, offsets[part], flips[part], self.size, self.shift)
            yield self.normalize(crops).masked_fill_(~inside, 0.0), self.labels[index]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
