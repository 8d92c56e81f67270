"""The losses as functions of logits (N, C) and integer class indices (N,).

Half-precision logits (float16, bfloat16, e.g. from autocast) are computed in float32 and give a float32
loss; float32 and float64 are kept as they are.

Below the paper's losses (cross_entropy, mse_loss, mae_loss, tamed_cross_entropy) come the robust and
regularised losses it is compared with, then those of 2021-2025. Each of those is written as a loss of the
log-probabilities log p = log_softmax(logits) (N, C) and the targets (N,), one value per sample, and
`_loss_of_log_probs` turns it into a loss of logits with the checks, dtype handling and reduction of the
others (LogitClip, which rescales the logits before the softmax, is a loss of the logits: `_loss_of_logits`).
They are computed from log p_y rather than p_y (p_y^q = exp(q log p_y), 1 - p_y = -expm1(log p_y)), which
keeps them exact without clamps other than those that are part of a loss's definition, and finite with
finite gradients from log p_y = -1e4 up to p_y = 1.
"""

import functools
import inspect
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from tce._checks import (
    FRACTION,
    NONNEGATIVE,
    POSITIVE,
    Choice,
    Count,
    Interval,
    check_alpha,
    check_logits_and_target,
    check_reduction,
    check_transition,
)

# The closed form expm1(s) / (1 - alpha), with s = (1 - alpha) log(1 - log q_y), is 0 / 0 at alpha = 1.
# Within this distance of 1 the series expm1(s) = s (1 + s/2 + s^2/6 + ...) is used instead; with
# |s| < 1e-6 * log(1 - log q_y) the terms left out are below float64 precision, so the loss is smooth in
# alpha across 1.
_SERIES_RADIUS = 1e-6


def tamed_nll(log_prob: torch.Tensor, alpha: float) -> torch.Tensor:
    """Tamed cross entropy of each sample, elementwise on log q_y (the log-probability of the target).

    Returns ((1 - log q_y)^(1 - alpha) - 1) / (1 - alpha), with the limit log(1 - log q_y) at alpha = 1.
    Its derivative with respect to log q_y is -(1 - log q_y)^(-alpha), the gradient the paper designs
    (Eq. 8); alpha = 0 gives the cross entropy -log q_y.

    Eq. 9 as printed subtracts 1 / (1 - alpha) instead of 1 inside the sum. That changes the loss only by
    a constant, so training is the same, but it has no finite limit at alpha = 1 (a value the paper
    reports) and is not 0 when q_y = 1. The form above has neither problem.

    `alpha` may also be a tensor of one value per element of log_prob (tce.batched: many settings at once); its
    values are then the caller's to check.
    """
    log_base = torch.log1p(-log_prob)
    if isinstance(alpha, torch.Tensor):
        near_one = (1.0 - alpha).abs() < _SERIES_RADIUS
        # Where alpha is near 1 the closed form is computed at a stand-in 1 - alpha = 1, so that it stays finite
        # and passes no NaN gradient through the branch that is not taken.
        series = _tamed_series(log_base, (1.0 - alpha) * log_base)
        return torch.where(near_one, series, _tamed_closed(log_base, torch.where(near_one, 1.0, 1.0 - alpha)))
    one_minus_alpha = 1.0 - check_alpha(alpha)
    if abs(one_minus_alpha) < _SERIES_RADIUS:
        return _tamed_series(log_base, one_minus_alpha * log_base)
    return _tamed_closed(log_base, one_minus_alpha)


def _tamed_series(log_base: torch.Tensor, scaled: torch.Tensor) -> torch.Tensor:
    return log_base * (1 + scaled * (0.5 + scaled / 6))


def _tamed_closed(log_base: torch.Tensor, one_minus_alpha: float | torch.Tensor) -> torch.Tensor:
    scaled = one_minus_alpha * log_base
    # The backward of expm1 rebuilds exp(s) as expm1(s) + 1, which cancels to a few digits when s << 0
    # (alpha > 1, q_y tiny); exp(s) - 1 has no cancellation there, and its backward uses exp(s) itself.
    return torch.where(scaled < -1, torch.exp(scaled) - 1, torch.expm1(scaled)) / one_minus_alpha


def tamed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Tamed Cross Entropy (Martinez & Stiefelhagen, GCPR 2018) of a batch; see `tamed_nll`.

    Costs the same as the cross entropy: one log_softmax, one gather, and a few elementwise ops on N values.
    """
    log_probs = F.log_softmax(_checked_logits(logits, target, reduction), dim=1)
    return _reduce(tamed_per_sample(log_probs, target.long(), alpha=check_alpha(alpha)), reduction)


def tamed_per_sample(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0) -> torch.Tensor:
    """tamed_nll of each sample's target, from log_softmax(logits) (N, C) and int64 targets (N,)."""
    return tamed_nll(_at(log_probs, target), alpha)


