"""Issue 34's last items, each through train.py or a script in a subprocess: the true thread count and the bench
record scaled to it, recipe captions without the synthetic dataset's own keys, a config.yaml that says where the run
is, what a refusal by the data leaves on disk (a single run, a resumed run, a sweep's pack), and the note of a
parameter a sweep recorded as null, said once by the status report."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from processes import cli, finish

from compose import tiny
from rundirs import write_run

REPO = Path(__file__).resolve().parents[1]
CE = "synthetic/ce/noise0-uniform-holdout32-seed0"  # tiny()'s CE run


def script(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def missing_mnist(tmp_path: Path) -> list[str]:
    """Overrides for MNIST read from an empty folder, without download: the data refuses once the run has begun."""
    (tmp_path / "data").mkdir()
    return ["dataset=mnist", f"dataset.root={tmp_path / 'data'}", "dataset.download=false", "device=cpu",
            "epochs=1", "progress=false"]


def test_threads_1_names_one_thread_and_scales_the_bench_record_of_two(tmp_path):
    proc = cli(*tiny(tmp_path, "epochs=1", "threads=1"), env={"OMP_NUM_THREADS": "2"})  # torch's default: 2
    out = finish(proc)
    assert proc.returncode == 0, out
    capability = torch.backends.cpu.get_cpu_capability()
    assert f"device cpu: cpu ({platform.machine()} {capability}, 1 threads)" in out
    record = f"cpu-{platform.machine().lower()}-{capability.lower()}-2-threads.json"
    if not (REPO / "results" / "bench" / record).exists():
        pytest.skip(f"no bench record {record} of this CPU at 2 threads")
    (line,) = [line for line in out.splitlines() if "will take about" in line]
    # ResNet-8's FLOPs scale it further, which the line says after.
    assert f"on cpu (the bench record {record}, scaled linearly from its 2 threads to 1, scaled by forward" in line


def test_the_recipe_caption_names_only_what_differs_from_the_paper_on_that_dataset(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, dataset="synthetic", test_acc=[50], holdout=200, val_acc=[50])
    write_run(runs, dataset="synthetic", test_acc=[50])
    write_run(runs, dataset="synthetic", test_acc=[50], epochs=60, recipe={"dataset": {"num_classes": 4}},
              subdir="other")
    proc = script("scripts.tables", "--runs", str(runs), "--out", str(tmp_path / "tables"))
    assert proc.returncode == 0, proc.stderr
    assert "(not null)" not in proc.stdout
    found = [line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("  recipe r")]
    assert sorted(found) == ["differs from the paper's in dataset.num_classes=4 (not 10), epochs=60 (not 256)",
                             "the paper's as it runs on synthetic (the keys of its dataset config aside)"]
    assert not any("(not null)" in path.read_text() for path in (tmp_path / "tables").glob("*.md"))


def test_config_yaml_records_where_hydra_run_dir_and_sweep_dir_put_the_run(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "my-run"
    proc = cli(*tiny(tmp_path / "runs", "epochs=1"), f"hydra.run.dir={elsewhere}")
    assert proc.wait(timeout=300) == 0, finish(proc)
    assert yaml.safe_load((elsewhere / "config.yaml").read_text())["runs_dir"] == str(elsewhere)
    assert not (tmp_path / "runs").exists()
    sweep = tmp_path / "sweep"
    proc = cli("-m", *tiny(tmp_path / "runs", "epochs=1"), f"hydra.sweep.dir={sweep}")
    assert proc.wait(timeout=300) == 0, finish(proc)
    assert yaml.safe_load((sweep / CE / "config.yaml").read_text())["runs_dir"] == str(sweep)


def test_a_run_refused_by_its_data_leaves_nothing_where_this_launch_made_its_directory(tmp_path):
    runs = tmp_path / "runs"
    proc = cli(*missing_mnist(tmp_path), f"runs_dir={os.path.relpath(runs, REPO)}")  # relative, as the default is
    out = finish(proc)
    assert proc.returncode == 2 and "Traceback" not in out
    (line,) = out.strip().splitlines()
    assert line.startswith("error: cannot load dataset 'mnist'") and str(tmp_path / "data") in line
    assert not runs.exists()


def test_a_resumed_run_refused_by_its_checkpoint_says_why_in_its_summary(tmp_path):
    proc = cli(*tiny(tmp_path, "epochs=2"), kill_at="checkpoint:1")
    finish(proc)
    run_dir = tmp_path / CE
    checkpoint = run_dir / "checkpoint.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    proc = subprocess.run([sys.executable, "train.py", *tiny(tmp_path, "epochs=2")], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()  # the log (stdout) says what it set out to do: the device, the data
    assert line.startswith(f"error: cannot resume from {checkpoint}")
    found = json.loads((run_dir / "summary.json").read_text())
    assert found["status"] == "failed" and found["error"] == line.removeprefix("error: ")
    assert (run_dir / ".hydra").is_dir() and (run_dir / "metrics.csv").exists()


def test_a_pack_refused_by_its_data_leaves_no_pack_folder_and_its_runs_say_why(tmp_path):
    sweep = tmp_path / "sweep"
    proc = cli("-m", *missing_mnist(tmp_path), f"runs_dir={sweep}", "loss=ce,tce1", "pack=2")
    out = finish(proc)
    assert proc.returncode == 1 and "Traceback" not in out, out  # the sweep's verdict: its runs failed
    assert not (sweep / ".packs").exists()
    for loss in ("ce", "tce-a1"):
        found = json.loads((sweep / "mnist" / loss / "noise0-uniform-holdout5000-seed0" / "summary.json").read_text())
        assert found["status"] == "failed" and found["error"].startswith("cannot load dataset 'mnist'")


def test_a_parameter_a_sweep_records_as_null_is_said_once_by_the_status_report(tmp_path):
    runs = tmp_path / "runs"
    for _ in range(2):  # the relaunch skips the complete runs and notes the same
        proc = cli("-m", *tiny(runs, "epochs=1", "loss=ce,tce1", "loss.alpha=2"))
        assert proc.wait(timeout=300) == 0, finish(proc)
    note = "loss.alpha is recorded as null for ce, which do not take it"
    for module, args in (("scripts.aggregate", [str(runs), "--out", str(tmp_path / "csv")]),
                         ("scripts.tables", ["--runs", str(runs), "--out", str(tmp_path / "tables")])):
        proc = script(module, *args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count(note) == 1 and f"  {note}\n" in proc.stdout
