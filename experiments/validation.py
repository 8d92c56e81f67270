"""Validation of a composed config: every value a run depends on, checked before any data is touched; a bad one
raises ConfigError, one line naming the key (train.py prints it and exits 2)."""

import dataclasses
import functools
import math
from dataclasses import fields
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import models
import tce
from data import DATASETS, NoiseSpec, nominal_transition, one_line, train_set_size
from data.loader import FILLS
from data.sources import class_count
from data.synthetic import MIN_SIZE, SIZE
from experiments import precision
from experiments.limits import check_batches, check_loss_parameters, check_runs_dir, seed_checks
from experiments.needs import PARAMETERS_NEED, needs_transition, read_transition
from experiments.schema import (
    COMPILE_MODES,
    OPTIMIZER_KEYS,
    OPTIMIZERS,
    SCHEDULES,
    TRANSITION_KEYS,
    ConfigError,
    TrainConfig,
)


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
    "seed": (lambda v: True, "the synthetic dataset needs its generator's seed"),  # its range: limits.seed_checks
    "image_size": (lambda v: MIN_SIZE <= v <= SIZE,
                   f"the synthetic dataset's image size must lie in [{MIN_SIZE}, {SIZE}]"),
}


def validate(cfg: DictConfig) -> None:
    """Check every value a run depends on, before any data is touched."""
    unknown = [key for key in _unknown_keys(cfg, TrainConfig) if key != "hydra"]  # Hydra's node, when composed with it
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a key of the config (experiments/schema.py lists them)")
    for ok, message in (*seed_checks(cfg), *_recipe_checks(cfg), *_run_checks(cfg)):
        if not ok:
            raise ConfigError(message)
    _check_optimizer_keys(cfg)
    _check_model(cfg)
    _check_synthetic(cfg)
    ds = cfg.dataset
    try:
        noise = dataclasses.replace(NoiseSpec.of(cfg), file=absolute(cfg.noise_file))
        noise.check(ds.name, ds.train_size, class_count(ds.name, ds.num_classes))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    check_loss_parameters(cfg)
    _check_loss_needs(cfg)
    n_train = train_set_size(ds.name, ds.train_size)
    if cfg.holdout >= n_train:
        raise ConfigError(f"holdout: {cfg.holdout} must be smaller than the {n_train}-image training set of {ds.name}")
    if cfg.drop_last and cfg.batch_size > n_train - cfg.holdout:
        portion = n_train - cfg.holdout
        raise ConfigError(f"batch_size: {cfg.batch_size} with drop_last leaves no batch of {portion} training images")
    check_batches(cfg, n_train - cfg.holdout)
    check_runs_dir(cfg.runs_dir)
    resolve_device(cfg.device)


def _recipe_checks(cfg: DictConfig) -> list[tuple[bool, str]]:
    """(whether it holds, the one line if not) for the keys of the dataset, the loss, the model and the optimizer."""
    ds, optim = cfg.dataset, cfg.optim
    return [
        (ds.name in DATASETS, f"dataset.name: unknown dataset {ds.name!r}; valid: {', '.join(DATASETS)}"),
        (ds.train_size is None or ds.train_size >= 1, f"dataset.train_size: must be >= 1 or null, got {ds.train_size}"),
        (ds.test_size is None or ds.test_size >= 1, f"dataset.test_size: must be >= 1 or null, got {ds.test_size}"),
        (ds.val_holdout >= 1, f"dataset.val_holdout: must be >= 1, got {ds.val_holdout}"),
        (cfg.loss.name in tce.LOSSES, f"loss.name: unknown loss {cfg.loss.name!r}; valid: {', '.join(tce.LOSSES)}"),
        (cfg.model.name in models.MODELS,
         f"model.name: unknown model {cfg.model.name!r}; valid: {', '.join(models.MODELS)}"),
        (optim.name in OPTIMIZERS, f"optim.name: must be one of {', '.join(OPTIMIZERS)}, got {optim.name!r}"),
        (math.isfinite(optim.lr) and optim.lr > 0, f"optim.lr: must be a finite number > 0, got {optim.lr}"),
        (len(optim.betas) == 2 and all(0 <= b < 1 for b in optim.betas),
         f"optim.betas: two numbers in [0, 1), got {list(optim.betas)}"),
        (math.isfinite(optim.eps) and optim.eps > 0, f"optim.eps: must be a finite number > 0, got {optim.eps}"),
        (0 <= optim.momentum < 1, f"optim.momentum: must be in [0, 1), got {optim.momentum}"),
        (optim.momentum > 0 or not optim.nesterov,
         f"optim.momentum: Nesterov momentum needs momentum > 0, got {optim.momentum} (or set optim.nesterov=false)"),
        (math.isfinite(optim.weight_decay) and optim.weight_decay >= 0,
         f"optim.weight_decay: must be a finite number >= 0, got {optim.weight_decay}"),
        (all(0 < m < 1 for m in optim.lr_milestones) and list(optim.lr_milestones) == sorted(set(optim.lr_milestones)),
         f"optim.lr_milestones: strictly increasing fractions of epochs in (0, 1), got {list(optim.lr_milestones)}"),
        (0 < optim.lr_gamma <= 1, f"optim.lr_gamma: must be in (0, 1], got {optim.lr_gamma}"),
        (optim.schedule in SCHEDULES, f"optim.schedule: must be one of {', '.join(SCHEDULES)}, got {optim.schedule!r}"),
        (math.isfinite(optim.lr_min) and 0 <= optim.lr_min < optim.lr,
         f"optim.lr_min: must be a number in [0, optim.lr), got {optim.lr_min}"),
        ((optim.schedule == "cosine_restarts") == (optim.restart_epochs is not None)
         and (optim.restart_epochs is None or optim.restart_epochs >= 1),
         f"optim.restart_epochs: the epochs of a cycle (>= 1) with schedule=cosine_restarts, null otherwise, got "
         f"{optim.restart_epochs} with schedule={optim.schedule}"),
        (optim.clip_grad_norm is None or (math.isfinite(optim.clip_grad_norm) and optim.clip_grad_norm > 0),
         f"optim.clip_grad_norm: must be a finite number > 0 or null, got {optim.clip_grad_norm}"),
    ]