def cross_entropy_per_sample(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log q_y of each sample, from log_softmax(logits) (N, C) and int64 targets (N,)."""
    return -_at(log_probs, target)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross entropy -log q_y, i.e. F.cross_entropy with the checks and dtype handling of this package."""
    return F.cross_entropy(_checked_logits(logits, target, reduction), target.long(), reduction=reduction)


def mse_loss(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Squared error between softmax(logits) and the one-hot target, summed over the C classes.

    With reduction="mean" this is Torch7's size-averaged MSECriterion (mean over N * C) with its gradient
    scaled by the number of classes, which is how the paper adapted MSE to classification (Sec. 3.2).
    """
    return _reduce(mse_per_sample(_checked_logits(logits, target, reduction), target.long()), reduction)


def mse_per_sample(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mse_loss of each sample, from checked logits (N, C) and int64 targets (N,)."""
    return _softmax_error(logits, target).square().sum(dim=1)


def mae_loss(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Absolute error between softmax(logits) and the one-hot target, summed over the C classes.

    With reduction="mean" this is Torch7's size-averaged AbsCriterion (mean over N * C) with its gradient
    scaled by the number of classes, which is how the paper adapted MAE to classification (Sec. 3.2).
    """
    return _reduce(mae_per_sample(_checked_logits(logits, target, reduction), target.long()), reduction)


def mae_per_sample(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mae_loss of each sample, from checked logits (N, C) and int64 targets (N,)."""
    return _softmax_error(logits, target).abs().sum(dim=1)


def _checked_logits(logits: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """Checks the arguments and returns the logits in the dtype the loss is computed in."""
    check_reduction(reduction)
    check_logits_and_target(logits, target)
    # exp/log of 16-bit floats lose too much for a loss; this keeps autocast training accurate.
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _softmax_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    probs = F.softmax(logits, dim=1)
    # scatter, unlike F.one_hot, reads no tensor values on the host, and it bounds-checks target on the
    # device where check_logits_and_target does not.
    one_hot = torch.zeros_like(probs).scatter(1, target[:, None], 1.0)
    return probs - one_hot


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


# --- Robust and regularised losses, as functions of log-probabilities -------------------------------------

#: The A of RCE and SCE. The SCE paper sets A = -4, but its official code clips the one-hot label at 1e-4
#: and takes the natural log, which is A = ln 1e-4 = -9.21; the published numbers (and APL's) come from that.
LN_1E_MINUS_4 = math.log(1e-4)

_Check = Interval | Count | Choice

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
    per_call: tuple[str, ...] = (), penalized: bool = False, **checks: _Check
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
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

    per_sample may also be called with a tensor of one value per sample for each parameter (tce.batched),
    except those named in `per_call` (a count, a string, a norm's order): one value for all samples.
    """
    return _per_sample_loss(log_probs_of, per_call, checks, penalized)


def _loss_of_logits(
    per_call: tuple[str, ...] = (), **checks: _Check
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """`_loss_of_log_probs` for a `per_sample(logits, target, *, **params)` that takes the (checked, float32
    for 16-bit) logits themselves: for a loss that transforms them before the softmax."""
    return _per_sample_loss(_identity, per_call, checks)


def log_probs_of(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits, dim=1)


def _identity(logits: torch.Tensor) -> torch.Tensor:
    return logits


def _per_sample_loss(
    prepare: Callable[[torch.Tensor], torch.Tensor], per_call: tuple[str, ...], checks: dict[str, _Check],
    penalized: bool = False,
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """The decorator of `_loss_of_log_probs`, with `prepare` the map from logits to per_sample's input."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    if penalized:
        checks = {**checks, PENALTY_WEIGHT: NONNEGATIVE}

    def decorate(per_sample: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        arguments = list(inspect.signature(per_sample).parameters.values())[2:]
        needs = [p for p in arguments if p.name in NEEDS]
        params = [p for p in arguments if p.name not in NEEDS]
        if penalized:
            needs.insert(0, inspect.Parameter("parameters", keyword))
            params.append(inspect.Parameter(PENALTY_WEIGHT, keyword, annotation=float))
        params_signature = inspect.Signature(params)
        if set(checks) != set(params_signature.parameters) or any(p.kind != keyword for p in arguments):
            raise TypeError(f"{per_sample.__name__}: each parameter must be keyword-only and have a check")

        def checked(params: dict) -> dict:
            # An unknown name is left for Python's call of per_sample to reject with the usual TypeError.
            return {
                name: checks[name].check(name, value) if name in checks else value for name, value in params.items()
            }

        def penalty(params: dict) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict]:
            """The map from the reduced loss to the loss with its penalty, and the arguments of per_sample."""
            if not penalized:
                return _identity, params
            missing = [name for name in ("parameters", PENALTY_WEIGHT) if name not in params]
            if missing:
                raise TypeError(f"{per_sample.__name__}() missing required keyword argument {missing[0]!r}")
            params = dict(params)
            parameters, delta = params.pop("parameters"), params.pop(PENALTY_WEIGHT)
            return lambda reduced: reduced + delta * l1_norm(parameters), params

        @functools.wraps(per_sample)
        def loss(logits: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", **params) -> torch.Tensor:
            if isinstance(params.get("transition"), torch.Tensor) and params["transition"].dim() == 2:
                check_transition(params["transition"])  # one T for all: checked (per sample: the caller's)
            add_penalty, params = penalty(checked(params))
            inputs = prepare(_checked_logits(logits, target, reduction))
            return add_penalty(_reduce(per_sample(inputs, target.long(), **params), reduction))

        def check_params(params: dict) -> dict:
            """Returns every parameter, defaults filled in and values checked: a TypeError for an unknown or
            missing one, a ValueError for a bad value."""
            try:
                bound = params_signature.bind(**params)
            except TypeError as error:
                raise TypeError(f"{per_sample.__name__}() {error}") from None
            bound.apply_defaults()
            return checked(bound.arguments)

        _give_own_code_object(loss, per_sample.__name__)
        loss.per_sample = per_sample
        loss.prepare = prepare
        loss.per_call = per_call
        loss.check_params = check_params
        loss.needs = tuple(p.name for p in needs)
        loss.penalty = PENALTY_WEIGHT if penalized else None  # the parameter per_sample does not take
        loss.__signature__ = inspect.Signature(
            [
                inspect.Parameter("logits", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=torch.Tensor),
                inspect.Parameter("target", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=torch.Tensor),
                *needs,
                *params,
                inspect.Parameter("reduction", inspect.Parameter.KEYWORD_ONLY, default="mean", annotation=str),
            ],
            return_annotation=torch.Tensor,
        )
        return loss

    return decorate


def _give_own_code_object(function: Callable, name: str) -> None:
    """Gives `function` a code object of its own, named `name`. torch.compile keeps its compiled graphs per code
    object, up to a limit: every loss made by the decorator above would otherwise share the one code object of its
    inner `loss`, and compiling several losses would fill that one cache."""
    function.__code__ = function.__code__.replace(co_name=name)


def _at(log_probs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log_probs[i, index[i]] for each row i."""
    return log_probs.gather(1, index[:, None]).squeeze(1)


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


@_loss_of_log_probs(q=Interval(0, 1, open_low=True))
def generalized_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor, *, q: float = 0.7) -> torch.Tensor:
    """Generalized cross entropy (GCE, Zhang & Sabuncu, NeurIPS 2018): (1 - p_y^q) / q, q in (0, 1].

    q -> 0 gives the cross entropy and q = 1 gives 1 - p_y. Written as -expm1(q log p_y) / q, its
    derivative stays finite where p_y underflows to 0, which a clamp on p_y is usually there to prevent.
    """
    return -torch.expm1(q * _at(log_probs, target)) / q


@_loss_of_log_probs(A=Interval(high=0, open_high=True))
def reverse_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor, *, A: float = LN_1E_MINUS_4) -> torch.Tensor:
    """Reverse cross entropy (RCE, Wang et al., ICCV 2019): -A (1 - p_y), with A < 0.

    It is the cross entropy with p and the one-hot label swapped, log 0 replaced by A. The default
    A = ln 1e-4 = -9.21 is what the official SCE code computes (it clips the label at 1e-4 and takes the
    natural log), and what the published results were obtained with; the paper's text says A = -4.
    """
    return -A * _one_minus_exp(_at(log_probs, target))


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, A=Interval(high=0, open_high=True))
def symmetric_cross_entropy(
    log_probs: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float,
    beta: float,
    A: float = LN_1E_MINUS_4,
) -> torch.Tensor:
    """Symmetric cross entropy (SCE, Wang et al., ICCV 2019): alpha CE + beta RCE = -alpha log p_y - beta A
    (1 - p_y), with alpha, beta >= 0 and A < 0.

    The default A = ln 1e-4 = -9.21 is the official code's, not the paper text's -4 (see
    `reverse_cross_entropy`); it makes the RCE term 2.3 times as large for the same beta.
    """
    return -alpha * _at(log_probs, target) + beta * reverse_cross_entropy.per_sample(log_probs, target, A=A)


@_loss_of_log_probs()
def normalized_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalized cross entropy (NCE, Ma et al., ICML 2020): log p_y / sum_k log p_k, in [0, 1].

    The denominator is a sum of log-probabilities, each <= 0 and at most one of them 0 (it takes C >= 2),
    so it is never 0.
    """
    return _at(log_probs, target) / log_probs.sum(dim=1)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE)
def nce_and_rce(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float, beta: float) -> torch.Tensor:
    """Active-passive loss NCE+RCE (Ma et al., ICML 2020): alpha NCE + beta RCE, alpha, beta >= 0.

    RCE takes A = ln 1e-4, as in the authors' code (see `reverse_cross_entropy`).
    """
    nce = normalized_cross_entropy.per_sample(log_probs, target)
    return alpha * nce + beta * reverse_cross_entropy.per_sample(log_probs, target, A=LN_1E_MINUS_4)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE)
def nce_and_mae(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float, beta: float) -> torch.Tensor:
    """Active-passive loss NCE+MAE (Ma et al., ICML 2020): alpha NCE + beta (1 - p_y), alpha, beta >= 0.

    The MAE term is 1 - p_y, half the L1 distance between p and the one-hot label, as in the authors' code;
    it is not `mae_loss`, which is the full distance.
    """
    nce = normalized_cross_entropy.per_sample(log_probs, target)
    return alpha * nce + beta * _one_minus_exp(_at(log_probs, target))


@_loss_of_log_probs(gamma=NONNEGATIVE)
def focal_loss(log_probs: torch.Tensor, target: torch.Tensor, *, gamma: float = 0.5) -> torch.Tensor:
    """Focal loss (Lin et al., ICCV 2017): -(1 - p_y)^gamma log p_y, with gamma >= 0 (0 is the cross entropy).

    The default gamma = 0.5 is the one of the noisy-label benchmarks (APL and those after it). Gradients
    flow through the factor (1 - p_y)^gamma too, as in the paper; many ports detach p_y there, which
    changes the gradient.
    """
    log_prob = _at(log_probs, target)
    one_minus_p = _one_minus_exp(log_prob)
    # For gamma < 1, (1 - p_y)^gamma has an infinite derivative at p_y = 1, which autograd multiplies by
    # log p_y = 0 into NaN; the loss's derivative there is 0. So where p_y = 1 the factor is the constant
    # 0^gamma, and the power is taken of a stand-in 1 that no gradient reaches.
    is_certain = one_minus_p == 0
    modulating = torch.where(
        is_certain, one_minus_p.detach().pow(gamma), torch.where(is_certain, 1.0, one_minus_p).pow(gamma)
    )
    return -modulating * log_prob


@_loss_of_log_probs(per_call=("t",), t=Count(1))
def taylor_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor, *, t: int = 2) -> torch.Tensor:
    """Taylor cross entropy (Feng et al., IJCAI 2020): sum_{k=1..t} (1 - p_y)^k / k, with an integer t >= 1.

    The Taylor series of -log p_y around p_y = 1, cut after t terms: t = 1 gives 1 - p_y and t -> inf the
    cross entropy. Not the "Taylor softmax" that many files of this name implement.
    """
    one_minus_p = _one_minus_exp(_at(log_probs, target))
    return sum(one_minus_p**k / k for k in range(1, t + 1))


@_loss_of_log_probs(epsilon=Interval(low=-1))
def poly1_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor, *, epsilon: float = 1.0) -> torch.Tensor:
    """Poly-1 loss (Leng et al., ICLR 2022): -log p_y + epsilon (1 - p_y), with epsilon >= -1.

    epsilon = -1 removes the first term of the cross entropy's Taylor series, and is as low as it can go
    with the loss still >= 0 and decreasing in p_y.
    """
    log_prob = _at(log_probs, target)
    return -log_prob + epsilon * _one_minus_exp(log_prob)


@_loss_of_log_probs(epsilon=FRACTION)
def label_smoothing_cross_entropy(
    log_probs: torch.Tensor, target: torch.Tensor, *, epsilon: float = 0.1
) -> torch.Tensor:
    """Cross entropy with label smoothing (Szegedy et al., CVPR 2016), epsilon in [0, 1]: the cross entropy
    against (1 - epsilon) onehot(y) + epsilon / C, i.e. -(1 - epsilon) log p_y - epsilon mean_k log p_k.

    The same as F.cross_entropy(logits, target, label_smoothing=epsilon).
    """
    return -(1 - epsilon) * _at(log_probs, target) - epsilon * log_probs.mean(dim=1)


@_loss_of_log_probs(beta=FRACTION)
def soft_bootstrapping(log_probs: torch.Tensor, target: torch.Tensor, *, beta: float = 0.95) -> torch.Tensor:
    """Soft bootstrapping (Reed et al., ICLR 2015 workshop), beta in [0, 1]: the cross entropy against
    beta onehot(y) + (1 - beta) p, i.e. -beta log p_y - (1 - beta) sum_k p_k log p_k.

    p in the target is not detached: the second term is the entropy of p, which the gradient lowers.
    """
    entropy = -(log_probs.exp() * log_probs).sum(dim=1)
    return -beta * _at(log_probs, target) + (1 - beta) * entropy


@_loss_of_log_probs(beta=FRACTION)
def hard_bootstrapping(log_probs: torch.Tensor, target: torch.Tensor, *, beta: float = 0.8) -> torch.Tensor:
    """Hard bootstrapping (Reed et al., ICLR 2015 workshop), beta in [0, 1]: the cross entropy against
    beta onehot(y) + (1 - beta) onehot(z), z = argmax_k p_k, i.e. -beta log p_y - (1 - beta) log p_z.
    """
    return -beta * _at(log_probs, target) - (1 - beta) * _at(log_probs, log_probs.argmax(dim=1))


# --- The losses of 2021-2025 ------------------------------------------------------------------------------
# Ported from the authors' code, which was read for each (the commits are in the docstrings). Where that code
# clamps a probability only to keep a log finite, these are computed from log p instead and need no clamp; the
# clamps that change the loss (NNCE's, epsilon-softmax's) are kept.

#: NNCE's probability floor: p is clamped to [1e-7, 1] before its log (ANL's `min_prob`), and A = -ln 1e-7.
LN_1E_MINUS_7 = math.log(1e-7)
#: epsilon-softmax's floor on p'_y before its log (the `eps` of the authors' ECELoss).
LN_1E_MINUS_8 = math.log(1e-8)
LOGIT_CLIP_SEMANTICS = ("code", "paper")


@_loss_of_log_probs(a=POSITIVE, q=POSITIVE)
def asymmetric_generalized_cross_entropy(
    log_probs: torch.Tensor, target: torch.Tensor, *, a: float, q: float
) -> torch.Tensor:
    """Asymmetric generalized cross entropy (AGCE, Zhou et al., ICML 2021): ((a + 1)^q - (a + p_y)^q) / q, with
    a, q > 0 (hitcszx/ALFs lnl/losses.py AGCELoss @1c795f9).

    Written as -(a + 1)^q expm1(q log r) / q with r = (a + p_y) / (a + 1), which is exact near p_y = 1, where
    the difference of the two powers cancels.
    """
    log_prob = _at(log_probs, target)
    return -((a + 1) ** q) * torch.expm1(q * _log_of_mixture(a / (a + 1), log_prob)) / q


@_loss_of_log_probs(a=Interval(low=1, open_low=True), q=POSITIVE)
def asymmetric_unhinged_loss(log_probs: torch.Tensor, target: torch.Tensor, *, a: float, q: float) -> torch.Tensor:
    """Asymmetric unhinged loss (AUL, Zhou et al., ICML 2021): ((a - p_y)^q - (a - 1)^q) / q, with a > 1 and
    q > 0 (hitcszx/ALFs lnl/losses.py AUELoss @1c795f9).

    Written as (a - 1)^q expm1(s) / q with s = q log1p((1 - p_y) / (a - 1)), exact near p_y = 1; where s > 1
    (a close to 1) as (a - p_y)^q - (a - 1)^q, which has no cancellation there and does not overflow.
    """
    one_minus_p = _one_minus_exp(_at(log_probs, target))
    s = q * torch.log1p(one_minus_p / (a - 1))
    # Each branch clamped to where it is used, so that the other one stays finite and passes no NaN gradient.
    near_one = (a - 1) ** q * torch.expm1(s.clamp(max=1))
    far = torch.exp(q * _log(a - 1) + s.clamp(min=1)) - (a - 1) ** q
    return torch.where(s <= 1, near_one, far) / q


@_loss_of_log_probs(a=POSITIVE)
def asymmetric_exponential_loss(log_probs: torch.Tensor, target: torch.Tensor, *, a: float) -> torch.Tensor:
    """Asymmetric exponential loss (AEL, Zhou et al., ICML 2021): exp(-p_y / a), with a > 0 (hitcszx/ALFs
    lnl/losses.py AExpLoss @1c795f9). Its minimum, at p_y = 1, is exp(-1/a) > 0, as in the authors' code."""
    return torch.exp(-_at(log_probs, target).exp() / a)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, a=POSITIVE, q=POSITIVE)
def nce_and_agce(
    log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float, beta: float, a: float, q: float
) -> torch.Tensor:
    """NCE+AGCE (Zhou et al., ICML 2021): alpha NCE + beta AGCE(a, q), alpha, beta >= 0 (ALFs NCEandAGCE).

    The authors' MNIST setting has alpha = 0: AGCE alone, under this name.
    """
    nce = normalized_cross_entropy.per_sample(log_probs, target)
    return alpha * nce + beta * asymmetric_generalized_cross_entropy.per_sample(log_probs, target, a=a, q=q)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, a=Interval(low=1, open_low=True), q=POSITIVE)
def nce_and_aul(
    log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float, beta: float, a: float, q: float
) -> torch.Tensor:
    """NCE+AUL (Zhou et al., ICML 2021): alpha NCE + beta AUL(a, q), alpha, beta >= 0 (ALFs NCEandAUE)."""
    nce = normalized_cross_entropy.per_sample(log_probs, target)
    return alpha * nce + beta * asymmetric_unhinged_loss.per_sample(log_probs, target, a=a, q=q)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, a=POSITIVE)
