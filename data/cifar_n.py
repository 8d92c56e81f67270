"""Human label noise: CIFAR-10N and CIFAR-100N (Wei et al., ICLR 2022), the official files of UCSC-REAL/cifar-10-100n.

Each file labels the 50000 training images of the python-pickle (torchvision) CIFAR, in that order, and holds
the clean labels too; every load checks them against the training labels, so a file of another dataset or in
another order (TFDS's) cannot pass.
"""

import hashlib
import http.client
import pathlib
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO

import torch

from data.errors import DatasetError, one_line
from data.files import write_atomic
from data.label_files import integer_labels, mismatch
from data.safe_pickle import load_torch_file
from data.sources import resolve_root

# The noise_set names of the config, per dataset, and the keys of the files they read.
NOISE_SETS = {"cifar10": ("aggre", "random1", "random2", "random3", "worst"), "cifar100": ("noisy",)}
_KEYS = {
    "aggre": "aggre_label",
    "random1": "random_label1",
    "random2": "random_label2",
    "random3": "random_label3",
    "worst": "worse_label",
    "noisy": "noisy_label",
}
_NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
FOLDER = "cifar-n"  # under the data root
URL = "https://github.com/UCSC-REAL/cifar-10-100n/raw/main/data/{}"


@dataclass(frozen=True)
class _File:
    name: str
    size: int
    sha256: str


FILES = {
    "cifar10": _File(
        "CIFAR-10_human.pt", 2_401_007, "873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310"
    ),
    # The version of 2023-03-15; the older file (1,600,879 bytes) has broken coarse labels.
    "cifar100": _File(
        "CIFAR-100_human.pt", 1_000_959, "bd2d80409754d420292d622e15e25248ba21e37d27429efac49c8da723f44394"
    ),
}

def _fetch(url: str, file: BinaryIO) -> None:
    """Write the body at `url` into `file` (the only network access; tests replace it)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        while chunk := response.read(1 << 20):
            file.write(chunk)


class _Hashing:
    """A file being written, and the size and SHA-256 of what was written to it."""

    def __init__(self, file: BinaryIO):
        self.file, self.size, self.digest = file, 0, hashlib.sha256()

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        self.digest.update(chunk)
        return self.file.write(chunk)


def _download(spec: _File, path: pathlib.Path) -> None:
    """Downloads `spec` to `path` atomically, after checking its size and SHA-256 (else nothing is kept)."""
    url = URL.format(spec.name)

    def fetch_and_verify(file: BinaryIO) -> None:
        received = _Hashing(file)
        _fetch(url, received)
        if (received.size, received.digest.hexdigest()) != (spec.size, spec.sha256):
            raise DatasetError(
                f"downloaded {spec.name} from {url} is not the expected file: expected {spec.size} bytes with "
                f"sha256 {spec.sha256}, got {received.size} bytes with sha256 {received.digest.hexdigest()}; "
                "the download was deleted"
            )

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, fetch_and_verify)
    except (OSError, http.client.HTTPException) as error:  # urllib's URLError is an OSError
        raise DatasetError(
            f"cannot download {spec.name} from {url} to {str(path.parent)!r}: {one_line(error)}; put the file "
            "there by hand or check the network"
        ) from error


def _read_file(path: pathlib.Path) -> dict:
    """The dict a torch.save'd CIFAR-N file holds, unpickled by data.safe_pickle (arrays only, nothing run)."""
    try:
        content = load_torch_file(path.read_bytes())
    except Exception as error:  # a damaged zip or pickle fails in many ways; refused globals raise UnpicklingError
        raise DatasetError(
            f"cannot read the CIFAR-N file {str(path)!r} safely ({one_line(error)}); delete it to download the "
            "official file again"
        ) from error
    if not isinstance(content, dict):
        raise DatasetError(f"CIFAR-N file {str(path)!r} holds a {type(content).__name__}, not a dict of label arrays")
    return content


