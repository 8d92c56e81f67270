"""Where runs are killed, preempted and requeued: a kill at every point between an epoch's writes, locks with a
heartbeat and two live processes, stop signals, force on a busy run, unreadable, planted and old checkpoints, the
global generators, and torch.compile that cannot compile."""

import csv
import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from processes import REPO, cli, finish
from torch._dynamo.testing import CompileCounter

import tce
from compose import compose_train, tiny, train_tiny
from experiments import interrupt, trainer
from experiments.identity import run_name
from experiments.interrupt import RunInterrupted
from experiments.killpoints import ENV as KILL_AT
from experiments.lock import LockBusy, RunLock
from experiments.resolve import resolve
from experiments.run import StartError, run_pack
from experiments.rundir import WRITE_ORDER
from experiments.schema import loss_params
from experiments.trainer import compiled_graphs

RUN = "synthetic/ce/noise0.4-uniform-holdout32-seed0"
EPOCHS = 4


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def without_seconds(found: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in found]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture
def one_thread():
    """Runs trained in this process with threads=1 compute what train.py's one-thread processes do; the process's
    thread count is put back afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# --- the lifecycle at every point between an epoch's writes ---------------------------------------------------


def test_a_run_killed_at_every_point_of_an_epoch_ends_complete_with_the_uninterrupted_metrics(tmp_path, one_thread):
    """Each launch is SIGKILLed one epoch further, at the next point between the epoch's writes; the last kill comes
    right after the last epoch's checkpoint, where the files still say epoch 3, running. One more launch completes
    the run without training, with exactly the rows, calibration sums and summary of an uninterrupted run."""
    args = tiny(tmp_path / "killed", f"epochs={EPOCHS}", "noise=0.4", "threads=1")
    run_dir = tmp_path / "killed" / RUN
    # After each write of an epoch but the first, then after the first (the checkpoint) of the last epoch.
    kills = [*zip(WRITE_ORDER[1:], range(1, EPOCHS), strict=True), (WRITE_ORDER[0], EPOCHS)]
    # What summary.json counts when each kill lands: the epoch once its summary is written, else the one before.
    summarized = {point: epoch if WRITE_ORDER.index(point) >= WRITE_ORDER.index("summary") else epoch - 1
                  for point, epoch in kills}
    for point, epoch in kills:
        proc = cli(*args, kill_at=f"{point}:{epoch}")
        out = finish(proc)
        assert proc.returncode == -signal.SIGKILL, out
        assert f"resuming after epoch {epoch - 1}" in out or epoch == 1, out
        assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == epoch
        found = summary(run_dir)
        assert (found["status"], found["epochs_completed"]) == ("running", summarized[point])
    proc = cli(*args)
    out = finish(proc)
    assert proc.returncode == 0 and f"resuming after epoch {EPOCHS}" in out, out
    assert f"epoch {EPOCHS}/{EPOCHS}" not in out  # nothing left to train
    assert not (run_dir / ".lock").exists()

    status, reference = train_tiny(tmp_path / "reference", f"epochs={EPOCHS}", "noise=0.4", "threads=1")
    assert status == "complete"
    assert without_seconds(rows(run_dir)) == without_seconds(rows(reference))  # one row per epoch, the same ones
    assert (run_dir / "calibration.csv").read_text() == (reference / "calibration.csv").read_text()
    done, expected = summary(run_dir), summary(reference)
    assert done["status"] == "complete" and done["epochs_completed"] == EPOCHS and "error" not in done
    same = ("best_val_epoch", "noise", "train_eval", "params", "compiled")
    assert {k: done[k] for k in same} == {k: expected[k] for k in same}
    assert {**done["config"], "runs_dir": None} == {**expected["config"], "runs_dir": None}
    assert without_seconds([done["final"]]) == without_seconds([expected["final"]])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])  # SIGINT: Ctrl-C
def test_stop_signal_interrupts_cleanly_and_a_relaunch_completes_the_run(tmp_path, signum, caplog):
    args = tiny(tmp_path, f"epochs={EPOCHS}", "noise=0.4")
    run_dir = tmp_path / RUN
    name = signal.Signals(signum).name
    proc = cli(*args, kill_at=f"summary:2:{name}")  # the signal arrives right after epoch 2 is recorded
    out = finish(proc)
    assert proc.returncode == 128 + signum, out
    found = summary(run_dir)
    assert found["status"] == "interrupted" and name in found["error"]
    assert found["epochs_completed"] == 2 and [r["epoch"] for r in rows(run_dir)] == ["1", "2"]  # within one batch
    assert not (run_dir / ".lock").exists()
    assert name in out.splitlines()[-1] and "Traceback" not in out

    caplog.set_level("INFO", logger="tce")
    status, _ = train_tiny(tmp_path, f"epochs={EPOCHS}", "noise=0.4")
    assert status == "complete" and "resuming after epoch 2" in caplog.text
    assert [r["epoch"] for r in rows(run_dir)] == [str(e) for e in range(1, EPOCHS + 1)]  # exactly one row per epoch


def test_checkpoint_every_keeps_epochs_in_memory_that_a_stop_writes_and_a_kill_loses(tmp_path, one_thread):
    """checkpoint_every=2: killed once epoch 3 is trained, the run holds epoch 2's checkpoint and records; resumed
    and stopped by SIGTERM there, it writes epoch 3 from memory; resumed again, it ends with exactly the rows of an
    uninterrupted run."""
    args = tiny(tmp_path / "stopped", f"epochs={EPOCHS}", "noise=0.4", "threads=1", "checkpoint_every=2")
    run_dir = tmp_path / "stopped" / RUN
    killed = cli(*args, kill_at="trained:3")
    out = finish(killed)
    assert killed.returncode == -signal.SIGKILL, out
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert summary(run_dir)["epochs_completed"] == 2 and [r["epoch"] for r in rows(run_dir)] == ["1", "2"]

    stopped = cli(*args, kill_at="trained:3:SIGTERM")
    out = finish(stopped)
    assert stopped.returncode == 128 + signal.SIGTERM and "resuming after epoch 2" in out, out
    found = summary(run_dir)
    assert (found["status"], found["epochs_completed"]) == ("interrupted", 3), found
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 3
    assert [r["epoch"] for r in rows(run_dir)] == ["1", "2", "3"]

    resumed = cli(*args)
    out = finish(resumed)
    assert resumed.returncode == 0 and "resuming after epoch 3" in out, out
    status, reference = train_tiny(tmp_path / "reference", f"epochs={EPOCHS}", "noise=0.4", "threads=1")
    assert status == "complete" and summary(run_dir)["status"] == "complete"
    assert without_seconds(rows(run_dir)) == without_seconds(rows(reference))
    assert (run_dir / "calibration.csv").read_text() == (reference / "calibration.csv").read_text()


def _interrupted_run(tmp_path: Path, monkeypatch) -> Path:
    """A run of 4 epochs stopped in this process after its second (SIGUSR1, which this process leaves unhandled)."""
    monkeypatch.setenv(KILL_AT, "summary:2:SIGUSR1")
    with pytest.raises(RunInterrupted):
        train_tiny(tmp_path, f"epochs={EPOCHS}", "noise=0.4")
    monkeypatch.delenv(KILL_AT)
    run_dir = tmp_path / RUN
    assert summary(run_dir)["status"] == "interrupted" and summary(run_dir)["epochs_completed"] == 2
    return run_dir


# --- the lock ------------------------------------------------------------------------------------------------


def _write_lock(path: Path, owner: str, age: float) -> None:
    path.write_text(owner)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def test_lock_holds_host_pid_job_and_attempt_and_its_heartbeat_keeps_it_fresh(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "3")
    lock = RunLock(tmp_path / ".lock", timeout=0.4)  # heartbeat every 0.1 s
    lock.acquire()
    try:
        assert (tmp_path / ".lock").read_text() == f"{socket.gethostname()} {os.getpid()} 4242 3"
        old = time.time() - 100
        os.utime(tmp_path / ".lock", (old, old))
        deadline = time.monotonic() + 60  # however loaded the machine, the heartbeat comes
        while (tmp_path / ".lock").stat().st_mtime == old and time.monotonic() < deadline:
            time.sleep(0.01)
        assert time.time() - (tmp_path / ".lock").stat().st_mtime < 60  # refreshed
    finally:
        lock.release()
    assert not (tmp_path / ".lock").exists()


OWNERS = {
    "other host": "other-host 123 - 0",
    "dead process of this host": f"{socket.gethostname()} 999999999 - 0",
    "earlier process with this pid": f"{socket.gethostname()} {{pid}} - 0",
    "earlier attempt of this array task": "other-host 123 777_3 1",  # requeued by Slurm: this is attempt 2
    "this attempt of this array task": "other-host 123 777_3 2",  # another process of this allocation
    "other task of the array": "other-host 123 777_4 1",
    "older version, this array task": "other-host 123 777_3",  # no attempt: nothing says it is over
    "being written": "",
}


@pytest.mark.parametrize(
    ("who", "age", "stale"),
    [
        ("other host", 2 * 3600, True),  # nobody refreshed it: stale wherever it was written
        ("other host", 5, False),  # another machine's live job
        ("dead process of this host", 5, True),
        ("earlier process with this pid", 5, True),  # this process does not hold it
        ("earlier attempt of this array task", 5, True),
        ("this attempt of this array task", 5, False),
        ("other task of the array", 5, False),
        ("older version, this array task", 5, False),
        ("being written", 5, False),
        ("being written", 2 * 3600, True),
    ],
)
def test_which_locks_are_stale(tmp_path, monkeypatch, who, age, stale):
    owner = OWNERS[who].format(pid=os.getpid())
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "777")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
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


def test_a_process_never_holds_a_lock_twice(tmp_path):
    first = RunLock(tmp_path / ".lock", timeout=600)
    first.acquire()
    try:
        with pytest.raises(LockBusy, match="this process already"):
            RunLock(tmp_path / "." / ".lock", timeout=600).acquire()
        assert (tmp_path / ".lock").read_text() == first.owner
    finally:
        first.release()
    assert not (tmp_path / ".lock").exists()


def test_release_leaves_a_lock_that_was_taken_over(tmp_path):
    lock = RunLock(tmp_path / ".lock", timeout=600)
    lock.acquire()
    (tmp_path / ".lock").write_text("other-host 1 - 0")  # presumed dead, and taken over by another process
    lock.release()
    assert (tmp_path / ".lock").read_text() == "other-host 1 - 0"


# A live process of the same Slurm allocation that holds a run's lock until its stdin closes.
HOLDER = """import sys
from experiments.lock import RunLock
lock = RunLock(sys.argv[1], 600)
lock.acquire()
print("held", flush=True)
sys.stdin.read()
lock.release()
"""


def _files(run_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file of the run (its lock aside) with its mtime and size."""
    return {str(p.relative_to(run_dir)): (p.stat().st_mtime_ns, p.stat().st_size) for p in run_dir.rglob("*")
            if p.is_file() and p.name != ".lock"}


