"""Many settings of one loss in one call, for code that trains several models side by side (a pack of runs) and
computes each loss once for all of them rather than once per model.

    per_sample_loss(name, logits, target, **params)

takes logits (N, C) and int64 targets (N,) whose rows may belong to different settings of the loss `name` (one of
tce.LOSSES): each parameter is either one Python value for every row or a tensor of N values, one per row. It
returns the (N,) losses, row i's equal, up to float rounding, to `build_loss(name, reduction="none", **params_i)`
of that row alone. The parameters in PER_CALL[name] (Taylor's number of terms, LogitClip's norm and semantics)
shape the computation itself and take one value per call: a caller groups its settings by them (`family`).

What a loss needs (tce.LOSS_NEEDS) is passed by name as to the loss itself, a transition matrix one for all rows or
one per row (N, C, C), except the model's parameters: per_sample_loss leaves out the L1 penalty of the losses that
need them, whose weight (PENALTY[name]) the caller takes out of the parameters and applies to each model's own.

Values are checked by `check_params` for each setting, not here: a tensor's values are the caller's.
"""

import torch

from tce.factory import _LOSS_FUNCTIONS, LOSSES
from tce.loss_maker import checked_logits

#: For each loss, the parameters that take one value per call.
PER_CALL: dict[str, tuple[str, ...]] = {name: loss.per_call for name, loss in _LOSS_FUNCTIONS.items()}
#: For each loss that needs the model's parameters, the parameter that weighs its L1 penalty; None for the others.
PENALTY: dict[str, str | None] = {name: loss.penalty for name, loss in _LOSS_FUNCTIONS.items()}


def check_params(name: str, params: dict) -> dict:
    """Every parameter of the loss `name`, defaults filled in and values checked, as build_loss checks them: a
    TypeError for an unknown or missing one, a ValueError for a bad value."""
    if name not in _LOSS_FUNCTIONS:
        raise ValueError(f"unknown loss {name!r}; valid names are {LOSSES}")
    return _LOSS_FUNCTIONS[name].check_params(params)


def family(name: str, params: dict) -> tuple:
    """What settings of one loss must share to be computed in one call: the loss and its per-call parameters."""
    return (name, *((key, params[key]) for key in PER_CALL[name]))


def per_sample_loss(name: str, logits: torch.Tensor, target: torch.Tensor, **params) -> torch.Tensor:
    """The (N,) losses of rows that each may have their own parameters and needs, without a penalty (see the module
    docstring)."""
    loss = _LOSS_FUNCTIONS[name]
    return loss.per_sample(loss.prepare(checked_logits(logits, target)), target.long(), **params)
