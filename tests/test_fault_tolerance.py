"""Where runs are killed, preempted and requeued: locks with a heartbeat, stop signals, unreadable checkpoints,
old checkpoints, and torch.compile that cannot compile."""

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from processes import REPO, cli, wait_for_epochs
from torch._dynamo.testing import CompileCounter

from compose import tiny, train_tiny
from experiments import interrupt
from experiments.lock import LockBusy, RunLock

RUN = "synthetic/ce/noise0.4-uniform-holdout32-seed0"


# --- the lock -----------------------------------------------------------------------------------------------


def _write_lock(path: Path, owner: str, age: float) -> None:
    path.write_text(owner)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def test_lock_holds_host_pid_and_job_and_its_heartbeat_keeps_it_fresh(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    lock = RunLock(tmp_path / ".lock", timeout=0.4)  # heartbeat every 0.1 s
    lock.acquire()
    try:
        assert (tmp_path / ".lock").read_text() == f"{socket.gethostname()} {os.getpid()} 4242"
        old = time.time() - 100
        os.utime(tmp_path / ".lock", (old, old))
        time.sleep(0.35)
        assert time.time() - (tmp_path / ".lock").stat().st_mtime < 0.3  # refreshed
    finally:
        lock.release()
    assert not (tmp_path / ".lock").exists()


OWNERS = {
    "other host": "other-host 123 -",
    "dead process of this host": f"{socket.gethostname()} 999999999 -",
    "this process": f"{socket.gethostname()} {{pid}} -",
    "earlier attempt of this array task": "other-host 123 777_3",  # a requeued Slurm job
    "other task of the array": "other-host 123 777_4",
    "being written": "",
}


@pytest.mark.parametrize(
    ("who", "age", "stale"),
    [
        ("other host", 2 * 3600, True),  # nobody refreshed it: stale wherever it was written
        ("other host", 5, False),  # another machine's live job
        ("dead process of this host", 5, True),
        ("this process", 5, True),
        ("earlier attempt of this array task", 5, True),
        ("other task of the array", 5, False),
        ("being written", 5, False),
        ("being written", 2 * 3600, True),
    ],
)
def test_which_locks_are_stale(tmp_path, monkeypatch, who, age, stale):
    owner = OWNERS[who].format(pid=os.getpid())
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "777")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    _write_lock(tmp_path / ".lock", owner, age)
    lock = RunLock(tmp_path / ".lock", timeout=600)
    if stale:
        lock.acquire()
        assert (tmp_path / ".lock").read_text() == lock.owner
        lock.release()
    else:
        with pytest.raises(LockBusy):
            lock.acquire()
        assert (tmp_path / ".lock").read_text() == owner  # left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if stale else [".lock"])


def test_release_leaves_a_lock_that_was_taken_over(tmp_path):
    lock = RunLock(tmp_path / ".lock", timeout=600)
    lock.acquire()
    (tmp_path / ".lock").write_text("other-host 1 -")  # presumed dead, and taken over by another process
    lock.release()
    assert (tmp_path / ".lock").read_text() == "other-host 1 -"


# --- stop signals, stale locks and relaunches, through the command line ----------------------------------------


def test_stop_signals_take_only_the_signals_nobody_handles():
    """A launcher's handler (submitit's for SIGTERM) keeps its signal; an unhandled signal requests a stop; both
    handlers are as before afterwards."""
    launchers = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: launchers.append(signum))
    try:
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
        with interrupt.stop_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            interrupt.check()  # submitit's SIGTERM: not a stop
            assert launchers == [signal.SIGTERM]
            os.kill(os.getpid(), signal.SIGUSR1)
            with pytest.raises(interrupt.RunInterrupted, match="SIGUSR1"):
                interrupt.check()
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)



