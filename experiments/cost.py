"""What a run costs: the images it trains on and evaluates, and its time on the device, said in the first lines of
its log (as a warning when it exceeds an hour).

The time comes from the bench's record of this device (results/bench/<device>.json, `make bench`) when there is one
(for a CPU at a thread count no record has, that of the same CPU at the nearest thread count, scaled by the ratio of
the threads, which the log says), else from a rough rate per kind of device, which the log names. Both are ResNet-20
rates at batch 128; another network's images cost what ResNet-20's do times the ratio of their forward FLOPs
(relative_cost).
"""

import functools
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.utils.flop_counter import FlopCounterMode

import models
from data import train_set_size
from data.sources import test_set_size
from experiments import provenance

log = logging.getLogger("tce")

BENCH_RECORDS = provenance.REPO_ROOT / "results" / "bench"
# (training, evaluated) images per second of ResNet-20 in fp32 where no bench record exists: a 2-core CPU's order
# of magnitude, and a recent GPU's.
ROUGH_RATES = {"cpu": (300.0, 1500.0), "cuda": (20_000.0, 60_000.0)}
LONG = 3600.0  # seconds from which a run's estimate is logged


def epoch_images(cfg: DictConfig) -> tuple[int, int]:
    """(training, evaluated) images of one epoch of the run of resolved or composed config `cfg`, without reading
    files: its training portion, and the evaluation pass over its training subset, holdout and test set."""
    ds = cfg.dataset
    train = train_set_size(ds.name, ds.train_size) - cfg.holdout
    train_eval = train if cfg.eval_train_size is None else min(cfg.eval_train_size, train)
    return train, train_eval + cfg.holdout + test_set_size(ds.name, ds.test_size)


@functools.cache
def forward_flops(name: str, depth: int | None) -> int:
    """FLOPs of one forward pass of model `name` (and `depth`) on one 3 x 32 x 32 image at 10 classes: those of its
    convolutions and linear layers, counted by torch's FlopCounterMode on the meta device (no memory, no arithmetic)."""
    with torch.device("meta"):
        model = models.build(name, depth, 3, 10).eval()
        image = torch.empty(1, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        model(image)
    return counter.get_total_flops()


def relative_cost(cfg: DictConfig) -> float:
    """What an image costs the run's network, trained or evaluated, in images of ResNet-20 (the bench's network): the
    ratio of their forward FLOPs at 32 x 32 (cnn8 3.3, resnet34 28.6, preact_resnet18 13.7, cnn4 0.15). An estimate
    that assumes the device works at ResNet-20's FLOP rate: a GPU that ResNet-20 leaves half idle runs a wider
    network at a higher rate (the estimate then overstates its time), and a tiny one such as cnn4 costs launches
    and the data path more than FLOPs (it understates)."""
    return forward_flops(cfg.model.name, cfg.model.depth) / forward_flops("resnet", 20)


def rates(device: torch.device, precision: str, records_dir: Path = BENCH_RECORDS) -> tuple[float, float, str]:
    """(training images/s, evaluated images/s, where they come from) on `device` in `precision`."""
    name = provenance.device_name(device)
    path = records_dir / f"{provenance.slug(name)}.json"
    scale, how = 1.0, ""
    if device.type == "cpu" and not path.exists() and (nearest := _other_threads(path)):
        # The same CPU benched at another thread count: its rates times the ratio of the threads, as if they scaled
        # linearly, which overstates what more threads gain and understates the speed of fewer (the log says so).
        threads, path = nearest
        scale = torch.get_num_threads() / threads
        how = f", scaled linearly from its {threads} threads to {torch.get_num_threads()}"
    try:
        record = json.loads(path.read_text())
        train, evaluate = record["engine_img_s_by_precision"][precision], record["eval_img_s"]
        return scale * train, scale * evaluate, f"the bench record {path.name}{how}"
    except (OSError, ValueError, KeyError):
        train, evaluate = ROUGH_RATES[device.type]
        return train, evaluate, (f"a rough {device.type} rate of {train:,.0f} training and {evaluate:,.0f} evaluated "
                                 f"images/s (no bench record of {name}: make bench writes one)")


def _other_threads(path: Path) -> tuple[int, Path] | None:
    """(threads, record) of the bench record of the CPU of record `path` (<cpu>-<threads>-threads.json) whose thread
    count is nearest this process's, the larger on a tie; None where the CPU has none."""
    cpu = re.sub(r"-\d+-threads\.json$", "", path.name)
    found = [(int(match[1]), other) for other in path.parent.glob(f"{cpu}-*-threads.json")
             if (match := re.fullmatch(rf"{re.escape(cpu)}-(\d+)-threads\.json", other.name))]
    if not found:
        return None
    return min(found, key=lambda item: (abs(item[0] - torch.get_num_threads()), -item[0]))


def seconds(runs: Iterable[tuple[DictConfig, int]], device: torch.device,
            records_dir: Path = BENCH_RECORDS) -> tuple[float, str]:
    """(seconds, the rates' source) to train the (config, epochs already done) runs one after the other."""
    runs = list(runs)
    train_rate, eval_rate, source = rates(device, runs[0][0].precision, records_dir)
    total = 0.0
    for cfg, done in runs:
        train, evaluate = epoch_images(cfg)
        total += (cfg.epochs - done) * relative_cost(cfg) * (train / train_rate + evaluate / eval_rate)
    scaled = {cfg.model.name for cfg, _ in runs if relative_cost(cfg) != 1}
    if scaled:
        source += f", scaled by forward FLOPs from ResNet-20 to {', '.join(sorted(scaled))}"
    return total, source


def report(runs: list[tuple[DictConfig, int]], device: torch.device) -> None:
    """Log the estimate of a pack of runs, at the rate of single runs (a pack on a GPU is faster); a warning from
    an hour on."""
    total, source = seconds(runs, device)
    what = f"these {len(runs)} runs" if len(runs) > 1 else "this run"
    took = f"{total / 3600:,.1f} h" if total >= LONG else f"{total / 60:,.1f} min"
    (log.warning if total >= LONG else log.info)(f"{what} will take about {took} on {device} ({source})")