def nce_and_ael(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float, beta: float, a: float) -> torch.Tensor:
    """NCE+AEL (Zhou et al., ICML 2021): alpha NCE + beta AEL(a), alpha, beta >= 0 (ALFs NCEandAEL)."""
    nce = normalized_cross_entropy.per_sample(log_probs, target)
    return alpha * nce + beta * asymmetric_exponential_loss.per_sample(log_probs, target, a=a)


@_loss_of_log_probs()
def normalized_negative_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalized negative cross entropy (NNCE, Ye et al., NeurIPS 2023): 1 - (A + log p~_y) / sum_k (A + log
    p~_k), with p~ = clamp(p, 1e-7, 1) and A = -ln 1e-7 (Virusdoll/Active-Negative-Loss loss.py
    NormalizedNegativeCrossEntropy @0c50009). In [0, 1], 0 at p_y = 1.

    The clamp is part of the loss: a class at the floor adds nothing to the sum and gets no gradient. It is
    taken on log p, which is the same and exact. The denominator is at least A - ln C > 0 (some p_k >= 1/C).
    """
    shifted = log_probs.clamp(min=LN_1E_MINUS_7) - LN_1E_MINUS_7  # A + log p~, in [0, A]
    return 1 - _at(shifted, target) / shifted.sum(dim=1)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, m=NONNEGATIVE)
def epsilon_softmax_and_mae(
    log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float, beta: float, m: float
) -> torch.Tensor:
    """CE with epsilon-softmax plus MAE (Wang et al., NeurIPS 2024), alpha, beta, m >= 0: alpha (-log max(p'_y,
    1e-8)) + beta 2 (1 - p_y), with p' = (p + m e_argmax(p)) / (1 + m) (cswjl/eps-softmax losses.py ECELoss and
    ECEandMAE @1b9efb5).

    The MAE term is the authors' MAELoss(scale=2), the full L1 distance 2 (1 - p_y). The argmax is an index: the
    gradient flows through p alone. Where y is the argmax, -log p'_y = log1p((1 - p_y) / (m + p_y)), exact near
    p_y = 1; elsewhere it is log(1 + m) - log p_y, the cross entropy plus a constant, capped at -ln 1e-8 as
    the authors' clamp does (there, with m = 1e5, for p_y < 1e-3, the term has no gradient).
    """
    log_prob = _at(log_probs, target)
    one_minus_p = _one_minus_exp(log_prob)
    is_argmax = log_probs.argmax(dim=1) == target
    # Where y is not the argmax, a stand-in p_y = 1 keeps the unused branch finite (with m = 0 it divides by p_y).
    p_if_argmax = torch.where(is_argmax, log_prob, 0.0).exp()
    ce_eps = torch.where(is_argmax, torch.log1p(one_minus_p / (m + p_if_argmax)), _log1p(m) - log_prob)
    return alpha * ce_eps.clamp(max=-LN_1E_MINUS_8) + beta * 2 * one_minus_p


@_loss_of_log_probs(pi=Interval(0, 1, open_low=True, open_high=True))
def jensen_shannon_loss(log_probs: torch.Tensor, target: torch.Tensor, *, pi: float) -> torch.Tensor:
    """Jensen-Shannon loss (JS, Englesson & Azizpour, NeurIPS 2021), 0 < pi < 1: the pi-weighted JS divergence
    pi KL(e_y || m) + (1 - pi) KL(p || m), m = pi e_y + (1 - pi) p, times -1 / ((1 - pi) ln(1 - pi)), so that it
    tends to CE as pi -> 0 and to 1 - p_y as pi -> 1 (ErikEnglesson/GJS losses.py
    JensenShannonDivergenceWeightedScaled @f124785 with one view, js_weights "pi 1-pi").

    Where k != y, m_k = (1 - pi) p_k, so the divergence depends on p_y alone:
    -s ln s - (1 - pi)(1 - p_y) ln(1 - pi) + (1 - pi) p_y ln p_y, with s = m_y = 1 - (1 - pi)(1 - p_y). The
    authors clamp m at 1e-7 inside the log, which moves the divergence by less than 4e-8 C / (1 - pi); not done
    here.
    """
    log_prob = _at(log_probs, target)
    one_minus_p = _one_minus_exp(log_prob)
    log_s = _log_of_mixture(pi, log_prob)
    divergence = (
        -log_s.exp() * log_s - (1 - pi) * one_minus_p * _log1p(-pi) + (1 - pi) * log_prob.exp() * log_prob
    )
    return divergence / (-(1 - pi) * _log1p(-pi))


@_loss_of_logits(
    per_call=("p_norm", "semantics"), tau=POSITIVE, p_norm=Interval(low=1), semantics=Choice(LOGIT_CLIP_SEMANTICS)
)
def logit_clipping(
    logits: torch.Tensor, target: torch.Tensor, *, tau: float, p_norm: float = 2.0, semantics: str = "code"
) -> torch.Tensor:
    """Cross entropy of clipped logits (LogitClip, Wei et al., ICML 2023), tau > 0, p_norm >= 1: CE(z'), with
    z' = z r / ||z||_p where ||z||_p > tau, else z.

    semantics "code" (the default) takes r = 1 / tau, as the authors' code does (hongxin001/LogitClip
    algorithms/clip.py @6a57bca: clip when the norm exceeds `temp`, rescale to `delta = 1/temp`; the same in
    cswjl/eps-softmax CEandLC), and the published numbers come from it; for tau != 1 it jumps at ||z|| = tau.
    "paper" takes r = tau: logits are clipped to the ball of radius tau. The authors add 1e-7 to the norm,
    which moves the threshold by 1e-7; not done here.
    """
    # ||z|| = s ||z / s|| for any constant s > 0; s = max_k |z_k| keeps |z_k|^p from overflowing (in float32, p = 2
    # overflows at |z| = 2e19, p = 20 at 8e1), which torch's vector_norm does not.
    scale = logits.detach().abs().amax(dim=1, keepdim=True)
    scale = torch.where(scale > 0, scale, 1.0)
    norms = scale.squeeze(1) * torch.linalg.vector_norm(logits / scale, ord=p_norm, dim=1)
    clip = norms > tau
    radius = 1 / tau if semantics == "code" else tau
    # A stand-in norm 1 where the logits are kept: a zero row would otherwise divide by 0 in the unused branch.
    clipped = torch.where(clip[:, None], logits * (radius / torch.where(clip, norms, 1.0))[:, None], logits)
    return -_at(F.log_softmax(clipped, dim=1), target)


# --- The losses that need more than logits and targets (NEEDS) --------------------------------------------------------

#: Forward and backward correction clip p to [1e-7, 1 - 1e-7] (Keras' epsilon in the authors' code); done on log p.
LN_1E_MINUS_7_COMPLEMENT = math.log1p(-1e-7)
#: ELR clamps p to [1e-4, 1 - 1e-4] in its regularizer.
ELR_CLAMP = 1e-4


def l1_norm(parameters) -> torch.Tensor:
    """sum |theta| over every element of every tensor in `parameters` (BatchNorm's weights and biases included): the
    penalty ANL and JAL add, weighted by delta, as their authors' code computes it over model.parameters()."""
    return sum(p.abs().sum() for p in parameters)


def inverse_transition(transition: torch.Tensor) -> torch.Tensor:
    """T^-1 in float64 of a transition matrix T that `check_transition` accepts (one-line ValueError otherwise)."""
    return torch.linalg.inv(check_transition(transition))


def _column(x: float | torch.Tensor) -> float | torch.Tensor:
    """A parameter as a column: a tensor of one value per sample (tce.batched) broadcasts over the classes."""
    return x[:, None] if isinstance(x, torch.Tensor) else x


def _per_sample_rows(matrix: torch.Tensor, index: torch.Tensor, by_column: bool, dtype: torch.dtype) -> torch.Tensor:
    """For each sample i, row index[i] of its (C, C) matrix (or its column, `by_column`), (N, C), in `dtype`;
    `matrix` is one matrix for every sample, or (N, C, C), one per sample."""
    matrix = matrix.to(dtype)
    if matrix.dim() == 2:
        return (matrix.t() if by_column else matrix)[index]
    samples = torch.arange(len(index), device=index.device)
    return matrix[samples, :, index] if by_column else matrix[samples, index]


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, penalized=True)
def active_negative_loss(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float, beta: float) -> torch.Tensor:
    """Active negative loss ANL-CE (Ye et al., NeurIPS 2023), alpha, beta, delta >= 0: alpha NCE + beta NNCE, plus
    delta * sum |theta| over every parameter of the model (Virusdoll/Active-Negative-Loss loss.py ActiveNegativeLoss
    @0c50009, which takes the model and sums p.abs() over model.parameters()).

    The L1 penalty replaces weight decay: the authors train ANL with weight decay 0, and a baseline that keeps weight
    decay and drops the penalty is not ANL.
    """
    nce = normalized_cross_entropy.per_sample(log_probs, target)
    return alpha * nce + beta * normalized_negative_cross_entropy.per_sample(log_probs, target)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, a=Interval(low=1), penalized=True)
