"""The device check's speed stages (scripts/gpu_check.py runs them after the correctness stages): steps and
evaluation passes timed per precision, pack size and compilation; the profile of the largest pack timed; the naive
recipe; and the GPU-hours of every preset at the fastest configuration timed.
"""

import statistics
import time
from typing import TYPE_CHECKING

import torch

from data import one_line
from experiments import precision, trainer
from experiments.lifecycle import RUNNING, SKIPPED
from scripts import bench

if TYPE_CHECKING:  # the check's state; gpu_check imports this module for its stages
    from scripts.gpu_check import Check

# Seconds the stages after timing (profile, naive, projection) need on a GPU machine, and what a configuration of
# the timing stage may take at most: its setup, warm-up (compiling, if compiled) and 60 steps.
AFTER_TIMING_S = 60
CONFIGURATION_S = {False: 30, True: 150}

def _time_trainer(check: "Check", pack: trainer.PackTrainer) -> dict:
    """Median seconds of a step and of an evaluation pass over the test set."""
    s, device = check.sizes, check.device
    batches = bench.endless(pack.batches)
    bench.train_steps(pack.step, batches, s["warmup"])
    steps = [bench.seconds(lambda: bench.train_steps(pack.step, batches, s["steps"]), device) / s["steps"]
             for _ in range(s["repeats"])]
    pack.evaluate("test")  # warm-up (and compile) of eval mode
    evals = [bench.seconds(lambda: pack.evaluate("test"), device) for _ in range(s["repeats"])]
    return {"step_s": statistics.median(steps), "eval_s": statistics.median(evals)}


def _configurations(check: "Check") -> list[tuple[str, bool, int]]:
    """(precision, compiled, K) in order of value: eager first (fast to set up), then compiled."""
    names = [p for p in ("bf16", "fp32") if p in check.precisions()]
    ks = check.sizes["members"]
    eager = [(p, False, k) for p in names for k in ks]
    compiled = [(p, True, k) for k in sorted(ks, key=lambda k: -k if k > 1 else -1000) for p in names]
    return eager + compiled


def timing(check: "Check") -> dict:
    s = check.sizes
    found = []
    for name, compiled, k in _configurations(check):
        if not check.dry_run and check.left() - AFTER_TIMING_S < CONFIGURATION_S[compiled]:
            found.append({"precision": name, "compiled": compiled, "members": k, SKIPPED: "deadline"})
            continue
        cfgs = [check.cfg(f"precision={name}", f"compile={str(compiled).lower()}", f"seed={j}", "loss=ce")
                for j in range(k)]
        started = time.monotonic()
        try:
            measured = _time_trainer(check, trainer.PackTrainer(check.members(cfgs), check.device))
        except torch.OutOfMemoryError as error:
            found.append({"precision": name, "compiled": compiled, "members": k, "error": one_line(error)})
            continue
        finally:
            if check.device.type == "cuda":
                torch.cuda.empty_cache()
        images = k * s["batch"]
        # A CIFAR-10 validation run's epoch: 45,000 training images, 20,000 evaluated (the subset, the holdout and
        # the test set), per run of the pack.
        train_images, evaluated = bench.paper_epoch_images("cifar10", "val")
        train_s = train_images / s["batch"] * measured["step_s"] / k
        eval_s = evaluated / s["test"] * measured["eval_s"] / k
        found.append({
            "precision": name, "compiled": compiled, "members": k, "step_ms": 1e3 * measured["step_s"],
            "train_img_s": images / measured["step_s"], "eval_img_s": k * s["test"] / measured["eval_s"],
            "run_epoch_s": train_s + eval_s, "eval_share": eval_s / (train_s + eval_s),
            "setup_and_warmup_s": round(time.monotonic() - started, 1),
            "compile": trainer.compiled_graphs() if compiled else None,
        })
        check.record["stages"]["timing"] = {"status": RUNNING, "result": found}
        check.save()
    return {"configurations": found}


def _fastest(check: "Check") -> list[dict]:
    timed = check.record["stages"].get("timing", {}).get("result", {})
    rows = [r for r in (timed.get("configurations", []) if isinstance(timed, dict) else timed) if "step_ms" in r]
    best = {}
    for r in rows:
        if r["precision"] not in best or r["run_epoch_s"] < best[r["precision"]]["run_epoch_s"]:
            best[r["precision"]] = r
    return list(best.values())


def profile(check: "Check") -> dict:
    best = max(_fastest(check), key=lambda r: r["members"], default=None)
    name, compiled, k = (best["precision"], best["compiled"], best["members"]) if best else ("fp32", False, 1)
    cfgs = [check.cfg(f"precision={name}", f"compile={str(compiled).lower()}", f"seed={j}") for j in range(k)]
    pack = trainer.PackTrainer(check.members(cfgs), check.device)
    batches = bench.endless(pack.batches)
    bench.train_steps(pack.step, batches, check.sizes["warmup"])
    activities = [torch.profiler.ProfilerActivity.CPU]
    if check.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    steps = 5
    bench.sync(check.device)
    began = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        bench.train_steps(pack.step, batches, steps)
        bench.sync(check.device)
    wall = (time.perf_counter() - began) / steps
    events = prof.key_averages()
    device_time = "self_device_time_total" if check.device.type == "cuda" else "self_cpu_time_total"
    busy = sum(getattr(e, device_time) for e in events if check.device.type != "cuda" or e.device_type.name == "CUDA")
    top = sorted(events, key=lambda e: getattr(e, device_time), reverse=True)[:12]
    return {"precision": name, "compiled": compiled, "members": k, "step_ms": 1e3 * wall,
            "busy_ms": busy / 1e3 / steps, "busy_share": busy / 1e6 / steps / wall,
            "top_kernels": [{"name": e.key[:120], "ms_per_step": getattr(e, device_time) / 1e3 / steps}
                            for e in top]}


def naive(check: "Check") -> dict:
    s, device = check.sizes, check.device
    loader, step = bench.naive_recipe(check.dataset, s["batch"], device)
    found = {}
    for name in ("fp32", "tf32"):
        if name not in precision.supported(device):
            continue
        batches = bench.endless(loader)
        try:
            with precision.arithmetic(name):
                bench.train_steps(step, batches, s["warmup"])
                took = bench.seconds(lambda b=batches: bench.train_steps(step, b, s["steps"]), device)
        finally:
            batches.close()
        found[name] = {"img_s": s["steps"] * s["batch"] / took}
    return found


def projection(check: "Check") -> dict:
    found = {}
    for best in _fastest(check):
        per_preset = {}
        for preset in check.sizes["grids"] or (*bench.GRIDS, *bench.PRESETS):
            _, train, evaluated = bench.grid_images(preset)
            per_preset[preset] = (train / best["train_img_s"] + evaluated / best["eval_img_s"]) / 3600
        found[best["precision"]] = {"at": {k: best[k] for k in ("compiled", "members", "step_ms")},
                                    "gpu_hours": per_preset}
    if not found:
        raise AssertionError("no configuration was timed")
    return found
