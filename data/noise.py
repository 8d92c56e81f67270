"""Label noise: artificial noise drawn here (the paper's Section 3.3: a proportion of the training labels replaced
randomly; and the class-dependent kinds the field uses now), and the validation of every noise setting.

Instance-dependent noise (Xia et al.) is drawn by data.instance_noise; human noise (CIFAR-10N / CIFAR-100N) is
read from files by data.cifar_n, and any published noisy-label file by data.label_files.
"""

import math
import re

import torch

from data.cifar_n import NOISE_SETS, human_noisy_labels
from data.dataset import Dataset
from data.draws import first_per_class
from data.draws import generator as seeded
from data.instance_noise import DEFAULT_STD, instance_noisy_labels
from data.label_files import LabelFileError, checked_label_file, file_noisy_labels
from data.sources import DATASETS, train_set_size

# Noise drawn by corrupt_labels. The last three flip each sample of a source class to one fixed target class.
MAPPED_NOISE_TYPES = ("asymmetric", "asymmetric_block", "pairflip")
ARTIFICIAL_NOISE_TYPES = ("uniform", "symmetric", *MAPPED_NOISE_TYPES)
# Every value of the config's noise_type: "instance" is drawn by data.instance_noise, "human" labels come from
# data.cifar_n.human_noisy_labels, "file" labels from data.label_files.
NOISE_TYPES = (*ARTIFICIAL_NOISE_TYPES, "instance", "human", "file")
# The noise types whose labels come from a file: the rate must be 0.
FILE_NOISE_TYPES = ("human", "file")

# Patrini et al. (giorgiop/loss-correction noise.py), copied by SCE and APL: source class -> target class.
_DIGIT_MAP = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
_ASYMMETRIC_MAPS = {
    "mnist": _DIGIT_MAP,
    # SVHN has no standard map; torchvision's SVHN labels equal the digits, so this project reuses MNIST's.
    "svhn": _DIGIT_MAP,
    # truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog.
    "cifar10": {9: 1, 2: 0, 4: 7, 3: 5, 5: 3},
}
_BLOCK = 5  # asymmetric_block: blocks of 5 consecutive fine indices


def _check_block_dataset(dataset: str) -> None:
    if dataset != "cifar100":
        raise ValueError(f"noise_type: asymmetric_block is defined for cifar100 only, not {dataset}")


def _pairflip_map(num_classes: int) -> torch.Tensor:
    return (torch.arange(num_classes, dtype=torch.int64) + 1) % num_classes


