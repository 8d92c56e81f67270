"""The losses as functions of logits (N, C) and integer class indices (N,).

Half-precision logits (float16, bfloat16, e.g. from autocast) are computed in float32 and give a float32
loss; float32 and float64 are kept as they are.
"""

import torch
import torch.nn.functional as F

from tce._checks import check_alpha, check_logits_and_target, check_reduction

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
    """
    alpha = check_alpha(alpha)
    one_minus_alpha = 1.0 - alpha
    log_base = torch.log1p(-log_prob)
    scaled = one_minus_alpha * log_base
    if abs(one_minus_alpha) < _SERIES_RADIUS:
        return log_base * (1 + scaled * (0.5 + scaled / 6))
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
    log_prob_target = log_probs.gather(1, target.long()[:, None]).squeeze(1)
    return _reduce(tamed_nll(log_prob_target, alpha), reduction)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross entropy -log q_y, i.e. F.cross_entropy with the checks and dtype handling of this package."""
    return F.cross_entropy(_checked_logits(logits, target, reduction), target.long(), reduction=reduction)


def mse_loss(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Squared error between softmax(logits) and the one-hot target, summed over the C classes.

    With reduction="mean" this is Torch7's size-averaged MSECriterion (mean over N * C) with its gradient
    scaled by the number of classes, which is how the paper adapted MSE to classification (Sec. 3.2).
    """
    return _reduce(_softmax_error(logits, target, reduction).square().sum(dim=1), reduction)


def mae_loss(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Absolute error between softmax(logits) and the one-hot target, summed over the C classes.

    With reduction="mean" this is Torch7's size-averaged AbsCriterion (mean over N * C) with its gradient
    scaled by the number of classes, which is how the paper adapted MAE to classification (Sec. 3.2).
    """
    return _reduce(_softmax_error(logits, target, reduction).abs().sum(dim=1), reduction)


def _checked_logits(logits: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """Checks the arguments and returns the logits in the dtype the loss is computed in."""
    check_reduction(reduction)
    check_logits_and_target(logits, target)
    # exp/log of 16-bit floats lose too much for a loss; this keeps autocast training accurate.
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _softmax_error(logits: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    probs = F.softmax(_checked_logits(logits, target, reduction), dim=1)
    # scatter, unlike F.one_hot, reads no tensor values on the host, and it bounds-checks target on the
    # device where check_logits_and_target does not.
    one_hot = torch.zeros_like(probs).scatter(1, target.long()[:, None], 1.0)
    return probs - one_hot


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
