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

from collections.abc import Callable

import torch

from tce import functional
from tce._checks import check_alpha, check_logits_and_target
from tce.factory import _LOSS_FUNCTIONS, LOSSES

# (what per_sample takes: the log-probabilities or the logits; per_sample) of the paper's losses; the others carry
# theirs (tce.functional's _loss_of_log_probs).
_PAPER = {
    "ce": (functional.log_probs_of, functional.cross_entropy_per_sample),
    "tce": (functional.log_probs_of, functional.tamed_per_sample),
    "mse": (functional._identity, functional.mse_per_sample),
    "mae": (functional._identity, functional.mae_per_sample),
}
_FORMS: dict[str, tuple[Callable, Callable]] = {
    **_PAPER, **{name: (loss.prepare, loss.per_sample) for name, loss in _LOSS_FUNCTIONS.items()},
}
#: For each loss, the parameters that take one value per call.
PER_CALL: dict[str, tuple[str, ...]] = {name: (*_LOSS_FUNCTIONS[name].per_call,) if name in _LOSS_FUNCTIONS else ()
                                        for name in LOSSES}
#: For each loss that needs the model's parameters, the parameter that weighs its L1 penalty; None for the others.
PENALTY: dict[str, str | None] = {name: _LOSS_FUNCTIONS[name].penalty if name in _LOSS_FUNCTIONS else None
                                  for name in LOSSES}


def check_params(name: str, params: dict) -> dict:
    """Every parameter of the loss `name`, defaults filled in and values checked, as build_loss checks them: a
    TypeError for an unknown or missing one, a ValueError for a bad value."""
    if name in _LOSS_FUNCTIONS:
        return _LOSS_FUNCTIONS[name].check_params(params)
    if name not in _PAPER:
        raise ValueError(f"unknown loss {name!r}; valid names are {LOSSES}")
    if name == "tce":
        unknown = set(params) - {"alpha"}
        if unknown:
            raise TypeError(f"tamed_cross_entropy() got an unexpected keyword argument {sorted(unknown)[0]!r}")
        return {"alpha": check_alpha(params.get("alpha", 1.0))}
    if params:
        raise TypeError(f"{name} takes no parameters, got {sorted(params)}")
    return {}


def family(name: str, params: dict) -> tuple:
    """What settings of one loss must share to be computed in one call: the loss and its per-call parameters."""
    return (name, *((key, params[key]) for key in PER_CALL[name]))


def per_sample_loss(name: str, logits: torch.Tensor, target: torch.Tensor, **params) -> torch.Tensor:
    """The (N,) losses of rows that each may have their own parameters and needs, without a penalty (see the module
    docstring)."""
    check_logits_and_target(logits, target)
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    prepare, per_sample = _FORMS[name]
    return per_sample(prepare(logits), target.long(), **params)
