"""Sweeps through Hydra's multirun: launchers, relaunching an interrupted sweep, and `make tables` on the result."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts import tables

REPO = Path(__file__).resolve().parents[1]


def sweep(runs: Path, *args: str) -> subprocess.Popen:
    tiny = ["dataset=synthetic", "dataset.train_size=160", "dataset.test_size=64", "dataset.val_holdout=32",
            "model.depth=8", "batch_size=32", "device=cpu", "progress=false", f"runs_dir={runs}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "train.py", "-m", *tiny, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def summaries(runs: Path) -> dict[str, dict]:
    found = {}
    for path in runs.glob("synthetic/*/*/summary.json"):
        with contextlib.suppress(ValueError):  # a summary being replaced right now
            found[str(path.parent.relative_to(runs))] = json.loads(path.read_text())
    return found


def test_relaunched_sweep_skips_complete_runs_and_resumes_the_interrupted_one(tmp_path):
    grid = ["holdout=32", "epochs=3", "loss=ce,tce", "loss.alpha=1,2", "seed=0,1"]  # alpha next to a loss without it
    proc = sweep(tmp_path, *grid)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        done = [s for s in summaries(tmp_path).values() if s["status"] == "complete"]
        running = [s for s in summaries(tmp_path).values() if s["status"] == "running" and s["epochs_completed"] >= 1]
        if len(done) >= 2 and running:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = summaries(tmp_path)
    complete_before = {name for name, s in before.items() if s["status"] == "complete"}
    interrupted = {name for name, s in before.items() if s["status"] == "running"}
    assert complete_before and interrupted
    stamps = {name: (tmp_path / name / "checkpoint.pt").stat().st_mtime_ns for name in complete_before}

    proc = sweep(tmp_path, *grid)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    after = summaries(tmp_path)
    # ce x {alpha 1, 2} is one run per seed: 2 CE runs and 4 TCE runs.
    expected = [f"synthetic/{loss}/noise0-uniform-holdout32-seed{s}" for loss in ("ce", "tce-a1", "tce-a2")
                for s in (0, 1)]
    assert sorted(after) == sorted(expected)
    assert all(s["status"] == "complete" and s["epochs_completed"] == 3 for s in after.values())
    for name in complete_before:
        assert (tmp_path / name / "checkpoint.pt").stat().st_mtime_ns == stamps[name]
        assert f"{name}: complete in" in out
    for name in interrupted:
        assert f"{name}: resuming after epoch" in out


def test_make_tables_on_a_submitit_local_sweep(tmp_path):
    runs = tmp_path / "runs"
    proc = sweep(runs, "hydra/launcher=submitit_local", "epochs=2", "loss=ce,tce1.5", "protocol=val,full0,full1")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert len(summaries(runs)) == 6
    assert all(s["status"] == "complete" for s in summaries(runs).values())

    made = subprocess.run(["make", "-s", "tables", f"RUNS={runs}", f"OUT={tmp_path / 'tables'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    markdown = (tmp_path / "tables" / "synthetic.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "(n=2)" in rows["CE"] and "(n=2)" in rows["TCE α=1.5"]
    assert "Missing cells (no protocol value): 0 of 2" in markdown
    assert "6 run directories" in made.stdout and "6 complete" in made.stdout
    assert (tmp_path / "tables" / "table1.md").exists()  # the paper's layout is always written, with its gaps

    tables.main(["--runs", str(runs), "--out", str(tmp_path / "only"), "--datasets", "synthetic"])
    assert (tmp_path / "only" / "synthetic.md").read_text() == markdown
    assert not (tmp_path / "only" / "table1.md").exists()


def test_a_bad_job_does_not_stop_the_sweep_but_fails_it(tmp_path):
    proc = sweep(tmp_path, "holdout=32", "epochs=1", "noise=1.5,0.2")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert "noise: must be in [0, 1], got 1.5" in out and "1 run(s) of this sweep failed" in out
    assert summaries(tmp_path)["synthetic/ce/noise0.2-uniform-holdout32-seed0"]["status"] == "complete"


def test_joblib_launcher_completes_a_parallel_sweep(tmp_path):
    proc = sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "threads=1", "holdout=32", "epochs=1",
                 "seed=0,1")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "Joblib.Parallel(n_jobs=2" in out
    found = summaries(tmp_path)
    assert sorted(found) == [f"synthetic/ce/noise0-uniform-holdout32-seed{s}" for s in (0, 1)]
    assert all(s["status"] == "complete" for s in found.values())
