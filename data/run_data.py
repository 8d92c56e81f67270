"""Everything one training run reads: noisy labels, the holdout, the device-resident loader and eval sets."""

from dataclasses import dataclass

import torch

from data.dataset import Dataset
from data.eval_set import EvalSet
from data.fingerprint import noise_fingerprint
from data.loader import DeviceLoader
from data.noise import noise_matrix, noisy_train_labels
from data.normalize import channel_stats
from data.seeds import generator
from data.split import holdout_split, stratified_split

# The paper's "shifting": translations of up to 4 pixels of 32, as the Torch ResNet recipe's pad-4 random crop;
# smaller (synthetic) images shift by the same fraction of their size.
SHIFT_FRACTION = 1 / 8


@dataclass
class RunData:
    loader: DeviceLoader  # the training portion with noisy labels, augmented
    # "train" (training images with clean and noisy labels: all of the training portion, or a fixed subset of it),
    # "val" (only when holdout > 0), "test"
    eval_sets: dict[str, EvalSet]
    noisy_labels: torch.Tensor  # int64 (N,), the whole training set in dataset order, on the CPU
    clean_labels: torch.Tensor
    realized_rate: float  # fraction of the N training labels that differ from the clean ones
    fingerprint: dict  # data.fingerprint.noise_fingerprint of the N training labels
    num_classes: int
    in_channels: int


def prepare_run_data(
    dataset: Dataset,
    *,
    noise: float,
    noise_type: str,
    noise_seed: int,
    noise_set: str | None = None,
    root: str = "",
    instance_std: float | None = None,
    noise_file: str | None = None,
    noise_sha256: str | None = None,
    holdout: int,
    clean_val: bool,
    split_seed: int,
    batch_size: int,
    drop_last: bool,
    seed: int,
    device: torch.device | str,
    eval_train_size: int | None = None,
) -> RunData:
    """The run's data on `device`.

    Noise (data.noise.noisy_train_labels; human noise is read from `root`, file noise from `noise_file`) is
    applied to the whole training set before the holdout is split off, so the validation labels are as noisy as
    the training labels (the paper's protocol) unless `clean_val`. The holdout is stratified by the clean labels
    and fixed by `split_seed`, the noise by `noise_seed`; `seed` only drives the loader's order and augmentation.
    Normalization uses the channel statistics of the whole training split.

    The "train" evaluation set reads `eval_train_size` images of the training portion, a class-stratified subset
    fixed by `split_seed` like the holdout (all of them when None or at least the portion's size): a full pass
    over the training set every epoch would cost more than the test and validation passes together.
    """
    clean = dataset.train_labels
    noisy = noisy_train_labels(
        dataset, noise=noise, noise_type=noise_type, noise_seed=noise_seed, noise_set=noise_set, root=root,
        instance_std=instance_std, noise_file=noise_file, noise_sha256=noise_sha256,
    )
    train_idx, val_idx = holdout_split(clean, holdout, split_seed)
    mean, std = channel_stats(dataset.train_images)

    train_images = dataset.train_images[train_idx].to(device)
    loader = DeviceLoader(
        train_images,
        noisy[train_idx],
        mean=mean,
        std=std,
        batch_size=batch_size,
        drop_last=drop_last,
        shift=round(dataset.train_images.shape[-1] * SHIFT_FRACTION),
        flip=dataset.flip,
        seed=seed,
    )
    eval_images, eval_clean, eval_noisy = train_images, clean[train_idx], noisy[train_idx]
    if eval_train_size is not None and eval_train_size < len(train_idx):
        _, subset = stratified_split(eval_clean, eval_train_size, generator("train-eval", split_seed))
        eval_images, eval_clean, eval_noisy = eval_images[subset.to(device)], eval_clean[subset], eval_noisy[subset]
    eval_sets = {"train": EvalSet(eval_images, eval_clean, mean=mean, std=std, noisy_labels=eval_noisy)}
    if holdout > 0:
        val_labels = (clean if clean_val else noisy)[val_idx]
        eval_sets["val"] = EvalSet(dataset.train_images[val_idx].to(device), val_labels, mean=mean, std=std)
    eval_sets["test"] = EvalSet(dataset.test_images.to(device), dataset.test_labels, mean=mean, std=std)
    return RunData(
        loader=loader,
        eval_sets=eval_sets,
        noisy_labels=noisy,
        clean_labels=clean,
        realized_rate=(noisy != clean).double().mean().item(),
        fingerprint=noise_fingerprint(noise_matrix(clean, noisy, dataset.num_classes), dataset.superclass),
        num_classes=dataset.num_classes,
        in_channels=dataset.in_channels,
    )