def test_two_live_processes_of_one_slurm_job_never_take_each_others_run_and_force_deletes_nothing(
        tmp_path, monkeypatch, caplog):
    status, run_dir = train_tiny(tmp_path, "epochs=1")
    assert status == "complete"
    before = _files(run_dir)
    job = {"SLURM_JOB_ID": "4242", "SLURM_RESTART_COUNT": "0"}  # one allocation: `srun -n 2`, joblib in sbatch
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir / ".lock")], cwd=REPO, text=True,
                              env={**env, **job}, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == "held\n"
        for name, value in job.items():
            monkeypatch.setenv(name, value)
        caplog.set_level("INFO", logger="tce")
        status, _ = train_tiny(tmp_path, "epochs=1", "force=true")
        assert status == "skipped"
        assert f"is being trained by '{socket.gethostname()} {holder.pid} 4242 0'" in caplog.text
        assert _files(run_dir) == before  # nothing deleted, nothing rewritten
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0 and not (run_dir / ".lock").exists()


def test_a_killed_runs_lock_of_another_host_is_busy_before_the_timeout_and_stale_after(tmp_path, monkeypatch, caplog):
    run_dir = _interrupted_run(tmp_path, monkeypatch)
    _write_lock(run_dir / ".lock", "node17 4242 - 0", age=1)
    caplog.set_level("INFO", logger="tce")
    status, _ = train_tiny(tmp_path, f"epochs={EPOCHS}", "noise=0.4")
    assert status == "skipped" and "is being trained by 'node17 4242 - 0'" in caplog.text
    assert summary(run_dir)["status"] == "interrupted"
    assert (run_dir / ".lock").read_text() == "node17 4242 - 0"

    _write_lock(run_dir / ".lock", "node17 4242 - 0", age=2 * 3600)
    status, _ = train_tiny(tmp_path, f"epochs={EPOCHS}", "noise=0.4")
    assert status == "complete" and "resuming after epoch 2" in caplog.text


