"""Run orchestration: from resolved configs and run directories to trained, recorded runs.

`run_pack` is the one way a run is trained: a single run is a pack of one. For each run it skips a complete
directory (unless force), resumes a checkpoint exactly, or starts fresh, then trains and records every epoch.
A stop signal (experiments/interrupt.py) or an exit requested by a launcher marks the runs interrupted, with their
completed epochs kept, and is passed on; a relaunch resumes them.
"""

import logging
import random
from itertools import groupby
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

import models
from data import Dataset, RunData, load_dataset, noise_matrix, one_line, prepare_run_data
from experiments import interrupt, records
from experiments.config import run_name
from experiments.evaluation import METRIC_COLUMNS
from experiments.rundir import RunDir, RunDirError
from experiments.trainer import Member, PackTrainer, diverged, initial_model_state

log = logging.getLogger("tce")


class Run:
    """A member of the pack together with its directory and its history so far."""

    def __init__(self, member: Member, run_dir: RunDir, rows: list[dict], params: int):
        self.member, self.dir, self.rows, self.params = member, run_dir, rows, params
        self.name = run_name(member.cfg)
        self.writer: SummaryWriter | None = None
        self.recorded = len(rows)  # epochs whose checkpoint and files are written

    @property
    def start_epoch(self) -> int:
        return len(self.rows)

    def summary(self, status: str, environment: dict, error: str | None = None) -> dict:
        cfg, data = self.member.cfg, self.member.data
        val = [(r["val_acc"], r["epoch"]) for r in self.rows if r["val_acc"] is not None]
        train_eval = data.eval_sets["train"]
        record = {
            "status": status,
            "config": OmegaConf.to_container(cfg),
            "noise": {
                "rate": cfg.noise, "type": cfg.noise_type, "set": cfg.noise_set, "seed": cfg.noise_seed,
                "instance_std": cfg.instance_std, "file": cfg.noise_file, "sha256": cfg.noise_sha256,
                "realized": data.realized_rate, "fingerprint": data.fingerprint,
            },
            # The evaluation pass over training images (train_clean_acc, noisy_fit, noisy_true): how many it reads
            # of the training portion, and how many of those are relabelled.
            "train_eval": {
                "images": len(train_eval), "of": len(data.loader.labels),
                "relabelled": int((train_eval.noisy_labels != train_eval.labels).sum()),
            },
            "params": self.params,
            "epochs_completed": len(self.rows),
            # Lowest validation error, ties to the earliest epoch.
            "best_val_epoch": max(val, key=lambda v: (v[0], -v[1]))[1] if val else None,
            "final": {k: self.rows[-1][k] for k in METRIC_COLUMNS} if self.rows else None,
            **environment,
        }
        if error:
            record["error"] = error
        return record


class StartError(RuntimeError):
    """A run cannot start (say, its checkpoint is unreadable); the message is one line and says the way out."""


def run_pack(entries: list[tuple[DictConfig, Path]]) -> list[str]:
    """Train each (resolved config, run directory) pair; configs must differ only in per-run keys.

    Returns each run's final status: complete, diverged, failed, or skipped (complete before, or busy elsewhere).
    On a stop signal it marks the runs interrupted, releases them and raises interrupt.RunInterrupted. A run that
    cannot start (an unreadable checkpoint) is marked failed, and once the pack's other runs are trained, its
    StartError is raised: like a bad config, its one line is what the user must act on.
    """
    entries = [(cfg, Path(path)) for cfg, path in entries]
    statuses, todo = {}, []
    for cfg, path in entries:
        run_dir = RunDir(path)
        if cfg.force:
            run_dir.clear()
        try:
            run_dir.check_config(cfg)
        except RunDirError as e:
            log.error(str(e))
            statuses[path] = "failed"
            continue
        if run_dir.status() == "complete":
            log.info(f"{run_name(cfg)}: complete in {path}, skipped (force=true reruns it)")
            statuses[path] = "skipped"
            continue
        try:
            run_dir.acquire(cfg.lock_timeout)
        except RunDirError as e:
            log.warning(f"{e}; skipped")
            statuses[path] = "skipped"
            continue
        todo.append((cfg, run_dir))
    try:
        if todo:
            with interrupt.stop_signals():
                statuses.update(_train(todo))
    finally:
        for _, run_dir in todo:
            run_dir.release()
    return [statuses[path] for _, path in entries]


