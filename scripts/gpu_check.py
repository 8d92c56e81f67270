"""The one-call device check: what a GPU machine must show before the grid runs on it, in at most 8 minutes.

    python scripts/gpu_check.py --out DIR [--wheels WHEELS] [--deadline S] [--dry-run]

Runs from the repository root where torch (2.11 to 2.14) is installed, with the harness's other dependencies, or
with --wheels WHEELS, the folder `make gpu-wheels` builds elsewhere, which it installs first into a temporary
directory without network (scripts/gpu_wheels.py). It needs no dataset (its data are random synthetic CIFAR-shaped
images) and writes its record only into DIR. Stages, in order of
value; each is recorded in DIR/gpu_check.json as soon as it ends, so a run cut short keeps what it measured:

- environment: torch, CUDA, cuDNN, the device, the precisions it computes natively, the TF32 settings found;
- strict_fp32: a grouped convolution and a matrix product in the engine's fp32 context against float64 (TF32 would
  miss by about 1e-3), and the TF32 settings after it, which must be those before;
- packed_equals_alone: packs of 4 (PACKS) against each run alone, eager: in float64 within STRUCTURAL, and in each
  precision within the rounding measured against float64 (within_rounding; docs/performance.md says why);
- compiled_equals_eager: the paper's pack compiled against eager, by the same two criteria;
- nan_isolation: a member whose weights are NaN leaves the others of its pack as they train without it;
- resume: a run stopped after its second epoch and resumed ends with the rows of an uninterrupted one (1e-6),
  deterministic=true;
- timing: steps at K = 1, 4, 16 and 32 members (batch 128 each), in fp32 and bf16, eager and compiled, median of
  3 x 20 steps after warm-up; the evaluation pass of each; the seconds of a CIFAR-10 validation run's epoch and
  the evaluation's share of it; as many configurations as the deadline leaves time for;
- profile: host time against device busy time per step (torch.profiler) at the largest K timed, and the kernels
  that take the most time (look for `grouped_direct`: cuDNN's slow grouped convolutions);
- naive: the usual recipe (scripts/bench.py) in strict fp32 and, where the device has it, TF32;
- projection: the GPU-hours of every preset (scripts/bench.py's grid_images) at the fastest configuration timed in
  each precision, compile, host I/O and partial batches left out.

`--deadline S` (default 420 s) is the time after which no stage starts; a timing configuration starts only if it can
end (scripts/gpu_timing.py, CONFIGURATION_S) with AFTER_TIMING_S left for the stages after it, so that with the
default the whole check ends within 8 minutes. `--dry-run` runs every stage on the CPU with tiny sizes, in about a
minute, with torch.compile's graphs run by dynamo's eager backend (no C compiler), in the CPU's default NCHW
layout: what tests/test_gpu_check.py runs.
"""

import argparse
import contextlib
import functools
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts import gpu_wheels  # noqa: E402 - standard library only

if __name__ == "__main__":  # --wheels DIR: Hydra, OmegaConf and the rest installed before the imports below need them
    gpu_wheels.install_if_asked(sys.argv[1:])

from data import one_line, shared_images  # noqa: E402
from data.files import write_json  # noqa: E402
from experiments import placement, precision, provenance, trainer  # noqa: E402
from experiments.killpoints import ENV as KILL_AT  # noqa: E402
from experiments.lifecycle import FAILED, SKIPPED  # noqa: E402
from experiments.needs import make_needs  # noqa: E402
from experiments.resolve import compose, resolve  # noqa: E402
from experiments.run import run_data_for, run_pack  # noqa: E402
from experiments.rundir import RunDir  # noqa: E402
from scripts import bench, gpu_timing  # noqa: E402

