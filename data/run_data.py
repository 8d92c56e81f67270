"""Everything one training run reads: noisy labels, the holdout, the device-resident loader and eval sets."""

from dataclasses import dataclass

import torch

from data.dataset import Dataset
from data.eval_set import EvalSet
from data.loader import DeviceLoader
from data.noise import corrupt_labels
from data.normalize import channel_stats
from data.split import holdout_split

# The paper's "shifting": translations of up to 4 pixels, as the Torch ResNet recipe's pad-4 random crop.
SHIFT = 4


@dataclass
class RunData:
    loader: DeviceLoader  # the training portion with noisy labels, augmented
    eval_sets: dict[str, EvalSet]  # "train_clean", "val" (only when holdout > 0), "test"
    noisy_labels: torch.Tensor  # int64 (N,), the whole training set in dataset order, on the CPU
    clean_labels: torch.Tensor
    realized_rate: float  # fraction of the N training labels that differ from the clean ones
    num_classes: int
    in_channels: int


def prepare_run_data(
    dataset: Dataset,
    *,
    noise: float,
    noise_type: str,
    noise_seed: int,
    holdout: int,
    clean_val: bool,
    split_seed: int,
    batch_size: int,
    drop_last: bool,
    seed: int,
    device: torch.device | str,
) -> RunData:
    """The run's data on `device`.

    Noise is applied to the whole training set before the holdout is split off, so the validation labels are
    as noisy as the training labels (the paper's protocol) unless `clean_val`. The holdout is stratified by
    the clean labels and fixed by `split_seed`, the noise by `noise_seed`; `seed` only drives the loader's
    order and augmentation. Normalization uses the channel statistics of the whole training split.
    """
    clean = dataset.train_labels
    noisy = corrupt_labels(clean, noise, dataset.num_classes, noise_type, noise_seed)
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
        shift=SHIFT,
        flip=dataset.flip,
        seed=seed,
    )
    eval_sets = {"train_clean": EvalSet(train_images, clean[train_idx], mean=mean, std=std)}
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
        num_classes=dataset.num_classes,
        in_channels=dataset.in_channels,
    )
