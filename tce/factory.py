"""Builds a loss module from its short name, as experiment configurations spell it."""

from torch import nn

from tce.modules import CrossEntropy, MAELoss, MSELoss, TamedCrossEntropy

_LOSS_CLASSES = {"ce": CrossEntropy, "mse": MSELoss, "mae": MAELoss, "tce": TamedCrossEntropy}
LOSSES = tuple(_LOSS_CLASSES)


def build_loss(name: str, **kwargs) -> nn.Module:
    """Returns the loss module called `name` (one of LOSSES), built with `kwargs`.

    Every loss takes `reduction`; only "tce" takes `alpha` (default 1.0), and passing it to another loss
    raises TypeError like any unexpected keyword argument.
    """
    if name not in _LOSS_CLASSES:
        raise ValueError(f"unknown loss {name!r}; valid names are {LOSSES}")
    return _LOSS_CLASSES[name](**kwargs)
