"""The losses of 2021-2025 that need nothing but logits (N, C) and integer class indices (N,), written as those of
`tce.functional` are: as the loss of each sample, of log p = log_softmax(logits) (of the logits themselves for
LogitClip), under a decorator of `tce.loss_maker`.

Ported from the authors' code, which was read for each (the commits are in the docstrings). Where that code
clamps a probability only to keep a log finite, these are computed from log p instead and need no clamp; the
clamps that change the loss (NNCE's, epsilon-softmax's) are kept.
"""

import math

import torch
import torch.nn.functional as F

from tce._checks import NONNEGATIVE, POSITIVE, Choice, Interval
from tce.functional import normalized_cross_entropy
from tce.loss_maker import _at, _log, _log1p, _log_of_mixture, _loss_of_log_probs, _loss_of_logits, _one_minus_exp

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

