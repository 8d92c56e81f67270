"""The structured config: dataclass schemas (so a wrong key or type fails at start-up) and value validation.

`validate` checks every key of the schema before any data is touched and raises ConfigError with one line naming
the culprit. `resolve` fills the derived values (noise_seed, the loss's parameters, the per-device performance
defaults) that a run records, and names the run.
"""

import functools
import hashlib
import json
import logging
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf

import models
import tce
from data import DATASETS, check_noise, one_line, train_set_size
from data.instance_noise import DEFAULT_STD
from data.label_files import sha256_of
from data.loader import FILLS
from data.noise import noise_variant
from data.sources import DEFAULT_ROOT, class_count
from data.synthetic import MIN_SIZE, SIZE
from experiments import precision

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COMPILE_MODES = ("default", "reduce-overhead")
SCHEDULES = ("step", "cosine")  # optim.schedule: experiments.trainer.lr_at computes each


class ConfigError(ValueError):
    """A config value that cannot run; the message is one line naming the key."""


@dataclass
class DatasetConfig:
    name: str = MISSING
    # Downloaded and cached data lives here, never in the repo; the TCE_DATA_ROOT environment variable overrides it.
    root: str = DEFAULT_ROOT
    download: bool = True  # fetch missing files (python -m data.download does it beforehand); false: never
    train_size: int | None = None  # keep the first N training images (synthetic: how many to generate)
    test_size: int | None = None
    split_seed: int = 0  # the holdout split, fixed per dataset and independent of the run seed
    val_holdout: int = 5000  # the holdout of the protocol's validation run (protocol=val), 5000 in the paper
    # The synthetic dataset's own keys (configs/dataset/synthetic.yaml sets them); null for the real datasets.
    num_classes: int | None = None
    seed: int | None = None  # the generator's seed
    image_size: int | None = None  # smaller images cost ResNet-20 less per image (the real ones are 32 x 32)


@dataclass
class LossConfig:
    """The loss (tce.LOSSES) and its parameters (tce.LOSS_PARAMS; each loss's docstring in tce.functional says
    what they mean and may be).

    A parameter left null takes its default: the authors' value for the dataset where DATASET_LOSS_DEFAULTS has
    one, else the loss's own. The parameters a loss does not take are recorded as null, so that a sweep such as
    `loss=ce,tce loss.alpha=1,2` gives CE once.
    """

    name: str = MISSING
    alpha: float | None = None  # TCE's alpha; the weight of the first term of sce, nce+*, eps_softmax
    beta: float | None = None  # the weight of their second term; bootstrapping's weight of the label
    q: float | None = None  # the exponent of gce, agce, aul
    A: float | None = None  # rce, sce: the value of log 0
    gamma: float | None = None  # focal
    t: int | None = None  # taylor: the number of terms
    epsilon: float | None = None  # poly1, label_smoothing
    a: float | None = None  # agce, aul, ael and their sums with NCE: the shift of p_y
    m: float | None = None  # eps_softmax: the mass added to the argmax class
    pi: float | None = None  # js: the label's weight in the mixture
    tau: float | None = None  # logit_clip: the norm above which logits are clipped
    p_norm: float | None = None  # logit_clip: the order of that norm
    semantics: str | None = None  # logit_clip: "code" (rescale to norm 1/tau, the authors' code) or "paper" (to tau)
    delta: float | None = None  # anl_ce, jal_ce: the weight of the L1 penalty on every parameter of the model
    lambda_: float | None = None  # elr: the weight of its regularizer
    # forward, backward: the transition matrix T, a CSV file of C x C numbers (row = true class, column = noisy
    # label, rows summing to 1), and its SHA-256: checked when given, else computed from the file, like noise_file's;
    # null: the oracle, the run's realized noise matrix of its training portion normalized by rows.
    transition: str | None = None
    transition_sha256: str | None = None
    # Derived, for a loss whose L1 penalty replaces weight decay (it trains with optim.weight_decay 0): the recipe's
    # weight decay it replaced, so that the run stays in its recipe (`recipe`) next to the other losses.
    replaced_weight_decay: float | None = None


#: The keys of LossConfig that hold a loss's transition matrix rather than a parameter (tce.LOSS_PARAMS).
TRANSITION_KEYS = ("transition", "transition_sha256")
#: What a loss needs (tce.LOSS_NEEDS) that is a transition matrix, T or its inverse: the engine provides it from
#: loss.transition, else from the run's noise.
TRANSITION_NEEDS = ("transition", "transition_inverse")
#: What a loss needs that is the model's parameters: the run trains with weight decay 0, its L1 penalty replacing it.
PARAMETERS_NEED = "parameters"


#: The key of LossConfig that records the weight decay a penalty replaced (derived, not a parameter).
REPLACED_WEIGHT_DECAY = "replaced_weight_decay"
LOSS_KEYS = tuple(f.name for f in fields(LossConfig)
                  if f.name not in ("name", *TRANSITION_KEYS, REPLACED_WEIGHT_DECAY))
