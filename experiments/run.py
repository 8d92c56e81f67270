"""Run orchestration: from resolved configs and run directories to trained, recorded runs.

`run_pack` is the one way a run is trained: a single run is a pack of one. For each run it takes the directory's
lock, then skips a complete or diverged run (unless force, which then clears it), resumes a checkpoint exactly,
or starts fresh, then trains and records its epochs; experiments/lifecycle.py says which status each step
writes. The runs of a pack read one copy of the images (data.SharedImages). An epoch's records (checkpoint,
metrics, calibration, summary, TensorBoard) are written by one writer thread (experiments/writer.py) while the
next epoch trains, every `checkpoint_every` epochs and at the last. A stop signal (experiments/interrupt.py) or an
exit requested by a launcher waits for the writer, records the epochs completed since, marks the runs interrupted
and is passed on; a relaunch resumes them.
"""

import logging
import os
from itertools import groupby
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

import models
from data import (
    Dataset,
    DatasetError,
    NoiseSpec,
    RunData,
    SharedImages,
    fetch_cifar_n,
    load_dataset,
    noise_matrix,
    one_line,
    prepare_run_data,
    shared_images,
)
from experiments import cost, interrupt, killpoints, provenance
from experiments.epoch_records import TrainedEpoch, epoch_records
from experiments.evaluation import METRIC_COLUMNS
from experiments.identity import run_name
from experiments.lifecycle import DIVERGED, FAILED, INTERRUPTED, RUNNING, SKIPPED, TERMINAL, after_epochs
from experiments.needs import STATEFUL, make_needs
from experiments.rundir import LOSS_STATE, SAMPLE_STATE, TEST_LABELS, VAL_TRUTH, RunDir, RunDirError, located
from experiments.sample_dynamics import fresh_state
from experiments.trainer import Member, PackTrainer, initial_model_state
from experiments.writer import Writer
from tce import batched

log = logging.getLogger("tce")


class TrainingRun:
    """A run being trained: a member of the pack with its directory and its history so far (a run read back from
    disk is scripts.aggregate.RunRecord)."""

    def __init__(self, member: Member, run_dir: RunDir, rows: list[dict], params: int):
        self.member, self.dir, self.rows, self.params = member, run_dir, rows, params
        self.name = run_name(member.cfg)
        self.tb: SummaryWriter | None = None
        self.recorded = len(rows)  # epochs whose checkpoint and files are written
        self.submitted = len(rows)  # epochs handed to the writer
        self.done = False  # complete or diverged in this process: its later epochs are not its own
        self.truth: dict[str, np.ndarray] = {}  # samples.npz's SAMPLE_TRUTH (and VAL_TRUTH), for a run that detects
        # Its snapshots (PackTrainer.snapshot) not yet handed to the writer, by epoch: they are recorded with the
        # epoch's checkpoint, or taken again when that epoch is trained again.
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        # How it ran (compiled, compile, pack, cuda; see summary): kept from the summary until this process trains an
        # epoch, then replaced, never changed, so that the writer thread records what held at its epoch.
        self.execution = {key: run_dir.lifecycle.record.get(key) for key in ("compiled", "compile", "pack", "cuda")}

    @property
    def start_epoch(self) -> int:
        return len(self.rows)

    @property
    def status(self) -> str | None:
        return self.dir.lifecycle.status

    def move(self, status: str, environment: dict, error: str | None = None, rows: list[dict] | None = None,
             execution: dict | None = None) -> None:
        """Record the run as `status` (experiments/lifecycle.py) with its summary: after `rows` (all its recorded
        rows; by default self.rows) and as it ran (`execution`; by default self.execution)."""
        rows = self.rows if rows is None else rows
        self.dir.lifecycle.move(status, self.summary(environment, error, rows, execution or self.execution))

    def summary(self, environment: dict, error: str | None, rows: list[dict], execution: dict) -> dict:
        cfg, data = self.member.cfg, self.member.data
        val = [(r["val_acc"], r["epoch"]) for r in rows if r["val_acc"] is not None]
        train_eval = data.eval_sets["train"]
        record = {
            "config": OmegaConf.to_container(cfg),
            "noise": {**NoiseSpec.of(cfg).record(), "realized": data.realized_rate, "fingerprint": data.fingerprint},
            # The evaluation pass over training images (train_clean_acc, noisy_fit, noisy_true): how many it reads
            # of the training portion, and how many of those are relabelled.
            "train_eval": {
                "images": len(train_eval), "of": len(data.loader.labels),
                "relabelled": int((train_eval.noisy_labels != train_eval.labels).sum()),
            },
            "params": self.params,
            "epochs_completed": len(rows),
            # Lowest validation error, ties to the earliest epoch.
            "best_val_epoch": max(val, key=lambda v: (v[0], -v[1]))[1] if val else None,
            "final": {k: rows[-1][k] for k in METRIC_COLUMNS} if rows else None,
            **environment,
            # Whether the model ran compiled; `compile`: the graphs torch.compile made in the process that last trained
            # the run, and the steps it ran eagerly there; `pack`: the runs trained in one model with it, by their
            # directories (below runs_dir where they lie in it); `cuda`: the cuDNN and cuBLAS settings it trained with
            # (experiments/placement.py), null on the CPU.
            **execution,
        }
        if error:
            record["error"] = error
        return record


