"""nn.Module forms of the losses, for code that builds its criterion once and calls it per batch."""

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
