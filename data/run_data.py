"""Everything one training run reads: noisy labels, the holdout, the device-resident loader and eval sets. The runs
of a pack (one dataset, holdout split and evaluation subset) read one copy of the images (SharedImages)."""

from dataclasses import dataclass

import torch

from data.dataset import Dataset
from data.draws import generator, holdout_split, stratified_split
from data.eval_set import EvalSet
from data.fingerprint import noise_fingerprint
from data.loader import DeviceLoader, pad_images
from data.noise import noise_matrix
from data.noise_spec import NoiseSpec

# The paper's "shifting": translations of up to 4 pixels of 32, as the Torch ResNet recipe's pad-4 random crop;
# smaller (synthetic) images shift by the same fraction of their size.
SHIFT_FRACTION = 1 / 8


@dataclass(frozen=True)
class SharedImages:
    """The images that every run of one dataset, holdout split and evaluation subset reads, once on the device:
    the training portion padded for the random crops, the evaluation subset of it, the holdout and the test set.
    Only the labels, the data order and the augmentation are a run's own."""

    split: tuple[int, int, int | None]  # (holdout, split_seed, eval_train_size) they were drawn for
    train_idx: torch.Tensor  # the training portion and the holdout, indices into the training split (CPU)
    val_idx: torch.Tensor
    eval_subset: torch.Tensor | None  # the "train" evaluation set, indices into the training portion (CPU)
    padded: torch.Tensor  # uint8 (N, C, H + 2 shift, W + 2 shift), on the device
    portion: torch.Tensor  # the training portion unpadded: a view of the padded copy's inside
    train_eval: torch.Tensor
    val: torch.Tensor | None
    test: torch.Tensor
    shift: int


def shared_images(
    dataset: Dataset, *, holdout: int, split_seed: int, eval_train_size: int | None, device: torch.device | str
) -> SharedImages:
    """The images of the runs of `dataset` with this holdout split and evaluation subset (see prepare_run_data)."""
    clean = dataset.train_labels
    train_idx, val_idx = holdout_split(clean, holdout, split_seed)
    shift = round(dataset.train_images.shape[-1] * SHIFT_FRACTION)
    train_images = dataset.train_images[train_idx]
    padded = pad_images(train_images, shift).to(device)
    size = dataset.train_images.shape[-1]
    portion = padded[:, :, shift : shift + size, shift : shift + size]
    subset, train_eval = None, portion  # all of the training portion, without another copy
    if eval_train_size is not None and eval_train_size < len(train_idx):
        _, subset = stratified_split(clean[train_idx], eval_train_size, generator("train-eval", split_seed))
        train_eval = train_images[subset].to(device)
    return SharedImages(
        split=(holdout, split_seed, eval_train_size), train_idx=train_idx, val_idx=val_idx, eval_subset=subset,
        padded=padded, portion=portion, train_eval=train_eval,
        val=dataset.train_images[val_idx].to(device) if holdout > 0 else None,
        test=dataset.test_images.to(device), shift=shift,
    )


@dataclass
class RunData:
    loader: DeviceLoader  # the training portion with noisy labels, augmented
    # "train" (training images with clean and noisy labels: all of the training portion, or a fixed subset of it),
    # "val" (only when holdout > 0), "test"
    eval_sets: dict[str, EvalSet]
    # The whole training portion with the labels it trains on, in its samples' order, unaugmented: what a detecting
    # run's snapshots read (PackTrainer.snapshot); no epoch's evaluation reads it.
    portion: EvalSet
    noisy_labels: torch.Tensor  # int64 (N,), the whole training set in dataset order, on the CPU
    clean_labels: torch.Tensor
    realized_rate: float  # fraction of the N training labels that differ from the clean ones
    fingerprint: dict  # data.fingerprint.noise_fingerprint of the N training labels
    num_classes: int
    in_channels: int


def prepare_run_data(
    dataset: Dataset,
    noise: NoiseSpec,
    *,
    root: str = "",
    holdout: int,
    clean_val: bool,
    split_seed: int,
    batch_size: int,
    drop_last: bool,
    seed: int,
    device: torch.device | str,
    eval_train_size: int | None = None,
    images: SharedImages | None = None,
    crop: bool = True,
    rotate: float = 0.0,
    fill: str = "mean",
) -> RunData:
    """The run's data on `device`.

    The noise (NoiseSpec.labels; human noise is read from `root`) is applied to the whole training set before the
    holdout is split off, so the validation labels are as noisy as the training labels (the paper's protocol)
    unless `clean_val`. The holdout is stratified by the clean labels and fixed by `split_seed`, the noise by its
    seed; `seed` only drives the loader's order and augmentation. Normalization uses the channel statistics of the
    whole training split. `images`, when given, are the shared images of the run's pack (shared_images with the
    same holdout, split_seed and eval_train_size); else the run gets its own.

    The "train" evaluation set reads `eval_train_size` images of the training portion, a class-stratified subset
    fixed by `split_seed` like the holdout (all of them when None or at least the portion's size): a full pass
    over the training set every epoch would cost more than the test and validation passes together.
    `crop`, `rotate` and `fill` are the augmentation's (DeviceLoader; the flip is the dataset's).
    """
    split = (holdout, split_seed, eval_train_size)
    if images is None:
        images = shared_images(dataset, holdout=holdout, split_seed=split_seed, eval_train_size=eval_train_size,
                               device=device)
    elif images.split != split:
        raise ValueError(f"shared images of (holdout, split_seed, eval_train_size) = {images.split} cannot serve a "
                         f"run of {split}")
    clean, noisy = dataset.train_labels, noise.labels(dataset, root)
    mean, std = dataset.channel_stats
    loader = DeviceLoader(images.padded, noisy[images.train_idx], mean=mean, std=std, batch_size=batch_size,
                          drop_last=drop_last, shift=images.shift, flip=dataset.flip, seed=seed, crop=crop,
                          rotate=rotate, fill=fill)
    return RunData(
        loader=loader,
        eval_sets=_eval_sets(dataset, images, noisy, clean_val),
        portion=EvalSet(images.portion, noisy[images.train_idx], mean=mean, std=std),
        noisy_labels=noisy,
        clean_labels=clean,
        realized_rate=(noisy != clean).double().mean().item(),
        fingerprint=noise_fingerprint(noise_matrix(clean, noisy, dataset.num_classes), dataset.superclass),
        num_classes=dataset.num_classes,
        in_channels=dataset.in_channels,
    )


def _eval_sets(dataset: Dataset, images: SharedImages, noisy: torch.Tensor, clean_val: bool) -> dict[str, EvalSet]:
    """The run's evaluation sets (RunData.eval_sets) on its pack's images: the training images of the evaluation
    subset with their clean and noisy labels, the holdout (where there is one) and the test set."""
    clean, (mean, std) = dataset.train_labels, dataset.channel_stats
    eval_clean, eval_noisy = clean[images.train_idx], noisy[images.train_idx]
    if images.eval_subset is not None:
        eval_clean, eval_noisy = eval_clean[images.eval_subset], eval_noisy[images.eval_subset]
    eval_sets = {"train": EvalSet(images.train_eval, eval_clean, mean=mean, std=std, noisy_labels=eval_noisy)}
    if images.val is not None:
        eval_sets["val"] = EvalSet(images.val, (clean if clean_val else noisy)[images.val_idx], mean=mean, std=std)
    eval_sets["test"] = EvalSet(images.test, dataset.test_labels, mean=mean, std=std)
    return eval_sets