class StartError(RuntimeError):
    """A run cannot start (say, its checkpoint is unreadable); the message is one line and says the way out."""


def run_pack(entries: list[tuple[DictConfig, Path]]) -> list[str]:
    """Train each (resolved config, run directory) pair; configs must differ only in per-run keys.

    Returns each entry's final status: complete, diverged, failed, or skipped (complete or diverged before, busy
    elsewhere, or the same directory as an earlier entry: a pack trains a run once). On a stop signal it marks the
    runs interrupted, releases them and raises interrupt.RunInterrupted. A run that cannot start (an unreadable
    checkpoint, a missing data file) is marked failed, and once the pack's other runs are trained, its error is
    raised: like a bad config, its one line is what the user must act on.
    """
    entries = [(located(cfg, Path(path)), Path(path)) for cfg, path in entries]
    statuses: list[str | None] = [None] * len(entries)
    claimed: list[RunDir] = []  # released when done with, or at the end
    todo: list[tuple[int, DictConfig, RunDir]] = []
    try:
        for i, (cfg, path) in enumerate(entries):
            if any(run_dir.path.resolve() == path.resolve() for run_dir in claimed):  # `loss=ce,tce loss.alpha=1,2`
                log.info(f"{run_name(cfg)}: listed twice in this pack, trained once")
                statuses[i] = SKIPPED
                continue
            run_dir = RunDir(path)
            try:
                run_dir.acquire(cfg.lock_timeout)
            except RunDirError as e:
                log.warning(f"{e}; skipped")
                statuses[i] = SKIPPED
                continue
            claimed.append(run_dir)
            statuses[i] = _claim(cfg, run_dir)
            if statuses[i] is None:
                todo.append((i, cfg, run_dir))
            else:
                run_dir.release()
        if todo:
            with interrupt.stop_signals():
                trained = _train([(cfg, run_dir) for _, cfg, run_dir in todo])
            for i, _, run_dir in todo:
                statuses[i] = trained[run_dir.path]
    finally:
        for run_dir in claimed:
            run_dir.release()
    return statuses


def _claim(cfg: DictConfig, run_dir: RunDir) -> str | None:
    """With the directory's lock held: None if the run is to be trained, else why not (failed, skipped)."""
    if cfg.force:
        run_dir.clear()
    try:
        run_dir.check_config(cfg)
    except RunDirError as e:
        log.error(str(e))
        return FAILED
    if run_dir.lifecycle.status in TERMINAL:
        log.info(f"{run_name(cfg)}: {run_dir.lifecycle.status} in {run_dir.path}, skipped (force=true reruns it)")
        return SKIPPED
    return None