def _run_checks(cfg: DictConfig) -> list[tuple[bool, str]]:
    """(whether it holds, the one line if not) for the augmentation's keys and the run's own."""
    return [
        (math.isfinite(cfg.augment.rotate) and 0 <= cfg.augment.rotate <= 180,
         f"augment.rotate: must be degrees in [0, 180], got {cfg.augment.rotate}"),
        (cfg.augment.fill in FILLS, f"augment.fill: must be one of {', '.join(FILLS)}, got {cfg.augment.fill!r}"),
        (cfg.holdout >= 0, f"holdout: must be >= 0, got {cfg.holdout}"),
        (cfg.epochs >= 1, f"epochs: must be >= 1, got {cfg.epochs}"),
        (0 <= cfg.optim.warmup_epochs < cfg.epochs,  # after epochs' own check: the schedule needs an epoch
         f"optim.warmup_epochs: must be in [0, epochs={cfg.epochs}), got {cfg.optim.warmup_epochs}"),
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
        (cfg.detect_snapshots >= 1, f"detect_snapshots: must be >= 1 epochs, got {cfg.detect_snapshots}"),
        (cfg.threads is None or cfg.threads >= 1, f"threads: must be >= 1 or null, got {cfg.threads}"),
        (math.isfinite(cfg.lock_timeout) and cfg.lock_timeout > 0,
         f"lock_timeout: must be a finite number of seconds > 0, got {cfg.lock_timeout}"),
    ]


def _check_synthetic(cfg: DictConfig) -> None:
    """The synthetic dataset's own keys: set, and valid, for it; null for the real datasets."""
    ds = cfg.dataset
    for key, (valid, requirement) in _SYNTHETIC_KEYS.items():
        value = ds[key]
        if ds.name == "synthetic" and (value is None or not valid(value)):
            raise ConfigError(f"dataset.{key}: {requirement}, got {value}")
        if ds.name != "synthetic" and value is not None:
            raise ConfigError(f"dataset.{key}: only the synthetic dataset takes it, not {ds.name}")


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
            read_transition(absolute(loss.transition), num_classes, loss.transition_sha256)
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
    # The composed value, of its key's type, decides; the override's text, which may be quoted ('5e-4'), is named.
    typed = hand_set_value(cfg, "optim.weight_decay")
    if PARAMETERS_NEED in tce.LOSS_NEEDS[name] and typed is not None and cfg.optim.weight_decay != 0:
        typed = typed.strip("'\"")
        raise ConfigError(f"optim.weight_decay: {name}'s L1 penalty (loss.delta) replaces weight decay, so it trains "
                          f"with weight decay 0; remove optim.weight_decay={typed} or set it to 0")


def _check_optimizer_keys(cfg: DictConfig) -> None:
    """A key that only another optimizer reads (momentum for adam, say), set by hand, would be silently ignored."""
    name = cfg.optim.name
    others = sorted({key for keys in OPTIMIZER_KEYS.values() for key in keys} - set(OPTIMIZER_KEYS[name]))
    for key in others:
        if hand_set_value(cfg, f"optim.{key}") is not None:
            readers = [other for other, keys in OPTIMIZER_KEYS.items() if key in keys]
            raise ConfigError(f"optim.{key}: read by optim.name={' or '.join(readers)} only, not by {name}; remove it")


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


def absolute(path: str | None) -> str | None:
    """A path as an absolute one (~ expanded), so that a run finds its file from any working directory."""
    return None if path is None else str(Path(path).expanduser().resolve())


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
