"""Train one experiment: `python train.py loss=tce loss.alpha=1.5 noise=0.4` (see README, or --help).

A thin Hydra entry point: compose and validate the config, then hand it to experiments.run. Sweeps use Hydra's
multirun (`-m`, or an experiment preset such as `experiment=table1`).
"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from data import DatasetError
from experiments import sweep
from experiments.config import ConfigError, register_configs, resolve
from experiments.run import run_pack

log = logging.getLogger("tce")

register_configs()


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        cfg = resolve(cfg, job_num=hydra_cfg.job.num if multirun else 0)
        run_dir = Path(hydra_cfg.runtime.output_dir)
        if multirun:
            sweep.submit(cfg, run_dir, hydra_cfg.launcher._target_)
            return
        status = run_pack([(cfg, run_dir)])[0]
    except (ConfigError, DatasetError) as e:
        if multirun:  # one bad job must not end the sweep
            log.error(f"error: {e}")
            sweep.job_failed(f"job {hydra_cfg.job.num}: {e}")
            return
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if status == "failed":
        sys.exit(1)


if __name__ == "__main__":
    main()