def _train(todo: list[tuple[DictConfig, RunDir]]) -> dict[Path, str]:
    cfg0 = todo[0][0]
    device = torch.device(cfg0.device)
    if cfg0.threads:
        torch.set_num_threads(cfg0.threads)
    ds = cfg0.dataset
    dataset = load_dataset(ds.name, ds.root, train_size=ds.train_size, test_size=ds.test_size,
                           num_classes=ds.num_classes, seed=ds.seed, image_size=ds.image_size)
    environment = {"versions": records.versions(), "git_commit": records.git_commit(),
                   "device": records.device_name(device)}
    runs, statuses, unstartable = [], {}, []
    for cfg, run_dir in todo:
        try:
            runs.append(_start(cfg, run_dir, dataset, device, environment))
        except StartError as e:  # this run cannot go on; the others of the pack do
            run_dir.write_summary({**(run_dir.read_summary() or {}), "status": "failed", "error": str(e),
                                   "config": OmegaConf.to_container(cfg)})
            statuses[run_dir.path] = "failed"
            unstartable.append(e)
    # Members of one pack advance together, so runs resumed at different epochs train as separate packs.
    for _, group in groupby(sorted(runs, key=lambda r: r.start_epoch), key=lambda r: r.start_epoch):
        statuses.update(_train_pack(list(group), device, environment))
    if unstartable:
        raise unstartable[0]
    return statuses


def run_data_for(cfg: DictConfig, dataset: Dataset, device: torch.device) -> RunData:
    """The data a run with resolved config `cfg` trains and evaluates on."""
    return prepare_run_data(
        dataset, noise=cfg.noise, noise_type=cfg.noise_type, noise_seed=cfg.noise_seed, noise_set=cfg.noise_set,
        root=cfg.dataset.root, instance_std=cfg.instance_std, noise_file=cfg.noise_file, noise_sha256=cfg.noise_sha256,
        holdout=cfg.holdout, clean_val=cfg.clean_val, split_seed=cfg.dataset.split_seed,
        batch_size=cfg.batch_size, drop_last=cfg.drop_last, seed=cfg.seed, device=device,
        eval_train_size=cfg.eval_train_size,
    )