def _train(todo: list[tuple[DictConfig, RunDir]]) -> dict[Path, str]:
    cfg0 = todo[0][0]
    device = torch.device(cfg0.device)
    if cfg0.threads:  # before the device is named: a CPU's name says its threads
        torch.set_num_threads(cfg0.threads)
    ds = cfg0.dataset
    try:
        dataset = load_dataset(ds.name, ds.root, train_size=ds.train_size, test_size=ds.test_size,
                               num_classes=ds.num_classes, seed=ds.seed, image_size=ds.image_size,
                               download=ds.download)
    except DatasetError as e:
        for cfg, run_dir in todo:
            _cannot_start(cfg, run_dir, e)
        raise
    _report(device)  # once the data is there: a refusal for want of it is the one line printed
    environment = {"versions": provenance.versions(), "git_commit": provenance.git_commit(),
                   "device": provenance.device_name(device)}
    if cfg0.compile:  # compiled code outlives the process there, for the next job of the sweep (a cluster's too)
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(cfg0.runs_dir).resolve() / ".inductor-cache"))
    images = shared_images(dataset, holdout=cfg0.holdout, split_seed=ds.split_seed,
                           eval_train_size=cfg0.eval_train_size, device=device)
    runs, statuses, unstartable = [], {}, []
    try:
        for cfg, run_dir in todo:
            try:
                runs.append(_start(cfg, run_dir, dataset, images, device, environment))
            except (StartError, DatasetError) as e:  # this run cannot go on; the others of the pack do
                _cannot_start(cfg, run_dir, e)
                statuses[run_dir.path] = FAILED
                unstartable.append(e)
            except Exception as e:  # a crash, recorded as in training
                _cannot_start(cfg, run_dir, one_line(e))
                statuses[run_dir.path] = FAILED
                log.exception(f"{run_name(cfg)}: failed to start: {one_line(e)}")
        if runs:
            cost.report([(run.member.cfg, run.start_epoch) for run in runs], device)
        # Members of one pack advance together, so runs resumed at different epochs train as separate packs.
        for _, group in groupby(sorted(runs, key=lambda r: r.start_epoch), key=lambda r: r.start_epoch):
            statuses.update(_train_pack(list(group), device, environment))
    except BaseException as stop:  # a stop: the runs started but not trained yet stop too (_train_pack its own)
        for run in runs:
            if run.status == RUNNING:
                run.move(INTERRUPTED, environment, _stop_reason(stop))
        raise
    if unstartable:
        raise unstartable[0]
    return statuses


_reported: set[str] = set()


def _report(device: torch.device) -> None:
    """Say once per process what it trains on: device=auto falls back to the CPU where it finds no usable GPU."""
    if str(device) not in _reported:
        _reported.add(str(device))
        log.info(f"device {device}: {provenance.device_name(device)}")


def _cannot_start(cfg: DictConfig, run_dir: RunDir, error: Exception | str) -> None:
    """Record that the run could not start, keeping what its summary said before."""
    record = {**run_dir.lifecycle.record, "config": OmegaConf.to_container(cfg), "error": str(error)}
    run_dir.lifecycle.move(FAILED, record)


def run_data_for(cfg: DictConfig, dataset: Dataset, device: torch.device,
                 images: SharedImages | None = None) -> RunData:
    """The data a run with resolved config `cfg` trains and evaluates on; `images` those its pack shares."""
    if cfg.noise_type == "human":  # present before it is read, or fetched only where downloads are allowed
        fetch_cifar_n(cfg.dataset.name, cfg.dataset.root, cfg.dataset.download)
    return prepare_run_data(
        dataset, NoiseSpec.of(cfg), root=cfg.dataset.root,
        holdout=cfg.holdout, clean_val=cfg.clean_val, split_seed=cfg.dataset.split_seed,
        batch_size=cfg.batch_size, drop_last=cfg.drop_last, seed=cfg.seed, device=device,
        eval_train_size=cfg.eval_train_size, images=images, crop=cfg.augment.crop, rotate=cfg.augment.rotate,
        fill=cfg.augment.fill,
    )


def _start(cfg: DictConfig, run_dir: RunDir, dataset: Dataset, images: SharedImages, device: torch.device,
           environment: dict) -> TrainingRun:
    """Prepare a run's data and state, from its checkpoint when there is one, else freshly seeded; record it
    running.

    Nothing of a run draws from the global Python, numpy or torch generators (its weights are drawn under
    fork_rng, its data has generators of its own), so they are neither seeded nor checkpointed.
    """
    data = run_data_for(cfg, dataset, device, images)
    try:  # before any epoch: a transition matrix that cannot train is the config's fault, said in one line
        needs = make_needs(cfg, data, images.train_idx)
    except ValueError as error:
        raise StartError(str(error)) from None
    rows: list[dict] = []
    if run_dir.checkpoint.exists():
        try:
            state = run_dir.load_checkpoint()
        except RunDirError as error:
            raise StartError(str(error)) from None
        needs.update(_loss_state(state, needs, run_dir))
        samples = _sample_state(state, cfg, data, run_dir)
        member = Member(cfg, data, state["model"], state["momentum"], needs, samples)
        data.loader.load_state_dict(state["loader"])
        rows = state["metrics"]
        log.info(f"{run_name(cfg)}: resuming after epoch {len(rows)} from {run_dir.checkpoint}")
    else:
        samples = _fresh_samples(cfg, data)
        member = Member(cfg, data, initial_model_state(cfg, data.in_channels, data.num_classes), needs=needs,
                        samples=samples)
    network = models.build(cfg.model.name, cfg.model.depth, data.in_channels, data.num_classes)
    params = sum(p.numel() for p in network.parameters())
    run = TrainingRun(member, run_dir, rows, params)
    if cfg.detect:
        run.truth = _truth(data, images)
    run_dir.write_config(cfg)
    run_dir.write_noisy_labels(data.noisy_labels.numpy())
    run_dir.write_noise_matrix(noise_matrix(data.clean_labels, data.noisy_labels, data.num_classes))
    run_dir.write_metrics(rows)
    run_dir.write_calibration(rows)
    run.move(RUNNING, environment)
    return run


