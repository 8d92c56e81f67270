"""train.py in a subprocess, for the tests that kill, signal and relaunch it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.killpoints import ENV as KILL_AT

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, kill_at: str | None = None, env: dict | None = None) -> subprocess.Popen:
    """`python train.py *args` from the repository root; one thread, so the floats do not depend on the load.

    kill_at: the process signals itself there (experiments/killpoints.py), e.g. "checkpoint:3" or
    "summary:2:SIGTERM". env: more environment variables.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop(KILL_AT, None)
    if kill_at:
        env[KILL_AT] = kill_at
    # Ctrl-C as a terminal delivers it: a shell that started the suite in the background ignores SIGINT, and its
    # children inherit that, so the child gets Python's own handler back.
    return subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    """Waits for `proc` and returns what it printed."""
    return proc.communicate(timeout=timeout)[0]


def wait_for_epochs(proc: subprocess.Popen, summary: Path, epochs: int, timeout: float = 240) -> None:
    """Returns once the run's summary.json counts `epochs` completed epochs; fails if the process ends first. For
    the one test whose signals come from outside the process (submitit's), where a kill point cannot send them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(summary.read_text())["epochs_completed"] >= epochs:
                return
        except (OSError, ValueError, KeyError):  # not written yet, or being replaced
            pass
        time.sleep(0.02)
    raise AssertionError(f"the run did not reach epoch {epochs}: {proc.communicate()[0]}")
