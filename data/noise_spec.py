"""A run's label noise as one value: NoiseSpec, built once from the config's noise keys and passed whole.

It checks itself (`check`, before any data is read), names itself for run directories and table cells (`name`,
`variant`), records itself in summary.json (`record`) and makes the noisy training labels (`labels`), each noise
type from its own module: the artificial types from data.noise, instance-dependent noise from data.instance_noise,
human noise (CIFAR-N) from data.cifar_n, a published label file from data.label_files. Adding a noise model means
a type here, its generator module, its config keys (experiments/schema.py) and docs/datasets-and-noise.md.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from data.cifar_n import NOISE_SETS, human_noisy_labels
from data.dataset import Dataset
from data.instance_noise import DEFAULT_STD, instance_noisy_labels
from data.label_files import LabelFileError, checked_label_file, file_noisy_labels
from data.noise import ARTIFICIAL_NOISE_TYPES, MAPPED_NOISE_TYPES, check_block_dataset, class_map, corrupt_labels
from data.sources import DATASETS, train_set_size

# Every value of the config's noise_type: "instance" is drawn by data.instance_noise, "human" labels come from
# data.cifar_n, "file" labels from data.label_files.
NOISE_TYPES = (*ARTIFICIAL_NOISE_TYPES, "instance", "human", "file")
# The noise types whose labels come from a file: the rate must be 0.
FILE_NOISE_TYPES = ("human", "file")


@dataclass(frozen=True)
class NoiseSpec:
    """The noise of a run: `rate` and `type` (NOISE_TYPES), the `seed` that draws it (null before the config is
    resolved), and what tells apart noises of one type: the CIFAR-N label `set` (human), the `instance_std` of
    instance noise (null: DEFAULT_STD), a label `file` and its `sha256` (file). Its fields are the config's keys
    noise, noise_type, noise_seed, noise_set, instance_std, noise_file and noise_sha256."""

    rate: float
    type: str
    seed: int | None = None
    set: str | None = None
    instance_std: float | None = None
    file: str | None = None
    sha256: str | None = None

    @classmethod
    def of(cls, cfg: Mapping) -> "NoiseSpec":
        """The noise of a config (composed or resolved, or a run's config.yaml read as a mapping)."""
        return cls(rate=cfg["noise"], type=cfg["noise_type"], seed=cfg.get("noise_seed"), set=cfg.get("noise_set"),
                   instance_std=cfg.get("instance_std"), file=cfg.get("noise_file"), sha256=cfg.get("noise_sha256"))

    @property
    def variant(self) -> str:
        """What tells apart two noises of one type and rate, for run names and table cells: the CIFAR-N set of human
        noise, "std<σ>" for instance noise of a std other than DEFAULT_STD, the first 12 hex digits of a label
        file's SHA-256; "" for the others."""
        if self.type == "human":
            return self.set or ""
        if self.type == "instance" and self.instance_std not in (None, DEFAULT_STD):
            return f"std{self.instance_std:g}"
        if self.type == "file" and self.sha256:
            return self.sha256.lower()[:12]
        return ""

    @property
    def name(self) -> str:
        """The noise's part of a run directory's name: "noise0.4-uniform", "noise0-human-worst"."""
        return f"noise{self.rate:g}-{self.type}" + (f"-{self.variant}" if self.variant else "")

    def record(self) -> dict:
        """The noise as summary.json's `noise` records it (with the realized rate and fingerprint the run adds)."""
        return {"rate": self.rate, "type": self.type, "set": self.set, "seed": self.seed,
                "instance_std": self.instance_std, "file": self.file, "sha256": self.sha256}

    def check(self, dataset: str, train_size: int | None, num_classes: int | None) -> None:
        """Raise ValueError, one line starting with the offending key, when the noise cannot run on `dataset`.

        Checks the noise type, the rate in [0, 1], that asymmetric_block is used on cifar100 only, that each key
        of one noise type (noise_set: human, instance_std: instance, noise_file and noise_sha256: file) comes with
        that type only, and instance_std > 0. For the noise types read from files (human, file) the rate must be 0.
        Human noise needs a dataset with CIFAR-N labels, a known noise_set and the full training set (`train_size`,
        the config's dataset.train_size, unset or at least the full size: the file labels every training image).
        noise_type=file reads the file (the dataset's `num_classes` needed): it must be a readable label file of
        labels in [0, num_classes), of the SHA-256 given (64 hex digits), as long as the training set that
        `train_size` keeps. Whether its clean labels equal the dataset's is checked when the dataset is read
        (data.label_files.file_noisy_labels)."""
        if self.type not in NOISE_TYPES:
            raise ValueError(f"noise_type: must be one of {', '.join(NOISE_TYPES)}, got {self.type!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"noise: must be in [0, 1], got {self.rate}")
        for key, value, wanted in (("noise_set", self.set, "human"), ("instance_std", self.instance_std, "instance"),
                                   ("noise_file", self.file, "file"), ("noise_sha256", self.sha256, "file")):
            if value is not None and self.type != wanted:
                raise ValueError(f"{key}: only used with noise_type={wanted}, got {value!r} with {self.type}")
        if self.instance_std is not None and not (math.isfinite(self.instance_std) and self.instance_std > 0):
            raise ValueError(f"instance_std: must be a finite number > 0, got {self.instance_std}")
        if self.type in FILE_NOISE_TYPES and self.rate != 0:
            raise ValueError(f"noise: must be 0 with {self.type} noise (the labels come from the file), got "
                             f"{self.rate}")
        if self.type == "asymmetric_block":
            check_block_dataset(dataset)
        if self.type == "asymmetric" and dataset not in DATASETS:
            raise ValueError(f"noise_type: no asymmetric map for dataset {dataset!r}")
        if self.type == "human":
            self._check_human(dataset, train_size)
        if self.type == "file":
            self._check_file(dataset, train_size, num_classes)

    def _check_human(self, dataset: str, train_size: int | None) -> None:
        if dataset not in NOISE_SETS:
            raise ValueError(f"noise_type: human noise exists only for {' and '.join(NOISE_SETS)}, not {dataset}")
        valid = ", ".join(NOISE_SETS[dataset])
        if self.set is None:
            raise ValueError(f"noise_set: required with noise_type=human; valid for {dataset}: {valid}")
        if self.set not in NOISE_SETS[dataset]:
            raise ValueError(f"noise_set: unknown set {self.set!r} for {dataset}; valid: {valid}")
        full = train_set_size(dataset, None)
        if train_size is not None and train_size < full:
            raise ValueError(f"dataset.train_size: human noise labels the full {full}-image training set of "
                             f"{dataset}, got train_size={train_size}")

    def _check_file(self, dataset: str, train_size: int | None, num_classes: int | None) -> None:
        if self.file is None:
            raise ValueError("noise_file: required with noise_type=file (a .npy, .csv, .json or .pt label file)")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256):
            raise ValueError(f"noise_sha256: must be 64 hex digits, got {self.sha256!r}")
        if num_classes is None:
            raise ValueError("num_classes: noise_type=file needs the dataset's number of classes to check the file")
        try:
            checked_label_file(self.file, self.sha256, num_classes, dataset, train_set_size(dataset, train_size))
        except LabelFileError as error:
            raise ValueError(f"noise_file: {error}") from None

    def labels(self, dataset: Dataset, root: str = "") -> torch.Tensor:
        """The training labels a run trains on: `dataset`'s clean training labels with this noise, drawn by
        data.noise.corrupt_labels (with class_map's map for the mapped kinds) or by data.instance_noise (std
        instance_std, default DEFAULT_STD), or read from a file: the CIFAR-N set from `root` for human noise, the
        label file (checked against its SHA-256 when given) for noise_type=file."""
        if self.type == "human":
            return human_noisy_labels(dataset.name, root, self.set, dataset.train_labels)
        if self.type == "file":
            return file_noisy_labels(self.file, self.sha256, dataset.train_labels, dataset.num_classes, dataset.name)
        if self.type == "instance":
            std = DEFAULT_STD if self.instance_std is None else self.instance_std
            return instance_noisy_labels(dataset.train_images, dataset.train_labels, dataset.num_classes, self.rate,
                                         std, self.seed)
        mapping = None
        if self.type in MAPPED_NOISE_TYPES:
            mapping = class_map(dataset.name, self.type, dataset.num_classes, dataset.superclass)
        return corrupt_labels(dataset.train_labels, self.rate, dataset.num_classes, self.type, self.seed, mapping)
