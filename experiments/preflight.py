"""What train.py refuses before Hydra writes anything: Hydra makes a single run's directory, its .hydra/ and its log
before the task runs, so a config refused there would leave them behind (and overwrite those of a run it resumes).
Hydra calls RefuseFirst (configs/train.yaml hydra.callbacks) before it does: a config that cannot run, or that the
run directory's state on disk refuses (another config's run, a lock another process holds), raises Refused, which
train.py prints in one line with exit code 2. A sweep checks its runs in its sweeper and jobs instead."""

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.resolve import resolve
from experiments.rundir import RunDir, RunDirError
from experiments.schema import ConfigError


class Refused(BaseException):
    """A ConfigError raised from a Hydra callback: a BaseException, since Hydra turns a callback's Exception into a
    warning and goes on."""

    def __init__(self, error: ConfigError):
        super().__init__(str(error))


def check_run_dir(cfg: DictConfig, path: Path) -> None:
    """The run directory of resolved `cfg` can take it: it holds no run of another config (unless force, which
    replaces it) and no live process trains it. The lock is only tested: taken (a stale one broken) and let go."""
    run_dir = RunDir(path)
    try:
        if not cfg.force:
            run_dir.check_config(cfg)
        if run_dir.lock_file.exists():
            run_dir.acquire(cfg.lock_timeout)
            run_dir.release()
    except RunDirError as error:
        raise ConfigError(str(error)) from None


class RefuseFirst(Callback):
    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        try:  # quiet: the run resolves its config again once Hydra has set up its log, and warns there
            check_run_dir(resolve(config, quiet=True), Path(config.hydra.run.dir))
        except ConfigError as error:
            raise Refused(error) from None
