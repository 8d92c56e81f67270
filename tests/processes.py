"""train.py in a subprocess, for the tests that kill, signal and relaunch it."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.Popen:
    """`python train.py *args` from the repository root; one thread, so the floats do not depend on the load."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for_epochs(proc: subprocess.Popen, summary: Path, epochs: int, timeout: float = 240) -> None:
    """Returns once the run's summary.json counts `epochs` completed epochs; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(summary.read_text())["epochs_completed"] >= epochs:
                return
        except (OSError, ValueError, KeyError):  # not written yet, or being replaced
            pass
        time.sleep(0.02)
    raise AssertionError(f"the run did not reach epoch {epochs}: {proc.communicate()[0]}")
