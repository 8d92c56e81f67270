"""What a run's loss needs beyond logits and labels (tce.LOSS_NEEDS) that comes from its config and data, made once
before training: its transition matrix (T, or T^-1 in float64) and its memory. The trainer provides the others (the
model's parameters, each sample's index) at each step, and keeps the memory on the device (experiments/trainer.py
PackLoss); the checkpoint holds it between epochs (experiments/run.py)."""

import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

import tce
from data import RunData, noise_matrix
from data.errors import one_line
from data.label_files import sha256_of

#: What a loss needs (tce.LOSS_NEEDS) that is a transition matrix, T or its inverse: the engine provides it from
#: loss.transition, else from the run's noise.
TRANSITION_NEEDS = ("transition", "transition_inverse")
#: What a loss needs that is the model's parameters: the run trains with weight decay 0, its L1 penalty replacing it.
PARAMETERS_NEED = "parameters"
#: What needs.py makes for a run, of the names in tce.LOSS_NEEDS.
MADE = (*TRANSITION_NEEDS, "memory")
#: Those of them that the loss changes as it trains: its state, which the checkpoint holds.
STATEFUL = ("memory",)


def needs_transition(name: str) -> bool:
    """Whether the loss `name` needs a transition matrix (T or its inverse)."""
    return any(need in TRANSITION_NEEDS for need in tce.LOSS_NEEDS[name])


def read_transition(path: str, num_classes: int, sha256: str | None = None) -> torch.Tensor:
    """A transition matrix file: C x C comma-separated numbers, read as a plain float64 array (never unpickled) and
    checked by tce.inverse_transition; `sha256`, when given, must be the file's. One-line ValueError otherwise."""
    if not Path(path).is_file():
        raise ValueError(f"no such file {path}")
    found = None if sha256 is None else sha256_of(path)
    if found is not None and found.lower() != sha256.lower():
        raise ValueError(f"{path} has SHA-256 {found}, not the loss.transition_sha256 given ({sha256})")
    try:
        with warnings.catch_warnings():  # numpy's warning (an empty file) becomes this one line, not extra lines
            warnings.simplefilter("error")
            matrix = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (ValueError, UserWarning) as error:
        raise ValueError(f"cannot read {path} as comma-separated numbers ({one_line(error)})") from None
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(f"{path} holds a {'x'.join(map(str, matrix.shape))} matrix, not {num_classes}x{num_classes} "
                         f"(one row and column per class)")
    transition = torch.from_numpy(matrix)
    tce.inverse_transition(transition)
    return transition


def oracle_transition(data: RunData, train_idx: torch.Tensor) -> torch.Tensor:
    """The run's realized noise matrix of its training portion (the counts of noise_matrix.csv, row = clean class,
    column = noisy label, over the images it trains on), normalized by rows, float64."""
    counts = noise_matrix(data.clean_labels[train_idx], data.noisy_labels[train_idx], data.num_classes).double()
    return counts / counts.sum(dim=1, keepdim=True)


def make_needs(cfg: DictConfig, data: RunData, train_idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """The needs of the run's loss that needs.py makes (MADE), on the CPU: the transition matrix, checked (ValueError,
    one line, where it is singular or not row-stochastic), and a zero memory of one float32 row per training sample."""
    wanted = tce.LOSS_NEEDS[cfg.loss.name]
    made: dict[str, torch.Tensor] = {}
    if needs_transition(cfg.loss.name):
        if cfg.loss.transition is not None:
            transition = read_transition(cfg.loss.transition, data.num_classes, cfg.loss.transition_sha256)
            where = f"the transition matrix of {cfg.loss.transition}"
        else:
            transition = oracle_transition(data, train_idx)
            where = "the oracle transition matrix (the realized noise of the training portion)"
        try:
            inverse = tce.inverse_transition(transition)
        except ValueError as error:
            raise ValueError(f"loss: {cfg.loss.name} cannot train on {where}: {error}") from None
        made.update({"transition": transition, "transition_inverse": inverse})
    if "memory" in wanted:
        made["memory"] = torch.zeros(len(data.loader.labels), data.num_classes)
    return {need: value for need, value in made.items() if need in wanted}