# The packs whose members must train as they would alone: the paper's losses (weight decay 1e-4), and losses that
# need more than logits and labels (ANL-CE the model's weights, with weight decay 0; ELR a memory and each sample's
# index; forward correction a transition matrix) next to CE in their recipe.
PACKS = {
    "paper": ("loss=ce", "loss=tce loss.alpha=1.5", "loss=mse", "loss=tce loss.alpha=0.5"),
    "needs": tuple(f"loss={name} optim.weight_decay=0" for name in ("anl_ce", "elr", "forward", "ce")),
}
# Packed against alone in float64 after STRUCTURAL_STEPS steps: a relative difference per member and tensor of at
# most STRUCTURAL (the order of float64 sums; a leak between members is 1e-3 or more).
STRUCTURAL, STRUCTURAL_STEPS = 1e-10, 2
# What a TF32 matrix product of strict_fp32's misses by at least, relatively (10 bits of mantissa: about 1e-3).
TF32_MISSES = 1e-4
# In a precision, after 1 and PRECISION_STEPS steps: the difference allowed beyond twice the rounding measured
# (within_rounding), for tensors that rounding leaves all but exact.
FLOOR, PRECISION_STEPS = 1e-6, 5
RUNNING_STATISTICS = ("running_mean", "running_var")
OK = "ok"  # a stage or a member that passed; the others are recorded as the runs' FAILED, SKIPPED, RUNNING
# Sizes: the real check's, and the dry run's (one precision, two pack sizes, the paper's grid only: the bookkeeping
# of every stage, not its numbers).
SIZES = {
    False: {"train": 50_000, "test": 10_000, "holdout": 5_000, "batch": 128, "members": (1, 4, 16, 32), "steps": 20,
            "repeats": 3, "warmup": 3, "depth": 20, "resume_train": 2_000, "eval_batch": 1000,
            "precisions": precision.PRECISIONS, "grids": None},
    True: {"train": 256, "test": 64, "holdout": 32, "batch": 16, "members": (1, 2), "steps": 2, "repeats": 1,
           "warmup": 1, "depth": 8, "resume_train": 128, "eval_batch": 64,
           "precisions": ("fp32",), "grids": ("paper",)},
}


class Check:
    """The check's state: its device, sizes, deadline and the record it rewrites after every stage."""

    def __init__(self, out: Path, deadline: float, dry_run: bool):
        self.out, self.deadline, self.dry_run = out, deadline, dry_run
        self.sizes = SIZES[dry_run]
        self.device = torch.device("cpu" if dry_run else "cuda")
        self.start = time.monotonic()
        self.record = {"dry_run": dry_run, "deadline_s": deadline, "stages": {}}
        self._dataset = None

    def precisions(self) -> list[str]:
        """The precisions to check and time: those the device computes natively (the dry run's one)."""
        return [p for p in precision.supported(self.device) if p in self.sizes["precisions"]]

    def left(self) -> float:
        return self.deadline - (time.monotonic() - self.start)

    def save(self) -> None:
        self.record["elapsed_s"] = round(time.monotonic() - self.start, 1)
        write_json(self.out / "gpu_check.json", self.record)

    def cfg(self, *overrides: str, train: int | None = None) -> object:
        s = self.sizes
        return resolve(compose(
            "dataset=synthetic", f"dataset.train_size={train or s['train']}", f"dataset.test_size={s['test']}",
            f"dataset.val_holdout={s['holdout']}", "dataset.num_classes=10", f"model.depth={s['depth']}",
            f"holdout={s['holdout']}",
            f"batch_size={s['batch']}", f"eval_batch_size={s['eval_batch']}", "progress=false",
            f"device={self.device}", *overrides))

    def pack_cfgs(self, pack: tuple[str, ...], *overrides: str) -> list:
        """The configs of a pack's members (PACKS), seeds 0, 1, ..., each its own labels at noise 0.4."""
        return [self.cfg("holdout=0", "compile=false", "noise=0.4", f"seed={k}", *member.split(), *overrides)
                for k, member in enumerate(pack)]

    @property
    def layout(self) -> str:
        """The layout the engine trains in here, its default for the device, and why."""
        if self.cfg().channels_last:
            return "channels-last, the engine's default on CUDA"
        return ("NCHW, the engine's default on the CPU: the CPU's channels-last float32 BatchNorm is about 40x less "
                "accurate (docs/performance.md)")

    @property
    def dataset(self):
        if self._dataset is None:
            self._dataset = bench.synthetic_dataset(self.sizes["train"], self.sizes["test"])
        return self._dataset

    def members(self, cfgs: list, dataset=None) -> list[trainer.Member]:
        dataset = dataset or self.dataset
        c = cfgs[0]
        images = shared_images(dataset, holdout=c.holdout, split_seed=c.dataset.split_seed,
                               eval_train_size=c.eval_train_size, device=self.device)
        members = []
        for cfg in cfgs:
            data = run_data_for(cfg, dataset, self.device, images)
            members.append(trainer.Member(cfg, data, trainer.initial_model_state(cfg, 3, 10),
                                          needs=make_needs(cfg, data, images.train_idx)))
        return members


