"""Argument checks shared by the losses; each raises ValueError with the offending value."""

import math
import numbers

import torch

REDUCTIONS = ("mean", "sum", "none")


def check_alpha(alpha: float) -> float:
    # bool is a numbers.Real too, but alpha=True is always a mistake.
    is_number = isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
    # Comparisons rather than math.isfinite, so that torch.compile can trace alpha as a symbolic float;
    # NaN fails both.
    if not (is_number and 0 <= alpha < math.inf):
        raise ValueError(f"alpha must be a finite Python number >= 0, got {alpha!r}")
    return float(alpha)


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_logits_and_target(logits: torch.Tensor, target: torch.Tensor) -> None:
    """Checks shapes (N, C) and (N,), dtypes, and that 0 <= target < C.

    The range check reads tensor values, so it runs only on CPU tensors outside torch.compile: on an
    accelerator it would stall every training step on a host sync, and it would split a compiled graph.
    There an out-of-range target trips the bounds check of the loss's gather or scatter instead (a
    device-side assert on CUDA), without this readable message.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, C), got shape {tuple(logits.shape)}")
    if target.dim() != 1:
        raise ValueError(f"target must have shape (N,), got shape {tuple(target.shape)}")
    if target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"logits and target disagree on the batch size N: {logits.shape[0]} vs {target.shape[0]}"
        )
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating point tensor, got {logits.dtype}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got {target.dtype}")
    if target.device.type == "cpu" and not torch.compiler.is_compiling():
        num_classes = logits.shape[1]
        out_of_range = (target < 0) | (target >= num_classes)
        if out_of_range.any():
            raise ValueError(
                f"target must lie in [0, {num_classes}), got {target[out_of_range][:5].tolist()}"
            )
