"""The four real datasets, read through torchvision and cached as decoded tensors; and the synthetic one."""

import os
import pathlib
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision.datasets as tvd
from scipy.io.matlab import MatReadError

from data.dataset import Dataset
from data.errors import DatasetError, one_line
from data.files import write_atomic
from data.synthetic import make_synthetic

ENV_ROOT = "TCE_DATA_ROOT"
# Downloaded and decoded data lives here unless configured otherwise (dataset.root), never in the repository.
DEFAULT_ROOT = "~/.cache/tce/datasets"

# The code package is itself called `data`, so the natural-looking root "data" would fill the source tree
# with hundreds of megabytes of downloads; refuse it.
_CODE_DIR = pathlib.Path(__file__).resolve().parent


def resolve_root(root: str) -> pathlib.Path:
    """The dataset root: $TCE_DATA_ROOT when set, else `root`; absolute, with ~ expanded."""
    path = pathlib.Path(os.environ.get(ENV_ROOT) or root).expanduser().resolve()
    if path == _CODE_DIR or _CODE_DIR in path.parents:
        raise DatasetError(
            f"data root {str(path)!r} is inside the code package {str(_CODE_DIR)!r}; "
            f"configure another root or set {ENV_ROOT}"
        )
    return path


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
_SPLIT_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")


def _set_size(name: str, size: int | None, split: str) -> int:
    """The number of images of the `split` ("train" or "test") set that load_dataset returns when asked for `size`
    (None: all), without reading files; the synthetic set has as many as asked for."""
    _check_name(name)
    if name == "synthetic":
        default = SYNTHETIC_TRAIN_SIZE if split == "train" else SYNTHETIC_TEST_SIZE
        return default if size is None else size
    full = getattr(_SOURCES[name], f"{split}_size")
    return full if size is None else min(full, size)


def train_set_size(name: str, train_size: int | None) -> int:
    """The number of training images load_dataset(name, train_size=train_size) returns, without reading files."""
    return _set_size(name, train_size, "train")


def test_set_size(name: str, test_size: int | None) -> int:
    """The number of test images load_dataset(name, test_size=test_size) returns, without reading files."""
    return _set_size(name, test_size, "test")


def class_count(name: str, num_classes: int | None = None) -> int:
    """The number of classes of dataset `name`; `num_classes` is the synthetic dataset's (its config key)."""
    _check_name(name)
    if name == "synthetic":
        if num_classes is None:
            raise ValueError("the synthetic dataset's num_classes is not given")
        return int(num_classes)
    return _SOURCES[name].num_classes


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


def _cifar100_superclass(root: pathlib.Path, train_labels: torch.Tensor, test_labels: torch.Tensor) -> torch.Tensor:
    """The fine -> coarse map, int64 (100,), from the "coarse_labels" that the pickles carry next to "fine_labels"
    (torchvision's CIFAR100 drops them); -1 for a fine label that occurs in neither split (never in the real
    files). Raises DatasetError when a fine label comes with two coarse labels."""
    cls = tvd.CIFAR100
    coarse = []
    for file_name, _ in (*cls.train_list, *cls.test_list):  # the order torchvision reads train, then test
        with open(root / cls.base_folder / file_name, "rb") as file:
            coarse.extend(pickle.load(file, encoding="latin1")["coarse_labels"])
    fine = torch.cat([train_labels, test_labels])
    coarse = torch.tensor(coarse, dtype=torch.int64)
    where = f"dataset 'cifar100' under root {str(root)!r}: {cls.base_folder}/{{train,test}}"
    if coarse.shape != fine.shape:
        raise DatasetError(f"{where} holds {len(coarse)} coarse labels for {len(fine)} fine labels")
    if len(fine) and (int(fine.min()) < 0 or int(fine.max()) >= 100 or int(coarse.min()) < 0):
        raise DatasetError(f"{where} holds fine labels outside [0, 100) or negative coarse labels")
    pairs = torch.unique(torch.stack([fine, coarse], 1), dim=0)  # sorted by fine label, then coarse
    fine_of_pair = pairs[:, 0]
    repeated = fine_of_pair[1:][fine_of_pair[1:] == fine_of_pair[:-1]].unique().tolist()
    if repeated:
        first = repeated[0]
        found = pairs[fine_of_pair == first, 1].tolist()
        raise DatasetError(
            f"{where} is inconsistent: fine label {first} comes with coarse labels {found}"
            f" ({len(repeated)} fine label(s) with more than one coarse label)"
        )
    superclass = torch.full((100,), -1, dtype=torch.int64)
    superclass[fine_of_pair] = pairs[:, 1]
    return superclass


