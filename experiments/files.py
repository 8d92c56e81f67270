"""How the run directory's files are serialized; each is written atomically (data.files.write_atomic)."""

import json
import math
from pathlib import Path
from typing import Any

import torch

from data.files import write_atomic


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON: a non-finite float (a diverged run's loss) is written as null, which every reader accepts."""
    write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


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
