"""The training iterator: the training set stays on the device as uint8 and is augmented there, batch-wise; the runs
of a pack share one padded copy of it, and one gather makes all their batches at once."""

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from data.dataset import ChannelNormalizer
from data.draws import generator

# What the padding of a translation and the corners of a rotation show: the channel mean (0 after normalization, as
# fb.resnet.torch pads after normalizing) or black (pixel 0, as torchvision's transforms pad before Normalize).
FILLS = ("mean", "black")


def pad_images(images_uint8: torch.Tensor, shift: int) -> torch.Tensor:
    """The images with `shift` zero pixels on every side: what DeviceLoader crops its translations from."""
    return F.pad(images_uint8, (shift, shift, shift, shift))


def crop_and_flip(
    padded: torch.Tensor, index: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, size: int, shift: int,
    angles: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each batch row b and member k, image index[b, k] of `padded` (N, C, H, W), cropped to size x size at
    its own top-left offsets[b, k] = (row, col), then mirrored left-right where flips[b, k], then, where `angles`
    are given, rotated counter-clockwise about its centre by angles[b, k] radians; in a single gather.

    The rotation is PIL's Image.rotate (torchvision's RandomRotation on PIL images): each output pixel shows the
    pixel under its centre turned back by the angle, nearest neighbour; what comes from outside the crop is fill.
    index, flips are (B, K), offsets (B, K, 2) and angles float (B, K). Returns the crops (B, K, C, size, size),
    laid out in memory as (B, size, size, K, C), so that merging K and C gives a channels-last (B, K·C, size, size)
    tensor without a copy; and where they show the image rather than its `shift`-pixel padding or what a rotation
    brought in from outside the crop (bool, (B, K, 1, size, size)).
    """
    if angles is not None:
        return _rotated_crops(padded, index, offsets, flips, size, shift, angles)
    positions = torch.arange(size, device=padded.device)
    rows = offsets[..., 0:1] + positions  # (B, K, size)
    cols = offsets[..., 1:2] + torch.where(flips[..., None], positions.flip(0), positions)
    channels = torch.arange(padded.shape[1], device=padded.device)
    # Indices broadcast to (B, size, size, K, C), each laid out in that order, which the gather's result follows.
    crops = padded[
        index[:, None, None, :, None], channels, rows.transpose(1, 2).contiguous()[:, :, None, :, None],
        cols.transpose(1, 2).contiguous()[:, None, :, :, None],
    ]
    inside_rows = (rows >= shift) & (rows < shift + size)
    inside_cols = (cols >= shift) & (cols < shift + size)
    inside = inside_rows[:, :, None, :, None] & inside_cols[:, :, None, None, :]
    return crops.permute(0, 3, 4, 1, 2), inside


def _rotated_crops(
    padded: torch.Tensor, index: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, size: int, shift: int,
    angles: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """crop_and_flip with a rotation: every output pixel's source position, (B, K, size, size), gathered at once."""
    centre = size / 2  # PIL turns about the image's centre; pixel (i, j) is the square of centre (i + 0.5, j + 0.5)
    positions = torch.arange(size, device=padded.device, dtype=torch.float32) + 0.5 - centre
    cos, sin = angles.cos()[..., None, None], angles.sin()[..., None, None]  # (B, K, 1, 1)
    dy, dx = positions[:, None], positions[None, :]  # output row i, column j
    src_cols = (cos * dx - sin * dy + centre).floor().long()  # (B, K, size, size)
    src_rows = (sin * dx + cos * dy + centre).floor().long()
    within = (src_rows >= 0) & (src_rows < size) & (src_cols >= 0) & (src_cols < size)
    src_rows, src_cols = src_rows.clamp(0, size - 1), src_cols.clamp(0, size - 1)
    # The rotation turns the flipped crop: its column c is column size - 1 - c of the crop.
    src_cols = torch.where(flips[..., None, None], size - 1 - src_cols, src_cols)
    rows = offsets[..., 0, None, None] + src_rows
    cols = offsets[..., 1, None, None] + src_cols
    channels = torch.arange(padded.shape[1], device=padded.device)
    # Indices broadcast to (B, size, size, K, C), as in crop_and_flip.
    crops = padded[index[:, None, None, :, None], channels, rows.permute(0, 2, 3, 1).contiguous()[..., None],
                   cols.permute(0, 2, 3, 1).contiguous()[..., None]]
    inside = within & (rows >= shift) & (rows < shift + size) & (cols >= shift) & (cols < shift + size)
    return crops.permute(0, 3, 4, 1, 2), inside[:, :, None]


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on `device`; to CUDA through pinned memory and without blocking the host."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class DeviceLoader:
    """One epoch per iteration: a seeded permutation of the training set in batches of (x, y).

    x is float32 (B, C, H, W): normalized by the per-channel `mean` and `std` (given on the [0, 1] pixel scale),
    then, when `crop`, translated by up to `shift` pixels with zero padding (a random crop of the padded image),
    when `flip`, mirrored left-right with probability 1/2, and when `rotate` > 0, rotated by an angle uniform in
    [-rotate, rotate] degrees (crop_and_flip). With fill "mean" the padding is zero after normalization, i.e. the
    per-channel mean, as in fb.resnet.torch (the paper's recipe: ColorNormalize, then RandomCrop(32, 4)); with
    "black" it is pixel 0, as torchvision's RandomCrop(padding=4) and RandomRotation give before Normalize.
    y is int64 (B,). Both live on the device of `padded`, the training images padded by `shift` (pad_images),
    which the loaders of a pack share (PackLoader).
    The final partial batch is kept unless `drop_last`. All randomness comes from one CPU generator seeded
    with `seed`, drawn once at the start of each epoch, so state_dict() taken between epochs lets a resumed
    run replay the following epochs exactly.
    """

    def __init__(
        self,
        padded: torch.Tensor,
        labels: torch.Tensor,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        drop_last: bool,
        shift: int,
        flip: bool,
        seed: int,
        crop: bool = True,
        rotate: float = 0.0,
        fill: str = "mean",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = padded.device
        # Padded once in raw pixel space, so every batch is a single gather; the padding is masked to the
        # normalized zero after normalization.
        self.padded = padded
        self.size = padded.shape[-1] - 2 * shift
        self.labels = labels.to(self.device)
        self.normalize = ChannelNormalizer(mean, std, self.device)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.shift = shift
        self.flip = flip
        self.crop = crop
        self.rotate = rotate
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
        self.fill = fill
        self.generator = generator("batches", seed)

    def __len__(self) -> int:
        full, partial = divmod(len(self.labels), self.batch_size)
        return full + (partial > 0 and not self.drop_last)

    def draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The next epoch's randomness, on the CPU: the order (N,), crop offsets (N, 2), flips (N,) and rotation
        angles in radians (N,). Offsets are drawn only when cropping (else the centre, the image itself) and angles
        only when rotating, so that a recipe without them draws what it drew before they existed."""
        count = len(self.labels)
        order = torch.randperm(count, generator=self.generator)
        if self.crop:
            offsets = torch.randint(0, 2 * self.shift + 1, (count, 2), generator=self.generator)
        else:
            offsets = torch.full((count, 2), self.shift)
        flips = (torch.rand(count, generator=self.generator) < 0.5) & self.flip
        angles = torch.zeros(count)
        if self.rotate:
            degrees = (2 * torch.rand(count, generator=self.generator, dtype=torch.float64) - 1) * self.rotate
            angles = torch.deg2rad(degrees).to(torch.float32)
        return order, offsets, flips, angles

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in PackLoader([self], channels_last=False):
            yield x, y[:, 0]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class PackLoader:
    """The epochs of K DeviceLoaders that share their padded images, batch by batch together: x is the K members'
    batches side by side, float32 (B, K·C, H, W) (member k's channels k·C to (k+1)·C), channels-last or
    contiguous; y is int64 (B, K). Each member's batches are exactly what its own loader would give: its order,
    offsets, flips and angles come from its own generator, and only the gather is shared. `with_index`: each batch
    also has the samples' positions in each member's training set, int64 (B, K) (a loss that keeps a state per
    sample).
    """

    def __init__(self, loaders: list[DeviceLoader], channels_last: bool, with_index: bool = False):
        self.with_index = with_index
        first = loaders[0]
        for loader in loaders[1:]:
            if loader.padded is not first.padded or not (
                torch.equal(loader.normalize.scale, first.normalize.scale)
                and torch.equal(loader.normalize.shift, first.normalize.shift)
            ):
                raise ValueError("the loaders of a pack must share their images and normalization")
            if (len(loader), len(loader.labels), loader.batch_size, loader.shift, loader.fill) != (
                    len(first), len(first.labels), first.batch_size, first.shift, first.fill):
                raise ValueError("the loaders of a pack must have the same size, batch size, shift and fill")
        self.loaders = loaders
        self.rotates = any(loader.rotate for loader in loaders)
        self.channels_last = channels_last
        self.labels = torch.stack([loader.labels for loader in loaders], dim=1)  # (N, K)

    def __len__(self) -> int:
        return len(self.loaders[0])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        draws = [loader.draw() for loader in self.loaders]
        order, offsets, flips, angles = (to_device(torch.stack(parts, dim=1), self.labels.device)
                                         for parts in zip(*draws, strict=True))
        return self._batches(order, offsets, flips, angles)

    def _batches(self, order: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, angles: torch.Tensor):
        first = self.loaders[0]
        size = first.batch_size
        for batch in range(len(self)):
            part = slice(batch * size, (batch + 1) * size)
            index = order[part]
            crops, inside = crop_and_flip(first.padded, index, offsets[part], flips[part], first.size, first.shift,
                                          angles[part] if self.rotates else None)
            x = first.normalize(crops)
            # Black is pixel 0 normalized, which the padding shows already; a rotation's corners are set to it.
            x = x.masked_fill_(~inside, 0.0) if first.fill == "mean" else torch.where(inside, x, first.normalize.shift)
            b, k, c, h, w = x.shape
            x = x.reshape(b, k * c, h, w)  # a view: channels-last, as crop_and_flip lays the crops out
            x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
            yield (x, self.labels.gather(0, index), index) if self.with_index else (x, self.labels.gather(0, index))
