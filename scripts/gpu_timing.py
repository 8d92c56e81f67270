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
# What names a convolution's kernels in the profiler: cuDNN's, cuDNN's grouped ones, and torch's own (conv2d).
CONVOLUTION_WORDS = ("conv", "cudnn", "grouped")

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


# How a configuration runs the model: eager, torch.compile's default, or its CUDA graphs (reduce-overhead, CUDA only:
# a single run issues some 250 kernels a step for 1.5-3 ms of GPU work, so launches may bound it).
MODES = ("reduce-overhead", "default", "eager")


def _configurations(check: "Check") -> list[dict]:
    """The configurations to time, in order of value: compiled first (the grid's, and the slowest to set up, so
    that the deadline cuts eager ones), a single run, then the packs, largest first; then the layout the engine
    does not take by default (NCHW against channels-last on CUDA) for the largest pack, eager."""
    names = [p for p in ("bf16", "fp32") if p in check.precisions()]
    ks = sorted(check.sizes["members"], key=lambda k: -k if k > 1 else -1000)
    modes = [m for m in MODES if m != "reduce-overhead" or check.device.type == "cuda"]
    found = [{"precision": p, "mode": mode, "members": k} for mode in modes for k in ks for p in names]
    other_layout = not check.cfg().channels_last
    return found + [{"precision": p, "mode": "eager", "members": max(ks), "channels_last": other_layout}
                    for p in names]


def _overrides(configuration: dict) -> list[str]:
    """The config overrides of a configuration (_configurations)."""
    mode = configuration["mode"]
    found = [f"precision={configuration['precision']}", f"compile={str(mode != 'eager').lower()}",
             *([f"compile_mode={mode}"] if mode != "eager" else [])]
    if "channels_last" in configuration:
        found.append(f"channels_last={str(configuration['channels_last']).lower()}")
    return found


def timing(check: "Check") -> dict:
    s = check.sizes
    found = []
    for configuration in _configurations(check):
        compiled = configuration["mode"] != "eager"
        if not check.dry_run and check.left() - AFTER_TIMING_S < CONFIGURATION_S[compiled]:
            found.append({**configuration, "compiled": compiled, SKIPPED: "deadline"})
            continue
        k = configuration["members"]
        cfgs = [check.cfg(*_overrides(configuration), f"seed={j}", "loss=ce") for j in range(k)]
        started = time.monotonic()
        try:
            measured = _time_trainer(check, trainer.PackTrainer(check.members(cfgs), check.device))
        except torch.OutOfMemoryError as error:
            found.append({**configuration, "compiled": compiled, "error": one_line(error)})
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
            **configuration, "compiled": compiled, "channels_last": cfgs[0].channels_last,
            "step_ms": 1e3 * measured["step_s"], "train_img_s": images / measured["step_s"],
            "eval_img_s": k * s["test"] / measured["eval_s"], "run_epoch_s": train_s + eval_s,
            "eval_share": eval_s / (train_s + eval_s), "setup_and_warmup_s": round(time.monotonic() - started, 1),
            "compile": trainer.compiled_graphs() if compiled else None,
        })
        check.record["stages"]["timing"] = {"status": RUNNING, "result": found}
        check.save()
    return {"configurations": found}


def _fastest(check: "Check", single: bool = False) -> list[dict]:
    """The fastest configuration timed per precision (by a run's epoch); of single runs only if `single`."""
    timed = check.record["stages"].get("timing", {}).get("result", {})
    rows = [r for r in (timed.get("configurations", []) if isinstance(timed, dict) else timed)
            if "step_ms" in r and (r["members"] == 1 or not single)]
    best = {}
    for r in rows:
        if r["precision"] not in best or r["run_epoch_s"] < best[r["precision"]]["run_epoch_s"]:
            best[r["precision"]] = r
    return list(best.values())


def profile(check: "Check") -> dict:
    best = max(_fastest(check), key=lambda r: r["members"], default=None)
    configuration = ({k: best[k] for k in ("precision", "mode", "members", "channels_last")} if best
                     else {"precision": "fp32", "mode": "eager", "members": 1})
    k = configuration["members"]
    cfgs = [check.cfg(*_overrides(configuration), f"seed={j}") for j in range(k)]
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
    ranked = sorted(events, key=lambda e: getattr(e, device_time), reverse=True)

    def kernels(chosen: list) -> list[dict]:
        return [{"name": e.key[:160], "ms_per_step": getattr(e, device_time) / 1e3 / steps} for e in chosen]

    convolutions = [e for e in ranked if any(word in e.key.lower() for word in CONVOLUTION_WORDS)]
    return {**configuration, "step_ms": 1e3 * wall, "busy_ms": busy / 1e3 / steps,
            "busy_share": busy / 1e6 / steps / wall, "top_kernels": kernels(ranked[:12]),
            "convolution_kernels": kernels(convolutions[:20]),
            "grouped_direct": any("grouped_direct" in e.key.lower() for e in convolutions)}


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
    """Each preset's GPU-hours per precision at the fastest configuration timed: of packs where its networks pack
    (bench.grid_packs), of single runs where they do not."""
    found = {}
    single = {r["precision"]: r for r in _fastest(check, single=True)}
    for best in _fastest(check):
        per_preset, at = {}, {}
        for preset in check.sizes["grids"] or (*bench.GRIDS, *bench.PRESETS):
            rate = best if bench.grid_packs(preset) else single.get(best["precision"])
            if rate is None:  # no single run of the precision timed
                continue
            _, train, evaluated = bench.grid_images(preset)
            per_preset[preset] = (train / rate["train_img_s"] + evaluated / rate["eval_img_s"]) / 3600
            at[preset] = {k: rate[k] for k in ("mode", "members", "channels_last", "step_ms")}
        found[best["precision"]] = {"at": at, "gpu_hours": per_preset}
    if not found:
        raise AssertionError("no configuration was timed")
    return found