def _superclass_map(superclass: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    if superclass is None:
        raise ValueError("superclass: the asymmetric map of cifar100 needs the fine -> coarse map of the dataset")
    if superclass.shape != (num_classes,):
        raise ValueError(f"superclass: expected shape ({num_classes},), got {tuple(superclass.shape)}")
    unknown = (superclass < 0).nonzero().flatten().tolist()
    if unknown:
        raise ValueError(
            f"superclass: fine labels {unknown[:10]}{'...' if len(unknown) > 10 else ''} have no coarse label "
            f"(they occur in neither split of the files), so the next class of their superclass is unknown"
        )
    target = torch.full((num_classes,), -1, dtype=torch.int64)
    for coarse in superclass.unique().tolist():
        members = (superclass == coarse).nonzero().flatten()  # ascending fine index
        if len(members) > 1:
            target[members] = members.roll(-1)
    return target


def class_map(dataset: str, kind: str, num_classes: int, superclass: torch.Tensor | None = None) -> torch.Tensor:
    """The target label of each source class for the mapped noise kinds: int64 (num_classes,), -1 = stays clean.

    kind "asymmetric" (exact counts per class, see corrupt_labels):
      mnist: 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1 (Patrini et al. 2017, as in SCE and APL);
      cifar10: truck -> automobile (9 -> 1), bird -> airplane (2 -> 0), deer -> horse (4 -> 7), cat <-> dog (3 <-> 5);
      cifar100: each class to the next class of its true superclass: the members of each superclass sorted by
        fine index and mapped cyclically. `superclass` is the dataset's own fine -> coarse map (Dataset.superclass,
        read from the CIFAR-100 files), required here;
      svhn: no standard map exists; this project's choice is the MNIST digit map (torchvision's SVHN labels
        equal the digits, 0 included);
      synthetic: c -> c + 1 mod C.
    kind "asymmetric_block", cifar100 only: i -> the next index within its block of 5 consecutive indices,
      cyclically (0 -> 1 -> 2 -> 3 -> 4 -> 0, 5 -> 6 -> ... -> 9 -> 5, ...). This is the scheme of Patrini et al.'s
      code (noise.py), copied by APL, SCE and ELR. These blocks are NOT superclasses: the fine labels are in
      alphabetical order, no block is a real superclass and only 6 of the 100 flips stay inside one. It exists
      only to compare with published numbers; "asymmetric" is the within-superclass noise it was meant to be.
    kind "pairflip": c -> c + 1 mod C for every class (Han et al., NeurIPS 2018), any dataset.
    """
    if kind == "pairflip":
        return _pairflip_map(num_classes)
    if kind == "asymmetric_block":
        _check_block_dataset(dataset)
        if num_classes % _BLOCK:
            raise ValueError(f"num_classes: asymmetric_block needs a multiple of {_BLOCK}, got {num_classes}")
        index = torch.arange(num_classes, dtype=torch.int64)
        return index - index % _BLOCK + (index + 1) % _BLOCK
    if kind != "asymmetric":
        raise ValueError(f"noise_type: {kind!r} has no class map; mapped kinds: {', '.join(MAPPED_NOISE_TYPES)}")
    if dataset == "synthetic":
        return _pairflip_map(num_classes)
    if dataset == "cifar100":
        return _superclass_map(superclass, num_classes)
    if dataset not in _ASYMMETRIC_MAPS:
        raise ValueError(f"noise_type: no asymmetric map for dataset {dataset!r}")
    target = torch.full((num_classes,), -1, dtype=torch.int64)
    for source, destination in _ASYMMETRIC_MAPS[dataset].items():
        target[source] = destination
    return target


def corrupt_labels(
    labels: torch.Tensor,
    rate: float,
    num_classes: int,
    kind: str,
    seed: int,
    class_map: torch.Tensor | None = None,
) -> torch.Tensor:
    """A copy of `labels` with artificial noise; the input is left alone.

    kind "uniform": exactly round(rate * N) samples, chosen without replacement, get a new label drawn from all
    `num_classes` classes, which may equal the old one, so about rate * (1 - 1/C) of the labels end up wrong
    (the paper's "labels replaced randomly").
    kind "symmetric": as uniform, but the new label is drawn from the other C - 1 classes, so exactly `rate` of
    them are wrong.
    kinds "asymmetric", "asymmetric_block", "pairflip" (need `class_map`, from data.noise.class_map): for every
    source class c with class_map[c] >= 0, exactly round(rate * n_c) of its n_c samples (Python's round: halves
    to even) get the label class_map[c]; classes mapped to -1 stay clean. All flips are chosen from the clean
    labels at once, so no sample is flipped twice: with cat <-> dog both classes get exactly their count of wrong
    labels (implementations that flip class after class on the current labels flip some back). `rate` is the
    flip rate within each source class, not over the whole set (CIFAR-10's map touches 5 of 10 classes: about
    rate / 2 of all labels end up wrong).
    The result depends only on (labels, rate, num_classes, kind, seed, class_map): every loss sees the same
    noisy labels.
    """
    if kind not in ARTIFICIAL_NOISE_TYPES:
        if kind == "human":
            raise ValueError("noise_type: human noise is read from files, by data.cifar_n.human_noisy_labels")
        raise ValueError(f"noise_type must be one of {ARTIFICIAL_NOISE_TYPES}, got {kind!r}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate must lie in [0, 1], got {rate}")
    if kind in MAPPED_NOISE_TYPES:
        return _flip_by_class(labels, rate, num_classes, seed, _checked_map(class_map, kind, num_classes))
    if class_map is not None:
        raise ValueError(f"class_map: only used with noise_type {', '.join(MAPPED_NOISE_TYPES)}, not {kind}")
    generator = seeded("label-noise", seed)
    noisy = labels.clone()
    count = round(rate * len(labels))
    chosen = torch.randperm(len(labels), generator=generator)[:count]
    if kind == "uniform":
        noisy[chosen] = torch.randint(0, num_classes, (count,), generator=generator)
    else:
        # A non-zero offset modulo C lands uniformly on each of the other C - 1 classes.
        offsets = torch.randint(1, num_classes, (count,), generator=generator)
        noisy[chosen] = (labels[chosen] + offsets) % num_classes
    return noisy


def _checked_map(class_map: torch.Tensor | None, kind: str, num_classes: int) -> torch.Tensor:
    if class_map is None:
        raise ValueError(f"class_map: noise_type {kind} needs the map of data.noise.class_map")
    if class_map.shape != (num_classes,) or class_map.dtype != torch.int64:
        raise ValueError(
            f"class_map: expected int64 of shape ({num_classes},), got {class_map.dtype} {tuple(class_map.shape)}"
        )
    if len(class_map) and not (int(class_map.min()) >= -1 and int(class_map.max()) < num_classes):
        raise ValueError(f"class_map: targets must be -1 or lie in [0, {num_classes}), got {class_map.tolist()}")
    return class_map


def _flip_by_class(
    labels: torch.Tensor, rate: float, num_classes: int, seed: int, class_map: torch.Tensor
) -> torch.Tensor:
    noisy = labels.clone()
    if len(labels) == 0:
        return noisy
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]")
    counts = torch.bincount(labels, minlength=num_classes)
    pairs = zip(counts.tolist(), class_map.tolist(), strict=True)
    quota = torch.tensor([round(rate * n) if target >= 0 else 0 for n, target in pairs], dtype=torch.int64)
    # Every choice is made on the clean labels at once, so nothing is flipped twice.
    chosen = first_per_class(labels, quota, seeded("label-noise", seed))
    noisy[chosen] = class_map[labels[chosen]]
    return noisy


