"""Files on disk, the one writer of the project (the dataset cache, the CIFAR-N download, the run directories):
atomic writes of bytes, text, strict JSON and torch objects, appends, and their readers.

An atomic write goes to a temp file in the same folder, flushed to disk, then renamed over the target: a process
killed at any moment leaves either the old file or the new one, never a torn one (as timm's CheckpointSaver). An
append killed midway can leave a torn last line: only files that their writer rewrites whole when it resumes (a
run's metrics.csv and calibration.csv) are appended to. Torch files are read with weights_only: tensors and plain
data, never code.
"""

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from numpy._core.multiarray import _reconstruct

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Writes `path` with write(file); if write raises, the target is untouched and the temp file is gone."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would make the file private to its writer
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append(path: Path, data: bytes) -> None:
    """Appends `data` to `path` and flushes it to disk."""
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


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