def joint_asymmetric_loss(
    log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float, beta: float, a: float
) -> torch.Tensor:
    """Joint asymmetric loss JAL-CE (NCE+AMSE, ICCV 2025), alpha, beta, delta >= 0, a >= 1: alpha NCE + beta AMSE,
    AMSE = (1/C) sum_k (p_k - a e_{y,k})^2, plus delta * sum |theta| over every parameter (cswjl/joint-asymmetric-loss
    losses.py AMSELoss, NCEandAMSE, main.py's L1 term @0f9eb7b).

    AMSE is the authors' `((p - a e_y)**2).mean()` over the batch and the classes, so per sample the mean over the C
    classes: a port with `.sum(1).mean()` weighs it C times as much. The authors train it with weight decay 0.
    """
    nce = normalized_cross_entropy.per_sample(log_probs, target)
    scaled_label = torch.zeros_like(log_probs).scatter(1, target[:, None], 1.0) * _column(a)
    return alpha * nce + beta * (log_probs.exp() - scaled_label).square().mean(dim=1)


def _clipped_log_probs(log_probs: torch.Tensor) -> torch.Tensor:
    """log p with p clipped to [1e-7, 1 - 1e-7], as forward and backward correction clip it."""
    return log_probs.clamp(LN_1E_MINUS_7, LN_1E_MINUS_7_COMPLEMENT)


