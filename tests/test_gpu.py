"""The CUDA path: run with `make test-gpu` on a machine with a GPU; every test here skips without CUDA.

2 epochs on synthetic CIFAR-shaped data in each precision the GPU computes natively, compiled and eager, with the
strict fp32 metrics recomputed on the CPU and the graphs and eager steps counted; strict fp32 convolutions; one
float64 step of a pack against the same runs alone; the device checks of scripts/gpu_check.py (packed == alone per
step in fp32 and bf16, NaN isolation, exact resume); SIGKILL after a checkpoint and resume; and `make bench`.
"""

import csv
import json
import signal
from pathlib import Path

import pytest
import torch
from plain_eval import evaluate_test_split
from processes import cli, finish
from test_packing import MEMBERS, assert_pack_equals_alone

from compose import compose_train, train_run
from data import load_dataset
from experiments import precision
from experiments.resolve import resolve
from scripts import bench, gpu_check

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
PRECISIONS = ("fp32", "tf32", "bf16")


def cifar_shaped(runs: Path, *overrides: str) -> list[str]:
    """2,000 synthetic 3 x 32 x 32 images in 10 classes, ResNet-20, the paper's batch and lr: a run of seconds."""
    return ["dataset=synthetic", "dataset.train_size=2000", "dataset.test_size=1000", "holdout=200", "epochs=2",
            "device=cuda", "progress=false", f"runs_dir={runs}", *overrides]


@pytest.mark.parametrize("compile", [False, True])
@pytest.mark.parametrize("name", PRECISIONS)
def test_two_epochs_in_each_precision_compiled_and_eager(tmp_path, name, compile):
    if name not in precision.supported(torch.device("cuda")):
        pytest.skip(f"this GPU does not compute {name} natively")
    status, run_dir = train_run(*cifar_shaped(tmp_path, f"precision={name}", f"compile={str(compile).lower()}"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert status == "complete" and summary["config"]["precision"] == name
    assert summary["compiled"] is compile  # a GPU machine with a toolchain compiles: no fallback
    # 1,800 training images: 14 batches of 128 and one of 8 an epoch; compiled, only that one runs eagerly.
    assert summary["compile"]["eager_steps"] == (2 if compile else 30)
    assert summary["compile"]["graphs"] > 0 or not compile
    final = summary["final"]
    assert final["test_acc"] > 40 and final["train_clean_acc"] > 40  # 10 classes: chance is 10
    if name == "fp32":  # the strict arithmetic: what a plain float64 loop on the CPU computes, up to rounding
        dataset = load_dataset("synthetic", "", train_size=2000, test_size=1000, num_classes=10, seed=0)
        expected = evaluate_test_split(run_dir, 20, dataset)
        assert abs(final["test_acc"] - expected["test_acc"]) <= 0.2  # a near-tie or two of 1000 may flip
        assert final["test_nll"] == pytest.approx(expected["test_nll"], rel=1e-3)
        assert final["test_ece"] == pytest.approx(expected["test_ece"], abs=0.2)


def test_strict_fp32_is_the_default_and_turns_tf32_off_for_the_models_convolutions(tmp_path):
    status, run_dir = train_run(*cifar_shaped(tmp_path))
    assert status == "complete" and json.loads((run_dir / "summary.json").read_text())["config"]["precision"] == "fp32"
    found = gpu_check.strict_fp32(gpu_check.Check(tmp_path, 60, dry_run=False))  # raises past 1e-5
    assert found["relative_error"]["fp32"]["conv"] < 1e-5
    if "tf32" in found["relative_error"]:
        assert found["relative_error"]["tf32"]["conv"] > 1e-4  # what the default would have computed


def test_one_float64_step_of_a_pack_equals_the_runs_alone(tmp_path, fresh_models):
    cfgs = [resolve(compose_train(*cifar_shaped(tmp_path, "batch_size=16", "compile=false", *m))) for m in MEMBERS]
    assert_pack_equals_alone(cfgs, "cuda")


@pytest.mark.parametrize("stage", ["packed_equals_alone", "nan_isolation", "resume"])
def test_the_device_checks(tmp_path, fresh_models, stage):
    """scripts/gpu_check.py's checks at their real sizes: each raises when it fails."""
    gpu_check.STAGES[stage](gpu_check.Check(tmp_path, 300, dry_run=False))


def test_sigkill_after_a_checkpoint_and_resume(tmp_path):
    args = cifar_shaped(tmp_path, "epochs=4", "noise=0.4")
    run_dir = tmp_path / "synthetic/ce/noise0.4-uniform-holdout200-seed0"
    killed = cli(*args, kill_at="checkpoint:3")
    out = finish(killed, 600)
    assert killed.returncode == -signal.SIGKILL, out
    resumed = cli(*args)
    out = finish(resumed, 600)
    assert resumed.returncode == 0 and "resuming after epoch 3" in out, out
    record = json.loads((run_dir / "summary.json").read_text())
    assert record["status"] == "complete" and record["epochs_completed"] == 4
    with open(run_dir / "metrics.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2", "3", "4"]


def test_bench_on_the_gpu(tmp_path):
    result = bench.measure("cuda", steps=20, repeats=1, warmup=3)
    path = bench.write(result, tmp_path, "pytest tests/test_gpu.py")
    out = json.loads(path.read_text())
    assert out["device_type"] == "cuda" and out["precision"] == "fp32" and out["ratio"] > 0
    assert set(out["ratio_by_precision"]) == set(precision.supported(torch.device("cuda")))
    assert out["options"]["engine"]["compiled"] is True
