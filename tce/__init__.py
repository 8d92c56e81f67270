"""Tamed Cross Entropy (Martinez & Stiefelhagen, GCPR 2018) and the baseline losses it is compared with."""

from tce.factory import LOSSES, build_loss
from tce.functional import cross_entropy, mae_loss, mse_loss, tamed_cross_entropy, tamed_nll
from tce.modules import CrossEntropy, MAELoss, MSELoss, TamedCrossEntropy

__all__ = [
    "LOSSES",
    "CrossEntropy",
    "MAELoss",
    "MSELoss",
    "TamedCrossEntropy",
    "build_loss",
    "cross_entropy",
    "mae_loss",
    "mse_loss",
    "tamed_cross_entropy",
    "tamed_nll",
]
