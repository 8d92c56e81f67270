"""nn.Module forms of the losses, for code that builds its criterion once and calls it per batch."""

from collections.abc import Callable

import torch
from torch import nn

from tce import functional
from tce._checks import check_alpha, check_reduction


class _ClassificationLoss(nn.Module):
    """A loss on logits (N, C) and integer class indices (N,), reduced over the batch."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        # Checked here so that a bad configuration fails when the criterion is built, not mid-training.
        check_reduction(reduction)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropy(_ClassificationLoss):
    """See `tce.functional.cross_entropy`."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(logits, target, self.reduction)


class MSELoss(_ClassificationLoss):
    """See `tce.functional.mse_loss`."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.mse_loss(logits, target, self.reduction)


class MAELoss(_ClassificationLoss):
    """See `tce.functional.mae_loss`."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.mae_loss(logits, target, self.reduction)


class TamedCrossEntropy(_ClassificationLoss):
    """Tamed Cross Entropy with alpha >= 0 (0 gives the cross entropy); see `tce.functional.tamed_nll`."""

    def __init__(self, alpha: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.alpha = check_alpha(alpha)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.tamed_cross_entropy(logits, target, self.alpha, self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, {super().extra_repr()}"


class FunctionalLoss(_ClassificationLoss):
    """One of the losses that `tce.loss_maker` makes (generalized_cross_entropy and the others that have a
    `check_params`), with its parameters, which are checked and given their defaults when built.

    E.g. FunctionalLoss(tce.functional.symmetric_cross_entropy, alpha=0.1, beta=1.0); `tce.build_loss`
    builds these by name. What the function needs beyond logits and targets (its `needs`: the model's parameters, a
    transition matrix, ...) is passed at each call, by name.
    """

    def __init__(self, function: Callable[..., torch.Tensor], *, reduction: str = "mean", **params) -> None:
        super().__init__(reduction)
        self.function = function
        self.params = function.check_params(params)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, **needs) -> torch.Tensor:
        return self.function(logits, target, reduction=self.reduction, **needs, **self.params)

    def extra_repr(self) -> str:
        params = "".join(f"{name}={value!r}, " for name, value in self.params.items())
        return f"{self.function.__name__}, {params}{super().extra_repr()}"
