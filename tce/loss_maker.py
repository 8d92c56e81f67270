"""What makes a loss of logits (N, C) and class indices (N,) out of its loss per sample, and the small functions of
log-probabilities the losses are written with.

A loss is written once, as `per_sample(inputs, target, *, **needs, **params)`: the loss of each sample from the
log-probabilities log_softmax(logits) (`_loss_of_log_probs`), the probabilities softmax(logits) (`_loss_of_probs`)
or the logits themselves (`_loss_of_logits`), and int64 targets. The decorator makes the loss of logits that every
caller uses, with what all losses share: the checks of logits, targets, reduction and parameters, float32 for
16-bit logits, the reduction over the batch, the L1 penalty of the losses that need the model's parameters, and
the attributes that `tce.factory`, `tce.modules` and `tce.batched` read (per_sample, prepare, per_call,
check_params, needs, penalty).
"""

import functools
import inspect
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from tce._checks import (
    NONNEGATIVE,
    Choice,
    Count,
    Interval,
    check_logits_and_target,
    check_reduction,
    check_transition,
)

_Check = Interval | Count | Choice
_Decorator = Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]

#: What a loss may need beyond logits and targets: keyword arguments its caller provides, by these names (the training
#: engine provides each: experiments/needs.py). `tce.LOSS_NEEDS` lists each loss's.
#: - parameters: the model's parameters, an iterable of tensors; the loss adds delta * sum |theta| over all of them.
#: - transition: the label transition matrix T (C, C), T_ij = P(noisy label j | true class i), checked by
#:   `check_transition`; or one per sample, (N, C, C).
#: - transition_inverse: T^-1 (C, C) (`inverse_transition(T)` checks T and inverts it), or one per sample.
#: - index: int64 (N,), each sample's row of `memory`, no two alike.
#: - memory: a float (M, C) tensor of zeros before training, one row per training sample, that the loss updates in
#:   place (its state; a resumed training run restores it).
NEEDS = ("parameters", "transition", "transition_inverse", "index", "memory")
#: The parameter that weighs the L1 penalty of a loss that needs the model's parameters.
PENALTY_WEIGHT = "delta"


def _loss_of_log_probs(
    per_call: tuple[str, ...] = (), penalized: bool = False, positional: bool = False, **checks: _Check
) -> _Decorator:
    """Decorator: makes a loss of logits out of `per_sample(log_probs, target, *, **needs, **params)`, which
    returns the loss of each sample from log_softmax(logits) (N, C) and int64 targets (N,).

    The loss made takes (logits, target, *, **needs, **params, reduction="mean"): it checks its inputs like the
    other losses, computes in float32 for 16-bit logits, checks each parameter with `checks[name]` and reduces
    over the batch. The defaults of the parameters are those in the signature of `per_sample`, the one
    place they are stated. The loss keeps `per_sample` (for composing losses) and `check_params` (for
    modules, which check their parameters when built). Keyword arguments of per_sample named in NEEDS are what
    the loss needs from its caller (`needs`); they have no check.

    With `penalized`, the loss also needs the model's `parameters` and takes a parameter `delta` >= 0: its value is
    the reduced per-sample loss plus delta * sum |theta| over every parameter (with reduction "none", each sample's
    loss carries the whole penalty, so that their mean is the "mean" loss). per_sample is the loss without it.

    With `positional`, the loss takes its parameters and then `reduction` by position too, (logits, target,
    **params, reduction="mean"), as the paper's losses always have; per_sample still takes them by keyword.

    per_sample may also be called with a tensor of one value per sample for each parameter (tce.batched),
    except those named in `per_call` (a count, a string, a norm's order): one value for all samples.
    """
    return _per_sample_loss(log_probs_of, per_call, checks, penalized, positional)


def _loss_of_probs(positional: bool = False, **checks: _Check) -> _Decorator:
    """`_loss_of_log_probs` for a `per_sample(probs, target, *, **params)` of softmax(logits) (N, C): for a loss
    of p itself (MSE, MAE), which exp(log_softmax(logits)) would round differently from softmax(logits)."""
    return _per_sample_loss(probs_of, (), checks, positional=positional)


