"""The four real datasets, read through torchvision and cached as decoded tensors; and the synthetic one."""

import os
import pathlib
import pickle
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision.datasets as tvd
from scipy.io.matlab import MatReadError

from data.dataset import Dataset
from data.errors import DatasetError
from data.root import resolve_root
from data.synthetic import make_synthetic

DATASETS = ("mnist", "cifar10", "cifar100", "svhn", "synthetic")

SYNTHETIC_TRAIN_SIZE = 10000
SYNTHETIC_TEST_SIZE = 2000
# What torchvision, urllib (URLError is an OSError), pickle and scipy raise for missing, truncated or foreign files.
_READ_ERRORS = (
    RuntimeError,
    OSError,
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AssertionError,
    MatReadError,
)
CACHE_DIR = "tce-cache"  # under the root: <root>/tce-cache/<name>.pt


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")


def train_set_size(name: str, train_size: int | None) -> int:
    """The number of training images load_dataset(name, train_size=train_size) returns, without reading files."""
    _check_name(name)
    if name == "synthetic":
        return SYNTHETIC_TRAIN_SIZE if train_size is None else train_size
    full = _SOURCES[name].train_size
    return full if train_size is None else min(full, train_size)


def _mnist(root: pathlib.Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    split = tvd.MNIST(root, train=train, download=download)
    # 28x28 -> 32x32 with two black pixels on each side, so every dataset shares the CIFAR geometry.
    return F.pad(split.data, (2, 2, 2, 2)).unsqueeze(1), split.targets.to(torch.int64)


def _cifar(cls):
    def read(root: pathlib.Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        split = cls(root, train=train, download=download)
        images = torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous()  # torchvision keeps NHWC
        return images, torch.tensor(split.targets, dtype=torch.int64)

    return read


def _svhn(root: pathlib.Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    split = tvd.SVHN(root, split="train" if train else "test", download=download)  # digit 0 is label 0 here
    return torch.from_numpy(split.data).contiguous(), torch.from_numpy(split.labels).to(torch.int64)


@dataclass(frozen=True)
class _Source:
    read: Callable[[pathlib.Path, bool, bool], tuple[torch.Tensor, torch.Tensor]]  # (root, train, download)
    train_size: int  # of the official training split, so that a holdout can be checked before reading files
    num_classes: int
    flip: bool  # mirroring keeps the class of natural images, not of digits ("on MNIST and SVHN only shifting")
    expected_files: str  # what torchvision reads under the root, for error messages


_SOURCES = {
    "mnist": _Source(_mnist, 60000, 10, False, "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"),
    "cifar10": _Source(
        _cifar(tvd.CIFAR10), 50000, 10, True, "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}"
    ),
    "cifar100": _Source(_cifar(tvd.CIFAR100), 50000, 100, True, "cifar-100-python/{train,test,meta}"),
    "svhn": _Source(_svhn, 73257, 10, False, "{train,test}_32x32.mat"),
}


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _decode(name: str, root: pathlib.Path, download: bool) -> dict[str, torch.Tensor]:
    source = _SOURCES[name]
    try:
        train_images, train_labels = source.read(root, True, download)
        test_images, test_labels = source.read(root, False, download)
    except _READ_ERRORS as error:
        action = "download failed or files are corrupt" if download else "files missing or corrupt and download=false"
        raise DatasetError(
            f"cannot load dataset {name!r} from root {str(root)!r}: expected {root / source.expected_files} "
            f"in torchvision's format; {action} ({_one_line(error)})"
        ) from error
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


def _write_atomically(tensors: dict[str, torch.Tensor], path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            torch.save(tensors, file)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _cached(name: str, root: pathlib.Path, download: bool) -> dict[str, torch.Tensor]:
    """The decoded splits: read from <root>/tce-cache/<name>.pt, or decoded from the raw files and cached there."""
    cache = root / CACHE_DIR / f"{name}.pt"
    if cache.is_file():
        try:
            return torch.load(cache, weights_only=True)
        except _READ_ERRORS as error:
            raise DatasetError(
                f"cannot read the cache {str(cache)!r} of dataset {name!r}; delete it to rebuild it from the "
                f"files under {str(root)!r} ({_one_line(error)})"
            ) from error
    tensors = _decode(name, root, download)
    try:
        _write_atomically(tensors, cache)
    except OSError as error:  # a read-only root still works, it just decodes on every run
        warnings.warn(f"could not cache dataset {name!r} at {str(cache)!r}: {_one_line(error)}", stacklevel=3)
    return tensors


def load_dataset(
    name: str,
    root: str,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    num_classes: int = 10,
    seed: int = 0,
    download: bool = True,
) -> Dataset:
    """Dataset `name` from `root` (overridden by $TCE_DATA_ROOT), uint8 images (N, C, 32, 32) on the CPU.

    train_size / test_size keep the first that many images of each split (all when None). The real datasets
    are read through torchvision (downloaded into `root` when missing and `download`), decoded once and cached
    as tensors in <root>/tce-cache/<name>.pt (delete it when the raw files change). num_classes and seed
    only apply to "synthetic", which is generated in memory (train_size default 10000, test_size 2000) and
    never touches `root`.
    """
    _check_name(name)
    for label, size in (("train_size", train_size), ("test_size", test_size)):
        if size is not None and size < 1:
            raise ValueError(f"{label} must be positive or None, got {size}")
    if name == "synthetic":
        return make_synthetic(
            train_set_size(name, train_size),
            SYNTHETIC_TEST_SIZE if test_size is None else test_size,
            num_classes,
            seed,
        )
    tensors = _cached(name, resolve_root(root), download)
    return Dataset(
        name,
        tensors["train_images"][:train_size],
        tensors["train_labels"][:train_size],
        tensors["test_images"][:test_size],
        tensors["test_labels"][:test_size],
        _SOURCES[name].num_classes,
        _SOURCES[name].flip,
    )