# --- checkpoints -------------------------------------------------------------------------------------------------


def test_an_unreadable_checkpoint_fails_its_run_in_one_line_and_the_sweep_goes_on(tmp_path, monkeypatch):
    run_dir = _interrupted_run(tmp_path, monkeypatch)
    checkpoint = run_dir / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])  # truncated
    args = tiny(tmp_path, f"epochs={EPOCHS}", "noise=0.4")
    alone = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert alone.returncode == 2 and "Traceback" not in alone.stderr + alone.stdout
    assert alone.stderr.strip() == alone.stderr.strip().splitlines()[-1]  # one line
    assert alone.stderr.startswith(f"error: cannot resume from {checkpoint}") and "force=true" in alone.stderr
    proc = cli("-m", *tiny(tmp_path, f"epochs={EPOCHS}", "noise=0.4", "seed=0,1"))
    out = finish(proc)
    assert proc.returncode == 1, out  # the sweep reports its failed run at the end...
    found = summary(run_dir)
    assert found["status"] == "failed" and found["epochs_completed"] == 2  # what it had recorded is kept
    error = found["error"]
    assert str(checkpoint) in error and "force=true" in error and "\n" not in error
    assert summary(tmp_path / RUN.replace("seed0", "seed1"))["status"] == "complete"  # ...after training the others
    assert "Traceback" not in out


