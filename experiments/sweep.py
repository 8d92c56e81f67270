"""What a multirun sweep needs beyond single runs: packing, and a verdict at the end.

Packing: jobs with pack=K are held until K compatible runs are queued, then trained at once. Compatible runs share
everything but the per-run keys (loss, noise, seeds, clean_val). Packs form within one process, so packing works
with the basic launcher (one device); the parallel launchers run one job per process, each run alone.

Verdict: a failed job never stops the sweep; when it ends, SweepEnd trains what is still queued and exits
non-zero if any run of this process failed, after listing them.
"""

import json
import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from experiments.config import PER_RUN_KEYS
from experiments.run import run_pack

log = logging.getLogger("tce")


_queues: dict[str, list[tuple[DictConfig, Path]]] = {}
_failures: list[str] = []


def pack_key(cfg: DictConfig) -> str:
    shared = {k: v for k, v in OmegaConf.to_container(cfg).items() if k not in PER_RUN_KEYS}
    return json.dumps([shared, cfg.device], sort_keys=True)


def run(entries: list[tuple[DictConfig, Path]]) -> list[str]:
    statuses = run_pack(entries)
    _failures.extend(str(path) for (_, path), status in zip(entries, statuses, strict=True) if status == "failed")
    return statuses


def submit(cfg: DictConfig, run_dir: Path, launcher: str) -> None:
    """Train a sweep's job now, or queue it for a pack when packing is asked for and possible."""
    if cfg.pack == 1:
        run([(cfg, run_dir)])
    elif not launcher.endswith("BasicLauncher"):
        log.warning(f"pack={cfg.pack} needs the basic launcher (jobs in one process); training this run alone")
        run([(cfg, run_dir)])
    else:
        _enqueue(cfg, run_dir)


def _enqueue(cfg: DictConfig, run_dir: Path) -> None:
    key = pack_key(cfg)
    queue = _queues.setdefault(key, [])
    queue.append((cfg, run_dir))
    if len(queue) == cfg.pack:
        run(_queues.pop(key))


def job_failed(description: str) -> None:
    _failures.append(description)


class SweepEnd(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        while _queues:
            run(_queues.pop(next(iter(_queues))))
        if _failures:
            log.error(f"{len(_failures)} run(s) of this sweep failed: " + "; ".join(_failures))
            sys.exit(1)
