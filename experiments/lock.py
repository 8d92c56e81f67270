"""The lock of a run directory: which process trains the run, kept alive by a heartbeat.

`<run dir>/.lock` holds "host pid job attempt": the Slurm job id (the same across requeues; "-" outside Slurm)
and its attempt (SLURM_RESTART_COUNT, which each requeue raises; 0 at first). While the run trains, a background
thread refreshes the file's mtime every `timeout / 4` seconds, at most 30 s apart, long epochs included. A lock is
stale, and taken over, when:
- nobody refreshed it for `timeout` seconds, wherever it was written (its trainer was killed, or its node died);
- it was written by an earlier attempt of this Slurm job (a requeued job resumes its own run at once). The job id
  alone says nothing: every process of one allocation shares it (joblib inside an sbatch script, `srun -n 4`);
- it was written on this host by a process that is gone, or by an earlier process with this one's pid (PID reuse
  otherwise aside, which the mtime rule covers).
Any other lock is respected: the run is busy. A process never takes a lock twice.
"""

import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path

log = logging.getLogger("tce")

MAX_HEARTBEAT = 30.0  # seconds: a live lock is at most this old, however long the timeout


class LockBusy(RuntimeError):
    """Another live process holds the lock; the message is one line."""


# The locks this process holds, by resolved path.
_held: set[Path] = set()


def _job() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "-")


def _attempt() -> int:
    count = os.environ.get("SLURM_RESTART_COUNT", "")
    return int(count) if count.isdigit() else 0


class RunLock:
    def __init__(self, path: Path, timeout: float):
        self.path = Path(path)
        self.timeout = timeout
        self.owner = f"{socket.gethostname()} {os.getpid()} {_job()} {_attempt()}"
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> None:
        """Takes the lock (breaking a stale one) and starts the heartbeat; raises LockBusy when it is held."""
        if self.path.resolve() in _held:
            raise LockBusy(f"{self.path.parent} is being trained by this process already")
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                self._break_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(self.owner)
            _held.add(self.path.resolve())
            self._stop.clear()
            self._heartbeat = threading.Thread(target=self._beat, name=f"lock {self.path}", daemon=True)
            self._heartbeat.start()
            return
        raise LockBusy(f"{self.path} keeps being taken by other processes")

    def release(self) -> None:
        """Stops the heartbeat and removes the lock if it is still this process's; nothing if it was not taken."""
        if self._heartbeat is None:
            return
        self._stop.set()
        self._heartbeat.join()
        self._heartbeat = None
        if self._read() == self.owner:
            self.path.unlink(missing_ok=True)
        _held.discard(self.path.resolve())

    def _beat(self) -> None:
        interval = min(MAX_HEARTBEAT, self.timeout / 4)
        while not self._stop.wait(interval):
            if self._read() != self.owner:  # taken over (we were presumed dead): leave it alone
                return
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def _read(self) -> str | None:
        try:
            return self.path.read_text()
        except OSError:
            return None

    def _break_if_stale(self) -> None:
        try:
            owner, age = self.path.read_text(), time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return  # released meanwhile: try again
        reason = self._stale(owner, age)
        if reason is None:
            stale_in = max(0.0, self.timeout - age)
            raise LockBusy(
                f"{self.path.parent} is being trained by {owner!r} (lock refreshed {age:.0f} s ago; stale after "
                f"{self.timeout:.0f} s without a refresh, in {stale_in:.0f} s)"
            )
        # Moved aside rather than deleted, so that of two processes breaking it at once only one succeeds, and one
        # that finds it already replaced by a fresh lock puts that back.
        log.info(f"{self.path}: taking over the lock of {owner!r}: {reason}")
        aside = self.path.with_name(f"{self.path.name}.{os.getpid()}.{time.monotonic_ns()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if aside.read_text() != owner:  # a fresh lock replaced the stale one meanwhile: put it back
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        aside.unlink()

    def _stale(self, owner: str, age: float) -> str | None:
        """Why the lock written by `owner`, last refreshed `age` seconds ago, is stale; None if it is live."""
        if age > self.timeout:
            return f"not refreshed for {age:.0f} s"
        host, pid, job, attempt = (owner.split() + ["", "", "", ""])[:4]
        if job != "-" and job == _job() and attempt.isdigit() and int(attempt) < _attempt():
            return f"left by attempt {attempt} of this job, which Slurm requeued (this is attempt {_attempt()})"
        if host != socket.gethostname() or not pid.isdigit():
            return None  # another machine's live job, or a lock still being written
        if int(pid) == os.getpid():  # not held by this process (acquire checked): an earlier one with this pid
            return "left by an earlier process with this pid"
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return "its process is gone"
        except PermissionError:
            return None
        return None