class CheckFailed(AssertionError):
    """A stage's criterion failed; `result` holds what it measured, recorded with the failure."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


def run_stage(check: Check, name: str, stage: Callable[[Check], dict]) -> None:
    if check.left() <= 0:
        check.record["stages"][name] = {"status": SKIPPED, "reason": "deadline"}
        check.save()
        return
    began = time.monotonic()
    try:
        entry = {"status": OK, "result": stage(check)}
    except CheckFailed as failed:
        entry = {"status": FAILED, "error": one_line(failed), "result": failed.result}
    except Exception as error:  # noqa: BLE001 - a stage that fails is recorded, and the others still run
        entry = {"status": FAILED, "error": one_line(error), "traceback": traceback.format_exc(limit=-3)}
    entry["seconds"] = round(time.monotonic() - began, 2)
    check.record["stages"][name] = entry
    check.save()
    print(f"{name}: {entry['status']} ({entry['seconds']} s)", flush=True)


def environment(check: Check) -> dict:
    found = {"torch": torch.__version__, "device": provenance.device_name(check.device),
             "precisions": list(precision.supported(check.device)),
             "tf32_settings": precision.tf32_settings(), "recompile_limit": trainer.RECOMPILE_LIMIT}
    if check.device.type == "cuda":
        found.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                     capability=list(torch.cuda.get_device_capability(check.device)),
                     memory_gib=round(torch.cuda.get_device_properties(check.device).total_memory / 2**30, 1))
    return found


def strict_fp32(check: Check) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 64, 32, 32, generator=g, dtype=torch.float64)
    w = torch.randn(64, 16, 3, 3, generator=g, dtype=torch.float64) / 12
    a, b = torch.randn(512, 512, generator=g, dtype=torch.float64), torch.randn(512, 512, generator=g,
                                                                                 dtype=torch.float64)
    exact_conv = torch.nn.functional.conv2d(x, w, padding=1, groups=4)
    exact_mm = a @ b
    before = precision.tf32_settings()
    errors = {}
    for name in precision.supported(check.device):
        if name == "bf16":
            continue
        with precision.arithmetic(name):
            conv = torch.nn.functional.conv2d(x.float().to(check.device), w.float().to(check.device), padding=1,
                                              groups=4)
            mm = a.float().to(check.device) @ b.float().to(check.device)
        errors[name] = {"conv": ((conv.double().cpu() - exact_conv).abs().max() / exact_conv.abs().max()).item(),
                        "matmul": ((mm.double().cpu() - exact_mm).abs().max() / exact_mm.abs().max()).item()}
    after = precision.tf32_settings()
    if max(errors["fp32"].values()) > 1e-5:
        raise AssertionError(f"fp32 is not strict: relative errors {errors['fp32']} (TF32 gives about 1e-3)")
    # cuBLAS computes a float32 product of this size in TF32 when allowed; cuDNN may take a strict kernel anyway.
    if "tf32" in errors and errors["tf32"]["matmul"] < TF32_MISSES:
        raise AssertionError(f"tf32 is not TF32: relative errors {errors['tf32']} (TF32 gives about 1e-3)")
    if after != before:
        raise AssertionError(f"TF32 settings changed by the engine's context: {before} before, {after} after")
    return {"relative_error": errors, "tf32_settings_before": before, "tf32_settings_after": after}


def _states(members: list[trainer.Member], steps: tuple[int, ...], dtype: torch.dtype = torch.float32
            ) -> dict[int, list[dict[str, torch.Tensor]]]:
    """Each member's weights, BatchNorm buffers and momentum after each of `steps` SGD steps of these members packed
    together, by step; in float64 a reference of the same steps (trainer.PackTrainer's dtype)."""
    pack = trainer.PackTrainer(members, members[0].data.loader.device, dtype)
    batches, found = iter(pack.batches), {}
    for step in range(1, max(steps) + 1):
        pack.step(*next(batches))
        if step in steps:
            found[step] = [{**model, **{f"momentum.{n}": t for n, t in momentum.items()}}
                           for model, momentum in pack.member_states()]
    return found


def _alone(check: Check, cfgs: list, steps: tuple[int, ...], dtype: torch.dtype = torch.float32
           ) -> dict[int, list[dict[str, torch.Tensor]]]:
    """_states of each run of `cfgs` trained alone, by step, in the order of `cfgs`."""
    runs = [_states(check.members([cfg]), steps, dtype) for cfg in cfgs]
    return {step: [run[step][0] for run in runs] for step in steps}


def distances(found: dict, reference: dict, scale: dict) -> dict[str, float]:
    """Per floating-point tensor: ||found - reference|| / ||scale||, in float64 (scale 1 where ||scale|| is 0).
    One scale for every distance of a member's tensor, the float64 run alone's, so that distances add up as the
    triangle inequality says: d(packed, alone) <= d(packed, packed64) + d(packed64, alone64) + d(alone64, alone)."""
    found_d = {}
    for name, ref in reference.items():
        if ref.is_floating_point():
            norm = torch.linalg.vector_norm(scale[name].double()).item() or 1.0
            found_d[name] = torch.linalg.vector_norm(found[name].double() - ref.double()).item() / norm
    return found_d


def _names(cfgs: list) -> list[str]:
    return [f"{cfg.loss.name} seed {cfg.seed}" for cfg in cfgs]


def structural(members: list[str], packed: list[dict], alone: list[dict]) -> dict:
    """Packed against alone in float64, where they differ only in the order of sums: each member's every tensor
    (weights, BatchNorm buffers, momentum) within STRUCTURAL of the run alone's, relatively. A leak between members
    (a statistic over the pack, a shared generator) shows at 1e-3 or more."""
    rows = []
    for member, p, a in zip(members, packed, alone, strict=True):
        d = distances(p, a, a)
        exact = all(torch.equal(p[n], a[n]) for n in a if not a[n].is_floating_point())  # num_batches_tracked
        worst = max(d, key=d.get)
        rows.append({"member": member, "tensor": worst, "difference": d[worst],
                     "verdict": OK if d[worst] <= STRUCTURAL and exact else FAILED})
    return {"steps": STRUCTURAL_STEPS, "bound": STRUCTURAL, "members": rows}


def within_rounding(members: list[str], found: list[dict], expected: list[dict], found64: list[dict],
                    expected64: list[dict]) -> list[dict]:
    """Two ways of computing the same steps in one precision (packed and alone, compiled and eager) against their
    float64 references, over weights and momentum (running statistics are averages that rounding barely moves):
    per member and tensor d(found, expected) <= 2 max(d(found, found64), d(expected, expected64)) + FLOOR, d the
    relative norm of the difference (`distances`). The bound is each way's own rounding, measured: on the CPU and in
    cuDNN alike a last bit can flip a ReLU and move a tensor by percents, the other way's and its own reference's
    alike. Per member, the tensor nearest its bound: its difference, its baseline max(...), and the verdict."""
    rows = []
    for member, f, e, f64, e64 in zip(members, found, expected, found64, expected64, strict=True):
        trained = {n: t for n, t in e.items() if not n.endswith(RUNNING_STATISTICS)}
        between, off, off_expected = distances(f, trained, e64), distances(f, f64, e64), distances(e, e64, e64)
        baseline = {n: max(off[n], off_expected[n]) for n in between}
        ratio = {n: between[n] / (2 * baseline[n] + FLOOR) for n in between}
        worst = max(ratio, key=ratio.get)
        rows.append({"member": member, "tensor": worst, "difference": between[worst], "baseline": baseline[worst],
                     "ratio": ratio[worst], "verdict": OK if ratio[worst] <= 1 else FAILED})
    return rows


def _failures(where: str, rows: list[dict]) -> list[str]:
    """The members of `rows` (structural, within_rounding) that failed, one phrase each."""
    return [f"{where}: {r['member']} ({r['tensor']}: {r['difference']:.3g}"
            + (f" against a baseline of {r['baseline']:.3g})" if "baseline" in r else ")")
            for r in rows if r["verdict"] != OK]


def _within_rounding_by_step(names: list[str], found: dict, expected: dict, found64: dict, expected64: dict) -> dict:
    return {str(step): within_rounding(names, found[step], expected[step], found64[step], expected64[step])
            for step in (1, PRECISION_STEPS)}


def packed_equals_alone(check: Check) -> dict:
    """Packing changes nothing but rounding: in float64 (STRUCTURAL) for each of PACKS; in every precision the device
    computes, for the paper's pack, within the rounding each way shows against its float64 reference
    (within_rounding), after 1 and PRECISION_STEPS steps."""
    found, failed, reference = {"layout": check.layout}, [], {}
    for label, pack in PACKS.items():
        cfgs = check.pack_cfgs(pack, "precision=fp32")
        steps = (1, STRUCTURAL_STEPS, PRECISION_STEPS) if label == "paper" else (STRUCTURAL_STEPS,)
        packed, alone = _states(check.members(cfgs), steps, torch.float64), _alone(check, cfgs, steps, torch.float64)
        reference[label] = packed, alone
        found[f"float64 {label}"] = result = structural(_names(cfgs), packed[STRUCTURAL_STEPS], alone[STRUCTURAL_STEPS])
        failed += _failures(f"float64 {label}", result["members"])
    names = _names(check.pack_cfgs(PACKS["paper"]))
    for name in check.precisions():
        cfgs = check.pack_cfgs(PACKS["paper"], f"precision={name}")
        packed, alone = _states(check.members(cfgs), (1, PRECISION_STEPS)), _alone(check, cfgs, (1, PRECISION_STEPS))
        found[name] = rows = _within_rounding_by_step(names, packed, alone, *reference["paper"])
        failed += [line for step, r in rows.items() for line in _failures(f"{name} step {step}", r)]
    if failed:
        raise CheckFailed("packed and alone differ beyond rounding: " + "; ".join(failed), found)
    return found


def compiled_equals_eager(check: Check) -> dict:
    """torch.compile changes nothing but rounding: the paper's pack compiled against eager, in float64 (STRUCTURAL)
    and in every precision the device computes (within_rounding), after 1 and PRECISION_STEPS steps."""
    def states(precision_name: str, dtype: torch.dtype) -> dict[bool, dict]:
        steps = (1, STRUCTURAL_STEPS, PRECISION_STEPS)
        return {compiled: _states(check.members(check.pack_cfgs(
            PACKS["paper"], f"precision={precision_name}", f"compile={str(compiled).lower()}")), steps, dtype)
            for compiled in (True, False)}

    names = _names(check.pack_cfgs(PACKS["paper"]))
    reference = states("fp32", torch.float64)
    found = {"float64": structural(names, reference[True][STRUCTURAL_STEPS], reference[False][STRUCTURAL_STEPS])}
    failed = _failures("float64", found["float64"]["members"])
    for name in check.precisions():
        measured = states(name, torch.float32)
        found[name] = rows = _within_rounding_by_step(names, measured[True], measured[False], reference[True],
                                                       reference[False])
        failed += [line for step, r in rows.items() for line in _failures(f"{name} step {step}", r)]
    if failed:
        raise CheckFailed("compiled and eager differ beyond rounding: " + "; ".join(failed), found)
    return found


def nan_isolation(check: Check) -> dict:
    cfgs = [check.cfg("holdout=0", "compile=false", f"seed={k}") for k in range(3)]
    poisoned = check.members(cfgs)
    poisoned[1].model_state = {n: t.clone().fill_(math.nan) if t.is_floating_point() else t
                               for n, t in poisoned[1].model_state.items()}
    found = _states(poisoned, (3,))[3]
    clean = _states(check.members(cfgs), (3,))[3]
    worst = max((found[k][n] - clean[k][n]).abs().max().item() for k in (0, 2) for n in clean[k]
                if clean[k][n].is_floating_point())
    # Equal up to the last bits that cuDNN's atomics may change from one run to the next; a leak would be NaN.
    if not (worst <= 1e-5 and all(torch.isnan(t).any() for n, t in found[1].items() if t.is_floating_point()
                                  and n.endswith("weight"))):
        raise AssertionError(f"a NaN member reaches the others of its pack: they differ by {worst:.3g}")
    return {"max_abs_difference_of_the_others": worst}


def resume(check: Check) -> dict:
    """A run stopped after its second epoch and resumed against one uninterrupted, deterministic=true (cuDNN's and
    cuBLAS's deterministic algorithms: bit for bit, cuBLAS's workspace set at the check's start). The stop comes
    from the training thread once epoch 2 is trained (`trained:2`), SIGUSR1 as Slurm's warning would: from the
    writer thread a fast GPU could train epoch 3 before it lands."""
    import signal

    from experiments.interrupt import RunInterrupted

    with tempfile.TemporaryDirectory() as tmp:
        def run(where: str, kill: str | None = None) -> list[dict]:
            cfg = check.cfg(f"runs_dir={tmp}/{where}", "epochs=3", "noise=0.4", "compile=false", "holdout=0",
                            "deterministic=true", train=check.sizes["resume_train"])
            run_dir = Path(tmp) / where / "run"
            if kill:
                os.environ[KILL_AT] = kill
            try:
                with contextlib.suppress(RunInterrupted):
                    run_pack([(cfg, run_dir)])
            finally:
                os.environ.pop(KILL_AT, None)
            return RunDir(run_dir).load_checkpoint()["metrics"]

        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # nothing else here handles it
        stopped = run("resumed", "trained:2:SIGUSR1")
        resumed = run("resumed")
        reference = run("reference")
    columns = [k for k in reference[0] if k not in ("seconds",) and isinstance(reference[0][k], float)]
    worst = max(abs(r[k] - e[k]) for r, e in zip(resumed, reference, strict=True) for k in columns)
    if len(stopped) != 2 or len(resumed) != 3 or not worst <= 1e-6:
        raise AssertionError(f"resumed after {len(stopped)} epochs, {len(resumed)} recorded, rows differ by {worst}")
    return {"stopped_after": len(stopped), "max_abs_difference": worst, "deterministic": True}


STAGES = {
    "environment": environment, "strict_fp32": strict_fp32, "packed_equals_alone": packed_equals_alone,
    "compiled_equals_eager": compiled_equals_eager, "nan_isolation": nan_isolation, "resume": resume,
    "timing": gpu_timing.timing, "profile": gpu_timing.profile, "naive": gpu_timing.naive,
    "projection": gpu_timing.projection,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for gpu_check.json")
    parser.add_argument("--deadline", type=float, default=420.0, help="seconds after which nothing new starts")
    parser.add_argument("--dry-run", action="store_true", help="every stage on the CPU, tiny sizes")
    parser.add_argument("--wheels", type=Path, help="make gpu-wheels' folder: installs them first, offline, into a "
                        "directory removed at the end (scripts/gpu_wheels.py)")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA device here (--dry-run runs every stage on the CPU)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    # Before cuBLAS's first use, which reads it once: the resume stage's deterministic runs need it.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", placement.CUBLAS_WORKSPACE)
    check = Check(args.out, args.deadline, args.dry_run)
    check.save()
    with contextlib.ExitStack() as stack:
        if args.dry_run:  # dynamo without a C compiler: the compiled path's bookkeeping, not its speed
            stack.enter_context(_eager_backend())
        for name, stage in STAGES.items():
            run_stage(check, name, stage)
    failed = [name for name, entry in check.record["stages"].items() if entry["status"] == FAILED]
    print(f"wrote {args.out / 'gpu_check.json'}; " + (f"failed: {', '.join(failed)}" if failed else "all passed"))
    return 1 if failed else 0


@contextlib.contextmanager
def _eager_backend():
    compile_ = torch.compile
    torch.compile = functools.partial(compile_, backend="eager")
    try:
        yield
    finally:
        torch.compile = compile_


if __name__ == "__main__":
    sys.exit(main())