def noisy_train_labels(
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
) -> torch.Tensor:
    """The training labels a run trains on: `dataset`'s clean training labels with the noise asked for, drawn
    by corrupt_labels (with class_map's map for the mapped kinds) or by data.instance_noise (std `instance_std`,
    default 0.1), or read from a file: the CIFAR-N set `noise_set` from `root` for noise_type "human",
    `noise_file` (checked against `noise_sha256` when given) for "file"."""
    if noise_type == "human":
        return human_noisy_labels(dataset.name, root, noise_set, dataset.train_labels)
    if noise_type == "file":
        return file_noisy_labels(noise_file, noise_sha256, dataset.train_labels, dataset.num_classes, dataset.name)
    if noise_type == "instance":
        std = DEFAULT_STD if instance_std is None else instance_std
        return instance_noisy_labels(
            dataset.train_images, dataset.train_labels, dataset.num_classes, noise, std, noise_seed
        )
    mapping = None
    if noise_type in MAPPED_NOISE_TYPES:
        mapping = class_map(dataset.name, noise_type, dataset.num_classes, dataset.superclass)
    return corrupt_labels(dataset.train_labels, noise, dataset.num_classes, noise_type, noise_seed, mapping)


def noise_variant(noise_type: str, noise_set: str | None, instance_std: float | None, noise_sha256: str | None) -> str:
    """What tells apart two noises of one type and rate, for run names and table cells: the CIFAR-N set of human
    noise, "std<σ>" for instance noise of a std other than 0.1, the first 12 hex digits of a noise file's SHA-256;
    "" for the others."""
    if noise_type == "human":
        return noise_set or ""
    if noise_type == "instance" and instance_std not in (None, DEFAULT_STD):
        return f"std{instance_std:g}"
    if noise_type == "file" and noise_sha256:
        return noise_sha256.lower()[:12]
    return ""


