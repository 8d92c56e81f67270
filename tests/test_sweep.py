"""Sweeps through Hydra's multirun: launchers, relaunching an interrupted sweep, and `make tables` on the result."""

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
from processes import cli, wait_for_epochs

from compose import compose_train, tiny
from data.files import write_json
from experiments.sweep import plan, split_evenly
from scripts import tables

REPO = Path(__file__).resolve().parents[1]


def sweep(runs: Path, *args: str, kill_at: str | None = None) -> subprocess.Popen:
    tiny = ["dataset=synthetic", "dataset.train_size=160", "dataset.test_size=64", "dataset.val_holdout=32",
            "model.depth=8", "batch_size=32", "device=cpu", "progress=false", f"runs_dir={runs}"]
    return cli("-m", *tiny, *args, kill_at=kill_at)


def summaries(runs: Path) -> dict[str, dict]:
    found = {}
    for path in runs.glob("synthetic/*/*/summary.json"):
        with contextlib.suppress(ValueError):  # a summary being replaced right now
            found[str(path.parent.relative_to(runs))] = json.loads(path.read_text())
    return found


def test_relaunched_sweep_skips_complete_runs_and_resumes_the_killed_one(tmp_path):
    """In packs of 4, where `loss=ce,tce loss.alpha=1,2` lists CE twice (its alpha is null): each run trains once.
    The seed-0 runs complete, as one pack of 3; the full grid is then killed right after the first run it trains
    (CE, seed 1) wrote its epoch 2 checkpoint: the complete runs were left out of its packs, the others trained as
    one pack of 3; its relaunch skips the complete runs, resumes CE and trains the rest."""
    grid = ["holdout=32", "epochs=3", "loss=ce,tce", "loss.alpha=1,2", "pack=4"]
    first = sweep(tmp_path, *grid, "seed=0")
    out = first.communicate(timeout=600)[0]
    assert first.returncode == 0, out
    assert "listed twice in this sweep, trained once" in out and "in 1 pack(s)" in out
    assert out.count("/ce/noise0-uniform-holdout32-seed0 epoch 3/3") == 1
    assert out.count("device cpu: ") == 1  # the device, said once by the process
    complete_before = set(summaries(tmp_path))
    assert len(complete_before) == 3 and all(s["status"] == "complete" for s in summaries(tmp_path).values())
    stamps = {name: (tmp_path / name / "checkpoint.pt").stat().st_mtime_ns for name in complete_before}

    killed = sweep(tmp_path, *grid, "seed=0,1", kill_at="checkpoint:2")
    out = killed.communicate(timeout=600)[0]
    assert killed.returncode == -signal.SIGKILL, out
    assert "8 run(s) of the sweep, 3 to train, in 1 pack(s)" in out
    interrupted = "synthetic/ce/noise0-uniform-holdout32-seed1"
    assert summaries(tmp_path)[interrupted]["status"] == "running"  # as a killed process leaves it

    proc = sweep(tmp_path, *grid, "seed=0,1")
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
        assert f"{name}: complete, skipped" in out
    assert f"{interrupted}: resuming after epoch 2" in out
    epochs = [line.split(",")[0] for line in (tmp_path / interrupted / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3"]


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
    # A synthetic dataset's recipe, not the paper's; a tag read as text (095223e3 would read as a float).
    (recipe,) = set(pd.read_csv(tmp_path / "tables" / "cells.csv")["recipe"])
    markdown = (tmp_path / "tables" / f"synthetic-{recipe}.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "(n=2)" in rows["CE"] and "(n=2)" in rows["TCE α=1.5"]
    assert "Missing cells (no protocol value): 0 of 2" in markdown
    assert "6 run directories" in made.stdout and "6 complete" in made.stdout
    # The paper's tables only where their datasets have runs, else one line why.
    assert not (tmp_path / "tables" / "table1.md").exists() and "table1: not written" in made.stdout

    tables.main(["--runs", str(runs), "--out", str(tmp_path / "only"), "--datasets", "synthetic"])
    assert (tmp_path / "only" / f"synthetic-{recipe}.md").read_text() == markdown
    assert not (tmp_path / "only" / "table1.md").exists()


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The fields after the command's closing parenthesis: state, then the parent's pid.
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def test_a_preempted_submitit_job_requeues_itself_and_resumes_its_run(tmp_path):
    """Slurm's preemption under hydra/launcher=slurm_gpu, played with submitit's local executor: the job's task gets
    SIGTERM, which submitit ignores, then USR2 (as submitit's own tests send it), on which submitit requeues the job
    and exits it; the run is marked interrupted with its completed epochs, and the requeued job resumes it."""
    runs = tmp_path / "runs"
    proc = sweep(runs, "hydra/launcher=submitit_local", "holdout=32", "epochs=30", "noise=0.4")
    run_dir = runs / "synthetic/ce/noise0.4-uniform-holdout32-seed0"
    wait_for_epochs(proc, run_dir / "summary.json", 2)
    # The job's folder is named by its id: for the local executor, the pid of the controller that runs the task.
    (job,) = (path for path in (runs / ".submitit").iterdir() if path.name.isdigit())
    (task,) = _children(int(job.name))
    os.kill(task, signal.SIGTERM)
    time.sleep(0.5)  # long enough for a handler of ours to stop the run, were it to take SIGTERM from submitit
    os.kill(task, signal.SIGUSR2)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out

    log = (job / f"{job.name}_0_log.err").read_text() + (job / f"{job.name}_0_log.out").read_text()
    assert "Bypassing signal SIGTERM" in log and "Requeued job" in log, log
    assert "interrupted (exit 144 requested while training, by a launcher requeueing the job)" in log, log
    assert "resuming after epoch" in log, log
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and "error" not in summary
    epochs = [line.split(",")[0] for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(1, 31)]  # exactly one row per epoch


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


def test_zoo_miniature_from_sweep_to_table(tmp_path):
    """experiment=zoo as committed (its 30 loss settings), shrunk to a synthetic dataset, one noise level, the
    validation run and one full run, 2 epochs: every loss trains on the same noisy labels, and `make tables`
    gives them one table (of the synthetic recipe, not the paper's zoo table) with a value in every cell, TCE's
    rows of selection on validation, and the paired comparison with CE."""
    runs = tmp_path / "runs"
    proc = sweep(runs, "experiment=zoo", "dataset=synthetic", "noise=0.4", "protocol=val,full0", "epochs=2")
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    found = summaries(runs)
    assert len(found) == 30 * 2 and all(s["status"] == "complete" for s in found.values())
    labels = {json.dumps(s["noise"], sort_keys=True) for s in found.values() if s["config"]["holdout"] == 0}
    assert len(labels) == 1  # the same noise record for every loss: the same noisy labels
    # CIFAR-10's SCE values
    assert "sce-alpha0.1-beta1-A-9.210340371976182" in {Path(name).parts[1] for name in found}

    out_dir = tmp_path / "tables"
    tables.main(["--runs", str(runs), "--out", str(out_dir)])
    (recipe,) = set(pd.read_csv(out_dir / "cells.csv")["recipe"])
    zoo = (out_dir / f"synthetic-{recipe}.md").read_text()
    rows = [line for line in zoo.splitlines() if line.startswith("| ") and not line.startswith("| noise")]
    # 30 settings, then TCE's rows of selection (after its alphas), 32 rows in all.
    assert len(rows) == 32 and "Missing cells (no protocol value): 0 of 32" in zoo
    assert [r.split("|")[1].strip() for r in rows[:5]] == ["CE", "TCE α=1.0", "TCE α=2.0", "TCE @val",
                                                          "TCE @val-dataset"]
    assert not (out_dir / "zoo.md").exists()  # the paper's zoo table shows the paper's recipe only
    paired = (out_dir / "paired.csv").read_text().splitlines()
    assert len(paired) == 1 + 31  # every setting but CE, one pair each (too few for statistics)


def test_a_submitit_sweep_trains_one_pack_per_job_equal_to_the_runs_trained_alone(tmp_path):
    """8 runs at pack=4 under submitit's local executor: 2 jobs, each training 4 runs in one model, each run in its
    own complete directory that records its pack; after an epoch every metric equals the run's trained alone (one
    job per run, pack=1) up to float rounding: the losses to 1e-4, the accuracies to one image of 128 (train) or 64
    (test)."""
    grid = ["holdout=0", "epochs=1", "loss=ce,tce1.5,mse,gce", "seed=0,1", "noise=0.4"]
    packed, alone = tmp_path / "packed", tmp_path / "alone"
    proc = sweep(packed, "hydra/launcher=submitit_local", "pack=4", *grid)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "8 run(s) of the sweep, 8 to train, in 2 pack(s)" in out
    assert len(list((packed / ".submitit").rglob("*_log.out"))) == 2  # two jobs
    manifests = [json.loads(p.read_text())["members"] for p in (packed / ".packs").glob("*/pack.json")]
    assert sorted(len(m) for m in manifests) == [4, 4]
    proc = sweep(alone, *grid)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out

    found, expected = summaries(packed), summaries(alone)
    assert sorted(found) == sorted(expected) and len(found) == 8
    for name, summary in found.items():
        assert summary["status"] == "complete" and summary["pack"]["size"] == 4 and name in summary["pack"]["members"]
        pack = next(m for m in manifests if str(packed / name) in [member["run_dir"] for member in m])
        assert sorted(summary["pack"]["members"]) == sorted(str(Path(m["run_dir"]).relative_to(packed)) for m in pack)
        assert expected[name]["pack"] == {"size": 1, "members": [name]}
        p, a = summary["final"], expected[name]["final"]
        for key in ("train_loss", "test_nll"):
            assert abs(p[key] - a[key]) <= 1e-4 * abs(a[key]), (name, key, p[key], a[key])
        assert abs(p["train_acc"] - a["train_acc"]) <= 100 / 128 + 1e-9
        assert abs(p["test_acc"] - a["test_acc"]) <= 100 / 64 + 1e-9
        for file in ("config.yaml", "metrics.csv", "calibration.csv", "noisy_labels.npy", "checkpoint.pt"):
            assert (packed / name / file).is_file(), file


def test_packs_are_as_even_as_the_runs_allow():
    """ceil(N / K) packs whose sizes differ by at most one: never a tail of small packs."""
    sizes = {(n, k): [len(p) for p in split_evenly(list(range(n)), k)] for n, k in
             ((35, 16), (8, 4), (5, 4), (3, 4), (1, 1), (175, 35), (34, 35))}
    assert sizes == {(35, 16): [12, 12, 11], (8, 4): [4, 4], (5, 4): [3, 2], (3, 4): [3], (1, 1): [1],
                     (175, 35): [35] * 5, (34, 35): [34]}
    assert split_evenly([], 4) == []


def test_a_sweep_is_planned_in_packs_of_runs_that_may_train_together(tmp_path):
    """Runs pack with those that differ only in their own keys (loss, noise, seed) and stand at the same epoch;
    another holdout, or a run stopped at another epoch, packs apart; complete runs are left out."""
    jobs = []
    for overrides in (["seed=0"], ["seed=1", "loss=tce"], ["seed=2", "noise=0.4"], ["holdout=0"], ["seed=3"],
                      ["seed=4"], ["seed=5"], ["seed=6"]):
        jobs.append((compose_train(*tiny(tmp_path, "pack=4", *overrides)), tmp_path / f"run-{len(jobs)}"))
    (tmp_path / "run-4").mkdir()
    write_json(tmp_path / "run-4" / "summary.json", {"status": "interrupted", "epochs_completed": 2})
    (tmp_path / "run-5").mkdir()
    write_json(tmp_path / "run-5" / "summary.json", {"status": "complete", "epochs_completed": 3})
    packs = [[run_dir.name for _, run_dir in pack] for pack in plan(jobs)]
    # Holdout 32 at epoch 0: runs 0, 1, 2, 6 and 7, five runs at pack=4, so 3 + 2.
    assert packs == [["run-0", "run-1", "run-2"], ["run-6", "run-7"], ["run-3"], ["run-4"]]