# Each parameter's type, from its annotation ("float | None" -> float): how a value read back from a file is cast.
LOSS_KEY_TYPES = {f.name: next(t for t in typing.get_args(f.type) if t is not type(None))
                  for f in fields(LossConfig) if f.name in LOSS_KEYS}

# The authors' values per dataset, from their code, for the parameters that depend on it; a dataset a loss does
# not list (SVHN and the synthetic dataset always) takes its CIFAR-10 values. They never depend on the noise
# (type or rate), which a method cannot know: where the authors tune per noise rate, their value at 40 % uniform
# noise is taken, the middle of the zoo's rates.
DATASET_LOSS_DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    # Active-Passive-Losses configs; the official SCE code.
    "sce": {
        "mnist": {"alpha": 0.01, "beta": 1.0},
        "cifar10": {"alpha": 0.1, "beta": 1.0},
        "cifar100": {"alpha": 6.0, "beta": 0.1},
    },
    "nce+rce": {
        "mnist": {"alpha": 1.0, "beta": 10.0},
        "cifar10": {"alpha": 1.0, "beta": 1.0},
        "cifar100": {"alpha": 10.0, "beta": 0.1},
    },
    "nce+mae": {
        "mnist": {"alpha": 1.0, "beta": 10.0},
        "cifar10": {"alpha": 1.0, "beta": 1.0},
        "cifar100": {"alpha": 10.0, "beta": 1.0},
    },
    # hitcszx/ALFs config.py @898961f, the same in Virusdoll/Active-Negative-Loss config/*_nce_a*.json @f8c23b3
    # and cswjl/eps-softmax config.py @1b9efb5. MNIST's "NCE+" settings have alpha = 0: the asymmetric loss alone.
    "agce": {"mnist": {"a": 4.0, "q": 0.2}, "cifar10": {"a": 0.6, "q": 0.6}, "cifar100": {"a": 0.6, "q": 0.6}},
    "aul": {"mnist": {"a": 3.0, "q": 0.1}, "cifar10": {"a": 5.5, "q": 3.0}, "cifar100": {"a": 5.5, "q": 3.0}},
    "ael": {"mnist": {"a": 3.5}, "cifar10": {"a": 2.5}, "cifar100": {"a": 2.5}},
    "nce+agce": {
        "mnist": {"alpha": 0.0, "beta": 1.0, "a": 4.0, "q": 0.2},
        "cifar10": {"alpha": 1.0, "beta": 4.0, "a": 6.0, "q": 1.5},
        "cifar100": {"alpha": 10.0, "beta": 0.1, "a": 1.8, "q": 3.0},
    },
    "nce+aul": {
        "mnist": {"alpha": 0.0, "beta": 1.0, "a": 3.0, "q": 0.1},
        "cifar10": {"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5},
        "cifar100": {"alpha": 10.0, "beta": 0.015, "a": 6.0, "q": 3.0},
    },
    "nce+ael": {
        "mnist": {"alpha": 0.0, "beta": 1.0, "a": 3.5},
        "cifar10": {"alpha": 1.0, "beta": 4.0, "a": 5.0},
        "cifar100": {"alpha": 10.0, "beta": 0.1, "a": 1.5},
    },
    # cswjl/eps-softmax config.py @1b9efb5 (ECEandMAE): CIFAR-10 symmetric noise (asymmetric: 0.02, 5, 1e3).
    # CIFAR-100 symmetric: alpha by noise rate (0.1, 0.05, 0.03, 0.00125, 0.0075 at 0 to 0.8), beta 1, m 1e4:
    # 0.03 is the 40 % value. No MNIST setting: CIFAR-10's, the other 10-class one.
    "eps_softmax": {
        "cifar10": {"alpha": 0.01, "beta": 5.0, "m": 1e5},
        "cifar100": {"alpha": 0.03, "beta": 1.0, "m": 1e4},
    },
    # ErikEnglesson/GJS scripts/C10,C100/sym/js-*.yaml @f124785, js_weights by noise rate (CIFAR-10: 0.1, 0.7,
    # 0.7, 0.9, 0.9 at 0 to 0.8; CIFAR-100: 0.1, 0.1, 0.3, 0.5, 0.3): the 40 % values. No MNIST setting.
    "js": {"cifar10": {"pi": 0.7}, "cifar100": {"pi": 0.3}},
    # cswjl/eps-softmax config.py @1b9efb5 (CEandLC, delta = 1/tau): CIFAR-10 symmetric below 50 % delta 1,
    # CIFAR-100 symmetric delta 0.5; hongxin001/LogitClip's own default --temp is 1 too. No MNIST setting.
    "logit_clip": {"cifar10": {"tau": 1.0}, "cifar100": {"tau": 2.0}},
    # Virusdoll/Active-Negative-Loss config/{mnist,cifar10,cifar100}_anl_ce.json @f8c23b3 (alpha, beta, delta; weight
    # decay 0), read against the repository.
    "anl_ce": {
        "mnist": {"alpha": 1.0, "beta": 1.0, "delta": 1e-6},
        "cifar10": {"alpha": 5.0, "beta": 5.0, "delta": 5e-5},
        "cifar100": {"alpha": 10.0, "beta": 1.0, "delta": 5e-7},
    },
    # cswjl/joint-asymmetric-loss config.py @0f9eb7b (NCEandAMSE; get_weight_decay_config: the L1 delta, no L2). No
    # MNIST setting: CIFAR-10's, the other 10-class one.
    "jal_ce": {
        "cifar10": {"alpha": 1.0, "beta": 1.0, "a": 30.0, "delta": 5e-5},
        "cifar100": {"alpha": 5.0, "beta": 1.0, "a": 20.0, "delta": 5e-6},
    },
    # shengliu66/ELR ELR/config_cifar10.json @2f4cd32, config_cifar100.json @4e6cb7d, read against the repository. No
    # MNIST setting: CIFAR-10's, the other 10-class one.
    "elr": {"cifar10": {"beta": 0.7, "lambda_": 3.0}, "cifar100": {"beta": 0.9, "lambda_": 7.0}},
}


