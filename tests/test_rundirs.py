"""tests/rundirs.py writes the run directories that every aggregation, table, paired, figure and report test reads:
they must have the shape of what the engine writes."""

import csv
import json

import yaml

from compose import train_tiny
from experiments.schema import flatten
from rundirs import write_run


def _shape(run_dir) -> dict:
    """The schema of a run directory: config keys, summary keys (nested ones included), file headers."""
    summary = json.loads((run_dir / "summary.json").read_text())
    nested = {key: sorted(value) for key, value in summary.items() if isinstance(value, dict) and key != "config"}
    with open(run_dir / "metrics.csv") as metrics, open(run_dir / "calibration.csv") as calibration:
        headers = next(csv.reader(metrics)), next(csv.reader(calibration))
    return {
        "config": sorted(flatten(yaml.safe_load((run_dir / "config.yaml").read_text()))),
        "summary config": sorted(flatten(summary["config"])),
        "summary": sorted(summary),
        "nested": nested,
        "headers": headers,
        "types": {key: type(value).__name__ for key, value in summary.items() if value is not None},
    }


def test_fake_run_directories_have_the_shape_of_the_engines(tmp_path):
    status, engine = train_tiny(tmp_path / "engine", "protocol=val", "noise=0.4")
    assert status == "complete"
    fake = write_run(tmp_path / "fake", dataset="synthetic", noise=0.4, holdout=32, seed=100, test_acc=[50] * 3,
                     val_acc=[50] * 3, epochs=3)
    assert _shape(fake) == _shape(engine)


def test_fake_runs_count_the_parameters_of_resnet20(tmp_path):
    """ResNet-20 on CIFAR-10 has 269,722 parameters (tests/test_model.py); CIFAR-100 widens its last layer by 90
    outputs of 64 weights and a bias."""
    for dataset, params in (("cifar10", 269_722), ("cifar100", 269_722 + 90 * 65)):
        run = write_run(tmp_path, dataset=dataset, test_acc=[1])
        assert json.loads((run / "summary.json").read_text())["params"] == params