def _metrics_epochs(run_dir: Path) -> list[str]:
    return [line.split(",")[0] for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_stop_signal_interrupts_cleanly_and_a_relaunch_completes_the_run(tmp_path, signum):
    args = tiny(tmp_path, "epochs=8", "noise=0.4")
    run_dir = tmp_path / RUN
    proc = cli(*args)
    wait_for_epochs(proc, run_dir / "summary.json", 2)
    start = time.monotonic()
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - start < 60
    assert proc.returncode == 128 + signum, out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and signal.Signals(signum).name in summary["error"]
    assert not (run_dir / ".lock").exists()
    completed = summary["epochs_completed"]
    assert 2 <= completed < 8 and _metrics_epochs(run_dir) == [str(e) for e in range(1, completed + 1)]
    assert signal.Signals(signum).name in out.splitlines()[-1] and "Traceback" not in out

    resumed = cli(*args)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and f"resuming after epoch {completed}" in out, out
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"
    assert _metrics_epochs(run_dir) == [str(e) for e in range(1, 9)]  # exactly one row per epoch


def _killed_run(tmp_path: Path) -> tuple[list[str], Path]:
    args = tiny(tmp_path, "epochs=5", "noise=0.4")
    run_dir = tmp_path / RUN
    proc = cli(*args)
    wait_for_epochs(proc, run_dir / "summary.json", 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert (run_dir / ".lock").exists()  # SIGKILL leaves the lock behind
    return args, run_dir


def test_a_killed_runs_lock_of_another_host_is_stale_after_the_timeout_and_busy_before(tmp_path):
    args, run_dir = _killed_run(tmp_path)
    _write_lock(run_dir / ".lock", "node17 4242 -", age=2 * 3600)
    resumed = cli(*args)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "resuming after epoch" in out, out
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"

    args, run_dir = _killed_run(tmp_path / "fresh")
    _write_lock(run_dir / ".lock", "node17 4242 -", age=1)
    busy = cli(*args)
    out, _ = busy.communicate(timeout=300)
    assert busy.returncode == 0 and "is being trained by 'node17 4242 -'" in out and "skipped" in out, out
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"


# --- checkpoints ---------------------------------------------------------------------------------------------


def test_an_unreadable_checkpoint_fails_its_run_in_one_line_and_the_sweep_goes_on(tmp_path):
    args, run_dir = _killed_run(tmp_path)
    checkpoint = run_dir / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])  # truncated
    alone = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert alone.returncode == 2 and "Traceback" not in alone.stderr + alone.stdout
    assert alone.stderr.strip() == alone.stderr.strip().splitlines()[-1]  # one line
    assert alone.stderr.startswith(f"error: cannot resume from {checkpoint}") and "force=true" in alone.stderr
    (run_dir / ".lock").unlink(missing_ok=True)
    proc = cli("-m", *tiny(tmp_path, "epochs=5", "noise=0.4", "seed=0,1"))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out  # the sweep reports its failed run at the end...
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    error = summary["error"]
    assert str(checkpoint) in error and "force=true" in error and "\n" not in error
    other = json.loads((tmp_path / RUN.replace("seed0", "seed1") / "summary.json").read_text())
    assert other["status"] == "complete"  # ...after training the others
    assert "Traceback" not in out


def test_checkpoints_hold_no_cuda_rng_and_old_ones_with_it_still_load(tmp_path):
    _, run_dir = _killed_run(tmp_path)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert set(state["rng"]) == {"python", "numpy", "torch"}
    # A checkpoint of an older version, written where GPUs were visible.
    state["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)] * 8
    torch.save(state, run_dir / "checkpoint.pt")
    (run_dir / ".lock").unlink()
    status, _ = train_tiny(tmp_path, "epochs=5", "noise=0.4")
    assert status == "complete"


# --- torch.compile ---------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_models(monkeypatch):
    """The engine keeps one model per process and shape; these tests want their own."""
    from experiments import trainer

    monkeypatch.setattr(trainer, "_MODELS", {})


def test_compile_that_fails_falls_back_to_eager_with_one_warning(tmp_path, monkeypatch, fresh_models, caplog):
    def broken_compile(model, **kwargs):
        def compiled(x):
            raise RuntimeError("Triton needs a C compiler, and there is none")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    status, run_dir = train_tiny(tmp_path, "compile=true", "epochs=2")
    assert status == "complete"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["compiled"] is False and summary["config"]["compile"] is True
    warnings = [r.message for r in caplog.records if "torch.compile failed" in r.message]
    assert len(warnings) == 1 and "needs a C compiler" in warnings[0] and "\n" not in warnings[0]
    eager = train_tiny(tmp_path / "eager", "compile=false", "epochs=2")[1]
    assert (run_dir / "metrics.csv").read_text().split("\n")[1].split(",")[:-1] == (
        (eager / "metrics.csv").read_text().split("\n")[1].split(",")[:-1]
    )


def test_a_sweep_process_compiles_a_few_graphs(tmp_path, monkeypatch, fresh_models):
    counter = CompileCounter()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=counter))
    # A validation run and two full runs: training sets of 128 and 160 images in batches of 32 (no partial batch)
    # and of 100 (a partial batch of 4), evaluation sets of 64, 32 and 160 images in batches of 48.
    for overrides in (["holdout=32", "seed=0"], ["holdout=0", "seed=1"], ["holdout=60", "seed=2"]):
        status, run_dir = train_tiny(tmp_path, "compile=true", "epochs=2", "eval_batch_size=48", *overrides)
        assert status == "complete" and json.loads((run_dir / "summary.json").read_text())["compiled"] is True
    # Training batches of 32 and 4, and one evaluation batch of 48: three graphs for the whole process.
    assert counter.frame_count == 3
