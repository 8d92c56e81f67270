"""Artificial label noise, drawn here: the paper's (Section 3.3: a proportion of the training labels replaced
randomly) and the class-dependent kinds the field uses now; their transition matrices, and the noise matrix of any
noisy labels. data.noise_spec says which noise a run has and draws or reads its labels.
"""


import torch

from data.draws import first_per_class
from data.draws import generator as seeded

# Noise drawn by corrupt_labels. The last three flip each sample of a source class to one fixed target class.
MAPPED_NOISE_TYPES = ("asymmetric", "asymmetric_block", "pairflip")
ARTIFICIAL_NOISE_TYPES = ("uniform", "symmetric", "symmetric_per_class", *MAPPED_NOISE_TYPES)

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


def check_block_dataset(dataset: str) -> None:
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
        check_block_dataset(dataset)
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
    kind "symmetric_per_class": the APL family's symmetric noise (HanxunH/Active-Passive-Losses dataset.py @fdd52a2,
    copied by SCELoss-Reproduce): int(int(rate * N) / C) samples of every class, the same count for each, get a
    label drawn from the other C - 1 classes; a class with fewer samples than that is a ValueError.
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
    if kind == "symmetric_per_class":
        return _symmetric_per_class(labels, rate, num_classes, seed)
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


def _symmetric_per_class(labels: torch.Tensor, rate: float, num_classes: int, seed: int) -> torch.Tensor:
    """APL's symmetric noise: the same count int(int(rate N) / C) of every class relabelled to another class."""
    count = int(int(rate * len(labels)) / num_classes)  # the authors' arithmetic, truncations included
    sizes = torch.bincount(labels, minlength=num_classes)
    if count > int(sizes.min()):
        raise ValueError(f"noise: symmetric_per_class relabels {count} samples of every class at rate {rate}, but a "
                         f"class has only {int(sizes.min())}")
    generator = seeded("label-noise", seed)
    chosen = first_per_class(labels, torch.full((num_classes,), count, dtype=torch.int64), generator)
    offsets = torch.randint(1, num_classes, (len(chosen),), generator=generator)
    noisy = labels.clone()
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


def nominal_transition(noise_type: str, rate: float, num_classes: int) -> torch.Tensor | None:
    """The transition matrix (float64) that uniform or symmetric noise draws its labels by (data.noise.corrupt_labels):
    uniform (1 - rate) I + rate / C J, symmetric (1 - rate) I + rate / (C - 1) (J - I); None for the other noises."""
    eye, ones = torch.eye(num_classes, dtype=torch.float64), torch.ones(num_classes, num_classes, dtype=torch.float64)
    if noise_type == "uniform":
        return (1 - rate) * eye + rate / num_classes * ones
    if noise_type in ("symmetric", "symmetric_per_class"):
        return (1 - rate) * eye + rate / (num_classes - 1) * (ones - eye)
    return None


def noise_matrix(clean: torch.Tensor, noisy: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 (C, C) counts of (clean, noisy) label pairs: row = clean class, column = noisy label."""
    if clean.shape != noisy.shape:
        raise ValueError(f"clean and noisy labels differ in shape: {tuple(clean.shape)} vs {tuple(noisy.shape)}")
    pairs = clean.to(torch.int64) * num_classes + noisy.to(torch.int64)
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