def noise_matrix(clean: torch.Tensor, noisy: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 (C, C) counts of (clean, noisy) label pairs: row = clean class, column = noisy label."""
    if clean.shape != noisy.shape:
        raise ValueError(f"clean and noisy labels differ in shape: {tuple(clean.shape)} vs {tuple(noisy.shape)}")
    pairs = clean.to(torch.int64) * num_classes + noisy.to(torch.int64)
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _only_with(key: str, value, noise_type: str, wanted: str) -> None:
    if value is not None and noise_type != wanted:
        raise ValueError(f"{key}: only used with noise_type={wanted}, got {value!r} with {noise_type}")


def check_noise(
    dataset: str,
    noise_type: str,
    noise: float,
    noise_set: str | None,
    train_size: int | None = None,
    *,
    instance_std: float | None = None,
    noise_file: str | None = None,
    noise_sha256: str | None = None,
    num_classes: int | None = None,
) -> None:
    """Raise ValueError, one line starting with the offending key, when the noise setting cannot run.

    Checks the noise type, the rate in [0, 1], that asymmetric_block is used on cifar100 only, that each key
    of one noise type (noise_set: human, instance_std: instance, noise_file and noise_sha256: file) comes with
    that type only, and instance_std > 0. For the noise types read from files (human, file) the rate must be 0.
    Human noise needs a dataset with CIFAR-N labels, a known noise_set and the full training set (`train_size`,
    the config's dataset.train_size, unset or at least the full size: the file labels every training image).
    noise_type=file reads `noise_file` (the dataset's `num_classes` needed): it must be a readable label file
    of labels in [0, num_classes), of the SHA-256 `noise_sha256` when given (64 hex digits), as long as the
    training set that `train_size` keeps. Whether its clean labels equal the dataset's is checked when the
    dataset is read (data.label_files.file_noisy_labels).
    """
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"noise_type: must be one of {', '.join(NOISE_TYPES)}, got {noise_type!r}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise: must be in [0, 1], got {noise}")
    _only_with("noise_set", noise_set, noise_type, "human")
    _only_with("instance_std", instance_std, noise_type, "instance")
    _only_with("noise_file", noise_file, noise_type, "file")
    _only_with("noise_sha256", noise_sha256, noise_type, "file")
    if instance_std is not None and not (math.isfinite(instance_std) and instance_std > 0):
        raise ValueError(f"instance_std: must be a finite number > 0, got {instance_std}")
    if noise_type in FILE_NOISE_TYPES and noise != 0:
        raise ValueError(f"noise: must be 0 with {noise_type} noise (the labels come from the file), got {noise}")
    if noise_type == "asymmetric_block":
        _check_block_dataset(dataset)
    if noise_type == "asymmetric" and dataset not in DATASETS:
        raise ValueError(f"noise_type: no asymmetric map for dataset {dataset!r}")
    if noise_type == "human":
        _check_human(dataset, noise_set, train_size)
    if noise_type == "file":
        _check_file(dataset, noise_file, noise_sha256, train_size, num_classes)


def _check_human(dataset: str, noise_set: str | None, train_size: int | None) -> None:
    if dataset not in NOISE_SETS:
        raise ValueError(f"noise_type: human noise exists only for {' and '.join(NOISE_SETS)}, not {dataset}")
    valid = ", ".join(NOISE_SETS[dataset])
    if noise_set is None:
        raise ValueError(f"noise_set: required with noise_type=human; valid for {dataset}: {valid}")
    if noise_set not in NOISE_SETS[dataset]:
        raise ValueError(f"noise_set: unknown set {noise_set!r} for {dataset}; valid: {valid}")
    full = train_set_size(dataset, None)
    if train_size is not None and train_size < full:
        raise ValueError(
            f"dataset.train_size: human noise labels the full {full}-image training set of {dataset}, "
            f"got train_size={train_size}"
        )


def _check_file(
    dataset: str, noise_file: str | None, noise_sha256: str | None, train_size: int | None, num_classes: int | None
) -> None:
    if noise_file is None:
        raise ValueError("noise_file: required with noise_type=file (a .npy, .csv, .json or .pt label file)")
    if noise_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", noise_sha256):
        raise ValueError(f"noise_sha256: must be 64 hex digits, got {noise_sha256!r}")
    if num_classes is None:
        raise ValueError("num_classes: noise_type=file needs the dataset's number of classes to check the file")
    try:
        checked_label_file(noise_file, noise_sha256, num_classes, dataset, train_set_size(dataset, train_size))
    except LabelFileError as error:
        raise ValueError(f"noise_file: {error}") from None