@dataclass
class ModelConfig:
    name: str = "resnet"  # models.MODELS; configs/model/<name>.yaml selects one (model=cnn8)
    depth: int | None = 20  # resnet's depth 6n + 2; null for the other models, which have one depth


@dataclass
class OptimConfig:
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    # Fractions of `epochs` at which the lr is multiplied by lr_gamma: 128 and 192 of 256, as in the paper.
    lr_milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    lr_gamma: float = 0.1
    # The lr of each epoch (SCHEDULES): "step" at lr_milestones and lr_gamma, the paper's; "cosine" from lr to 0 over
    # `epochs`, once per epoch, as torch's CosineAnnealingLR(T_max=epochs, eta_min=0) (lr_milestones unused).
    schedule: str = "step"
    # Scale each run's gradient down to this 2-norm over all its parameters before every step, as torch's
    # clip_grad_norm_ (each member of a pack by its own norm); null: no clipping, the paper's.
    clip_grad_norm: float | None = None


@dataclass
class AugmentConfig:
    """The training images' augmentation, batch-wise on the device (data/loader.py); the defaults are the paper's.
    Mirroring is the dataset's (natural images yes, digits no: data.sources)."""

    crop: bool = True  # translations of up to 1/8 of the image (4 of 32 pixels): a random crop of the padded image
    rotate: float = 0.0  # rotation by an angle uniform in [-rotate, rotate] degrees after crop and flip; 0: none
    # What the padding and the rotation's corners show (FILLS): "mean", the channel mean (0 after normalization, as
    # fb.resnet.torch pads, the paper's), or "black" (torchvision pads and rotates with 0 before its Normalize).
    fill: str = "mean"


@dataclass
class TrainConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    noise: float = 0.0
    noise_type: str = "uniform"  # data.noise.NOISE_TYPES
    noise_set: str | None = None  # noise_type=human: which CIFAR-N label set (data.cifar_n.NOISE_SETS)
    instance_std: float | None = None  # noise_type=instance: the std of the per-sample flip rate (null: 0.1)
    # noise_type=file: a noisy-label file (data/label_files.py lists the formats), and its SHA-256: checked when
    # given, else computed from the file. The path is where the input is, the SHA-256 what it is: a run's
    # identity and name hold the SHA-256, so a moved file resumes its runs and a changed one cannot.
    noise_file: str | None = None
    noise_sha256: str | None = None
    noise_seed: int | None = None  # defaults to seed
    clean_val: bool = False  # the paper's validation labels are as noisy as the training labels
    seed: int = 0
    holdout: int = 5000
    epochs: int = 256
    batch_size: int = 128
    drop_last: bool = False
    eval_batch_size: int | None = None  # null: 1000 on CUDA, 256 on the CPU (faster there: activations stay in cache)
    # Training images the per-epoch evaluation pass reads (train_clean_acc, noisy_fit, noisy_true): a fixed
    # class-stratified subset of the training portion, null for all of it. make bench measures the cost.
    eval_train_size: int | None = 5000
    # auto unless $TCE_DEVICE says otherwise: hydra/launcher=slurm_gpu sets it to cuda in every job it runs.
    device: str = "${oc.env:TCE_DEVICE,auto}"
    # fp32 (strict, as the paper), or the measured opt-ins tf32 and bf16 (experiments/precision.py)
    precision: str = "fp32"
    # Performance options that leave the arithmetic alone; null means the device's default (see resolve).
    # Channels-last memory format; null: on CUDA (the tensor-core layout), off on the CPU, whose channels-last
    # float32 BatchNorm is some 40x less accurate than its NCHW one (for 1.1-1.2x the speed; docs/performance.md).
    channels_last: bool | None = None
    compile: bool | None = None  # torch.compile the model: on for CUDA (falls back to eager if it cannot)
    compile_mode: str = "default"  # torch.compile's mode: default, or reduce-overhead (CUDA graphs, CUDA only)
    # A multirun sweep is launched in packs of this many compatible runs, each pack one job that trains its runs
    # at once in one grouped model (every launcher).
    pack: int = 1
    threads: int | None = None  # CPU threads of this process (null: torch's default); parallel sweep jobs want 1
    force: bool = False  # rerun a complete or diverged run from scratch
    # Write a run's checkpoint and records every this many epochs (and at its last); a stop signal writes the
    # epochs since, kept in memory. A killed run loses at most checkpoint_every - 1 epochs.
    checkpoint_every: int = 1
    progress: bool = True  # tqdm bar within each epoch
    runs_dir: str = "runs"
    # Seconds after which a run directory's lock that nobody refreshes is stale (its trainer died), wherever
    # it was written; a training run refreshes its lock at least once a minute.
    lock_timeout: float = 600.0


