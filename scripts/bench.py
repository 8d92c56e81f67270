"""Throughput of ResNet-20 training on this device, and the hours of every preset of configs/experiment/ on it
(docs/performance.md, "The bench", says what each measurement is and how the hours are counted).

    python -m scripts.bench [--device auto|cpu|cuda[:N]] [--steps N] [--repeats R] [--pack K] [--out DIR]

On synthetic CIFAR-shaped data (45,000 random 3x32x32 uint8 training images, 10 classes, batch 128) it times N
SGD steps, R times in a rotating order (so that drifts in machine load hit each alike), and reports medians of:
naive (the usual recipe written plainly: PIL transforms, a DataLoader, an eager NCHW model, loss.item() every step,
in strict fp32 and, where the device has it, TF32); engine (PackTrainer.step fed by its DeviceLoader, in every
precision the device computes natively); TCE against CE; packed against single runs; and the evaluation pass.

From those: eval_overhead, what the per-epoch evaluation adds to an epoch of each dataset's recipe (target at most
0.15 on CIFAR-10), and `grids`, each preset's hours (grid_images reads every preset's sweep one dataset and
protocol role at a time; training images at the engine's images/s, evaluated ones at its eval images/s, single or
packed, whichever is shorter, packed only where every network of the grid packs (models.MODELS); a network other
than ResNet-20 counts as ResNet-20 images times the ratio of their forward FLOPs (experiments.cost.relative_cost);
compile time, host I/O and partial batches not counted). `grids["paper"]` is
Tables 1 and 2 together (grid_hours_estimate); zoo_grid_hours_estimate is experiment=zoo's.

Writes DIR/<device name>.json (default results/bench/) and prints a one-line summary.
"""

import argparse
import functools
import itertools
import json
import math
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision.transforms as T
from omegaconf import DictConfig
from PIL import Image
from torch import nn

import models
from data import Dataset, shared_images
from experiments import cost, precision, provenance
from experiments.resolve import CONFIGS, compose, resolve, with_defaults
from experiments.run import run_data_for
from experiments.sample_dynamics import fresh_state
from experiments.trainer import Member, PackTrainer, initial_model_state
from scripts.layout import PAPER_DATASETS

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "bench"
TEST_IMAGES = 2_000
NUM_CLASSES = 10
WARMUP_STEPS = 3  # before timing: allocator, DataLoader workers, and torch.compile's first calls on CUDA
# Steps per repetition: 3-5 s on 2 idle CPU cores; on a GPU enough to dwarf launch and timer overheads.
DEFAULT_STEPS = {"cpu": 20, "cuda": 200}
DEFAULT_PACK = {"cpu": 2, "cuda": 16}
TCE_ALPHA = 1.5
# The usual recipe normalizes with CIFAR-10's published channel statistics.
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

PRESETS = tuple(sorted(path.stem for path in (CONFIGS / "experiment").glob("*.yaml")))
# Grids that are several presets: the paper's Tables 1 and 2.
GRIDS = {"paper": ("table1", "table2")}
# The keys of a preset's sweep that decide a run's images per epoch, epochs or network; the others (loss, noise)
# only multiply runs.
_DATA_KEYS = ("dataset", "cifar_n", "protocol", "recipe")


def synthetic_dataset(train_images: int, test_images: int) -> Dataset:
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        return images, torch.randint(0, NUM_CLASSES, (n,), generator=g)

    (x, y), (xt, yt) = split(train_images), split(test_images)
    return Dataset("synthetic", x, y, xt, yt, NUM_CLASSES, flip=True)


class PILImages(torch.utils.data.Dataset):
    """uint8 images kept as torchvision's CIFAR10 keeps them (numpy, N x H x W x C), a PIL image per sample."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable):
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def naive_recipe(dataset: Dataset, batch_size: int, device: torch.device):
    """The usual recipe's DataLoader and its training step."""
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    loader = torch.utils.data.DataLoader(
        PILImages(dataset.train_images, dataset.train_labels, transform), batch_size=batch_size, shuffle=True,
        num_workers=min(4, os.cpu_count() or 1), pin_memory=device.type == "cuda", drop_last=True,
    )
    model = models.ResNet(20, dataset.in_channels, dataset.num_classes).to(device).train()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return loader, step


def endless(loader: Iterable) -> Iterator:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(work: Callable[[], object], device: torch.device) -> float:
    """Wall time of work(), including the device work it queued."""
    sync(device)
    start = time.perf_counter()
    work()
    sync(device)
    return time.perf_counter() - start


