"""The initialisation of the APL family's networks (HanxunH/Active-Passive-Losses models.py, hitcszx/ALFs models.py,
Virusdoll/Active-Negative-Loss models/: `_reset_prams`), which re-draws only the weights of convolutions and
linear layers; biases and BatchNorm keep PyTorch's defaults."""

from torch import nn


def kaiming_xavier(model: nn.Module) -> None:
    """Conv weights ~ Kaiming-uniform (fan_in, ReLU gain): U(±sqrt(6 / fan_in)); Linear weights ~ Xavier-uniform:
    U(±sqrt(6 / (fan_in + fan_out)))."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