# What each key says about a run, for the code that compares configs:
# - EXECUTION_KEYS say how to execute it, not what it computes: they may differ when a run resumes.
# - LOCATION_KEYS say where its inputs are and whether they may be fetched, not what they are.
# - PER_RUN_KEYS may differ between the runs trained together in one pack (pack=K); all else must agree, how they
#   execute included (a pack trains on one device, compiled or not, in one layout).
# - CELL_KEYS name the protocol's cell a run belongs to (a table's row and column); RUN_KEYS tell the runs of one
#   cell apart: the seeds, and the protocol role (holdout > 0 is the validation run).
# - Every other key is the run's recipe (`recipe`): runs of two recipes are never averaged or compared.
# A name covers the key and every key below it ("loss" covers loss.alpha).
EXECUTION_KEYS = (
    "device", "force", "progress", "pack", "threads", "runs_dir", "compile", "compile_mode", "channels_last",
    "eval_batch_size", "lock_timeout", "checkpoint_every",
)
LOCATION_KEYS = ("dataset.root", "dataset.download", "noise_file", "loss.transition")
PER_RUN_KEYS = (
    "loss", "noise", "noise_type", "noise_set", "instance_std", "noise_file", "noise_sha256", "noise_seed", "seed",
    "clean_val", "force",
)
# The noise's keys name its cell's column: the type and rate, and what tells apart noises of one type
# (data.noise_variant: the CIFAR-N set, the instance noise's std, the noise file's SHA-256).
CELL_KEYS = ("dataset.name", "loss", "noise", "noise_type", "noise_set", "instance_std", "noise_sha256")
RUN_KEYS = ("seed", "noise_seed", "holdout")


