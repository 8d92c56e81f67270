"""How the run directory's files are serialized; each is written atomically (data.files.write_atomic)."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy._core.multiarray import _reconstruct

from data.files import write_atomic

# What older checkpoints pickled besides tensors and plain data: numpy's RNG state, an array of uint32. Admitted
# so that they still resume (their RNG states are ignored); any other global is refused before anything runs.
_OLD_CHECKPOINT_GLOBALS = [_reconstruct, np.ndarray, np.dtype, np.dtypes.UInt32DType]


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON: a non-finite float (a diverged run's loss) is written as null, which every reader accepts."""
    write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    """What write_json wrote at `path`; None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def save_torch(path: Path, obj: Any) -> None:
    write_atomic(path, lambda f: torch.save(obj, f))


def load_torch(path: Path) -> Any:
    """What save_torch wrote at `path`, on the CPU: tensors and plain data only (torch.load's weights_only), so
    that a file planted in a shared runs folder cannot run code as whoever reads it."""
    with torch.serialization.safe_globals(_OLD_CHECKPOINT_GLOBALS):
        return torch.load(path, map_location="cpu", weights_only=True)
