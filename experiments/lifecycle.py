"""A run's lifecycle: its states, the moves between them, and the one writer of summary.json.

    (no summary) ── start ──▶ running ── an epoch recorded ──▶ running
         │                     ├── its rows reach `epochs` ──▶ complete          terminal
         │                     ├── a non-finite training loss ──▶ diverged       terminal
         │                     ├── a crash ──▶ failed
         │                     └── a stop signal, a launcher's exit ──▶ interrupted
         └── cannot start (an unreadable checkpoint) ──▶ failed

    interrupted, failed, and a `running` left by a killed process ── relaunch ──▶ running, or failed

A relaunch skips a terminal run; force=true clears its directory (experiments/rundir.py), which starts it afresh.
The status is decided here from what the run has recorded (`after_epochs`), so a run whose rows reach `epochs`
is written complete however it got there, a resume included.
"""

import math
from pathlib import Path

from data.files import read_json, write_json

RUNNING, INTERRUPTED, COMPLETE, DIVERGED, FAILED = STATUSES = (
    "running", "interrupted", "complete", "diverged", "failed",
)
# The moves out of each status (None: a directory without a summary); the statuses without one are terminal.
MOVES: dict[str | None, tuple[str, ...]] = {
    None: (RUNNING, FAILED),
    RUNNING: (RUNNING, COMPLETE, DIVERGED, FAILED, INTERRUPTED),
    INTERRUPTED: (RUNNING, FAILED),
    FAILED: (RUNNING, FAILED),
}
TERMINAL = tuple(status for status in STATUSES if status not in MOVES)
# Not states of a run directory: what run_pack says of a run it did not train (complete, diverged or busy
# elsewhere before, or listed twice in one pack), and what aggregation says of a directory whose files cannot be
# read or contradict each other.
SKIPPED = "skipped"
CORRUPT = "corrupt"


class LifecycleError(RuntimeError):
    """A move the lifecycle does not have: a bug in the engine, never a user's doing."""


def diverged(row: dict) -> bool:
    return not math.isfinite(row["train_loss"])


def after_epochs(rows: list[dict], epochs: int) -> str:
    """The status of a run that has recorded `rows` (one per epoch) of its `epochs`."""
    if rows and diverged(rows[-1]):
        return DIVERGED
    return COMPLETE if len(rows) >= epochs else RUNNING


class Lifecycle:
    """The status of one run directory as its summary.json records it; `move` is the only way to change it.

    Created while the run's lock is held, so the status it reads is not changing under it.
    """

    def __init__(self, summary: Path):
        self.path = Path(summary)
        found = read_json(self.path)
        status = found.get("status") if isinstance(found, dict) else None
        known = status in STATUSES  # an unreadable summary is as good as none
        self.status = status if known else None
        # The summary as found, but its status: what a run that cannot start keeps of it.
        self.record = {k: v for k, v in found.items() if k != "status"} if known else {}

    def move(self, status: str, record: dict) -> None:
        """Write summary.json with `status` and `record` (everything but the status)."""
        if status not in MOVES.get(self.status, ()):
            raise LifecycleError(f"{self.path.parent}: a run cannot go from {self.status} to {status}")
        write_json(self.path, {"status": status, **record})
        self.status = status
