"""Tamed Cross Entropy (Martinez & Stiefelhagen, GCPR 2018) and the losses it is compared with.

The paper's losses: the cross entropy ("ce"), MSE and MAE on the softmax ("mse", "mae") and the Tamed Cross
Entropy ("tce", alpha). The robust and regularised losses of the later noisy-label literature: GCE ("gce",
q), RCE ("rce", A), SCE ("sce", alpha, beta, A), NCE ("nce"), NCE+RCE and NCE+MAE ("nce+rce", "nce+mae",
alpha, beta), focal ("focal", gamma), Taylor-CE ("taylor", t), Poly-1 ("poly1", epsilon), label smoothing
("label_smoothing", epsilon) and soft and hard bootstrapping ("bootstrap_soft", "bootstrap_hard", beta). Those
of 2021-2025: AGCE, AUL and AEL ("agce", "aul", a, q; "ael", a) and their sums with NCE ("nce+agce",
"nce+aul", "nce+ael", alpha, beta and theirs), NNCE ("nnce"), CE with epsilon-softmax plus MAE
("eps_softmax", alpha, beta, m), the Jensen-Shannon loss ("js", pi), LogitClip ("logit_clip", tau,
p_norm, semantics), ANL-CE and JAL-CE ("anl_ce", alpha, beta, delta; "jal_ce", alpha, beta, a, delta), forward and
backward loss correction ("forward", "backward") and ELR ("elr", beta, lambda_); these five need more than
logits and labels (LOSS_NEEDS: the model's parameters, a transition matrix, each sample's index and a memory),
which their caller passes by name. And the APL family's as its authors' code computes them (`tce.apl_losses`):
APL's MAE ("apl_mae"), NFL, NGCE, NMAE and NRCE ("nfl", "ngce", "nmae", "nrce") and the pairs "nfl+nce",
"nfl+mae", "nfl+rce", "ngce+nce", "ngce+mae", "ngce+rce", "gce+mae", "gce+rce", "gce+nce", "mae+rce".

Each is a function of logits (N, C) and class indices (N,), exported here from `tce.functional` (the paper's
losses and those of the earlier literature), `tce.losses_2021_2025` and `tce.losses_with_needs`, all made by
`tce.loss_maker` out of their loss per sample, and an nn.Module: `build_loss(name, reduction=..., **params)`
builds one by name, LOSSES lists the names and LOSS_PARAMS the parameters of each with their defaults;
`tce.batched` computes many settings of one loss in one call (a pack of runs trained side by side). The package
needs torch only.
"""

from tce import apl_losses, batched
from tce.factory import LOSS_NEEDS, LOSS_PARAMS, LOSSES, build_loss
from tce.functional import (
    cross_entropy,
    focal_loss,
    generalized_cross_entropy,
    hard_bootstrapping,
    label_smoothing_cross_entropy,
    mae_loss,
    mse_loss,
    nce_and_mae,
    nce_and_rce,
    normalized_cross_entropy,
    poly1_cross_entropy,
    reverse_cross_entropy,
    soft_bootstrapping,
    symmetric_cross_entropy,
    tamed_cross_entropy,
    tamed_nll,
    taylor_cross_entropy,
)
from tce.losses_2021_2025 import (
    asymmetric_exponential_loss,
    asymmetric_generalized_cross_entropy,
    asymmetric_unhinged_loss,
    epsilon_softmax_and_mae,
    jensen_shannon_loss,
    logit_clipping,
    nce_and_ael,
    nce_and_agce,
    nce_and_aul,
    normalized_negative_cross_entropy,
)
from tce.losses_with_needs import (
    active_negative_loss,
    backward_correction,
    early_learning_regularization,
    forward_correction,
    inverse_transition,
    joint_asymmetric_loss,
)
from tce.modules import CrossEntropy, FunctionalLoss, MAELoss, MSELoss, TamedCrossEntropy

__all__ = [
    "LOSSES",
    "LOSS_NEEDS",
    "LOSS_PARAMS",
    "CrossEntropy",
    "FunctionalLoss",
    "MAELoss",
    "MSELoss",
    "TamedCrossEntropy",
    "active_negative_loss",
    "apl_losses",
    "asymmetric_exponential_loss",
    "batched",
    "asymmetric_generalized_cross_entropy",
    "asymmetric_unhinged_loss",
    "backward_correction",
    "build_loss",
    "cross_entropy",
    "early_learning_regularization",
    "epsilon_softmax_and_mae",
    "focal_loss",
    "forward_correction",
    "generalized_cross_entropy",
    "hard_bootstrapping",
    "inverse_transition",
    "jensen_shannon_loss",
    "joint_asymmetric_loss",
    "label_smoothing_cross_entropy",
    "logit_clipping",
    "mae_loss",
    "mse_loss",
    "nce_and_ael",
    "nce_and_agce",
    "nce_and_aul",
    "nce_and_mae",
    "nce_and_rce",
    "normalized_cross_entropy",
    "normalized_negative_cross_entropy",
    "poly1_cross_entropy",
    "reverse_cross_entropy",
    "soft_bootstrapping",
    "symmetric_cross_entropy",
    "tamed_cross_entropy",
    "tamed_nll",
    "taylor_cross_entropy",
]
