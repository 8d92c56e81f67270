"""A test hook: TCE_KILL_AT makes the process signal itself at a named point between a run's per-epoch writes, so
that a test stops a run exactly where a crash, a dead node or a preemption could, instead of polling for it.

    TCE_KILL_AT=<point>:<epoch>[:<signal>]    checkpoint:3        SIGKILL right after epoch 3's checkpoint
                                              summary:2:SIGTERM   SIGTERM right after epoch 2's summary
                                              trained:1:SIGTERM   SIGTERM once epoch 1 is trained and evaluated

The points, in the order of an epoch: trained (the epoch trained and evaluated, nothing of it written yet), then
those of its records, which the writer thread writes while the next epoch trains (experiments/run.py): checkpoint,
metrics, calibration, summary. With checkpoint_every > 1 an epoch that is not a checkpoint's has no records: its
rows are written with the next checkpoint's, whose epoch the record points name. Unset (always, outside tests), it
does nothing.
"""

import os
import signal

from experiments.rundir import WRITE_ORDER

ENV = "TCE_KILL_AT"
POINTS = ("trained", *WRITE_ORDER)


def reached(point: str, epoch: int) -> None:
    """Signals this process if TCE_KILL_AT names `point` of `epoch`."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    at, _, rest = wanted.partition(":")
    number, _, name = rest.partition(":")
    if at not in POINTS or not number.isdigit() or (name and name not in signal.Signals.__members__):
        raise ValueError(f"{ENV}={wanted!r}: expected <point>:<epoch>[:<signal>] with a point of {', '.join(POINTS)}")
    if (at, int(number)) == (point, epoch):
        os.kill(os.getpid(), signal.Signals[name] if name else signal.SIGKILL)
