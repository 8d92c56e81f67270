"""The APL family's normalized losses and their active-passive pairs (Ma, Huang et al., "Normalized Loss Functions
for Deep Learning with Noisy Labels", ICML 2020), as the authors' code computes them: HanxunH/Active-Passive-Losses
loss.py @fdd52a2 (unchanged since the initial commit 89fa39a), the code that produced the paper's result log.

Each equals that code in value and gradient (tests/test_apl_losses.py, against a float64 port of it), quirks
included, since those are what the published numbers were made with:
- probabilities are clamped to [1e-7, 1] in GCE, NGCE and RCE (so their gradient is 0 below 1e-7), and RCE sums the
  clamped probabilities of the other classes, -A sum_{k != y} p_k with A = ln 1e-4;
- MAE is 1 - p_y, half the project's `mae` (2 - 2 p_y): `apl_mae` is APL's;
- NFL detaches the focal weights (1 - p)^gamma of its numerator and its normalizer (`.data`), the logs not;
- NMAE is (1 - p_y) / (2 (C - 1)) and NRCE RCE times (C - 1) / 4, as the code writes them;
- every `scale` is the CLI's --alpha, and the pairs' second one its --beta; GCE+MAE and GCE+RCE take no alpha, and
  GCE+NCE neither alpha nor beta, because the code builds their GCE (and that NCE) without a scale.
"""

import torch

from tce._checks import NONNEGATIVE, Interval
from tce.functional import LN_1E_MINUS_4, normalized_cross_entropy
from tce.loss_maker import _at, _column, _loss_of_log_probs

#: The floor of APL's clamps of p.
P_FLOOR = 1e-7
Q = Interval(0, 1, open_low=True)


def _clamped(log_probs: torch.Tensor) -> torch.Tensor:
    return torch.clamp(log_probs.exp(), min=P_FLOOR, max=1.0)


def _gce(log_probs: torch.Tensor, target: torch.Tensor, q) -> torch.Tensor:
    """APL's GeneralizedCrossEntropy: (1 - p_y^q) / q, p clamped."""
    return (1.0 - _at(_clamped(log_probs), target) ** q) / q


def _mae(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """APL's MeanAbsoluteError: 1 - p_y."""
    return 1.0 - _at(log_probs.exp(), target)


def _rce(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """APL's ReverseCrossEntropy: -A sum of the clamped p_k of the classes other than y (log of the label clamped
    at 1e-4 is A there, 0 at y)."""
    p = _clamped(log_probs)
    return -LN_1E_MINUS_4 * (p.sum(dim=1) - _at(p, target))


def _ngce(log_probs: torch.Tensor, target: torch.Tensor, q) -> torch.Tensor:
    """APL's NormalizedGeneralizedCrossEntropy: (1 - p_y^q) / (C - sum_k p_k^q), p clamped."""
    p = _clamped(log_probs)
    return (1.0 - _at(p, target) ** q) / (p.shape[1] - (p ** _column(q)).sum(dim=1))


def _nfl(log_probs: torch.Tensor, target: torch.Tensor, gamma) -> torch.Tensor:
    """APL's NormalizedFocalLoss: -(1 - p_y)^gamma log p_y / sum_k -(1 - p_k)^gamma log p_k, every focal weight
    (1 - p)^gamma detached (the code takes p from `.data`), the logs not."""
    weights = (1.0 - log_probs.detach().exp()) ** _column(gamma)
    return _at(weights * log_probs, target) / (weights * log_probs).sum(dim=1)


def _nce(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return normalized_cross_entropy.per_sample(log_probs, target)


@_loss_of_log_probs(alpha=NONNEGATIVE)
def apl_mae(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0) -> torch.Tensor:
    """APL's MAE: alpha (1 - p_y), half the project's `mae_loss` (its gradients half as large at one lr)."""
    return alpha * _mae(log_probs, target)


@_loss_of_log_probs(alpha=NONNEGATIVE, gamma=NONNEGATIVE)
def normalized_focal_loss(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0,
                          gamma: float = 0.5) -> torch.Tensor:
    """NFL: alpha times the focal loss of y over the sum of the focal losses of every class (see the module)."""
    return alpha * _nfl(log_probs, target, gamma)


@_loss_of_log_probs(alpha=NONNEGATIVE, q=Q)
def normalized_generalized_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0,
                                         q: float = 0.7) -> torch.Tensor:
    """NGCE: alpha (1 - p_y^q) / (C - sum_k p_k^q), p clamped to [1e-7, 1]."""
    return alpha * _ngce(log_probs, target, q)


@_loss_of_log_probs(alpha=NONNEGATIVE)
def normalized_mean_absolute_error(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0
                                   ) -> torch.Tensor:
    """NMAE: alpha (1 - p_y) / (2 (C - 1))."""
    return alpha * _mae(log_probs, target) / (2 * (log_probs.shape[1] - 1))


@_loss_of_log_probs(alpha=NONNEGATIVE)
def normalized_reverse_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0
                                     ) -> torch.Tensor:
    """NRCE: alpha (C - 1) / 4 times APL's RCE."""
    return alpha * (log_probs.shape[1] - 1) / 4 * _rce(log_probs, target)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, gamma=NONNEGATIVE)
