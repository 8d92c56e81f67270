"""What train.py refuses before Hydra writes anything: Hydra makes a single run's directory, its .hydra/ and its log
before the task runs, so a config refused there would leave them behind (and overwrite those of a run it resumes).
Hydra calls RefuseFirst (configs/train.yaml hydra.callbacks) before it does: a config that cannot run, or that the
run directory's state on disk refuses (another config's run, a lock another process holds), raises Refused, which
train.py prints in one line with exit code 2. A sweep checks its runs in its sweeper and jobs instead.

What only the data can refuse (a missing or damaged dataset file) is found once Hydra has made the directory: where
this launch made it, train.py takes it away again (discard), and a directory that held a run before keeps it, its
summary.json failed with the error."""

import shutil
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


# The folders of the run directory, itself first, that did not exist before Hydra made them for this launch's run.
_made: list[Path] = []


class RefuseFirst(Callback):
    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        run_dir = Path(config.hydra.run.dir)
        try:  # quiet: the run resolves its config again once Hydra has set up its log, and warns there
            check_run_dir(resolve(config, quiet=True), run_dir)
        except ConfigError as error:
            raise Refused(error) from None
        run_dir = run_dir.resolve()  # as discard's caller may name it: Hydra's runtime.output_dir, absolute
        _made[:] = [folder for folder in (run_dir, *run_dir.parents) if not folder.exists()]


def discard(run_dir: Path) -> None:
    """Take away the run directory of a run refused after Hydra made it, with the folders above it that this launch
    made and nothing else holds; a directory that existed before stays as it is."""
    if not _made or _made[0] != run_dir.resolve():
        return
    shutil.rmtree(_made[0], ignore_errors=True)
    for folder in _made[1:]:
        try:
            folder.rmdir()
        except OSError:  # another run was written there meanwhile
            return
