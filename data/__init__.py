"""Datasets for the reproduction: MNIST, CIFAR-10/100, SVHN (via torchvision) and a synthetic one; label noise,
the validation holdout, and a device-resident training iterator with batched augmentation."""

from data.dataset import Dataset
from data.errors import DatasetError
from data.eval_set import EvalSet
from data.loader import DeviceLoader
from data.noise import corrupt_labels
from data.root import ENV_ROOT, resolve_root
from data.run_data import RunData, prepare_run_data
from data.sources import DATASETS, load_dataset, train_set_size
from data.split import holdout_split

__all__ = [
    "DATASETS",
    "ENV_ROOT",
    "Dataset",
    "DatasetError",
    "DeviceLoader",
    "EvalSet",
    "RunData",
    "corrupt_labels",
    "holdout_split",
    "load_dataset",
    "prepare_run_data",
    "resolve_root",
    "train_set_size",
]