def flatten(node: Mapping, prefix: str = "") -> dict:
    """A nested config as {"dotted.key": value}."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def covered(key: str, names: tuple[str, ...]) -> bool:
    """Whether the dotted `key` is one of `names` or lies below one of them."""
    return any(key == name or key.startswith(f"{name}.") for name in names)


def with_schema_defaults(config: Mapping) -> dict:
    """A config (a run's config.yaml), flattened, with the schema's default for every key it lacks: an older
    config lacks the keys added since, whose default is the value they had before they existed."""
    return {**flatten(OmegaConf.to_container(OmegaConf.structured(TrainConfig))), **flatten(config)}


def recipe(config: Mapping) -> dict:
    """The recipe of a resolved config (a run's config.yaml): every key but the cell's, the run's, and those that
    say where and how fast it runs, flattened and sorted; an older config's missing keys take the schema's
    default (with_schema_defaults)."""
    flat = with_schema_defaults(config)
    replaced = flat.get(f"loss.{REPLACED_WEIGHT_DECAY}")
    if replaced is not None:  # the loss's penalty took weight decay's place: the recipe is what it replaced
        flat["optim.weight_decay"] = replaced
    ignored = (*CELL_KEYS, *RUN_KEYS, *EXECUTION_KEYS, *LOCATION_KEYS)
    # Numbers compare as floats: YAML may give 1 where the schema's float is 1.0.
    return {key: float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
            for key, value in sorted(flat.items()) if not covered(key, ignored)}


def recipe_tag(values: Mapping) -> str:
    """A short stable name of a recipe: "r" and the first 8 hex digits of the SHA-256 of its canonical JSON (the
    letter keeps a tag such as 095223e3 from reading as a number in a CSV file)."""
    return "r" + hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]


def register_configs() -> None:
    """Make the schema and the run_name resolver (used by hydra.run.dir) known to Hydra; idempotent."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    OmegaConf.register_new_resolver("run_name", lambda *, _root_: _composed_run_name(_root_), replace=True)


def compose(*overrides: str, hydra: bool = False) -> DictConfig:
    """The config train.py composes from configs/ with `overrides` (with Hydra's own node when `hydra`), unresolved:
    for code and tests that run the engine in-process."""
    register_configs()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return hydra_compose("train", overrides=list(overrides), return_hydra_config=hydra)


def loss_params(loss: Mapping) -> dict:
    """The parameters the loss of a resolved loss config takes, by name, as tce.build_loss wants them."""
    return {key: loss[key] for key in tce.LOSS_PARAMS[loss["name"]]}


def needs_transition(name: str) -> bool:
    """Whether the loss `name` needs a transition matrix (T or its inverse)."""
    return any(need in TRANSITION_NEEDS for need in tce.LOSS_NEEDS[name])


def number_text(value: float) -> str:
    """A parameter's value as run names and tables spell it: its shortest form ("1.5", "5e-05"), or every digit
    where that would round it ("1.0000001", not "1"), so that two values never share a name."""
    text = f"{value:g}"
    return text if float(text) == value else repr(float(value))


def loss_tag(loss: Mapping) -> str:
    """A loss setting as a short key, e.g. "ce", "tce-a1.5", "gce-q0.7", "sce-alpha0.1-beta1-A-9.210340371976182",
    "logit_clip-tau1-p_norm2-code", "forward-oracleT", "backward-T1a2b3c4d5e6f": the loss and the value of each of
    its parameters (a word as itself), and the transition matrix of those that need one (the oracle, or a file's
    first 12 hex digits of SHA-256), so that two settings never share a run directory or a table row."""
    params = loss_params(loss)
    if loss["name"] == "tce":  # the paper's rows keep their short spelling
        return f"tce-a{number_text(params['alpha'])}"
    parts = [value if isinstance(value, str) else f"{key}{number_text(value)}" for key, value in params.items()]
    if needs_transition(loss["name"]):
        sha256 = loss.get("transition_sha256")
        parts.append(f"T{sha256.lower()[:12]}" if sha256 else "oracleT")
    return "-".join([loss["name"], *parts])


def run_name(cfg: DictConfig) -> str:
    """The run directory's name below runs_dir, a function of what makes a run distinct, never of time."""
    variant = noise_variant(cfg.noise_type, cfg.noise_set, cfg.instance_std, cfg.noise_sha256)
    variant = f"-{variant}" if variant else ""
    noise_seed = "" if cfg.noise_seed in (None, cfg.seed) else f"-noiseseed{cfg.noise_seed}"
    clean_val = "-cleanval" if cfg.clean_val and cfg.holdout else ""
    return (
        f"{cfg.dataset.name}/{loss_tag(cfg.loss)}/noise{cfg.noise:g}-{cfg.noise_type}{variant}"
        f"-holdout{cfg.holdout}-seed{cfg.seed}{noise_seed}{clean_val}"
    )


def resolve_device(name: str, job_num: int = 0) -> torch.device:
    """`auto` is CUDA when there is a usable GPU, else the CPU; with several GPUs, parallel sweep jobs spread over
    them by job number. CUDA asked for by name must be usable here."""
    if name == "auto":
        gpus = torch.cuda.device_count()
        gpu = torch.device(f"cuda:{job_num % gpus}") if gpus else None
        return gpu if gpu is not None and _cuda_unusable(gpu) is None else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but CUDA is not available here")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device: {name!r} is not supported (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device: {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
    if device.type == "cuda" and (problem := _cuda_unusable(device)):
        raise ConfigError(f"device: {name!r} asked for, but CUDA is unusable here ({problem})")
    return device


@functools.cache
def _cuda_unusable(device: torch.device) -> str | None:
    """Why a visible GPU cannot run a tensor (a driver too old, a GPU taken in exclusive mode), or None."""
    try:
        torch.zeros(1, device=device)
    except (RuntimeError, AssertionError) as error:  # AssertionError: a torch built without CUDA
        return one_line(error)
    return None


def _unknown_keys(node: DictConfig, schema: type, prefix: str = "") -> list[str]:
    """Keys of `node` that the dataclass `schema` does not declare (added with Hydra's `+key=value`)."""
    declared = {f.name: f.type for f in fields(schema)}
    unknown = []
    for key in node:
        if key not in declared:
            unknown.append(f"{prefix}{key}")
        elif isinstance(declared[key], type) and hasattr(declared[key], "__dataclass_fields__"):
            unknown += _unknown_keys(node[key], declared[key], f"{prefix}{key}.")
    return unknown


# The synthetic dataset's own keys: what each must be, checked only for it (the real datasets leave them null).
_SYNTHETIC_KEYS = {
    "num_classes": (lambda v: v >= 2, "the synthetic dataset needs >= 2 classes"),
    "seed": (lambda v: v >= 0, "the synthetic dataset's generator seed must be >= 0"),
    "image_size": (lambda v: MIN_SIZE <= v <= SIZE,
                   f"the synthetic dataset's image size must lie in [{MIN_SIZE}, {SIZE}]"),
}


def validate(cfg: DictConfig) -> None:
    """Check every value a run depends on, before any data is touched."""
    unknown = [key for key in _unknown_keys(cfg, TrainConfig) if key != "hydra"]  # Hydra's node, when composed with it
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a key of the config (experiments/config.py lists them)")
    ds, optim = cfg.dataset, cfg.optim
    synthetic = ds.name == "synthetic"
    checks = [
        (ds.name in DATASETS, f"dataset.name: unknown dataset {ds.name!r}; valid: {', '.join(DATASETS)}"),
        (ds.train_size is None or ds.train_size >= 1, f"dataset.train_size: must be >= 1 or null, got {ds.train_size}"),
        (ds.test_size is None or ds.test_size >= 1, f"dataset.test_size: must be >= 1 or null, got {ds.test_size}"),
        (ds.split_seed >= 0, f"dataset.split_seed: must be >= 0, got {ds.split_seed}"),
        (ds.val_holdout >= 1, f"dataset.val_holdout: must be >= 1, got {ds.val_holdout}"),
        (cfg.loss.name in tce.LOSSES, f"loss.name: unknown loss {cfg.loss.name!r}; valid: {', '.join(tce.LOSSES)}"),
        (cfg.model.name in models.MODELS,
         f"model.name: unknown model {cfg.model.name!r}; valid: {', '.join(models.MODELS)}"),
        (math.isfinite(optim.lr) and optim.lr > 0, f"optim.lr: must be a finite number > 0, got {optim.lr}"),
        (0 <= optim.momentum < 1, f"optim.momentum: must be in [0, 1), got {optim.momentum}"),
        (optim.momentum > 0 or not optim.nesterov,
         f"optim.momentum: Nesterov momentum needs momentum > 0, got {optim.momentum} (or set optim.nesterov=false)"),
        (math.isfinite(optim.weight_decay) and optim.weight_decay >= 0,
         f"optim.weight_decay: must be a finite number >= 0, got {optim.weight_decay}"),
        (all(0 < m <= 1 for m in optim.lr_milestones),
         f"optim.lr_milestones: fractions of epochs in (0, 1], got {list(optim.lr_milestones)}"),
        (0 < optim.lr_gamma <= 1, f"optim.lr_gamma: must be in (0, 1], got {optim.lr_gamma}"),
        (optim.schedule in SCHEDULES, f"optim.schedule: must be one of {', '.join(SCHEDULES)}, got {optim.schedule!r}"),
        (optim.clip_grad_norm is None or (math.isfinite(optim.clip_grad_norm) and optim.clip_grad_norm > 0),
         f"optim.clip_grad_norm: must be a finite number > 0 or null, got {optim.clip_grad_norm}"),
        (math.isfinite(cfg.augment.rotate) and 0 <= cfg.augment.rotate <= 180,
         f"augment.rotate: must be degrees in [0, 180], got {cfg.augment.rotate}"),
        (cfg.augment.fill in FILLS, f"augment.fill: must be one of {', '.join(FILLS)}, got {cfg.augment.fill!r}"),
        (cfg.noise_seed is None or cfg.noise_seed >= 0, f"noise_seed: must be >= 0 or null, got {cfg.noise_seed}"),
        (cfg.seed >= 0, f"seed: must be >= 0, got {cfg.seed}"),
        (cfg.holdout >= 0, f"holdout: must be >= 0, got {cfg.holdout}"),
        (cfg.epochs >= 1, f"epochs: must be >= 1, got {cfg.epochs}"),
        (cfg.batch_size >= 1, f"batch_size: must be >= 1, got {cfg.batch_size}"),
        (cfg.eval_batch_size is None or cfg.eval_batch_size >= 1,
         f"eval_batch_size: must be >= 1 or null, got {cfg.eval_batch_size}"),
        (cfg.eval_train_size is None or cfg.eval_train_size >= 1,
         f"eval_train_size: must be >= 1 or null, got {cfg.eval_train_size}"),
        (cfg.precision in precision.PRECISIONS,
         f"precision: must be one of {', '.join(precision.PRECISIONS)}, got {cfg.precision!r}"),
        (cfg.pack >= 1, f"pack: must be >= 1, got {cfg.pack}"),
        (cfg.compile_mode in COMPILE_MODES,
         f"compile_mode: must be one of {', '.join(COMPILE_MODES)}, got {cfg.compile_mode!r}"),
        (cfg.checkpoint_every >= 1, f"checkpoint_every: must be >= 1 epochs, got {cfg.checkpoint_every}"),
        (cfg.threads is None or cfg.threads >= 1, f"threads: must be >= 1 or null, got {cfg.threads}"),
        (bool(cfg.runs_dir.strip()), "runs_dir: must not be empty"),
        (math.isfinite(cfg.lock_timeout) and cfg.lock_timeout > 0,
         f"lock_timeout: must be a finite number of seconds > 0, got {cfg.lock_timeout}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    _check_model(cfg)
    for key, (valid, requirement) in _SYNTHETIC_KEYS.items():
        value = ds[key]
        if synthetic and (value is None or not valid(value)):
            raise ConfigError(f"dataset.{key}: {requirement}, got {value}")
        if not synthetic and value is not None:
            raise ConfigError(f"dataset.{key}: only the synthetic dataset takes it, not {ds.name}")
    try:
        check_noise(ds.name, cfg.noise_type, cfg.noise, cfg.noise_set, ds.train_size, instance_std=cfg.instance_std,
                    noise_file=_absolute(cfg.noise_file), noise_sha256=cfg.noise_sha256,
                    num_classes=class_count(ds.name, ds.num_classes))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    _check_loss_needs(cfg)
    n_train = train_set_size(ds.name, ds.train_size)
    if cfg.holdout >= n_train:
        raise ConfigError(f"holdout: {cfg.holdout} must be smaller than the {n_train}-image training set of {ds.name}")
    if cfg.drop_last and cfg.batch_size > n_train - cfg.holdout:
        portion = n_train - cfg.holdout
        raise ConfigError(f"batch_size: {cfg.batch_size} with drop_last leaves no batch of {portion} training images")
    resolve_device(cfg.device)


def _check_loss_needs(cfg: DictConfig) -> None:
    """What the loss needs, as far as the config says it: a transition matrix only for a loss that needs one, read
    from its file and checked, or an oracle that cannot be singular by the noise's own rate; and weight decay not
    set by hand where the loss's L1 penalty replaces it."""
    name, loss = cfg.loss.name, cfg.loss
    if not needs_transition(name):
        for key in TRANSITION_KEYS:
            if loss[key] is not None:
                raise ConfigError(f"loss.{key}: only a loss that needs a transition matrix takes it "
                                  f"({', '.join(n for n in tce.LOSSES if needs_transition(n))}), not {name}")
    elif loss.transition is not None:
        num_classes = class_count(cfg.dataset.name, cfg.dataset.num_classes)
        try:
            read_transition(_absolute(loss.transition), num_classes, loss.transition_sha256)
        except ValueError as error:
            raise ConfigError(f"loss.transition: {error}") from None
    elif loss.transition_sha256 is not None:
        raise ConfigError("loss.transition_sha256: given without loss.transition (the file it is the SHA-256 of)")
    else:
        nominal = nominal_transition(cfg.noise_type, cfg.noise, class_count(cfg.dataset.name, cfg.dataset.num_classes))
        if nominal is not None:
            try:
                tce.inverse_transition(nominal)
            except ValueError as error:
                raise ConfigError(f"loss: {name}'s oracle transition matrix at {cfg.noise_type} noise {cfg.noise:g}: "
                                  f"{error}") from None
    if PARAMETERS_NEED in tce.LOSS_NEEDS[name]:
        set_by_hand = hand_set_value(cfg, "optim.weight_decay")
        if set_by_hand is not None and float(set_by_hand) != 0:
            raise ConfigError(f"optim.weight_decay: {name}'s L1 penalty (loss.delta) replaces weight decay, so it "
                              f"trains with weight decay 0; remove optim.weight_decay={set_by_hand} or set it to 0")


def nominal_transition(noise_type: str, rate: float, num_classes: int) -> torch.Tensor | None:
    """The transition matrix (float64) that uniform or symmetric noise draws its labels by (data.noise.corrupt_labels):
    uniform (1 - rate) I + rate / C J, symmetric (1 - rate) I + rate / (C - 1) (J - I); None for the other noises."""
    eye, ones = torch.eye(num_classes, dtype=torch.float64), torch.ones(num_classes, num_classes, dtype=torch.float64)
    if noise_type == "uniform":
        return (1 - rate) * eye + rate / num_classes * ones
    if noise_type == "symmetric":
        return (1 - rate) * eye + rate / (num_classes - 1) * (ones - eye)
    return None


def read_transition(path: str, num_classes: int, sha256: str | None = None) -> torch.Tensor:
    """A transition matrix file: C x C comma-separated numbers, read as a plain float64 array (never unpickled) and
    checked by tce.inverse_transition; `sha256`, when given, must be the file's. One-line ValueError otherwise."""
    if not Path(path).is_file():
        raise ValueError(f"no such file {path}")
    found = None if sha256 is None else sha256_of(path)
    if found is not None and found.lower() != sha256.lower():
        raise ValueError(f"{path} has SHA-256 {found}, not the loss.transition_sha256 given ({sha256})")
    try:
        matrix = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise ValueError(f"cannot read {path} as comma-separated numbers ({one_line(error)})") from None
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(f"{path} holds a {'x'.join(map(str, matrix.shape))} matrix, not {num_classes}x{num_classes} "
                         f"(one row and column per class)")
    transition = torch.from_numpy(matrix)
    tce.inverse_transition(transition)
    return transition


def hand_set_value(cfg: DictConfig, key: str) -> str | None:
    """The value `key` was given on the command line (a Hydra override, such as optim.weight_decay=1e-4), or None:
    what a config group (a recipe or a preset) sets is not set by hand. Read from Hydra's own record of the run's
    overrides: HydraConfig when Hydra runs, else the hydra node of a config composed with it."""
    if "hydra" in cfg:
        overrides = list(cfg.hydra.overrides.task)
    elif HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    else:
        return None
    found = None
    for override in overrides:
        name, _, value = override.lstrip("+~").partition("=")
        if name == key:
            found = value
    return found


def _check_model(cfg: DictConfig) -> None:
    """The model's own requirements: resnet's depth (null for the others), packing, a fixed input size."""
    name, depth = cfg.model.name, cfg.model.depth
    model = models.MODELS[name]
    if name == "resnet" and (depth is None or depth < 8 or (depth - 2) % 6):
        raise ConfigError(f"model.depth: must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
    if name != "resnet" and depth is not None:
        raise ConfigError(f"model.depth: only model=resnet takes a depth, not {name} (model={name} sets it null)")
    if cfg.pack > 1 and not model.packs:
        raise ConfigError(f"pack: {cfg.pack} runs cannot train as one {name}; only model=resnet packs (use pack=1)")
    size = cfg.dataset.image_size or 32  # the real datasets' images are 32 x 32
    if model.input_size is not None and size != model.input_size:
        raise ConfigError(f"dataset.image_size: {name} reads {model.input_size} x {model.input_size} images only "
                          f"(its flatten size is fixed), got {size}")


def _absolute(path: str | None) -> str | None:
    """A path as an absolute one (~ expanded), so that a run finds its file from any working directory."""
    return None if path is None else str(Path(path).expanduser().resolve())


def _loss_defaults(loss: str, dataset: str) -> dict:
    """The parameters of `loss` with their defaults: the authors' value for the dataset, else the loss's own."""
    per_dataset = DATASET_LOSS_DEFAULTS.get(loss, {})
    return {**tce.LOSS_PARAMS[loss], **per_dataset.get(dataset, per_dataset.get("cifar10", {}))}


def with_defaults(cfg: DictConfig) -> DictConfig:
    """A copy of a composed config with the derived values a run's identity depends on filled in, without
    checking them: noise_seed, instance noise's instance_std, a noise file's absolute path and SHA-256 (read
    from the file when not given), and the loss's: its parameters (given, else their default) with the others null,
    a transition file's absolute path and SHA-256, and weight decay 0 for a loss whose L1 penalty replaces it
    (tce.LOSS_NEEDS "parameters")."""
    if "hydra" in cfg:  # composed with Hydra's node, which says how the run was launched, not what it is
        cfg = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    OmegaConf.set_struct(cfg, True)
    if cfg.noise_seed is None:
        cfg.noise_seed = cfg.seed
    if cfg.noise_type == "instance" and cfg.instance_std is None:
        cfg.instance_std = DEFAULT_STD
    if cfg.noise_type == "file" and cfg.noise_file is not None:
        cfg.noise_file = _absolute(cfg.noise_file)
        cfg.noise_sha256 = (cfg.noise_sha256 or sha256_of(cfg.noise_file)).lower()
    if cfg.loss.transition is not None:
        cfg.loss.transition = _absolute(cfg.loss.transition)
        cfg.loss.transition_sha256 = (cfg.loss.transition_sha256 or sha256_of(cfg.loss.transition)).lower()
    if PARAMETERS_NEED in tce.LOSS_NEEDS[cfg.loss.name]:  # its L1 penalty replaces weight decay
        if cfg.loss.replaced_weight_decay is None:
            cfg.loss.replaced_weight_decay = cfg.optim.weight_decay
        cfg.optim.weight_decay = 0.0
    else:
        cfg.loss.replaced_weight_decay = None
    defaults = _loss_defaults(cfg.loss.name, cfg.dataset.name)
    for key in LOSS_KEYS:
        given = cfg.loss[key]
        cfg.loss[key] = (defaults[key] if given is None else given) if key in defaults else None
    return cfg


def _composed_run_name(cfg: DictConfig) -> str:
    """run_name of a config as Hydra composed it, for hydra.run.dir; a config that cannot be named is refused by
    resolve before the run starts, so it gets a placeholder rather than an error inside Hydra."""
    try:
        # Without the hydra node: resolving it would evaluate hydra.run.dir, and so this resolver, again.
        return run_name(with_defaults(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])))
    except Exception:  # noqa: BLE001 - whatever is wrong, resolve reports it in one line
        return "invalid-config"


_said: set[str] = set()


def _say_once(message: str) -> None:
    """A warning that a sweep, which resolves every one of its runs, gives once per process."""
    if message not in _said:
        _said.add(message)
        logging.getLogger("tce").warning(message)


def resolve(cfg: DictConfig, job_num: int = 0) -> DictConfig:
    """A validated copy with every derived value filled in: what the run records and what its name depends on."""
    validate(cfg)
    cfg = with_defaults(cfg)
    try:
        tce.build_loss(cfg.loss.name, **loss_params(cfg.loss))
    except ValueError as error:  # tce's messages start with the parameter's name
        key, message = " ".join(str(error).split()).split(" ", 1)
        raise ConfigError(f"loss.{key}: {message}") from None
    device = resolve_device(cfg.device, job_num)
    if cfg.device == "auto" and device.type == "cpu" and cfg.dataset.name != "synthetic":
        _say_once(f"device=auto: no usable GPU here, so {cfg.dataset.name} trains on the CPU (hours per run)")
    cfg.device = str(device)
    if cfg.precision not in precision.supported(device):
        raise ConfigError(
            f"precision: {cfg.precision} is not computed natively on {device} (supported: "
            f"{', '.join(precision.supported(device))})"
        )
    if cfg.compile is None:
        cfg.compile = device.type == "cuda"
    if cfg.channels_last is None:
        cfg.channels_last = device.type == "cuda"
    if cfg.compile_mode == "reduce-overhead" and (device.type != "cuda" or not cfg.compile):
        raise ConfigError(
            f"compile_mode: reduce-overhead (CUDA graphs) needs a CUDA device and compile=true, not {device} "
            f"with compile={str(cfg.compile).lower()}"
        )
    if cfg.eval_batch_size is None:
        cfg.eval_batch_size = 1000 if device.type == "cuda" else 256
    return cfg
