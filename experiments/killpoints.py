"""A test hook: TCE_KILL_AT makes the process signal itself at a named point between a run's per-epoch writes, so
that a test stops a run exactly where a crash, a dead node or a preemption could, instead of polling for it.

    TCE_KILL_AT=<point>:<epoch>[:<signal>]    checkpoint:3        SIGKILL right after epoch 3's checkpoint
                                              summary:2:SIGTERM   SIGTERM right after epoch 2's summary

The points, in the order experiments/run.py records an epoch: checkpoint, metrics, calibration, summary. Unset
(always, outside tests), it does nothing.
"""

import os
import signal

ENV = "TCE_KILL_AT"
POINTS = ("checkpoint", "metrics", "calibration", "summary")


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
