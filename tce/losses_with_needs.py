"""The losses that need more than logits (N, C) and integer class indices (N,): the model's parameters, a
transition matrix or its inverse, each sample's index and a memory (`tce.loss_maker.NEEDS`), which their caller
passes by name. Written as those of `tce.functional` are, as the loss of each sample of log p = log_softmax(logits).
"""

import math

import torch

from tce._checks import FRACTION, NONNEGATIVE, Interval, check_transition
from tce.functional import normalized_cross_entropy
from tce.loss_maker import _at, _column, _loss_of_log_probs
from tce.losses_2021_2025 import LN_1E_MINUS_7, normalized_negative_cross_entropy

#: Forward and backward correction clip p to [1e-7, 1 - 1e-7] (Keras' epsilon in the authors' code); done on log p.
LN_1E_MINUS_7_COMPLEMENT = math.log1p(-1e-7)
#: ELR clamps p to [1e-4, 1 - 1e-4] in its regularizer.
ELR_CLAMP = 1e-4


def inverse_transition(transition: torch.Tensor) -> torch.Tensor:
    """T^-1 in float64 of a transition matrix T that `check_transition` accepts (one-line ValueError otherwise)."""
    return torch.linalg.inv(check_transition(transition))


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
