"""scripts/gpu_check.py --dry-run: every stage of the device check runs on the CPU at tiny sizes and lands in
gpu_check.json; a deadline that leaves no time skips stages rather than overrunning."""

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import models.resnet
from experiments import precision
from scripts import gpu_check, gpu_timing

REPO = Path(__file__).resolve().parents[1]


def dry_run(out: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--out", str(out), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    return proc, json.loads((out / "gpu_check.json").read_text())


def test_the_dry_run_runs_every_stage_and_records_each(tmp_path):
    proc, found = dry_run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stages = found["stages"]
    assert list(stages) == ["environment", "strict_fp32", "packed_equals_alone", "compiled_equals_eager",
                            "nan_isolation", "resume", "timing", "profile", "naive", "projection"]
    assert all(entry["status"] == "ok" for entry in stages.values()), {k: v.get("error") for k, v in stages.items()}
    assert found["dry_run"] is True and found["elapsed_s"] > 0
    assert stages["strict_fp32"]["result"]["relative_error"]["fp32"]["conv"] < 1e-5
    packed = stages["packed_equals_alone"]["result"]
    assert packed["layout"].startswith("NCHW")  # the CPU's accurate BatchNorm
    for pack, losses in (("paper", ["ce", "tce", "mse", "tce"]), ("needs", ["anl_ce", "elr", "forward", "ce"])):
        structural = packed[f"float64 {pack}"]
        assert structural["bound"] == 1e-10 and structural["steps"] == 2
        assert [r["member"] for r in structural["members"]] == [f"{loss} seed {k}" for k, loss in enumerate(losses)]
        assert all(r["difference"] <= 1e-10 and r["verdict"] == "ok" for r in structural["members"])
    for stage in ("packed_equals_alone", "compiled_equals_eager"):
        by_step = stages[stage]["result"]["fp32"]
        assert set(by_step) == {"1", "5"}
        for rows in by_step.values():
            assert len(rows) == 4 and all(r["verdict"] == "ok" for r in rows)
            # The verdict is the rule: the difference within twice the baseline (rounding measured) plus 1e-6.
            assert all(r["difference"] <= 2 * r["baseline"] + 1e-6 for r in rows)
    # The CPU is deterministic.
    assert stages["resume"]["result"] == {"stopped_after": 2, "max_abs_difference": 0.0, "deterministic": True}
    timed = stages["timing"]["result"]["configurations"]
    # Compiled first, a single run, then the packs, largest first; then the layout the CPU does not take by default,
    # eager. CUDA graphs (reduce-overhead) are timed on CUDA only.
    assert [(r["mode"], r["members"], r["channels_last"]) for r in timed] == [
        ("default", 1, False), ("default", 2, False), ("eager", 1, False), ("eager", 2, False), ("eager", 2, True)]
    assert all(r["step_ms"] > 0 and 0 < r["eval_share"] < 1 for r in timed)
    assert all(r["compile"] > 0 for r in timed if r["compiled"])  # graphs made, counted
    hours = stages["projection"]["result"]["fp32"]["gpu_hours"]
    assert set(hours) == {"paper"} and hours["paper"] > 0
    profile = stages["profile"]["result"]
    assert profile["busy_ms"] > 0 and stages["naive"]["result"]["fp32"]["img_s"] > 0
    # The convolutions by name (oneDNN's here, cuDNN's on a GPU), and whether cuDNN's slow grouped kernel is one.
    assert profile["convolution_kernels"] and all("conv" in k["name"].lower() for k in profile["convolution_kernels"])
    assert profile["grouped_direct"] is False


def test_a_deadline_that_is_past_skips_the_stages_and_still_writes_the_record(tmp_path):
    proc, found = dry_run(tmp_path, "--deadline", "0")
    assert proc.returncode == 0, proc.stderr
    assert {entry["status"] for entry in found["stages"].values()} == {"skipped"} and len(found["stages"]) == 10


def test_distances_are_norms_of_differences_relative_to_one_scale():
    found = {"w": torch.tensor([3.0, 4.0]), "n": torch.tensor(7)}
    reference = {"w": torch.zeros(2), "n": torch.tensor(7)}
    assert gpu_check.distances(found, reference, {"w": torch.tensor([0.0, 10.0])}) == {"w": 0.5}  # 5 / 10
    assert gpu_check.distances(found, reference, {"w": torch.zeros(2)}) == {"w": 5.0}  # a zero scale counts as 1


class PooledBatchNorm(torch.nn.BatchNorm2d):
    """A planted bug: each member's BatchNorm normalizes with the statistics of its channel over the whole pack."""

    def __init__(self, planes: int, members: int):
        super().__init__(members * planes)
        self.members = members

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.members == 1:  # alone, the statistics are its own: the bug shows in packs
            return super().forward(x)
        b, channels, h, w = x.shape
        v = x.view(b, self.members, channels // self.members, h, w)
        mean, var = v.mean((0, 1, 3, 4), keepdim=True), v.var((0, 1, 3, 4), unbiased=False, keepdim=True)
        normalized = ((v - mean) / torch.sqrt(var + self.eps)).view(b, channels, h, w)
        return normalized * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def test_a_planted_statistic_over_the_pack_fails_the_criteria_by_orders_of_magnitude(tmp_path, monkeypatch,
                                                                                      fresh_models):
    monkeypatch.setattr(models.resnet, "_bn", lambda planes, members: PooledBatchNorm(planes, members))
    check = gpu_check.Check(tmp_path, deadline=600, dry_run=True)
    with pytest.raises(gpu_check.CheckFailed) as failed:
        gpu_check.packed_equals_alone(check)
    found = failed.value.result
    for pack in ("paper", "needs"):  # 1e-10 allowed
        assert all(r["difference"] > 1e-6 and r["verdict"] == "failed" for r in found[f"float64 {pack}"]["members"])
    for step in ("1", "5"):  # at most 1 allowed
        assert all(r["ratio"] > 100 and r["verdict"] == "failed" for r in found["fp32"][step])


@pytest.mark.skipif("bf16" not in precision.supported(torch.device("cpu")), reason="this CPU has no native bf16")
def test_packed_equals_alone_holds_in_bf16_where_the_cpu_computes_it(tmp_path, fresh_models):
    check = gpu_check.Check(tmp_path, deadline=600, dry_run=True)
    check.sizes = {**check.sizes, "precisions": ("bf16",)}
    found = gpu_check.packed_equals_alone(check)
    assert set(found) == {"layout", "float64 paper", "float64 needs", "bf16"}
    # bf16 rounds at 2^-8: its baseline is far above fp32's few 1e-6, and the difference stays within it.
    assert all(r["baseline"] > 1e-4 and r["verdict"] == "ok" for rows in found["bf16"].values() for r in rows)


def test_projection_takes_packed_rates_for_grids_that_pack_and_single_run_rates_for_the_others(monkeypatch):
    """A grid of networks that do not pack (apl_zoo's CNN-8, ResNet-34) trains one run per model: its hours come
    from the fastest single run timed, not from the fastest pack."""
    rows = [{"precision": "bf16", "mode": mode, "members": k, "channels_last": True, "step_ms": 1.0,
             "run_epoch_s": epoch_s, "train_img_s": rate, "eval_img_s": 2 * rate}
            for mode, k, epoch_s, rate in (("default", 16, 1.0, 1000.0), ("reduce-overhead", 1, 5.0, 200.0),
                                           ("eager", 1, 9.0, 100.0))]
    check = types.SimpleNamespace(record={"stages": {"timing": {"result": {"configurations": rows}}}},
                                  sizes={"grids": ("packs", "single")})
    monkeypatch.setattr(gpu_timing.bench, "grid_images", lambda grid: (1, 3.6e6, 3.6e6))
    monkeypatch.setattr(gpu_timing.bench, "grid_packs", lambda grid: grid == "packs")
    found = gpu_timing.projection(check)["bf16"]
    # 3.6e6 images at 1000 img/s and 3.6e6 evaluated at 2000 img/s: 1 + 0.5 hours; at 200 and 400: 5 + 2.5.
    assert found["gpu_hours"] == {"packs": 1.5, "single": 7.5}
    assert (found["at"]["packs"]["members"], found["at"]["single"]["mode"]) == (16, "reduce-overhead")
