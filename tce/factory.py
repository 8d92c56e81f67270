"""Builds a loss module from its short name, as experiment configurations spell it."""

import inspect

from torch import nn

from tce import apl_losses as apl
from tce import functional
from tce import losses_2021_2025 as recent
from tce import losses_with_needs as with_needs
from tce.loss_maker import NEEDS
from tce.modules import CrossEntropy, FunctionalLoss, MAELoss, MSELoss, TamedCrossEntropy

# The paper's losses, each with a module class of its own.
_LOSS_CLASSES = {"ce": CrossEntropy, "mse": MSELoss, "mae": MAELoss, "tce": TamedCrossEntropy}
# Every loss as a function: the paper's (the classes above call them), then the losses it is compared with, which
# FunctionalLoss wraps.
_LOSS_FUNCTIONS = {
    "ce": functional.cross_entropy,
    "mse": functional.mse_loss,
    "mae": functional.mae_loss,
    "tce": functional.tamed_cross_entropy,
    "gce": functional.generalized_cross_entropy,
    "rce": functional.reverse_cross_entropy,
    "sce": functional.symmetric_cross_entropy,
    "nce": functional.normalized_cross_entropy,
    "nce+rce": functional.nce_and_rce,
    "nce+mae": functional.nce_and_mae,
    "focal": functional.focal_loss,
    "taylor": functional.taylor_cross_entropy,
    "poly1": functional.poly1_cross_entropy,
    "label_smoothing": functional.label_smoothing_cross_entropy,
    "bootstrap_soft": functional.soft_bootstrapping,
    "bootstrap_hard": functional.hard_bootstrapping,
    # Those of 2021-2025 that need nothing but logits and labels.
    "agce": recent.asymmetric_generalized_cross_entropy,
    "aul": recent.asymmetric_unhinged_loss,
    "ael": recent.asymmetric_exponential_loss,
    "nce+agce": recent.nce_and_agce,
    "nce+aul": recent.nce_and_aul,
    "nce+ael": recent.nce_and_ael,
    "nnce": recent.normalized_negative_cross_entropy,
    "eps_softmax": recent.epsilon_softmax_and_mae,
    "js": recent.jensen_shannon_loss,
    "logit_clip": recent.logit_clipping,
    # Those that need more from their caller (tce.loss_maker.NEEDS): the model's parameters, a transition matrix, the
    # sample's index and a memory.
    "anl_ce": with_needs.active_negative_loss,
    "jal_ce": with_needs.joint_asymmetric_loss,
    "forward": with_needs.forward_correction,
    "backward": with_needs.backward_correction,
    "elr": with_needs.early_learning_regularization,
    # The APL family's normalized losses and active-passive pairs, as its authors' code computes them.
    "apl_mae": apl.apl_mae,
    "nfl": apl.normalized_focal_loss,
    "ngce": apl.normalized_generalized_cross_entropy,
    "nmae": apl.normalized_mean_absolute_error,
    "nrce": apl.normalized_reverse_cross_entropy,
    "nfl+nce": apl.nfl_and_nce,
    "nfl+mae": apl.nfl_and_mae,
    "nfl+rce": apl.nfl_and_rce,
    "ngce+nce": apl.ngce_and_nce,
    "ngce+mae": apl.ngce_and_mae,
    "ngce+rce": apl.ngce_and_rce,
    "gce+mae": apl.gce_and_mae,
    "gce+rce": apl.gce_and_rce,
    "gce+nce": apl.gce_and_nce,
    "mae+rce": apl.mae_and_rce,
}
LOSSES = tuple(_LOSS_FUNCTIONS)

#: For each name in LOSSES, what the loss needs beyond logits and targets (names of tce.loss_maker.NEEDS), which its
#: caller passes by name: e.g. LOSS_NEEDS["elr"] == ("index", "memory"), LOSS_NEEDS["ce"] == ().
LOSS_NEEDS: dict[str, tuple[str, ...]] = {name: loss.needs for name, loss in _LOSS_FUNCTIONS.items()}


def _parameters(loss) -> dict[str, float | int | str | None]:
    """The parameters a loss takes besides logits, target, reduction and what it needs, with their defaults (None if
    required), read from its signature so that each default is stated once, where the loss is defined."""
    return {
        name: None if param.default is param.empty else param.default
        for name, param in inspect.signature(loss).parameters.items()
        if name not in ("logits", "target", "reduction", *NEEDS)
    }


#: For each name in LOSSES, the parameters build_loss takes besides `reduction`, with their defaults (None
#: where required), e.g. LOSS_PARAMS["sce"] == {"alpha": None, "beta": None, "A": math.log(1e-4)}.
LOSS_PARAMS: dict[str, dict[str, float | int | str | None]] = {
    name: _parameters(loss) for name, loss in _LOSS_FUNCTIONS.items()
}


def build_loss(name: str, **kwargs) -> nn.Module:
    """Returns the loss module called `name` (one of LOSSES), built with `kwargs`.

    Every loss takes `reduction`; the other parameters each loss takes, and their defaults, are in
    LOSS_PARAMS. Passing a parameter the loss does not take, or leaving out a required one, raises
    TypeError like any Python call; a bad value raises ValueError. What a loss needs (LOSS_NEEDS) is passed at
    each call, by name: `build_loss("anl_ce", alpha=5, beta=5, delta=5e-5)(logits, labels,
    parameters=model.parameters())`.
    """
    if name in _LOSS_CLASSES:
        return _LOSS_CLASSES[name](**kwargs)
    if name in _LOSS_FUNCTIONS:
        return FunctionalLoss(_LOSS_FUNCTIONS[name], **kwargs)
    raise ValueError(f"unknown loss {name!r}; valid names are {LOSSES}")