@_loss_of_log_probs()
def forward_correction(log_probs: torch.Tensor, target: torch.Tensor, *, transition: torch.Tensor) -> torch.Tensor:
    """Forward loss correction (Patrini et al., CVPR 2017): -log((p^T T)_y) with p clipped to [1e-7, 1 - 1e-7], for
    labels y drawn from the true class through T, T_ij = P(label j | class i) (giorgiop/loss-correction loss.py
    robust('forward') @15a79de). The model's p estimates the true class; p^T T the label's distribution.

    `transition` is T (C, C), or one per sample (N, C, C); `check_transition` is what checks it (row-stochastic, not
    singular). Bounded: at most -log(1e-7 sum_c T_cy).
    """
    column = _per_sample_rows(transition, target, by_column=True, dtype=log_probs.dtype)  # T[:, y]
    return -torch.log((_clipped_log_probs(log_probs).exp() * column).sum(dim=1))


@_loss_of_log_probs()
def backward_correction(
    log_probs: torch.Tensor, target: torch.Tensor, *, transition_inverse: torch.Tensor
) -> torch.Tensor:
    """Backward loss correction (Patrini et al., CVPR 2017): sum_k (T^-1)_{y,k} (-log p_k), p clipped to [1e-7,
    1 - 1e-7] (giorgiop/loss-correction loss.py robust('backward') @15a79de, which inverts T once).

    `transition_inverse` is T^-1 (C, C) (`inverse_transition(T)`), or one per sample (N, C, C). Unbiased for the
    clean loss, but unbounded below but for the clip: T^-1 has negative entries off its diagonal, so pushing some
    p_k to the 1e-7 floor lowers the loss (it is often negative), and T^-1 grows without bound as T nears a singular
    matrix (uniform noise at rate (C - 1) / C).
    """
    row = _per_sample_rows(transition_inverse, target, by_column=False, dtype=log_probs.dtype)  # (T^-1)[y]
    return -(row * _clipped_log_probs(log_probs)).sum(dim=1)


