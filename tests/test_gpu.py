"""The CUDA path: run with `make test-gpu` on a machine with a GPU; every test here skips without CUDA.

2 epochs on synthetic CIFAR-shaped data in each precision the GPU computes natively, compiled and eager; K = 2 runs
packed against the same runs trained alone; SIGKILL and resume; and `make bench`.
"""

import json
import signal
from pathlib import Path

import pytest
import torch
from processes import cli, wait_for_epochs

from compose import compose_train, train_run
from experiments import precision
from experiments.config import resolve, run_name
from experiments.run import run_pack
from scripts import bench

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
    final = summary["final"]
    assert final["test_acc"] > 40 and final["train_clean_acc"] > 40  # 10 classes: chance is 10
    assert 0 <= final["test_ece"] <= 100 and final["test_nll"] > 0


def test_strict_fp32_is_the_default_and_turns_tf32_off(tmp_path):
    status, run_dir = train_run(*cifar_shaped(tmp_path))
    assert status == "complete" and json.loads((run_dir / "summary.json").read_text())["config"]["precision"] == "fp32"
    with precision.arithmetic("fp32"):
        a, b = torch.randn(512, 512, device="cuda"), torch.randn(512, 512, device="cuda")
        exact = (a.double() @ b.double()).float()
        assert torch.allclose(a @ b, exact, rtol=1e-4, atol=1e-4)  # TF32 would miss by about 1e-2


def test_two_runs_packed_match_the_same_runs_alone(tmp_path):
    members = [("loss=ce", "seed=0", "noise=0.4"), ("loss=tce", "loss.alpha=1.5", "seed=1", "noise=0.0")]
    alone, packed = [], []
    for overrides in members:
        cfg = resolve(compose_train(*cifar_shaped(tmp_path / "alone", *overrides)))
        alone.append((cfg, tmp_path / "alone" / run_name(cfg)))
        assert run_pack([alone[-1]]) == ["complete"]
        cfg = resolve(compose_train(*cifar_shaped(tmp_path / "packed", *overrides)))
        packed.append((cfg, tmp_path / "packed" / run_name(cfg)))
    assert run_pack(packed) == ["complete", "complete"]
    for (_, a), (_, p) in zip(alone, packed, strict=True):
        sa, sp = (json.loads((d / "summary.json").read_text())["final"] for d in (a, p))
        assert sp["train_loss"] == pytest.approx(sa["train_loss"], rel=0.05)
        assert abs(sp["test_acc"] - sa["test_acc"]) < 5  # cuDNN's reduction order differs between the two


def test_sigkill_and_resume(tmp_path):
    args = cifar_shaped(tmp_path, "epochs=6", "noise=0.4")
    proc = cli(*args)
    summary = tmp_path / "synthetic/ce/noise0.4-uniform-holdout200-seed0/summary.json"
    wait_for_epochs(proc, summary, 2, timeout=300)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    resumed = cli(*args)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0 and "resuming after epoch" in out, out
    record = json.loads(summary.read_text())
    assert record["status"] == "complete" and record["epochs_completed"] == 6
    epochs = [line.split(",")[0] for line in (summary.parent / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(1, 7)]


def test_bench_on_the_gpu(tmp_path):
    result = bench.measure("cuda", steps=20, repeats=1, warmup=3)
    path = bench.write(result, tmp_path, "pytest tests/test_gpu.py")
    out = json.loads(path.read_text())
    assert out["device_type"] == "cuda" and out["precision"] == "fp32" and out["ratio"] > 0
    assert set(out["ratio_by_precision"]) == set(precision.supported(torch.device("cuda")))
    assert out["options"]["engine"]["compiled"] is True