def train_steps(step: Callable, batches: Iterator, steps: int) -> None:
    """`steps` steps, each fetching its batch (x, y): the data path is part of what is timed."""
    for _ in range(steps):
        step(*next(batches))


def interleaved(works: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each work's result in each repetition; the order rotates, so none always follows the same other."""
    results: dict[str, list[float]] = {name: [] for name in works}
    names = list(works)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            results[name].append(works[name]())
    return results


@functools.cache
def paper_epoch_images(dataset: str, protocol: str) -> tuple[int, int]:
    """(training, evaluated) images of an epoch of the paper's run of `dataset` in protocol role `protocol` (val,
    full0): experiments.cost.epoch_images of its config. CIFAR-10's validation run, 45,000 and 20,000, is what the
    bench trains on and the device check's epochs are made of."""
    return cost.epoch_images(with_defaults(compose(f"dataset={dataset}", f"protocol={protocol}")))


@functools.cache
def preset_runs(preset: str) -> tuple[tuple[int, int, int, int, DictConfig], ...]:
    """(runs, training images, evaluated images, epochs, config) of each kind of run of experiment=`preset`: its sweep
    composed one value of each key of _DATA_KEYS at a time, the other swept keys multiplying the runs."""
    params = {key: str(value).split(",")
              for key, value in compose(f"experiment={preset}", hydra=True).hydra.sweeper.params.items()}
    data_keys = [key for key in params if key in _DATA_KEYS]
    others = math.prod(len(values) for key, values in params.items() if key not in data_keys)
    kinds = []
    for values in itertools.product(*(params[key] for key in data_keys)):
        cfg = with_defaults(compose(f"experiment={preset}", *(f"{k}={v}" for k, v in zip(data_keys, values,
                                                                                           strict=True))))
        kinds.append((others, *cost.epoch_images(cfg), cfg.epochs, cfg))
    return tuple(kinds)


def grid_images(grid: str) -> tuple[int, float, float]:
    """(runs, training images, evaluated images) of a preset's grid, or of one of GRIDS, over all its epochs; in
    ResNet-20 images (experiments.cost.relative_cost), which are the images themselves for ResNet-20's grids."""
    runs, train, evaluate = 0, 0.0, 0.0
    for preset in GRIDS.get(grid, (grid,)):
        for count, n_train, n_eval, epochs, cfg in preset_runs(preset):
            weight = count * epochs * cost.relative_cost(cfg)
            runs, train, evaluate = runs + count, train + weight * n_train, evaluate + weight * n_eval
    return runs, train, evaluate


def grid_packs(grid: str) -> bool:
    """Whether every network of the grid packs (models.MODELS): only then may its runs train in packs."""
    return all(models.MODELS[cfg.model.name].packs
               for preset in GRIDS.get(grid, (grid,)) for *_, cfg in preset_runs(preset))


def engine_trainers(dataset: Dataset, cfgs: dict[str, list[DictConfig]], device: torch.device) -> dict:
    """A PackTrainer and its endless batches for each list of member configs, all of them reading one copy of the
    images, as a pack's runs do."""
    first = next(iter(cfgs.values()))[0]
    images = shared_images(dataset, holdout=first.holdout, split_seed=first.dataset.split_seed,
                           eval_train_size=first.eval_train_size, device=device)
    trainers = {}
    for name, members in cfgs.items():
        states = [initial_model_state(c, dataset.in_channels, dataset.num_classes) for c in members]
        datas = [run_data_for(c, dataset, device, images) for c in members]
        trainer = PackTrainer([Member(c, d, s, samples=fresh_state(len(d.loader.labels), d.num_classes, c.epochs)
                                      if c.detect else None)
                               for c, d, s in zip(members, datas, states, strict=True)], device)
        trainers[name] = trainer, endless(trainer.batches)
    return trainers


def measure(device: str, *, steps: int | None = None, repeats: int = 5, pack: int | None = None,
            warmup: int = WARMUP_STEPS, train_images: int | None = None, test_images: int = TEST_IMAGES) -> dict:
    """Run every measurement on `device` and return the results (the JSON's content but the command and date);
    `train_images` defaults to those of an epoch of CIFAR-10's validation run (paper_epoch_images)."""
    train_images = train_images or paper_epoch_images("cifar10", "val")[0]

    def cfg_for(*overrides: str) -> DictConfig:
        return resolve(compose("dataset=synthetic", f"dataset.train_size={train_images}", "holdout=0",
                               "drop_last=true", "progress=false", f"device={device}", *overrides))

    load_start = os.getloadavg()
    ce = cfg_for("loss=ce")
    dev = torch.device(ce.device)
    steps = steps or DEFAULT_STEPS[dev.type]
    pack = pack or DEFAULT_PACK[dev.type]
    precisions = precision.supported(dev)
    dataset = synthetic_dataset(train_images, test_images)
    # The single trainers share one model (the engine keeps one per shape and device), each stepping it with its own
    # optimizer: that costs what owning it would.
    engine = engine_trainers(dataset, {
        **{p: [ce if p == ce.precision else cfg_for("loss=ce", f"precision={p}")] for p in precisions},
        "tce": [cfg_for("loss=tce", f"loss.alpha={TCE_ALPHA}")], "detect": [cfg_for("loss=ce", "detect=true")],
        "packed": [ce, *(cfg_for("loss=ce", f"seed={k}") for k in range(1, pack))],
    }, dev)
    for trainer, batches in engine.values():
        train_steps(trainer.step, batches, warmup)
    naive_loader, naive_step = naive_recipe(dataset, ce.batch_size, dev)

    def engine_run(name: str) -> Callable[[], float]:
        trainer, batches = engine[name]
        return lambda: seconds(lambda: train_steps(trainer.step, batches, steps), dev)

    naives = {f"naive{suffix}": _naive_run(naive_loader, naive_step, arithmetic, warmup, steps, dev)
              for arithmetic, suffix in (("fp32", ""), ("tf32", "_tf32")) if arithmetic in precisions}
    train_s = interleaved({**naives, **{name: engine_run(name) for name in engine}}, repeats)

    evaluated = {"single": engine[ce.precision][0], "packed": engine["packed"][0]}
    for trainer in evaluated.values():
        trainer.evaluate("test")  # warm-up, and on CUDA the compile of eval mode
    eval_s = interleaved({name: lambda t=t: seconds(lambda: t.evaluate("test"), dev)
                          for name, t in evaluated.items()}, repeats)

    options = {
        "steps": steps, "repeats": repeats, "warmup_steps": warmup, "batch_size": ce.batch_size,
        "train_images": train_images, "test_images": test_images, "tce_alpha": TCE_ALPHA,
        "engine": {"precision": ce.precision, "channels_last": ce.channels_last, "compile": ce.compile,
                   "compiled": evaluated["single"].compiled, "eval_batch_size": ce.eval_batch_size,
                   "eval_train_size": ce.eval_train_size},
        "naive": {"num_workers": naive_loader.num_workers, "pin_memory": naive_loader.pin_memory},
        "torch_threads": torch.get_num_threads(),
    }
    return {
        "device": provenance.device_name(dev),
        "device_type": dev.type,
        **rates(train_s, eval_s, steps=steps, batch_size=ce.batch_size, pack=pack, test_images=test_images,
                precision=ce.precision, precisions=precisions),
        "seconds": {"train": train_s, "eval": eval_s},
        "options": options,
        **_provenance(load_start),
    }


def _naive_run(loader: Iterable, step: Callable, arithmetic: str, warmup: int, steps: int,
               device: torch.device) -> Callable[[], float]:
    """One repetition of the naive recipe's timing in `arithmetic`: the seconds of `steps` steps after warm-up."""
    def run() -> float:
        # Fresh iterators each repetition, whose workers close() shuts down: left running, they would prepare
        # batches ahead while the engine is timed.
        batches = endless(loader)
        try:
            with precision.arithmetic(arithmetic):
                train_steps(step, batches, warmup)
                return seconds(lambda: train_steps(step, batches, steps), device)
        finally:
            batches.close()

    return run


def _provenance(load_start: tuple[float, float, float]) -> dict:
    """The record's versions, commit and load average: other processes' load slows and scatters the timings, and
    with more than the cores the medians go up."""
    versions = provenance.versions()
    return {
        "versions": {key: versions[key] for key in ("python", "torch", "torchvision", "numpy")},
        "git_commit": provenance.git_commit(),
        "load_average": {"start": load_start, "end": os.getloadavg(), "cpus": os.cpu_count()},
    }


def rates(train_s: dict[str, list[float]], eval_s: dict[str, list[float]], *, steps: int, batch_size: int, pack: int,
          test_images: int, precision: str, precisions: tuple[str, ...]) -> dict:
    """What the timings say: speeds, ratios, evaluation overheads and grid estimates (see the module docstring).

    train_s: seconds of `steps` steps per repetition, for "naive" (strict fp32), "naive_tf32" where measured, each
    precision, "tce", "detect" (CE recording its per-sample dynamics) and "packed"; eval_s:
    seconds of one pass over `test_images` per repetition, for "single" and "packed".
    """
    step_s = {name: statistics.median(s) / steps for name, s in train_s.items()}
    img_s = {name: batch_size * (pack if name == "packed" else 1) / s for name, s in step_s.items()}
    eval_img_s = {name: test_images * (pack if name == "packed" else 1) / statistics.median(s)
                  for name, s in eval_s.items()}
    engine_img_s = img_s[precision]
    overhead = {}
    for name in PAPER_DATASETS:
        overhead[name] = {kind: (e / eval_img_s["single"]) / (t / engine_img_s)
                          for kind, (t, e) in (("validation", paper_epoch_images(name, "val")),
                                               ("full", paper_epoch_images(name, "full0")))}
    grids = {}
    for grid in (*GRIDS, *PRESETS):
        runs, train, evaluate = grid_images(grid)
        hours = {mode: (train / img_s[precision if mode == "single" else "packed"] + evaluate / eval_img_s[mode])
                 / 3600 for mode in ("single", "packed")}
        mode = min(hours, key=hours.get) if grid_packs(grid) else "single"
        grids[grid] = {"mode": mode, "hours": hours, "estimate": hours[mode], "runs": runs, "train_images": train,
                       "eval_images": evaluate}
    return {
        "naive_img_s": img_s["naive"],
        **({"naive_tf32_img_s": img_s["naive_tf32"]} if "naive_tf32" in img_s else {}),
        "engine_img_s": engine_img_s,
        "ratio": engine_img_s / img_s["naive"],
        "precision": precision,
        "engine_img_s_by_precision": {p: img_s[p] for p in precisions},
        "ratio_by_precision": {p: img_s[p] / img_s["naive"] for p in precisions},
        "ce_step_s": step_s[precision],
        "tce_step_s": step_s["tce"],
        "tce_over_ce_step": step_s["tce"] / step_s[precision],
        "detect_over_ce_step": step_s["detect"] / step_s[precision],
        "packed_img_s": img_s["packed"],
        "pack": pack,
        "pack_speedup": img_s["packed"] / engine_img_s,
        "eval_img_s": eval_img_s["single"],
        "packed_eval_img_s": eval_img_s["packed"],
        "eval_overhead": {name: max(kinds.values()) for name, kinds in overhead.items()},
        "eval_overhead_by_run": overhead,
        "grid_hours_estimate": grids["paper"]["estimate"],
        "zoo_grid_hours_estimate": grids["zoo"]["estimate"],
        "grids": grids,
    }


def summary(r: dict) -> str:
    others = ", ".join(f"{p} {x:.1f}x" for p, x in r["ratio_by_precision"].items() if p != r["precision"])
    tf32 = f" (TF32 {r['naive_tf32_img_s']:,.0f})" if "naive_tf32_img_s" in r else ""
    return (f"bench {r['device_type']}: naive {r['naive_img_s']:,.0f} img/s strict fp32{tf32}, engine "
            f"{r['engine_img_s']:,.0f} img/s "
            f"({r['precision']}: {r['ratio']:.1f}x{'; ' + others if others else ''}), "
            f"TCE/CE step {r['tce_over_ce_step']:.2f}, detect/CE step {r['detect_over_ce_step']:.2f}, "
            f"pack {r['pack']}: {r['pack_speedup']:.1f}x, eval adds "
            f"{100 * r['eval_overhead']['cifar10']:.0f}% to a CIFAR-10 epoch, paper grid ~ "
            f"{r['grid_hours_estimate']:,.1f} h, zoo grid ~ {r['zoo_grid_hours_estimate']:,.1f} h")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--steps", type=int, help=f"steps per repetition (default {DEFAULT_STEPS})")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions; the medians are reported")
    parser.add_argument("--pack", type=int, help=f"runs trained at once for the packed measurement ({DEFAULT_PACK})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for <device>.json")
    args = parser.parse_args(argv)
    result = measure(args.device, steps=args.steps, repeats=args.repeats, pack=args.pack)
    path = write(result, args.out, shlex.join(["python", "-m", "scripts.bench", *sys.argv[1:]]))
    print(summary(result))
    print("hours by preset: " + ", ".join(f"{name} {grid['estimate']:,.1f} h ({grid['runs']:,} runs)"
                                          for name, grid in result["grids"].items()))
    load, cpus = result["load_average"]["start"][0], result["load_average"]["cpus"]
    if load > cpus / 2:
        print(f"warning: load average {load:.1f} on {cpus} cpus before the bench: other processes share the cores, "
              "so these timings are slowed and scattered")
    print(f"wrote {path}")


def write(result: dict, out: Path, command: str) -> Path:
    """Writes `result` with the command line and the date to out/<device name>.json."""
    result = {**result, "command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{provenance.slug(result['device'])}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


if __name__ == "__main__":
    main()
