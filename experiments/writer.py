"""One thread that writes a pack's records while the next epoch trains.

Jobs run in the order they are submitted, one at a time, so a run's files are written in the order experiments/run.py
lays down (checkpoint first: no file runs ahead of what can be resumed). An error in a job is raised in the trainer's
thread at its next submit or wait; the jobs after it are dropped. `wait` returns once every job is done: a stop
signal waits for it before the runs are marked interrupted.
"""

import queue
import threading
from collections.abc import Callable


class Writer:
    def __init__(self):
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="tce-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if self._error is None:
                    job()
            except BaseException as error:  # noqa: BLE001 - raised in the trainer's thread
                self._error = error
            finally:
                self._jobs.task_done()
        self._jobs.task_done()

    def submit(self, job: Callable[[], None]) -> None:
        self._raise()
        self._jobs.put(job)

    def wait(self, check: bool = True) -> None:
        """Returns once every submitted job is done; raises the error of one that failed, if `check`."""
        self._jobs.join()
        if check:
            self._raise()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def close(self) -> None:
        """Waits for the jobs, then ends the thread (an error of theirs is not raised: use wait for that)."""
        self._jobs.put(None)
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
