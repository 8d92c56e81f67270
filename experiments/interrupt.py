"""Stopping cleanly on the signals a cluster sends, SIGTERM (Slurm's preemption and time limit, `kill`) and SIGUSR1
(a common `--signal` choice for a warning before the time limit), and on Ctrl-C (SIGINT).

The handler only records the signal; training checks for it between batches and raises RunInterrupted there, so a
stop never lands halfway through writing an epoch's files. A run stops within one batch (seconds, far below the
60 s Slurm leaves before SIGKILL), keeps its completed epochs, is marked interrupted and resumes when relaunched.
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
# What a signal nobody handles has: the system's default, or Python's own for SIGINT (raise KeyboardInterrupt).
_UNHANDLED = (signal.SIG_DFL, signal.default_int_handler)


class RunInterrupted(BaseException):
    """A stop signal arrived; a BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


_received: list[int] = []


def check() -> None:
    """Raises RunInterrupted if a stop signal has arrived since stop_signals() began."""
    if _received:
        raise RunInterrupted(_received[0])


@contextmanager
def stop_signals() -> Iterator[None]:
    """Within this block, SIGTERM, SIGUSR1 and SIGINT request a stop (see check); outside it, the handlers are as
    before.

    A signal the process already handles stays with its handler: in a submitit job (hydra/launcher=slurm_gpu),
    Slurm's preemption sends SIGTERM and then submitit's USR2, and submitit ignores the first and turns the second
    into a requeue, whose exit run_pack records as an interruption. Signals can only be handled in the main thread;
    elsewhere (a launcher's worker thread) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    unhandled = [signum for signum in SIGNALS if signal.getsignal(signum) in _UNHANDLED]
    previous = {signum: signal.signal(signum, lambda signum, frame: _received.append(signum)) for signum in unhandled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