class Planted:
    """What someone with write access to a shared runs folder could put into a checkpoint: unpickling it runs
    open(marker, "w")."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line_and_nothing_runs(tmp_path, monkeypatch):
    run_dir = _interrupted_run(tmp_path, monkeypatch)
    checkpoint = run_dir / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    marker = tmp_path / "code-ran"
    torch.save({**state, "model": Planted(marker)}, checkpoint)
    assert not marker.exists()
    with pytest.raises(StartError) as refused:
        train_tiny(tmp_path, f"epochs={EPOCHS}", "noise=0.4")
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"cannot resume from {checkpoint}: it holds a pickled io.open")
    assert "force=true" in message
    assert not marker.exists()  # refused before anything in it was called
    assert summary(run_dir)["status"] == "failed" and summary(run_dir)["error"] == message


def test_checkpoints_hold_tensors_and_plain_data_and_old_ones_with_rng_states_resume_exactly(tmp_path, monkeypatch):
    run_dir = _interrupted_run(tmp_path, monkeypatch)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)  # the default of torch.load: nothing else
    assert set(state) == {"epoch", "model", "momentum", "loader", "metrics"}
    # A checkpoint of an older version: the global RNG states, numpy's a pickled array, CUDA's where GPUs were seen.
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
           "cuda": [torch.zeros(16, dtype=torch.uint8)] * 8}
    torch.save({**state, "rng": rng}, run_dir / "checkpoint.pt")
    status, _ = train_tiny(tmp_path, f"epochs={EPOCHS}", "noise=0.4")
    assert status == "complete"
    status, reference = train_tiny(tmp_path / "reference", f"epochs={EPOCHS}", "noise=0.4")
    assert without_seconds(rows(run_dir)) == without_seconds(rows(reference))


def test_no_run_depends_on_the_global_generators(tmp_path):
    """Why checkpoints need not hold them: a run trained after other global seeds computes the same, and no loss
    draws from them."""
    found = []
    for seed in (1, 2):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        status, run_dir = train_tiny(tmp_path / str(seed), "epochs=2", "noise=0.4", "loss=gce")
        assert status == "complete"
        found.append(without_seconds(rows(run_dir)))
    assert found[0] == found[1]
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(16, 10, generator=g, requires_grad=True), torch.randint(0, 10, (16,), generator=g)
    transition = 0.6 * torch.eye(10) + 0.04
    needs = {"parameters": [logits], "transition": transition, "transition_inverse": tce.inverse_transition(transition),
             "index": torch.arange(16), "memory": torch.zeros(16, 10)}
    for name in tce.LOSSES:
        loss = tce.build_loss(name, **loss_params(resolve(compose_train("dataset=synthetic", f"loss={name}")).loss))
        before = torch.get_rng_state()
        loss(logits, labels, **{need: needs[need] for need in tce.LOSS_NEEDS[name]}).backward()
        assert torch.equal(torch.get_rng_state(), before), name


# --- stop signals ------------------------------------------------------------------------------------------------


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


# --- torch.compile ---------------------------------------------------------------------------------------------


def _compile_with(monkeypatch, backend) -> None:
    """torch.compile, really, with `backend` (gm, example inputs) -> the compiled callable."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))