def _labels(content: dict, key: str, path: pathlib.Path, num_classes: int) -> torch.Tensor:
    if key not in content:
        keys = ", ".join(sorted(map(str, content)))
        raise DatasetError(f"CIFAR-N file {str(path)!r} has no key {key!r} (keys: {keys})")
    try:
        return torch.from_numpy(integer_labels(content[key], num_classes))
    except ValueError as error:
        raise DatasetError(f"CIFAR-N file {str(path)!r}: {key} {error}") from None


def fetch_cifar_n(dataset_name: str, root: str | pathlib.Path, download: bool = True) -> pathlib.Path:
    """The path of the CIFAR-N file of `dataset_name` in <root>/cifar-n/ (root overridden by $TCE_DATA_ROOT):
    downloaded there when missing and `download`, and kept only if its size and SHA-256 are the official ones;
    DatasetError when it is missing and not `download`, or cannot be downloaded."""
    if dataset_name not in FILES:
        raise DatasetError(f"human noise exists only for {' and '.join(FILES)}, not {dataset_name!r}")
    spec = FILES[dataset_name]
    path = resolve_root(str(root)) / FOLDER / spec.name
    if not path.is_file():
        if not download:
            raise DatasetError(
                f"CIFAR-N file {str(path)!r} is missing and download=false; get it from {URL.format(spec.name)} "
                "or run python -m data.download where the network is reachable"
            )
        _download(spec, path)
    return path


def human_noisy_labels(
    dataset_name: str,
    root: str | pathlib.Path,
    noise_set: str,
    train_labels: torch.Tensor,
    download: bool = True,
) -> torch.Tensor:
    """The human noisy labels `noise_set` of CIFAR-10N or CIFAR-100N for the training set: int64 (50000,).

    noise_set, for cifar10: "aggre" (majority vote of 3 annotators, ~9 % wrong), "random1".."random3" (one
    annotator each, ~17-18 %), "worst" (a wrong one wherever any is wrong, ~40 %); for cifar100: "noisy" (~40 %).
    The file comes from <root>/cifar-n/ (root overridden by $TCE_DATA_ROOT); when missing and `download`, it is
    downloaded there from UCSC-REAL/cifar-10-100n and kept only if its size and SHA-256 are the official ones.
    It is read without unpickling anything but dicts, lists and integer arrays (data.safe_pickle).

    `train_labels` must be the full training set in torchvision's order: the file labels all 50000 images, so a
    run that keeps only the first N (dataset.train_size) cannot use human noise and gets a DatasetError naming
    the two lengths. The file's clean_label must equal `train_labels` exactly, else DatasetError with how many
    differ. Every problem raises DatasetError with one line.
    """
    if dataset_name not in NOISE_SETS:
        raise DatasetError(f"human noise exists only for {' and '.join(NOISE_SETS)}, not {dataset_name!r}")
    if noise_set not in NOISE_SETS[dataset_name]:
        valid = ", ".join(NOISE_SETS[dataset_name])
        raise DatasetError(f"unknown CIFAR-N noise_set {noise_set!r} for {dataset_name}; valid: {valid}")
    path = fetch_cifar_n(dataset_name, root, download)
    content = _read_file(path)
    num_classes = _NUM_CLASSES[dataset_name]
    clean = _labels(content, "clean_label", path, num_classes)
    noisy = _labels(content, _KEYS[noise_set], path, num_classes)
    if len(noisy) != len(clean):
        raise DatasetError(
            f"CIFAR-N file {str(path)!r}: {_KEYS[noise_set]} has {len(noisy)} labels but clean_label {len(clean)}"
        )
    if len(clean) != len(train_labels):
        raise DatasetError(
            f"CIFAR-N file {str(path)!r} labels {len(clean)} training images but the {dataset_name} training set "
            f"has {len(train_labels)}; human noise needs the full training set (leave dataset.train_size unset)"
        )
    differ = mismatch(clean, train_labels)
    if differ:
        raise DatasetError(
            f"CIFAR-N file {str(path)!r}: clean_label differs from the {dataset_name} training labels {differ}; "
            "the file belongs to another dataset or order"
        )
    return noisy
