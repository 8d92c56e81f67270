"""scripts/gpu_check.py --dry-run: every stage of the device check runs on the CPU at tiny sizes and lands in
gpu_check.json; a deadline that leaves no time skips stages rather than overrunning."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def gpu_check(out: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--out", str(out), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    return proc, json.loads((out / "gpu_check.json").read_text())


def test_the_dry_run_runs_every_stage_and_records_each(tmp_path):
    proc, found = gpu_check(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stages = found["stages"]
    assert list(stages) == ["environment", "strict_fp32", "packed_equals_alone", "nan_isolation", "resume", "timing",
                            "profile", "naive", "projection"]
    assert all(entry["status"] == "ok" for entry in stages.values()), {k: v.get("error") for k, v in stages.items()}
    assert found["dry_run"] is True and found["elapsed_s"] > 0
    assert stages["strict_fp32"]["result"]["relative_error"]["fp32"]["conv"] < 1e-5
    packed = stages["packed_equals_alone"]["result"]["fp32"]
    assert packed["max_abs_difference"] <= packed["tolerance"] == 1e-4
    assert stages["resume"]["result"] == {"stopped_after": 2, "max_abs_difference": 0.0}  # the CPU is deterministic
    timed = stages["timing"]["result"]["configurations"]
    assert {(r["compiled"], r["members"]) for r in timed} == {(False, 1), (False, 2), (True, 1), (True, 2)}
    assert all(r["step_ms"] > 0 and 0 < r["eval_share"] < 1 for r in timed)
    assert all(r["compile"] > 0 for r in timed if r["compiled"])  # graphs made, counted
    hours = stages["projection"]["result"]["fp32"]["gpu_hours"]
    assert set(hours) == {"paper"} and hours["paper"] > 0
    assert stages["profile"]["result"]["busy_ms"] > 0 and stages["naive"]["result"]["fp32"]["img_s"] > 0


def test_a_deadline_that_is_past_skips_the_stages_and_still_writes_the_record(tmp_path):
    proc, found = gpu_check(tmp_path, "--deadline", "0")
    assert proc.returncode == 0, proc.stderr
    assert {entry["status"] for entry in found["stages"].values()} == {"skipped"} and len(found["stages"]) == 9