def _svhn(root: pathlib.Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    split = tvd.SVHN(root, split="train" if train else "test", download=download)  # digit 0 is label 0 here
    return torch.from_numpy(split.data).contiguous(), torch.from_numpy(split.labels).to(torch.int64)


@dataclass(frozen=True)
class _Source:
    read: Callable[[pathlib.Path, bool, bool], tuple[torch.Tensor, torch.Tensor]]  # (root, train, download)
    train_size: int  # of the official training split, so that a holdout can be checked before reading files
    test_size: int  # of the official test split
    num_classes: int
    flip: bool  # mirroring keeps the class of natural images, not of digits ("on MNIST and SVHN only shifting")
    expected_files: str  # what torchvision reads under the root, for error messages
    # (root, train_labels, test_labels) -> the fine -> coarse map, for datasets whose files carry one
    superclass: Callable[[pathlib.Path, torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    @property
    def cache_keys(self) -> tuple[str, ...]:
        return (*_SPLIT_KEYS, "superclass") if self.superclass else _SPLIT_KEYS


_SOURCES = {
    "mnist": _Source(_mnist, 60000, 10000, 10, False, "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"),
    "cifar10": _Source(
        _cifar(tvd.CIFAR10), 50000, 10000, 10, True, "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}"
    ),
    "cifar100": _Source(
        _cifar(tvd.CIFAR100), 50000, 10000, 100, True, "cifar-100-python/{train,test,meta}", _cifar100_superclass
    ),
    "svhn": _Source(_svhn, 73257, 26032, 10, False, "{train,test}_32x32.mat"),
}


def _decode(name: str, root: pathlib.Path, download: bool) -> dict[str, torch.Tensor]:
    source = _SOURCES[name]
    try:
        train_images, train_labels = source.read(root, True, download)
        test_images, test_labels = source.read(root, False, download)
        extra = {}
        if source.superclass is not None:
            extra["superclass"] = source.superclass(root, train_labels, test_labels)
    except _READ_ERRORS as error:
        action = ("download failed or files are corrupt" if download else
                  f"files missing or corrupt and download=false (python -m data.download {name} fetches them)")
        raise DatasetError(
            f"cannot load dataset {name!r} from root {str(root)!r}: expected {root / source.expected_files} "
            f"in torchvision's format; {action} ({one_line(error)})"
        ) from error
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
        **extra,
    }


def _cached(name: str, root: pathlib.Path, download: bool) -> dict[str, torch.Tensor]:
    """The decoded splits: read from <root>/tce-cache/<name>.pt, or decoded from the raw files and cached there.

    A cache that lacks a key this version stores (one written before CIFAR-100's superclass map was kept) is
    stale: it is decoded again from the raw files and rewritten.
    """
    cache = root / CACHE_DIR / f"{name}.pt"
    if cache.is_file():
        try:
            tensors = torch.load(cache, weights_only=True)
        except _READ_ERRORS as error:
            raise DatasetError(
                f"cannot read the cache {str(cache)!r} of dataset {name!r}; delete it to rebuild it from the "
                f"files under {str(root)!r} ({one_line(error)})"
            ) from error
        if isinstance(tensors, dict) and all(key in tensors for key in _SOURCES[name].cache_keys):
            return tensors
    tensors = _decode(name, root, download)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, lambda file: torch.save(tensors, file))
    except OSError as error:  # a read-only root still works, it just decodes on every run
        warnings.warn(f"could not cache dataset {name!r} at {str(cache)!r}: {one_line(error)}", stacklevel=3)
    return tensors


def load_dataset(
    name: str,
    root: str,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    num_classes: int = 10,
    seed: int = 0,
    image_size: int = 32,
    download: bool = True,
) -> Dataset:
    """Dataset `name` from `root` (overridden by $TCE_DATA_ROOT), uint8 images (N, C, 32, 32) on the CPU.

    train_size / test_size keep the first that many images of each split (all when None). The real datasets
    are read through torchvision (downloaded into `root` when missing and `download`), decoded once and cached
    as tensors in <root>/tce-cache/<name>.pt (delete it when the raw files change). num_classes, seed and
    image_size only apply to "synthetic", which is generated in memory (train_size default 10000, test_size
    2000) and never touches `root`. CIFAR-100 also carries its fine -> coarse map (Dataset.superclass), read
    from the coarse labels of its own files.
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
            image_size,
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
        tensors.get("superclass"),
    )