def _loss_of_logits(per_call: tuple[str, ...] = (), **checks: _Check) -> _Decorator:
    """`_loss_of_log_probs` for a `per_sample(logits, target, *, **params)` that takes the (checked, float32
    for 16-bit) logits themselves: for a loss that transforms them before the softmax."""
    return _per_sample_loss(_identity, per_call, checks)


def log_probs_of(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits, dim=1)


def probs_of(logits: torch.Tensor) -> torch.Tensor:
    return F.softmax(logits, dim=1)


def _identity(logits: torch.Tensor) -> torch.Tensor:
    return logits


def checked_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Checks logits and target and returns the logits in the dtype the loss is computed in."""
    check_logits_and_target(logits, target)
    # exp/log of 16-bit floats lose too much for a loss; this keeps autocast training accurate.
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _per_sample_loss(
    prepare: Callable[[torch.Tensor], torch.Tensor], per_call: tuple[str, ...], checks: dict[str, _Check],
    penalized: bool = False, positional: bool = False,
) -> _Decorator:
    """The decorator of `_loss_of_log_probs`, with `prepare` the map from logits to per_sample's input."""
    if penalized:
        checks = {**checks, PENALTY_WEIGHT: NONNEGATIVE}

    def decorate(per_sample: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        name = per_sample.__name__
        needs, params = _arguments(per_sample, checks, penalized)
        by_position = (*(p.name for p in params), "reduction") if positional else ()

        @functools.wraps(per_sample)
        def loss(logits: torch.Tensor, target: torch.Tensor, *args, **kwargs) -> torch.Tensor:
            kwargs = _named(name, by_position, args, kwargs)
            reduction = kwargs.pop("reduction", "mean")
            if isinstance(kwargs.get("transition"), torch.Tensor) and kwargs["transition"].dim() == 2:
                check_transition(kwargs["transition"])  # one T for all: checked (per sample: the caller's)
            kwargs = _checked(checks, kwargs)
            add_penalty, kwargs = _split_penalty(name, kwargs) if penalized else (_identity, kwargs)
            check_reduction(reduction)
            inputs = prepare(checked_logits(logits, target))
            return add_penalty(_reduce(per_sample(inputs, target.long(), **kwargs), reduction))

        _give_own_code_object(loss, name)
        loss.per_sample = per_sample
        loss.prepare = prepare
        loss.per_call = per_call
        loss.check_params = functools.partial(_check_params, name, inspect.Signature(params), checks)
        loss.needs = tuple(p.name for p in needs)
        loss.penalty = PENALTY_WEIGHT if penalized else None  # the parameter per_sample does not take
        loss.__signature__ = _signature(needs, params, positional)
        return loss

    return decorate


def _arguments(
    per_sample: Callable[..., torch.Tensor], checks: dict[str, _Check], penalized: bool
) -> tuple[list[inspect.Parameter], list[inspect.Parameter]]:
    """What the loss needs and its parameters: per_sample's keyword arguments after (inputs, target), those named in
    NEEDS and the others, with `penalized` also the model's parameters and the penalty's weight."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    arguments = list(inspect.signature(per_sample).parameters.values())[2:]
    needs = [p for p in arguments if p.name in NEEDS]
    params = [p for p in arguments if p.name not in NEEDS]
    if penalized:
        needs.insert(0, inspect.Parameter("parameters", keyword))
        params.append(inspect.Parameter(PENALTY_WEIGHT, keyword, annotation=float))
    if set(checks) != {p.name for p in params} or any(p.kind != keyword for p in arguments):
        raise TypeError(f"{per_sample.__name__}: each parameter must be keyword-only and have a check")
    return needs, params


def _signature(needs: list[inspect.Parameter], params: list[inspect.Parameter], positional: bool) -> inspect.Signature:
    """(logits, target, *, **needs, **params, reduction="mean"), or with `positional` (logits, target, **params,
    reduction="mean", *, **needs)."""
    either = inspect.Parameter.POSITIONAL_OR_KEYWORD
    kind = either if positional else inspect.Parameter.KEYWORD_ONLY
    reduction = inspect.Parameter("reduction", kind, default="mean", annotation=str)
    tail = [*(p.replace(kind=kind) for p in params), reduction]
    return inspect.Signature(
        [
            inspect.Parameter("logits", either, annotation=torch.Tensor),
            inspect.Parameter("target", either, annotation=torch.Tensor),
            *(tail + needs if positional else needs + tail),
        ],
        return_annotation=torch.Tensor,
    )


def _named(name: str, by_position: tuple[str, ...], args: tuple, params: dict) -> dict:
    """The keyword arguments with the positional ones after (logits, target) named as `by_position` names them; the
    TypeError a Python function raises for too many of them or for one given twice."""
    if not args:
        return params
    if len(args) > len(by_position):
        takes = f"from 2 to {2 + len(by_position)}" if by_position else "2"
        raise TypeError(f"{name}() takes {takes} positional arguments but {2 + len(args)} were given")
    given_twice = [key for key in by_position[: len(args)] if key in params]
    if given_twice:
        raise TypeError(f"{name}() got multiple values for argument {given_twice[0]!r}")
    return {**dict(zip(by_position[: len(args)], args, strict=True)), **params}


def _checked(checks: dict[str, _Check], params: dict) -> dict:
    # An unknown name is left for Python's call of per_sample to reject with the usual TypeError.
    return {name: checks[name].check(name, value) if name in checks else value for name, value in params.items()}


def _split_penalty(name: str, params: dict) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict]:
    """The map from the reduced loss to the loss with its penalty, and the arguments of per_sample."""
    missing = [key for key in ("parameters", PENALTY_WEIGHT) if key not in params]
    if missing:
        raise TypeError(f"{name}() missing required keyword argument {missing[0]!r}")
    params = dict(params)
    parameters, delta = params.pop("parameters"), params.pop(PENALTY_WEIGHT)
    return lambda reduced: reduced + delta * l1_norm(parameters), params


def _check_params(name: str, signature: inspect.Signature, checks: dict[str, _Check], params: dict) -> dict:
    """A loss's `check_params(params)`: every parameter, defaults filled in and values checked; a TypeError for an
    unknown or missing one, a ValueError for a bad value."""
    try:
        bound = signature.bind(**params)
    except TypeError as error:
        raise TypeError(f"{name}() {error}") from None
    bound.apply_defaults()
    return _checked(checks, bound.arguments)


def _give_own_code_object(function: Callable, name: str) -> None:
    """Gives `function` a code object of its own, named `name`. torch.compile keeps its compiled graphs per code
    object, up to a limit: every loss made by the decorator above would otherwise share the one code object of its
    inner `loss`, and compiling several losses would fill that one cache."""
    function.__code__ = function.__code__.replace(co_name=name)


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def l1_norm(parameters) -> torch.Tensor:
    """sum |theta| over every element of every tensor in `parameters` (BatchNorm's weights and biases included): the
    penalty ANL and JAL add, weighted by delta, as their authors' code computes it over model.parameters()."""
    return sum(p.abs().sum() for p in parameters)


# --- Functions of log p that the losses are written with ---------------------------------------------------------


def _at(log_probs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log_probs[i, index[i]] for each row i."""
    return log_probs.gather(1, index[:, None]).squeeze(1)


def _column(x: float | torch.Tensor) -> float | torch.Tensor:
    """A parameter as a column: a tensor of one value per sample (tce.batched) broadcasts over the classes."""
    return x[:, None] if isinstance(x, torch.Tensor) else x


def _log(x: float | torch.Tensor) -> float | torch.Tensor:
    """log of a parameter's value: a Python float, or a tensor of one per sample (tce.batched)."""
    return torch.log(x) if isinstance(x, torch.Tensor) else math.log(x)


def _log1p(x: float | torch.Tensor) -> float | torch.Tensor:
    return torch.log1p(x) if isinstance(x, torch.Tensor) else math.log1p(x)


def _one_minus_exp(log_prob: torch.Tensor) -> torch.Tensor:
    """1 - p from log p, without the cancellation of 1 - exp(log p) near p = 1."""
    return -torch.expm1(log_prob)


def _log_of_mixture(w: float, log_prob: torch.Tensor) -> torch.Tensor:
    """log(w + (1 - w) p) from log p, 0 < w < 1, to float precision for every p in [0, 1]: as log1p(-(1 - w)(1 - p))
    where that is near 0 (p near 1), else as the log of the mixture itself, which rounding leaves far from 0."""
    u = (1 - w) * _one_minus_exp(log_prob)
    return torch.where(u < 0.5, torch.log1p(-u), torch.log(w + (1 - w) * log_prob.exp()))
