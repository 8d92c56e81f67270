"""Datasets for the reproduction: MNIST, CIFAR-10/100, SVHN (via torchvision) and a synthetic one; artificial,
instance-dependent, human (CIFAR-N) and file label noise and its fingerprint, the validation holdout, and a
device-resident training iterator with batched augmentation."""

from data.cifar_n import NOISE_SETS, fetch_cifar_n, human_noisy_labels
from data.dataset import Dataset
from data.draws import holdout_split
from data.errors import DatasetError, one_line
from data.eval_set import EvalSet
from data.fingerprint import FINGERPRINT_KEYS, noise_fingerprint
from data.loader import DeviceLoader
from data.noise import class_map, corrupt_labels, noise_matrix, nominal_transition
from data.noise_spec import NOISE_TYPES, NoiseSpec
from data.run_data import RunData, SharedImages, prepare_run_data, shared_images
from data.sources import DATASETS, ENV_ROOT, class_count, load_dataset, resolve_root, train_set_size

__all__ = [
    "DATASETS",
    "ENV_ROOT",
    "FINGERPRINT_KEYS",
    "NOISE_SETS",
    "NOISE_TYPES",
    "NoiseSpec",
    "Dataset",
    "DatasetError",
    "DeviceLoader",
    "EvalSet",
    "RunData",
    "SharedImages",
    "class_count",
    "class_map",
    "corrupt_labels",
    "fetch_cifar_n",
    "holdout_split",
    "human_noisy_labels",
    "load_dataset",
    "noise_fingerprint",
    "noise_matrix",
    "nominal_transition",
    "one_line",
    "prepare_run_data",
    "resolve_root",
    "shared_images",
    "train_set_size",
]
