"""What a multirun sweep needs beyond single runs: packs as the unit of work of every launcher, and a verdict.

Packs: the sweeper (PackSweeper, Hydra's basic sweeper otherwise) composes every run of the sweep, leaves out those
already complete or diverged (unless force), and groups the rest before anything is launched: runs that may train
together (they differ only in experiments.identity.PER_RUN_KEYS: loss, noise, seeds) and stand at the same epoch,
in packs of at most `pack` runs, leftovers spread evenly (35 runs at pack=16 are packs of 12, 12 and 11, never
16, 16 and 3). A network that does not pack (models.MODELS: a recipe's) trains one run per model whatever `pack`
says: its runs are packs of one, with pack=1 in their configs. Each pack is one Hydra job, whatever the launcher
(basic, joblib, submitit/Slurm): its job trains its runs at once in one model on its device. The pack's members
are written to `<sweep dir>/.packs/<id>/pack.json`, which is also the job's Hydra output folder (its .hydra/ and
log); each run keeps its own run directory. The job's overrides are its first run's, so that the launcher shows them
and composes its Hydra settings (the job's own config is not trained: the manifest's are).

Verdict: a failed run or a bad config never stops the sweep; each job returns what failed, and at the end
SweepEnd lists them and exits non-zero, for every launcher.
"""

import contextlib
import hashlib
import json
import logging
import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

import models
from data import DatasetError
from data.files import read_json, write_json, write_text
from experiments.identity import PER_RUN_KEYS, run_name
from experiments.lifecycle import FAILED, TERMINAL
from experiments.limits import check_sweep_parameters
from experiments.resolve import resolve, with_defaults
from experiments.run import StartError, run_pack
from experiments.rundir import RunDir
from experiments.schema import ConfigError, TrainConfig, covered, flatten

log = logging.getLogger("tce")

PACKS = ".packs"  # below the sweep's folder: one folder per pack, its job's
MANIFEST = "pack.json"
# In the sweep's folder: what composing its runs noted (a parameter recorded as null for the losses that do not take
# it), one line each, kept across sweeps into the folder, for the status report (scripts/aggregate.py).
NOTES = "sweep-notes.txt"

_failures: list[str] = []


def pack_key(cfg: DictConfig) -> str:
    """What the runs of one pack share: every key but the per-run ones (a composed config, before resolve)."""
    flat = flatten(OmegaConf.to_container(with_defaults(cfg)))
    return json.dumps({k: v for k, v in flat.items() if not covered(k, PER_RUN_KEYS)}, sort_keys=True)


def split_evenly(items: list, most: int) -> list[list]:
    """`items` in order, in the fewest groups of at most `most`, their sizes differing by at most one."""
    count = math.ceil(len(items) / most)
    size, larger = divmod(len(items), count) if items else (0, 0)
    groups, start = [], 0
    for i in range(count):
        end = start + size + (i < larger)
        groups.append(items[start:end])
        start = end
    return groups


def plan(jobs: Sequence[tuple[DictConfig, Path]]) -> list[list[tuple[DictConfig, Path]]]:
    """The packs of a sweep's (composed config, run directory) jobs, in order of first appearance; see the module
    docstring. A config that cannot be read for its key (its noise file is missing, say) is a pack of its own, whose
    job then reports why in one line."""
    groups: dict[str, list[tuple[DictConfig, Path]]] = {}
    seen: set[Path] = set()
    alone: set[str] = set()  # the networks that do not pack
    for cfg, run_dir in jobs:
        where = run_dir.resolve()
        if where in seen:  # `loss=ce,tce loss.alpha=1,2` lists CE twice (its alpha is null)
            log.info(f"{run_dir}: listed twice in this sweep, trained once")
            continue
        seen.add(where)
        summary = read_json(RunDir(run_dir).summary) or {}
        status = summary.get("status") if isinstance(summary, dict) else None
        if status in TERMINAL and not cfg.force:
            log.info(f"{run_dir}: {status}, skipped (force=true reruns it)")
            continue
        try:
            if cfg.pack > 1 and not models.MODELS[cfg.model.name].packs:
                cfg.pack = 1
                alone.add(cfg.model.name)
            key = json.dumps([pack_key(cfg), cfg.pack, summary.get("epochs_completed", 0)])
        except Exception:  # noqa: BLE001 - whatever is wrong, the job says it in one line
            key = str(where)
        groups.setdefault(key, []).append((cfg, run_dir))
    for name in sorted(alone):
        log.info(f"model {name} does not pack: its runs train one per model (pack=1)")
    return [pack for group in groups.values() for pack in split_evenly(group, max(1, int(group[0][0].pack)))]


