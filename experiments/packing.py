"""Packing in a multirun sweep: jobs with pack=K are held until K compatible runs are queued, then trained at once.

Compatible runs share everything but the per-run keys (loss, noise, seeds, clean_val). Whatever is still queued
when the sweep ends is trained by the FlushPacks callback. Packs form within one process, so packing works with
the basic launcher (one device); the parallel launchers run one job per process and train each run alone.
"""

import json
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from experiments.run import run_pack
from experiments.rundir import EXECUTION_KEYS

PER_RUN_KEYS = ("loss", "noise", "noise_type", "noise_seed", "seed", "clean_val", *EXECUTION_KEYS)

_queues: dict[str, list[tuple[DictConfig, Path]]] = {}


def pack_key(cfg: DictConfig) -> str:
    shared = {k: v for k, v in OmegaConf.to_container(cfg).items() if k not in PER_RUN_KEYS}
    return json.dumps([shared, cfg.device], sort_keys=True)


def enqueue(cfg: DictConfig, run_dir: Path) -> None:
    queue = _queues.setdefault(pack_key(cfg), [])
    queue.append((cfg, run_dir))
    if len(queue) == cfg.pack:
        run_pack(_queues.pop(pack_key(cfg)))


def flush() -> None:
    while _queues:
        run_pack(_queues.pop(next(iter(_queues))))


class FlushPacks(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        flush()
