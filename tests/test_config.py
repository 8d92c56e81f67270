"""The config tree through Hydra's compose API: groups, defaults, schema errors, value validation, run names."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf.errors import ValidationError

from compose import compose_train
from experiments.config import ConfigError, native_bf16, resolve, run_name
from experiments.trainer import lr_at

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_papers_recipe():
    cfg = resolve(compose_train())
    assert cfg.dataset.name == "cifar10" and cfg.loss.name == "ce" and cfg.model.depth == 20
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.nesterov, cfg.optim.weight_decay) == (0.1, 0.9, True, 1e-4)
    assert (cfg.batch_size, cfg.epochs, cfg.holdout, cfg.noise, cfg.noise_type) == (128, 256, 5000, 0.0, "uniform")
    # lr / 10 after epoch 128 and again after 192 (1-based epochs).
    assert [lr_at(e, cfg) for e in (1, 128, 129, 192, 193, 256)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3])


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "svhn", "synthetic"])
def test_dataset_group(name):
    assert compose_train(f"dataset={name}").dataset.name == name


@pytest.mark.parametrize(
    ("overrides", "name", "alpha"),
    [
        (["loss=ce"], "ce", None),
        (["loss=mse"], "mse", None),
        (["loss=mae"], "mae", None),
        (["loss=tce"], "tce", 1.0),
        (["loss=tce", "loss.alpha=1.5"], "tce", 1.5),
        (["loss=tce2"], "tce", 2.0),
        (["loss=tce0.5"], "tce", 0.5),
        # alpha swept next to a loss without it: accepted, and recorded as null.
        (["loss=ce", "loss.alpha=2"], "ce", None),
    ],
)
def test_loss_group(overrides, name, alpha):
    cfg = resolve(compose_train(*overrides))
    assert (cfg.loss.name, cfg.loss.alpha) == (name, alpha)


def test_resolve_fills_derived_values():
    cfg = resolve(compose_train("seed=3"))
    assert cfg.noise_seed == 3 and cfg.device == "cpu" and cfg.compile is False
    assert cfg.precision == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    assert resolve(compose_train("precision=fp32")).precision == "fp32"
    assert resolve(compose_train("seed=3", "noise_seed=7")).noise_seed == 7


@pytest.mark.parametrize("override", ["no_such_key=1", "loss.beta=2", "dataset=imagenet"])
def test_unknown_keys_fail_at_composition(override):
    with pytest.raises((ConfigCompositionException, HydraException, ValidationError)):
        compose_train(override)


@pytest.mark.parametrize("override", ["epochs=many", "noise=high", "holdout=1.5"])
def test_wrong_types_fail_at_composition(override):
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_train(override)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["noise=1.5"], "noise"),
        (["noise=-0.1"], "noise"),
        (["loss=tce", "loss.alpha=-1"], "loss.alpha"),
        (["loss=tce", "loss.alpha=nan"], "loss.alpha"),
        (["holdout=50000"], "holdout"),
        (["dataset=synthetic", "dataset.train_size=100", "holdout=100"], "holdout"),
        (["epochs=0"], "epochs"),
        (["device=tpu"], "device"),
        (["device=cuda"], "device"),  # no CUDA on the test machine
        (["noise_type=pairflip"], "noise_type"),
        (["model.depth=21"], "model.depth"),
        (["dataset.name=imagenet"], "dataset.name"),
        (["loss.name=hinge"], "loss.name"),
    ],
)
def test_validation_names_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        resolve(compose_train(*overrides))
    message = str(error.value)
    assert message.startswith(f"{key}:") and "\n" not in message


def test_run_name_is_a_function_of_the_config():
    name = run_name(resolve(compose_train("loss=tce", "loss.alpha=1.5", "noise=0.4", "seed=2")))
    assert name == "cifar10/tce-a1.5/noise0.4-uniform-holdout5000-seed2"
    assert run_name(resolve(compose_train("loss=ce", "loss.alpha=3"))) == run_name(resolve(compose_train("loss=ce")))
    assert run_name(resolve(compose_train("noise_seed=5"))).endswith("-seed0-noiseseed5")
    assert run_name(resolve(compose_train("clean_val=true"))).endswith("-seed0-cleanval")
    assert run_name(resolve(compose_train("clean_val=true", "holdout=0"))).endswith("-seed0")  # no validation set


def test_protocol_runs():
    val = resolve(compose_train("protocol=val"))
    assert (val.holdout, val.seed) == (5000, 0)
    for seed in range(5):
        full = resolve(compose_train(f"protocol=full{seed}"))
        assert (full.holdout, full.seed) == (0, seed)


@pytest.mark.parametrize(
    ("preset", "dataset", "grid"),
    [
        ("table1", "cifar100", {"loss": 7, "noise": 5, "protocol": 6}),
        ("table2", "cifar10", {"dataset": 3, "loss": 7, "noise": 5, "protocol": 6}),
        ("fig2", "cifar100", {"loss": 7, "noise": 5, "protocol": 5}),
        ("fig3", "cifar10", {"dataset": 2, "loss": 7, "noise": 1, "protocol": 6}),
    ],
)
def test_paper_presets_are_multirun_grids(preset, dataset, grid):
    cfg = compose_train(f"experiment={preset}", hydra=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.dataset.name == dataset
    params = cfg.hydra.sweeper.params
    assert {k: len(str(v).split(",")) for k, v in params.items()} == grid


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["noise=1.5"], "noise"),
        (["loss=tce", "loss.alpha=-0.5"], "loss.alpha"),
        (["holdout=60000"], "holdout"),
        (["epochs=0"], "epochs"),
        (["device=gpu7"], "device"),
    ],
)
def test_cli_rejects_bad_values_with_one_line(tmp_path, args, key):
    result = run_cli(*args, f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 2
    assert result.stderr.strip() == result.stderr.strip().splitlines()[-1]  # one line
    assert result.stderr.startswith(f"error: {key}:") and "Traceback" not in result.stderr + result.stdout


def test_cli_missing_dataset_names_the_root(tmp_path):
    root = tmp_path / "nothing-here"
    result = run_cli("dataset=cifar10", f"dataset.root={root}", f"hydra.run.dir={tmp_path}/run",
                     "epochs=1")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(root) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_slurm_preset_asks_one_gpu_per_job():
    launcher = compose_train("experiment=table1", "hydra/launcher=slurm_gpu", hydra=True).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1


def test_joblib_launcher_composes():
    launcher = compose_train("hydra/launcher=joblib", hydra=True).hydra.launcher
    assert launcher._target_.endswith("JoblibLauncher")