def _start(cfg: DictConfig, run_dir: RunDir, dataset, device: torch.device, environment: dict) -> Run:
    """Prepare a run's data and state: from its checkpoint when there is one, else freshly seeded."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data = run_data_for(cfg, dataset, device)
    rows: list[dict] = []
    if run_dir.checkpoint.exists():
        state = _load_checkpoint(run_dir.checkpoint)
        member = Member(cfg, data, state["model"], state["momentum"])
        data.loader.load_state_dict(state["loader"])
        _set_rng_state(state["rng"])
        rows = state["metrics"]
        log.info(f"{run_name(cfg)}: resuming after epoch {len(rows)} from {run_dir.checkpoint}")
    else:
        member = Member(cfg, data, initial_model_state(cfg, data.in_channels, data.num_classes))
    params = sum(p.numel() for p in models.build(cfg, data.in_channels, data.num_classes).parameters())
    run = Run(member, run_dir, rows, params)
    run_dir.write_config(cfg)
    run_dir.write_noisy_labels(data.noisy_labels.numpy())
    run_dir.write_noise_matrix(noise_matrix(data.clean_labels, data.noisy_labels, data.num_classes))
    run_dir.write_metrics(rows)
    run_dir.write_calibration(rows)
    run_dir.write_summary(run.summary("running", environment))
    return run


def _load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)  # our own file: it holds RNG states
        if not isinstance(state, dict):
            raise TypeError(f"holds a {type(state).__name__}, not a checkpoint")
        missing = {"model", "momentum", "loader", "rng", "metrics"} - set(state)
        if missing:
            raise KeyError(f"lacks {', '.join(sorted(missing))}")
    except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, the way out is the same
        raise StartError(
            f"cannot resume from {path} ({one_line(error)}); rerun the run from scratch with force=true"
        ) from None
    return state


def _train_pack(runs: list[Run], device: torch.device, environment: dict) -> dict[Path, str]:
    statuses = {r.dir.path: "running" for r in runs}
    cfg = runs[0].member.cfg
    try:
        trainer = PackTrainer([r.member for r in runs], device)
        environment = {**environment, "compiled": trainer.compiled}  # kept current below: compile may fall back
        for run in runs:
            # purge_step drops events a killed run logged after its last checkpoint.
            run.writer = SummaryWriter(run.dir.tb, purge_step=run.start_epoch + 1)
        for epoch in range(runs[0].start_epoch + 1, cfg.epochs + 1):
            rows = trainer.run_epoch(epoch)
            environment["compiled"] = trainer.compiled
            states = trainer.member_states()
            for run, row, (model_state, momentum) in zip(runs, rows, states, strict=True):
                if statuses[run.dir.path] != "running":
                    continue
                run.rows.append(row)
                log.info(_epoch_line(run, row, cfg.epochs))
                if diverged(row):
                    statuses[run.dir.path] = "diverged"
                    run.dir.write_metrics(run.rows)
                    run.dir.write_calibration(run.rows)
                    error = f"non-finite training loss at epoch {epoch}"
                    run.dir.write_summary(run.summary("diverged", environment, error))
                    log.warning(f"{run.name}: diverged at epoch {epoch}; recorded, moving on")
                    continue
                _record(run, row, model_state, momentum, "complete" if epoch == cfg.epochs else "running", environment)
            if "running" not in statuses.values():
                break
        for run in runs:
            if statuses[run.dir.path] == "running":
                statuses[run.dir.path] = "complete"
    except Exception as e:  # a crashed run is recorded as failed, and the sweep goes on
        error = one_line(e)
        for run in runs:
            if statuses[run.dir.path] == "running":
                statuses[run.dir.path] = "failed"
                run.dir.write_summary(run.summary("failed", environment, error))
        log.exception(f"{runs[0].name}: failed: {error}")
    except BaseException as stop:  # a stop signal, or a launcher's exit: keep what is complete, then pass it on
        for run in runs:
            if statuses[run.dir.path] == "running":
                del run.rows[run.recorded:]  # an epoch whose files were not all written is trained again
                run.dir.write_metrics(run.rows)
                run.dir.write_calibration(run.rows)
                run.dir.write_summary(run.summary("interrupted", environment, _stop_reason(stop)))
        log.warning(f"{runs[0].name}: interrupted ({_stop_reason(stop)}); completed epochs kept")
        raise
    finally:
        for run in runs:
            if run.writer:
                run.writer.close()
    return statuses


def _stop_reason(stop: BaseException) -> str:
    if isinstance(stop, SystemExit):  # submitit's handler of Slurm's time-limit signal exits after requeueing the job
        return f"exit {stop.code} requested while training, by a launcher requeueing the job"
    return str(stop) or type(stop).__name__  # "stopped by SIGTERM", or KeyboardInterrupt


def _record(run: Run, row: dict, model_state, momentum, status: str, environment: dict) -> None:
    """Persist one finished epoch: checkpoint first, so the files never run ahead of what can be resumed."""
    run.dir.save_checkpoint({
        "epoch": row["epoch"], "model": model_state, "momentum": momentum,
        "loader": run.member.data.loader.state_dict(), "rng": _rng_state(), "metrics": run.rows,
    })
    run.dir.write_metrics(run.rows)
    run.dir.write_calibration(run.rows)
    run.dir.write_summary(run.summary(status, environment))
    run.recorded = len(run.rows)
    for key in METRIC_COLUMNS[1:]:
        if row[key] is not None:
            run.writer.add_scalar(key, row[key], row["epoch"])
    run.writer.flush()


def _epoch_line(run: Run, row: dict, epochs: int) -> str:
    val = f" val {row['val_acc']:.2f}" if row["val_acc"] is not None else ""
    fit = f" noisy-fit {row['noisy_fit']:.2f}" if row["noisy_fit"] is not None else ""
    return (f"{run.name} epoch {row['epoch']}/{epochs} lr {row['lr']:g} loss {row['train_loss']:.4f} "
            f"train {row['train_acc']:.2f} clean {row['train_clean_acc']:.2f}{fit}{val} test {row['test_acc']:.2f} "
            f"({row['seconds']:.1f}s)")


def _rng_state() -> dict:
    # The CPU generators only: nothing draws from CUDA's (the data has its own generators, and the initial weights
    # are drawn on the CPU), and restoring it would tie a checkpoint to the number of GPUs it was written on.
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    """Restores _rng_state's states; a checkpoint's CUDA state (written by older versions) is ignored."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
