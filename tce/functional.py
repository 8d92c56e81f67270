"""The paper's losses and the robust and regularised losses it is compared with, as functions of logits (N, C) and
integer class indices (N,); those of 2021-2025 are in `tce.losses_2021_2025`, those that need more than logits and
targets in `tce.losses_with_needs`.

Half-precision logits (float16, bfloat16, e.g. from autocast) are computed in float32 and give a float32
loss; float32 and float64 are kept as they are.

Each is written as the loss of each sample, of the log-probabilities log p = log_softmax(logits) (N, C) (of the
probabilities p for MSE and MAE) and the targets (N,), and a decorator of `tce.loss_maker` turns it into a loss of
logits with the checks, dtype handling and reduction that all losses share. They are computed from log p_y rather
than p_y (p_y^q = exp(q log p_y), 1 - p_y = -expm1(log p_y)), which keeps them exact without clamps other than those
that are part of a loss's definition, and finite with finite gradients from log p_y = -1e4 up to p_y = 1.
"""

import math

import torch

from tce._checks import FRACTION, NONNEGATIVE, Count, Interval, check_alpha
from tce.loss_maker import _at, _loss_of_log_probs, _loss_of_probs, _one_minus_exp

# --- The paper's losses ------------------------------------------------------------------------------------
# They take their parameters and reduction by position too (positional=True): their callers have always passed
# them so.

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


@_loss_of_log_probs(positional=True, alpha=NONNEGATIVE)
def tamed_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0) -> torch.Tensor:
    """Tamed Cross Entropy (Martinez & Stiefelhagen, GCPR 2018) of a batch; see `tamed_nll`.

    Costs the same as the cross entropy: one log_softmax, one gather, and a few elementwise ops on N values.
    """
    return tamed_nll(_at(log_probs, target), alpha)


@_loss_of_log_probs(positional=True)
def cross_entropy(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross entropy -log q_y, i.e. F.cross_entropy with the checks and dtype handling of this package.

    Each sample's value and the gradient are F.cross_entropy's to the bit; the batch's "mean" and "sum" are summed
    in another order than F.cross_entropy's, like every loss's here, which can change their last bit or two.
    """
    return -_at(log_probs, target)


@_loss_of_probs(positional=True)
def mse_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error between softmax(logits) and the one-hot target, summed over the C classes.

    With reduction="mean" this is Torch7's size-averaged MSECriterion (mean over N * C) with its gradient
    scaled by the number of classes, which is how the paper adapted MSE to classification (Sec. 3.2).
    """
    return _error(probs, target).square().sum(dim=1)


@_loss_of_probs(positional=True)
def mae_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Absolute error between softmax(logits) and the one-hot target, summed over the C classes.

    With reduction="mean" this is Torch7's size-averaged AbsCriterion (mean over N * C) with its gradient
    scaled by the number of classes, which is how the paper adapted MAE to classification (Sec. 3.2).
    """
    return _error(probs, target).abs().sum(dim=1)


def _error(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # scatter, unlike F.one_hot, reads no tensor values on the host, and it bounds-checks target on the
    # device where check_logits_and_target does not.
    one_hot = torch.zeros_like(probs).scatter(1, target[:, None], 1.0)
    return probs - one_hot


# --- Robust and regularised losses, as functions of log-probabilities -------------------------------------

#: The A of RCE and SCE. The SCE paper sets A = -4, but its official code clips the one-hot label at 1e-4
#: and takes the natural log, which is A = ln 1e-4 = -9.21; the published numbers (and APL's) come from that.
LN_1E_MINUS_4 = math.log(1e-4)


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