def test_compile_that_fails_falls_back_to_eager_with_one_warning(tmp_path, monkeypatch, fresh_models, caplog):
    def no_compiler(gm, example_inputs):
        raise RuntimeError("Triton needs a C compiler, and there is none")  # dynamo: BackendCompilerFailed

    _compile_with(monkeypatch, no_compiler)
    status, run_dir = train_tiny(tmp_path, "compile=true", "epochs=2")
    assert status == "complete"
    found = summary(run_dir)
    assert found["compiled"] is False and found["config"]["compile"] is True
    warnings = [r.message for r in caplog.records if "torch.compile failed" in r.message]
    assert len(warnings) == 1 and "needs a C compiler" in warnings[0] and "\n" not in warnings[0]
    eager = train_tiny(tmp_path / "eager", "compile=false", "epochs=2")[1]
    assert without_seconds(rows(run_dir)) == without_seconds(rows(eager))


def test_an_error_under_compile_that_is_not_compiling_fails_the_run_with_its_own_message(
        tmp_path, monkeypatch, fresh_models, caplog):
    def compiles_then_runs_out_of_memory(gm, example_inputs):
        def compiled(*args):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        return compiled

    _compile_with(monkeypatch, compiles_then_runs_out_of_memory)
    status, run_dir = train_tiny(tmp_path, "compile=true", "epochs=2")
    assert status == "failed"
    found = summary(run_dir)
    assert found["error"] == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert found["epochs_completed"] == 0
    assert "torch.compile failed" not in caplog.text  # not retried eagerly as if it could not compile


def test_a_compiled_sweep_records_its_graphs_and_no_silent_eager_step(tmp_path, monkeypatch, fresh_models):
    """Three runs alone, then a pack of three, compiled in one process: each graph is counted by the backend and
    in summary.json (the process's graphs), and the only steps run eagerly are the partial last batches."""
    counter = CompileCounter()
    _compile_with(monkeypatch, counter)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    before = compiled_graphs()
    # A validation run and two full runs: training sets of 128 and 160 images in batches of 32 (no partial batch)
    # and of 100 (a partial batch of 4, trained eagerly: 1 step in each of 2 epochs), evaluation sets of 64, 32,
    # 100 and 160 images in batches of 48 (the last one padded). Training batches of 32 and evaluation batches of 48:
    # two graphs for the three runs.
    runs = ((["holdout=32", "seed=0"], 0), (["holdout=0", "seed=1"], 0), (["holdout=60", "seed=2"], 2))
    for overrides, eager in runs:
        status, run_dir = train_tiny(tmp_path, "compile=true", "epochs=2", "eval_batch_size=48", *overrides)
        found = summary(run_dir)
        assert status == "complete" and found["compiled"] is True
        assert found["compile"] == {"graphs": before + 2, "eager_steps": eager}
    # A pack of three validation runs: one model of 3 members, two graphs more (its training and evaluation
    # batches), and no eager step.
    cfgs = [resolve(compose_train(*tiny(tmp_path, "compile=true", "epochs=2", "eval_batch_size=48", "holdout=32",
                                        f"seed={seed}", "loss=tce", f"loss.alpha={seed}")))
            for seed in (3, 4, 5)]
    entries = [(cfg, tmp_path / run_name(cfg)) for cfg in cfgs]
    assert run_pack(entries) == ["complete"] * 3
    for _, run_dir in entries:
        found = summary(run_dir)
        assert found["compile"] == {"graphs": before + 4, "eager_steps": 0} and found["pack"]["size"] == 3
    assert counter.frame_count == 4 == compiled_graphs() - before
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")  # set already: left alone


def test_hitting_the_recompile_limit_fails_the_run_in_one_line_naming_the_shape(tmp_path, monkeypatch, fresh_models):
    """Past the limit torch.compile would run new shapes eagerly without a word; here the run fails and says why:
    with a limit of 1, the evaluation batch after the training batch."""
    _compile_with(monkeypatch, CompileCounter())
    monkeypatch.setattr(trainer, "RECOMPILE_LIMIT", 1)
    torch._dynamo.reset()  # forget the graphs earlier tests made of the model: the training batch is the first
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # so that the test's end puts back what was there...
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")  # ...and the engine finds it unset
    # dynamo's own patch: monkeypatch's undo of a dynamo config key leaves it hidden, "does not exist", for every
    # later torch.compile in the process (torch 2.14's config module).
    with torch._dynamo.config.patch(recompile_limit=1):
        status, run_dir = train_tiny(tmp_path, "compile=true", "epochs=1", "eval_batch_size=48")
    # Unset, the compile cache goes under the runs folder, for the next job of the sweep to find.
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path.resolve() / ".inductor-cache")
    assert status == "failed"
    error = summary(run_dir)["error"]
    assert error.startswith("RecompileLimitHit: torch.compile's limit of 1 graphs of the model in one process is "
                            "hit by input (48, 3, 32, 32) torch.float32 in eval mode") and "\n" not in error
