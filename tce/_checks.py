"""Argument checks shared by the losses; each raises ValueError with a one-line message that starts with the
name of the offending argument and ends with its value."""

import math
import numbers
from typing import NamedTuple

import torch

REDUCTIONS = ("mean", "sum", "none")


class Interval(NamedTuple):
    """The finite Python numbers from low to high; an open end excludes its bound."""

    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def check(self, name: str, value: float) -> float:
        # bool is a numbers.Real too, but q=True is always a mistake.
        is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        # Comparisons rather than math.isfinite, so that torch.compile can trace the value as a symbolic
        # float; NaN fails them all.
        if not (
            is_number
            and -math.inf < value < math.inf
            and (self.low < value if self.open_low else self.low <= value)
            and (value < self.high if self.open_high else value <= self.high)
        ):
            raise ValueError(f"{name} must be {self.describe()}, got {_one_line(value)}")
        return float(value)

    def describe(self) -> str:
        """E.g. "in (0, 1]", or "a finite number >= 0" where one end is unbounded."""
        if self.high == math.inf:
            return f"a finite number {'>' if self.open_low else '>='} {self.low:g}"
        if self.low == -math.inf:
            return f"a finite number {'<' if self.open_high else '<='} {self.high:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


class Count(NamedTuple):
    """The Python integers >= minimum. Not bools, and not floats such as 2.0: a count written as a float is
    more likely a misplaced real-valued parameter than a count."""

    minimum: int = 1

    def check(self, name: str, value: int) -> int:
        is_integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not (is_integer and value >= self.minimum):
            raise ValueError(f"{name} must be an integer >= {self.minimum}, got {_one_line(value)}")
        return int(value)


class Choice(NamedTuple):
    """One of the given strings, e.g. a loss's variant."""

    options: tuple[str, ...]

    def check(self, name: str, value: str) -> str:
        if not (isinstance(value, str) and value in self.options):
            raise ValueError(f"{name} must be one of {', '.join(self.options)}, got {_one_line(value)}")
        return value


NONNEGATIVE = Interval(low=0)
POSITIVE = Interval(low=0, open_low=True)
FRACTION = Interval(0, 1)


def check_alpha(alpha: float) -> float:
    """TCE's alpha: a finite number >= 0."""
    return NONNEGATIVE.check("alpha", alpha)


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


#: Above this condition number a transition matrix counts as singular: 1 / float32's machine epsilon, beyond which its
#: inverse, applied in float32, keeps no correct digit.
SINGULAR_CONDITION = 1 / torch.finfo(torch.float32).eps
#: How far from 1 the rows of a transition matrix may sum.
ROW_SUM_TOLERANCE = 1e-6


def check_transition(transition: torch.Tensor) -> torch.Tensor:
    """A label transition matrix T (C, C), T_ij = P(noisy label j | true class i), as float64: finite entries >= 0,
    each row summing to 1 (within ROW_SUM_TOLERANCE), and not singular (condition number up to SINGULAR_CONDITION).
    Raises a one-line ValueError naming what is wrong."""
    t = torch.as_tensor(transition, dtype=torch.float64)
    if t.dim() != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 2:
        raise ValueError(f"transition must be a C x C matrix with C >= 2, got shape {tuple(t.shape)}")
    if not (torch.isfinite(t).all() and (t >= 0).all()):
        bad = torch.nonzero(~(torch.isfinite(t) & (t >= 0)))[0].tolist()
        raise ValueError(f"transition must have finite entries >= 0, got {t[bad[0], bad[1]].item()} at {tuple(bad)}")
    off = (t.sum(dim=1) - 1).abs()
    if (off > ROW_SUM_TOLERANCE).any():
        row = int(off.argmax())
        raise ValueError(f"transition must be row-stochastic (each row sums to 1), got row {row} summing to "
                         f"{t[row].sum().item():.9g}")
    condition = torch.linalg.cond(t).item()
    if not condition <= SINGULAR_CONDITION:  # also NaN, inf
        raise ValueError(f"transition is singular (condition number {condition:.3g}, above {SINGULAR_CONDITION:.3g})")
    return t


def _one_line(value: object) -> str:
    # A tensor's repr can span several lines; an error message should not.
    return " ".join(repr(value).split())
