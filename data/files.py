"""Atomic file writes: a temp file in the same folder, flushed to disk, then renamed over the target; and appends,
flushed to disk.

A process killed at any moment leaves either the old file or the new one, never a torn one (as timm's
CheckpointSaver). The one writer of the project: the dataset cache, the CIFAR-N download and the run directories.
An append killed midway can leave a torn last line: only files that their writer rewrites whole when it resumes
(a run's metrics.csv and calibration.csv) are appended to.
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

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