def nfl_and_nce(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0, beta: float = 1.0,
                gamma: float = 0.5) -> torch.Tensor:
    """NFL+NCE: alpha NFL + beta NCE."""
    return alpha * _nfl(log_probs, target, gamma) + beta * _nce(log_probs, target)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, gamma=NONNEGATIVE)
def nfl_and_mae(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0, beta: float = 1.0,
                gamma: float = 0.5) -> torch.Tensor:
    """NFL+MAE: alpha NFL + beta (1 - p_y)."""
    return alpha * _nfl(log_probs, target, gamma) + beta * _mae(log_probs, target)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, gamma=NONNEGATIVE)
def nfl_and_rce(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0, beta: float = 1.0,
                gamma: float = 0.5) -> torch.Tensor:
    """NFL+RCE: alpha NFL + beta RCE (APL's, clamped)."""
    return alpha * _nfl(log_probs, target, gamma) + beta * _rce(log_probs, target)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, q=Q)
def ngce_and_nce(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0, beta: float = 1.0,
                 q: float = 0.7) -> torch.Tensor:
    """NGCE+NCE: alpha NGCE + beta NCE."""
    return alpha * _ngce(log_probs, target, q) + beta * _nce(log_probs, target)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, q=Q)
def ngce_and_mae(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0, beta: float = 1.0,
                 q: float = 0.7) -> torch.Tensor:
    """NGCE+MAE: alpha NGCE + beta (1 - p_y)."""
    return alpha * _ngce(log_probs, target, q) + beta * _mae(log_probs, target)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE, q=Q)
def ngce_and_rce(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0, beta: float = 1.0,
                 q: float = 0.7) -> torch.Tensor:
    """NGCE+RCE: alpha NGCE + beta RCE (APL's, clamped)."""
    return alpha * _ngce(log_probs, target, q) + beta * _rce(log_probs, target)


@_loss_of_log_probs(beta=NONNEGATIVE, q=Q)
def gce_and_mae(log_probs: torch.Tensor, target: torch.Tensor, *, beta: float = 1.0, q: float = 0.7) -> torch.Tensor:
    """GCE+MAE: GCE (APL's, clamped; the code gives it no scale) + beta (1 - p_y)."""
    return _gce(log_probs, target, q) + beta * _mae(log_probs, target)


@_loss_of_log_probs(beta=NONNEGATIVE, q=Q)
def gce_and_rce(log_probs: torch.Tensor, target: torch.Tensor, *, beta: float = 1.0, q: float = 0.7) -> torch.Tensor:
    """GCE+RCE: GCE (APL's, clamped; no scale) + beta RCE (APL's, clamped)."""
    return _gce(log_probs, target, q) + beta * _rce(log_probs, target)


@_loss_of_log_probs(q=Q)
def gce_and_nce(log_probs: torch.Tensor, target: torch.Tensor, *, q: float = 0.7) -> torch.Tensor:
    """GCE+NCE: GCE (APL's, clamped) + NCE, neither scaled (the code passes its alpha and beta to neither)."""
    return _gce(log_probs, target, q) + _nce(log_probs, target)


@_loss_of_log_probs(alpha=NONNEGATIVE, beta=NONNEGATIVE)
def mae_and_rce(log_probs: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0, beta: float = 1.0
                ) -> torch.Tensor:
    """MAE+RCE: alpha (1 - p_y) + beta RCE (APL's, clamped)."""
    return alpha * _mae(log_probs, target) + beta * _rce(log_probs, target)
