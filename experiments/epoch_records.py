"""What a run writes after an epoch, for the writer thread (experiments/writer.py) to write while the next epoch
trains: its checkpoint, metrics, calibration sums and summary, in the run directory's WRITE_ORDER, and its
TensorBoard scalars."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from experiments import killpoints
from experiments.evaluation import METRIC_COLUMNS
from experiments.lifecycle import DIVERGED, after_epochs
from experiments.rundir import WRITE_ORDER
from experiments.trainer import HostStates

if TYPE_CHECKING:  # experiments/run.py, which trains the runs, imports this module
    from experiments.run import TrainingRun


@dataclass
class TrainedEpoch:
    """What the records of an epoch need beyond the rows: the members' states and their loaders'."""

    epoch: int
    states: HostStates
    loaders: list[dict]


def epoch_records(epoch: TrainedEpoch, runs: list["TrainingRun"], due: list["TrainingRun"], environment: dict
                  ) -> Callable[[], None]:
    """The writer's job for the runs `due` a record after `epoch`: their rows since their last record, with the
    states of `epoch`. What they record is taken now; the files are written when the job runs."""
    work = []
    for run in due:
        work.append((runs.index(run), run, run.rows[run.submitted:], list(run.rows), run.execution, run.snapshots))
        run.submitted, run.snapshots = len(run.rows), {}

    def write() -> None:
        if not work:
            return
        states, loss_states, samples = epoch.states.members(), epoch.states.loss_states(), epoch.states.sample_states()
        for k, run, new, rows, execution, snapshots in work:
            _record(run, epoch.epoch, new, rows, (*states[k], loss_states[k], samples[k], snapshots),
                    epoch.loaders[k], execution, environment)

    return write


def _record(run: "TrainingRun", epoch: int, new: list[dict], rows: list[dict], state: tuple, loader: dict,
            execution: dict, environment: dict) -> None:
    """Persist a run's epochs up to `epoch` (`new` of its `rows`, all since its last record), file after file in
    the run directory's WRITE_ORDER, checkpoint first, so the files never run ahead of what can be resumed. A
    diverged epoch is not checkpointed: a diverged run is terminal."""
    status = after_epochs(rows, run.member.cfg.epochs)
    model_state, momentum, loss_state, samples, snapshots = state
    error = f"non-finite training loss at epoch {epoch}" if status == DIVERGED else None

    def checkpoint() -> None:
        # A detecting run's samples.npz and snapshots first: killed before its checkpoint, the run trains their
        # epochs again and rewrites them; written after it, a kill in between would lose them for good.
        for at, snapshot in snapshots.items():
            run.dir.write_snapshot(at, snapshot)
        if samples is not None:
            run.dir.write_samples(epoch, samples, run.truth)
        run.dir.save_checkpoint(epoch, model_state, momentum, loader, rows, loss_state, samples)

    writes = {
        "checkpoint": checkpoint,
        "metrics": lambda: run.dir.append_metrics(new),
        "calibration": lambda: run.dir.append_calibration(new),
        "summary": lambda: run.move(status, environment, error, rows, execution),
    }
    if status == DIVERGED:
        del writes["checkpoint"]
    for name in WRITE_ORDER:
        if name in writes:
            writes[name]()
            killpoints.reached(name, epoch)
    run.recorded = len(rows)
    for row in new:
        for key in METRIC_COLUMNS[1:]:
            if row[key] is not None:
                run.tb.add_scalar(key, row[key], row["epoch"])
    run.tb.flush()
