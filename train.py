"""Train one experiment: `python train.py loss=tce loss.alpha=1.5 noise=0.4` (docs/configuration.md, or --help).

A thin Hydra entry point: compose and validate the config, then hand it to experiments.run. Sweeps use Hydra's
multirun (`-m`, or an experiment preset such as `experiment=table1`). A config that cannot run, whether Hydra
cannot compose it (an unknown key or option, a value of the wrong type) or a value is out of range, stops with one
line naming the key and exit code 2, as do a run directory that refuses it (it holds another config's run, or
another process trains it) and a run that cannot resume from its checkpoint; a single run's refused config leaves
nothing on disk, nor does a run refused by its data in a directory this launch made (experiments/preflight.py).
SIGTERM or SIGUSR1 (Slurm's preemption and time-limit signals) and Ctrl-C (SIGINT) stop the run cleanly, marked
interrupted with its completed epochs kept, with exit code 128 + the signal's number (143, 138, 130).
"""

import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from data import DatasetError
from experiments import preflight, sweep
from experiments.interrupt import RunInterrupted
from experiments.lifecycle import FAILED
from experiments.preflight import Refused
from experiments.resolve import register_configs, resolve
from experiments.run import StartError, run_pack
from experiments.schema import ConfigError

log = logging.getLogger("tce")

register_configs()


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> list[str] | None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        output_dir = Path(hydra_cfg.runtime.output_dir)
        members = sweep.manifest(output_dir) if multirun else None
        if members is not None:  # a pack of the sweep (experiments/sweep.py): what failed goes back to the sweeper
            return sweep.train_pack(members, hydra_cfg.job.num, output_dir)
        cfg = resolve(cfg, job_num=hydra_cfg.job.num if multirun else 0)
        status = run_pack([(cfg, output_dir)])[0]
    except (ConfigError, DatasetError, StartError) as e:
        if multirun:  # one bad job must not end the sweep
            log.error(f"error: {e}")
            return [f"job {hydra_cfg.job.num}: {e}"]
        preflight.discard(output_dir)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if multirun:
        return [str(output_dir)] if status == FAILED else []
    if status == FAILED:
        sys.exit(1)


def composition_error(error: Exception) -> str:
    """One line for what Hydra could not compose: the key and OmegaConf's first line, or Hydra's first line with
    the options it lists (an unknown option of a config group)."""
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    key = getattr(cause, "full_key", None)
    message = (getattr(cause, "msg", None) or str(error)).strip().splitlines()[0]
    options = [line.strip() for line in str(error).splitlines() if line.startswith("\t") and "=" not in line]
    if options:
        message += f"; available: {', '.join(options)}"
    return f"{key}: {message}" if key else message


if __name__ == "__main__":
    # Hydra would print its composition errors over several lines and exit 1; let them reach us instead.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        main()
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: {composition_error(e)}", file=sys.stderr)
        sys.exit(2)
    except (Refused, ConfigError) as e:  # before Hydra wrote anything (experiments/preflight.py), or by a sweeper
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C outside training (its setup, say), where no epoch is lost either
        print("interrupted: stopped by SIGINT; completed epochs are kept, relaunch the same command to resume",
              file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except RunInterrupted as stop:
        print(f"interrupted: {stop}; completed epochs are kept, relaunch the same command to resume", file=sys.stderr)
        sys.exit(128 + stop.signum)