def _truth(data: RunData, images: SharedImages) -> dict[str, np.ndarray]:
    """samples.npz's SAMPLE_TRUTH of the training portion, and VAL_TRUTH of the holdout where there is one (its
    given labels those the validation run reads: clean with clean_val), and TEST_LABELS."""
    index = images.train_idx.cpu()
    truth = {"index": index.numpy(), "given": data.noisy_labels[index].numpy(),
             "clean": data.clean_labels[index].numpy(), TEST_LABELS: data.eval_sets["test"].labels.cpu().numpy()}
    if "val" in data.eval_sets:
        held = images.val_idx.cpu()
        truth.update(zip(VAL_TRUTH, (held.numpy(), data.eval_sets["val"].labels.cpu().numpy(),
                                     data.clean_labels[held].numpy()), strict=True))
    return truth


def _saved_like(saved: object, fresh: dict[str, torch.Tensor], key: str, run_dir: RunDir) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's `key` (saved) named as in `fresh`, each of its fresh shape and dtype; StartError,
    one line, where one is missing or not so."""
    for name, tensor in fresh.items():
        value = saved.get(name) if isinstance(saved, dict) else None
        if not (isinstance(value, torch.Tensor) and value.shape == tensor.shape and value.dtype == tensor.dtype):
            raise StartError(f"cannot resume from {run_dir.checkpoint}: it holds no {key}.{name} of shape "
                             f"{tuple(tensor.shape)} {tensor.dtype}; rerun the run from scratch with force=true")
    return {name: saved[name] for name in fresh}


def _loss_state(state: dict, needs: dict[str, torch.Tensor], run_dir: RunDir) -> dict[str, torch.Tensor]:
    """The loss's state a checkpoint holds, each tensor as the fresh one in `needs` is (its shape and dtype)."""
    stateful = {name: fresh for name, fresh in needs.items() if name in STATEFUL}
    return _saved_like(state.get(LOSS_STATE, {}), stateful, LOSS_STATE, run_dir)


def _fresh_samples(cfg: DictConfig, data: RunData) -> dict[str, torch.Tensor] | None:
    """A detecting run's per-sample dynamics before its first step; None when it does not detect."""
    return fresh_state(len(data.loader.labels), data.num_classes, cfg.epochs) if cfg.detect else None


def _sample_state(state: dict, cfg: DictConfig, data: RunData, run_dir: RunDir) -> dict[str, torch.Tensor] | None:
    """The per-sample dynamics a checkpoint holds, each field as a fresh one is; a run resumes detecting only if it
    detected from its first epoch (a state begun later would not be the run's), and stops only by starting over."""
    saved, fresh = state.get(SAMPLE_STATE), _fresh_samples(cfg, data)
    if (saved is None) != (fresh is None):
        was = "false" if saved is None else "true"
        raise StartError(f"detect: {run_dir.checkpoint} was trained with detect={was}; resume it with detect={was}, "
                         "or rerun it from scratch with force=true")
    return None if fresh is None else _saved_like(saved, fresh, SAMPLE_STATE, run_dir)


