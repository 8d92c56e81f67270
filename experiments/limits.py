"""Checks of a composed config that its keys' types cannot state: the seeds' range, where runs_dir can be, the loss's
parameters, a batch of one image, and a sweep's parameters; each problem one line naming the key (ConfigError).

Their types are OmegaConf's at composition (the schema's annotations): a quoted number that parses as one of its
key's type is that number, anything else is refused there, so every check here reads numbers of their key's type.
"""

import os
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import models
import tce
from data.sources import class_count
from experiments.schema import LOSS_KEYS, ConfigError, TrainConfig, flatten

# Every key that seeds a generator (seed, noise_seed, dataset.seed, dataset.split_seed, ...), from the schema.
SEED_KEYS = tuple(key for key in flatten(OmegaConf.to_container(OmegaConf.structured(TrainConfig)))
                  if key.rsplit(".", 1)[-1] == "seed" or key.endswith("_seed"))
SEED_LIMIT = 2**63  # torch.Generator.manual_seed takes an int64; numpy any size


def seed_checks(cfg: DictConfig) -> list[tuple[bool, str]]:
    """(whether it holds, the one line if not) for every seed: null (where its key allows it) or in [0, 2^63)."""
    return [(value is None or 0 <= value < SEED_LIMIT, f"{key}: a seed must be in [0, 2^63), got {value}")
            for key in SEED_KEYS for value in [OmegaConf.select(cfg, key)]]


def check_runs_dir(runs_dir: str) -> None:
    """runs_dir is a directory, or one that can be made: its nearest existing ancestor is a writable directory."""
    if not runs_dir.strip():
        raise ConfigError("runs_dir: must not be empty")
    path = Path(runs_dir).expanduser().absolute()
    try:
        existing = next(p for p in (path, *path.parents) if p.exists())
    except OSError as error:  # an ancestor that cannot be looked into
        raise ConfigError(f"runs_dir: {runs_dir} cannot be looked up ({error.strerror})") from None
    if not existing.is_dir():
        where = "exists and is not a directory" if existing == path else f"cannot be created: {existing} is a file"
        raise ConfigError(f"runs_dir: {runs_dir} {where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"runs_dir: {runs_dir} cannot be written: {existing} is not writable")


def in_sweep(cfg: DictConfig) -> bool:
    """Whether the config is one run of a multirun sweep: Hydra's node of a config composed with it, else
    HydraConfig when Hydra runs (a sweep's job); a config composed without Hydra is a single run."""
    if "hydra" in cfg:
        return cfg.hydra.mode == RunMode.MULTIRUN
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def foreign_parameters(cfg: DictConfig) -> list[str]:
    """The loss parameters set (not null) that the config's loss does not take."""
    return [key for key in LOSS_KEYS if cfg.loss[key] is not None and key not in tce.LOSS_PARAMS[cfg.loss.name]]


def check_loss_parameters(cfg: DictConfig) -> None:
    """A single run's loss takes every parameter set for it. In a sweep a parameter may be set for some of its
    losses only (`loss=ce,tce loss.alpha=1,2`): the others record it as null, and check_sweep_parameters refuses
    one that no loss of the sweep takes."""
    foreign = foreign_parameters(cfg)
    if foreign and not in_sweep(cfg):
        name = cfg.loss.name
        raise ConfigError(f"loss.{foreign[0]}: {name} does not take it (its parameters: "
                          f"{', '.join(tce.LOSS_PARAMS[name]) or 'none'})")


def check_sweep_parameters(configs: list[DictConfig]) -> str | None:
    """Refuses a loss parameter that the sweep's composed configs set but none of their losses takes; returns the
    line that says which parameters the losses without them record as null, or None."""
    set_for: dict[str, set[str]] = {}
    ignored_by: dict[str, set[str]] = {}
    for cfg in configs:
        for key in LOSS_KEYS:
            if cfg.loss[key] is not None:
                taken = key in tce.LOSS_PARAMS.get(cfg.loss.name, {})
                (set_for if taken else ignored_by).setdefault(key, set()).add(cfg.loss.name)
    unused = sorted(ignored_by.keys() - set_for.keys())
    if unused:
        key = unused[0]
        raise ConfigError(f"loss.{key}: no loss of this sweep takes it ({', '.join(sorted(ignored_by[key]))})")
    if not ignored_by:
        return None
    return "; ".join(f"loss.{key} is recorded as null for {', '.join(sorted(ignored_by[key]))}, which do not take it"
                     for key in sorted(ignored_by))


def check_batches(cfg: DictConfig, portion: int) -> None:
    """No batch of the `portion` training images is a single image where the network cannot train on one: a
    BatchNorm that would see one value per channel (cnn8's BatchNorm1d after its flatten) raises at that batch, at
    the end of an epoch. ResNets normalize over the batch and the image's pixels, so that they can."""
    last = portion % cfg.batch_size
    if cfg.batch_size != 1 and (last != 1 or cfg.drop_last):
        return
    if _trains_on_one_image(cfg):
        return
    which = "every batch" if cfg.batch_size == 1 else "the last batch"
    raise ConfigError(f"batch_size: {cfg.batch_size} makes {which} of the {portion}-image training portion a single "
                      f"image, which {cfg.model.name}'s BatchNorm cannot train on; choose another batch_size"
                      f"{'' if cfg.batch_size == 1 else ' or drop_last=true'}")


def _trains_on_one_image(cfg: DictConfig) -> bool:
    """Whether the network takes a training step's forward pass on one (blank) image. Three channels whatever the
    dataset's: the values a BatchNorm sees per channel depend on the batch and the image size only."""
    size = cfg.dataset.image_size or 32  # the real datasets' images are 32 x 32
    classes = class_count(cfg.dataset.name, cfg.dataset.num_classes)
    with torch.random.fork_rng(devices=[]):  # its throwaway weights draw from the global generator
        network = models.build(cfg.model.name, cfg.model.depth, 3, classes).train()
    try:
        with torch.no_grad():
            network(torch.zeros(1, 3, size, size))
    except ValueError:  # torch's "Expected more than 1 value per channel when training"
        return False
    return True