@_loss_of_log_probs(beta=FRACTION, lambda_=NONNEGATIVE)
def early_learning_regularization(
    log_probs: torch.Tensor, target: torch.Tensor, *, index: torch.Tensor, memory: torch.Tensor, beta: float,
    lambda_: float,
) -> torch.Tensor:
    """Early-learning regularization ELR (Liu et al., NeurIPS 2020), beta in [0, 1], lambda_ >= 0: CE + lambda_ log(1 -
    <t_i, p^_i>), p^ = clamp(p, 1e-4, 1 - 1e-4), where each sample's target t_i = memory[index[i]] is first moved to
    beta t_i + (1 - beta) p^_i / sum_k p^_ik, p^ detached there (shengliu66/ELR ELR/model/loss.py elr_loss @934af53).

    `memory` (M, C) holds the targets t, zero before training: the loss updates its rows `index` in place, so it is
    the loss's state, which a resumed run must restore (the engine keeps it in the checkpoint). The log is finite:
    <t, p^> <= (1 - 1e-4) sum_k t_k <= 1 - 1e-4.
    """
    p_hat = log_probs.exp().clamp(ELR_CLAMP, 1 - ELR_CLAMP)
    observed = p_hat.detach()
    beta = _column(beta)
    t = beta * memory[index].to(p_hat.dtype) + (1 - beta) * observed / observed.sum(dim=1, keepdim=True)
    memory[index] = t.to(memory.dtype)
    return -_at(log_probs, target) + lambda_ * torch.log1p(-(t * p_hat).sum(dim=1))