def _train_pack(runs: list[TrainingRun], device: torch.device, environment: dict) -> dict[Path, str]:
    cfg = runs[0].member.cfg
    if runs[0].start_epoch >= cfg.epochs:  # killed after its last checkpoint: its epochs are all recorded
        for run in runs:
            run.move(after_epochs(run.rows, cfg.epochs), environment)
        return {run.dir.path: run.status for run in runs}
    # In the order of their losses, so that each loss's members are side by side (PackLoss reorders nothing).
    runs = sorted(runs, key=lambda run: str(batched.family(*run.member.loss)))
    pack = {"size": len(runs), "members": [_below(run.dir.path, cfg.runs_dir) for run in runs]}
    writer = Writer()
    latest: TrainedEpoch | None = None  # the last epoch trained, in memory until all of it is recorded
    try:
        trainer = PackTrainer([r.member for r in runs], device)
        for run in runs:
            # purge_step drops events a killed run logged after its last checkpoint.
            run.tb = SummaryWriter(run.dir.tb, purge_step=run.start_epoch + 1)
        for epoch in range(runs[0].start_epoch + 1, cfg.epochs + 1):
            rows = trainer.run_epoch(epoch)
            if cfg.detect and (epoch % cfg.detect_snapshots == 0 or epoch == cfg.epochs):
                for run, snapshot in zip(runs, trainer.snapshot(), strict=True):
                    if not run.done:
                        run.snapshots[epoch] = snapshot
            killpoints.reached("trained", epoch)
            latest = TrainedEpoch(epoch, trainer.host_states(), [run.member.data.loader.state_dict() for run in runs])
            _take_rows(runs, rows, {"compiled": trainer.compiled, "compile": trainer.compile_record(), "pack": pack,
                                    "cuda": trainer.cuda_settings})
            due = [run for run in runs if run.submitted < len(run.rows)
                   and (epoch % cfg.checkpoint_every == 0 or run.done)]
            writer.submit(epoch_records(latest, runs, due, environment))
            if all(run.done for run in runs):
                break
        writer.wait()
    except Exception as e:  # a crashed run is recorded as failed, and the sweep goes on
        writer.wait(check=False)
        error = one_line(e)
        for run in runs:
            if run.status == RUNNING:
                run.move(FAILED, environment, error, rows=run.rows[:run.recorded])
        log.exception(f"{runs[0].name}: failed: {error}")
    except BaseException as stop:  # a stop signal, or a launcher's exit: keep what is complete, then pass it on
        _interrupt(runs, writer, latest, environment, stop)
        raise
    finally:
        writer.close()
        for run in runs:
            if run.tb:
                run.tb.close()
    return {run.dir.path: run.status for run in runs}


def _take_rows(runs: list[TrainingRun], rows: list[dict], execution: dict) -> None:
    """Each run's row of the epoch just trained, but for the runs already done (complete or diverged), which
    trained on only as members of the pack; a run whose row ends it is done."""
    epochs = runs[0].member.cfg.epochs
    for run, row in zip(runs, rows, strict=True):
        if run.done:
            continue
        run.execution = execution
        run.rows.append(row)
        log.info(_epoch_line(run, row, epochs))
        if after_epochs(run.rows, epochs) != RUNNING:
            run.done = True
            if after_epochs(run.rows, epochs) == DIVERGED:
                log.warning(f"{run.name}: diverged at epoch {row['epoch']}; recorded, moving on")


def _interrupt(runs: list[TrainingRun], writer: Writer, latest: TrainedEpoch | None, environment: dict,
               stop: BaseException) -> None:
    """A stop while training: the epochs trained since the last record are recorded (they are in memory), and the
    runs still running are marked interrupted with their completed epochs, for a relaunch to resume."""
    writer.wait(check=False)
    if latest is not None and not writer.failed:
        epoch_records(latest, runs, [run for run in runs if run.status == RUNNING and run.submitted < len(run.rows)],
                 environment)()
    for run in runs:
        if run.status == RUNNING:
            del run.rows[run.recorded:]  # an epoch whose files were not all written is trained again
            run.dir.write_metrics(run.rows)  # whole again, were a record cut short
            run.dir.write_calibration(run.rows)
            run.move(INTERRUPTED, environment, _stop_reason(stop))
    log.warning(f"{runs[0].name}: interrupted ({_stop_reason(stop)}); completed epochs kept")


def _below(path: Path, runs_dir: str) -> str:
    """A run directory as a pack's record names it: below runs_dir where it lies there, else in full."""
    path, root = Path(path).resolve(), Path(runs_dir).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _stop_reason(stop: BaseException) -> str:
    if isinstance(stop, SystemExit):  # submitit's handler of Slurm's time-limit signal exits after requeueing the job
        return f"exit {stop.code} requested while training, by a launcher requeueing the job"
    return str(stop) or type(stop).__name__  # "stopped by SIGTERM", or KeyboardInterrupt


def _epoch_line(run: TrainingRun, row: dict, epochs: int) -> str:
    val = f" val {row['val_acc']:.2f}" if row["val_acc"] is not None else ""
    fit = f" noisy-fit {row['noisy_fit']:.2f}" if row["noisy_fit"] is not None else ""
    return (f"{run.name} epoch {row['epoch']}/{epochs} lr {row['lr']:g} loss {row['train_loss']:.4f} "
            f"train {row['train_acc']:.2f} clean {row['train_clean_acc']:.2f}{fit}{val} test {row['test_acc']:.2f} "
            f"({row['seconds']:.1f}s)")