def pack_id(run_dirs: list[Path]) -> str:
    return hashlib.sha256("\n".join(str(p.resolve()) for p in run_dirs).encode()).hexdigest()[:12]


class PackSweeper(Sweeper):
    """Hydra's basic sweeper (the same grid of overrides: `hydra.sweeper.params` and the command line's), launching
    one job per pack (see the module docstring)."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None):
        self.params = params or {}
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        # Imported here, not above: Hydra reloads its core plugins when it scans them, and the class must be theirs.
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        composed, overrides_of, sweep_dir_of = [], {}, {}
        for job in jobs:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
            run_dir = Path(cfg.hydra.sweep.dir) / cfg.hydra.sweep.subdir
            composed.append((OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), run_dir))
            overrides_of.setdefault(run_dir, list(job))
            sweep_dir_of.setdefault(run_dir, Path(cfg.hydra.sweep.dir))
        if note := check_sweep_parameters([cfg for cfg, _ in composed]):  # ConfigError for a parameter nobody takes
            log.info(note)
            noted = (sweep_dir / NOTES).read_text().splitlines() if (sweep_dir / NOTES).exists() else []
            if note not in noted:
                write_text(sweep_dir / NOTES, "".join(f"{line}\n" for line in [*noted, note]))
        packs = plan(composed)
        batch = []
        for members in packs:
            # Below the job's own sweep folder, where Hydra puts its output: a recipe may set its runs_dir (which
            # the runs of a pack share, as every key but the per-run ones).
            folder = sweep_dir_of[members[0][1]] / PACKS / pack_id([run_dir for _, run_dir in members])
            made = not folder.exists()  # by this launch: its job takes it away if it trains none of its runs
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / MANIFEST, {"members": [
                {"run_dir": str(run_dir), "config": OmegaConf.to_container(cfg)} for cfg, run_dir in members],
                "made": made})
            log.info(f"pack {folder.name} ({len(members)} run(s)): " + ", ".join(run_name(with_defaults(cfg))
                                                                               for cfg, _ in members))
            # The job is its first run's (Hydra's output folder aside): the launcher composes and logs that one.
            batch.append([*overrides_of[members[0][1]], f"hydra.sweep.subdir={PACKS}/{folder.name}"])
        log.info(f"{len(jobs)} run(s) of the sweep, {sum(map(len, packs))} to train, in {len(packs)} pack(s)")
        if not batch:
            return []
        results = self.launcher.launch(batch, initial_job_idx=0)
        for result in results:
            _failures.extend(result.return_value or [])  # raises a job's own exception, as the basic sweeper does
        return [results]


def manifest(output_dir: Path) -> list[tuple[DictConfig, Path]] | None:
    """The members of the pack whose job's output folder this is, or None for a job that is not a pack."""
    found = read_json(Path(output_dir) / MANIFEST)
    if not isinstance(found, dict):
        return None
    schema = OmegaConf.structured(TrainConfig)
    return [(OmegaConf.merge(schema, member["config"]), Path(member["run_dir"])) for member in found["members"]]


def train_pack(members: list[tuple[DictConfig, Path]], job_num: int, folder: Path) -> list[str]:
    """Resolve and train the runs of the pack of job folder `folder`; returns what failed, one line each (a bad
    config, a failed run). A pack refused as a whole (every config, or the data all its runs read) takes its job
    folder away where this launch made it, as a single run refused leaves nothing; its runs' summaries say why."""
    entries, failures = [], []
    for cfg, run_dir in members:
        try:
            entries.append((resolve(cfg, job_num=job_num), run_dir))
        except ConfigError as e:
            log.error(f"error: {e}")
            failures.append(f"{run_dir}: {e}")
    if not entries:
        _discard(folder)
        return failures
    try:
        statuses = run_pack(entries)
    except (DatasetError, StartError) as e:  # raised once the pack's other runs are trained
        log.error(f"error: {e}")
        if all((RunDir(path).read_summary() or {}).get("error") == str(e) for _, path in entries):  # none trained
            _discard(folder)
        return [*failures, str(e)]
    return failures + [str(path) for (_, path), status in zip(entries, statuses, strict=True) if status == FAILED]


def _discard(folder: Path) -> None:
    """Take away a pack's job folder (its manifest, .hydra/ and log: no run) if this launch made it."""
    if read_json(folder / MANIFEST).get("made"):
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the sweep's other packs are there
            folder.parent.rmdir()


class SweepEnd(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if _failures:
            log.error(f"{len(_failures)} run(s) of this sweep failed: " + "; ".join(_failures))
            sys.exit(1)
