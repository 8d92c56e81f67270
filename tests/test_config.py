"""The config tree through Hydra's compose API: groups, defaults, schema errors, value validation, run names."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf.errors import ValidationError

import tce
from compose import compose_train
from experiments import precision
from experiments.identity import run_name
from experiments.optimizer import lr_at
from experiments.resolve import resolve
from experiments.schema import LOSS_KEYS, ConfigError, loss_params
from scripts.loss_settings import setting, setting_label

REPO = Path(__file__).resolve().parents[1]
SWEEP = ("hydra.mode=MULTIRUN",)  # composed as one run of a sweep (with hydra=True)


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
        # alpha swept next to a loss without it: accepted in a sweep, and recorded as null.
        (["loss=ce", "loss.alpha=2", *SWEEP], "ce", None),
    ],
)
def test_loss_group(overrides, name, alpha):
    cfg = resolve(compose_train(*overrides, hydra=SWEEP[0] in overrides))
    assert (cfg.loss.name, cfg.loss.alpha) == (name, alpha)


def test_resolve_fills_derived_values():
    cfg = resolve(compose_train("seed=3"))
    assert cfg.noise_seed == 3 and cfg.device == "cpu" and cfg.compile is False
    assert cfg.channels_last is False  # the CPU's accurate BatchNorm layout; CUDA's default is channels-last
    assert resolve(compose_train("seed=3", "noise_seed=7")).noise_seed == 7
    assert resolve(compose_train("channels_last=true")).channels_last is True


def test_default_precision_is_strict_fp32_on_every_machine():
    assert resolve(compose_train()).precision == "fp32"
    # The opt-ins resolve only where the device computes them natively, never silently emulated.
    with pytest.raises(ConfigError, match="^precision: tf32 is not computed natively on cpu"):
        resolve(compose_train("precision=tf32"))
    if "bf16" in precision.supported(torch.device("cpu")):
        assert resolve(compose_train("precision=bf16")).precision == "bf16"
    else:
        with pytest.raises(ConfigError, match="^precision: bf16"):
            resolve(compose_train("precision=bf16"))


@pytest.mark.parametrize("override", ["no_such_key=1", "loss.gama=2", "dataset=imagenet"])
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
        (["noise_type=bogus"], "noise_type"),
        (["model.depth=21"], "model.depth"),
        (["dataset.name=imagenet"], "dataset.name"),
        (["loss.name=hinge"], "loss.name"),
        (["optim.momentum=0"], "optim.momentum"),  # with Nesterov
        (["optim.momentum=1"], "optim.momentum"),
        (["optim.weight_decay=-1e-4"], "optim.weight_decay"),
        (["optim.lr_gamma=0"], "optim.lr_gamma"),
        (["optim.lr=inf"], "optim.lr"),
        (["dataset.test_size=-1"], "dataset.test_size"),
        (["dataset.train_size=0"], "dataset.train_size"),
        (["seed=-1"], "seed"),
        (["lock_timeout=0"], "lock_timeout"),
        (["eval_train_size=0"], "eval_train_size"),
        (["dataset.image_size=16"], "dataset.image_size"),  # the real datasets are 32 x 32
        (["dataset=synthetic", "dataset.image_size=64"], "dataset.image_size"),
        (["dataset=synthetic", "dataset.num_classes=1"], "dataset.num_classes"),
        (["loss=gce", "loss.q=0"], "loss.q"),
        (["loss=gce", "loss.q=1.5"], "loss.q"),
        (["loss=taylor", "loss.t=0"], "loss.t"),
        (["loss=label_smoothing", "loss.epsilon=1.5"], "loss.epsilon"),
        (["loss=poly1", "loss.epsilon=-2"], "loss.epsilon"),
        (["loss=bootstrap_soft", "loss.beta=-0.1"], "loss.beta"),
        (["loss=focal", "loss.gamma=-1"], "loss.gamma"),
        (["loss=rce", "loss.A=0"], "loss.A"),
        (["loss=sce", "loss.alpha=-1"], "loss.alpha"),
        (["noise_type=human", "noise_set=worst", "dataset=mnist"], "noise_type"),
        (["noise_type=human", "noise_set=everything"], "noise_set"),
        (["noise_type=human", "noise_set=worst", "noise=0.2"], "noise"),
        (["noise_type=human"], "noise_set"),
        (["noise_set=worst"], "noise_set"),
        (["noise_type=asymmetric_block"], "noise_type"),  # CIFAR-100 only
        (["noise_type=human", "noise_set=worst", "dataset.train_size=1000"], "dataset.train_size"),
        (["+surprise=1"], "surprise"),
        (["compile_mode=max-autotune"], "compile_mode"),
        (["compile_mode=reduce-overhead", "device=cpu", "compile=true"], "compile_mode"),  # CUDA graphs: CUDA only
        (["checkpoint_every=0"], "checkpoint_every"),
    ],
)
def test_validation_names_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        resolve(compose_train(*overrides))
    message = str(error.value)
    assert message.startswith(f"{key}:") and "\n" not in message


def test_loss_parameters_take_their_defaults_and_per_dataset_values():
    gce = resolve(compose_train("loss=gce")).loss
    assert (gce.q, gce.alpha, gce.beta) == (0.7, None, None)
    assert resolve(compose_train("loss=gce", "loss.q=0.5")).loss.q == 0.5
    # The authors' alpha and beta per dataset; SVHN and the synthetic dataset take CIFAR-10's; A is ln 1e-4.
    for dataset, alpha_beta in (("cifar10", (0.1, 1.0)), ("cifar100", (6.0, 0.1)), ("mnist", (0.01, 1.0)),
                                ("svhn", (0.1, 1.0)), ("synthetic", (0.1, 1.0))):
        sce = resolve(compose_train("loss=sce", f"dataset={dataset}")).loss
        assert (sce.alpha, sce.beta, sce.A) == (*alpha_beta, pytest.approx(math.log(1e-4))), dataset
    assert (resolve(compose_train("loss=nce+rce", "dataset=mnist")).loss.beta,
            resolve(compose_train("loss=nce+mae", "dataset=cifar100")).loss.alpha) == (10.0, 10.0)
    assert resolve(compose_train("loss=sce", "dataset=cifar100", "loss.beta=2")).loss.alpha == 6.0  # partly given
    # A sweep's alpha is ignored by the losses without one, and recorded as null.
    assert resolve(compose_train("loss=focal", "loss.alpha=3", *SWEEP, hydra=True)).loss.alpha is None


def test_every_loss_of_the_library_has_a_config_and_builds(tmp_path):
    for name in tce.LOSSES:
        group = name if name != "tce" else "tce1"
        cfg = resolve(compose_train(f"loss={group}"))
        assert cfg.loss.name == name
        tce.build_loss(name, **loss_params(cfg.loss))
    assert set(LOSS_KEYS) == {k for params in tce.LOSS_PARAMS.values() for k in params}


def test_run_name_is_a_function_of_the_config():
    name = run_name(resolve(compose_train("loss=tce", "loss.alpha=1.5", "noise=0.4", "seed=2")))
    assert name == "cifar10/tce-a1.5/noise0.4-uniform-holdout5000-seed2"
    assert run_name(resolve(compose_train("loss=ce", "loss.alpha=3", *SWEEP, hydra=True))) == run_name(
        resolve(compose_train("loss=ce")))
    assert run_name(resolve(compose_train("noise_seed=5"))).endswith("-seed0-noiseseed5")
    assert run_name(resolve(compose_train("clean_val=true"))).endswith("-seed0-cleanval")
    assert run_name(resolve(compose_train("clean_val=true", "holdout=0"))).endswith("-seed0")  # no validation set
    # Every parameter of the loss is in the name, so two parameter choices never share a directory.
    assert run_name(resolve(compose_train("loss=sce", "dataset=cifar100"))).startswith(
        "cifar100/sce-alpha6-beta0.1-A-9.210340371976182/noise0-uniform-"
    )
    assert run_name(resolve(compose_train("loss=gce", "loss.q=0.5"))).startswith("cifar10/gce-q0.5/")
    # Exact digits: alpha 1.0000001 is not alpha 1, in the name and in the tables' label.
    close = resolve(compose_train("loss=tce", "loss.alpha=1.0000001"))
    assert run_name(close).startswith("cifar10/tce-a1.0000001/") and run_name(
        resolve(compose_train("loss=tce", "loss.alpha=1"))).startswith("cifar10/tce-a1/")
    assert setting_label(setting("tce", alpha=1.0000001)) == "TCE α=1.0000001"
    assert setting_label(setting("gce", q=0.7)) == "GCE q=0.7"
    human = run_name(resolve(compose_train("cifar_n=cifar10-worst")))
    assert human == "cifar10/ce/noise0-human-worst-holdout5000-seed0"
    assert "/noise0.3-asymmetric-holdout" in run_name(resolve(compose_train("noise_type=asymmetric", "noise=0.3")))


def test_protocol_runs():
    val = resolve(compose_train("protocol=val"))
    assert (val.holdout, val.seed) == (5000, 100)
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
        ("zoo", "cifar10", {"dataset": 2, "loss": 30, "noise": 4, "protocol": 6}),
        ("zoo_tuned", "cifar10", {"dataset": 2, "loss": 71, "noise": 4, "protocol": 6}),
        ("asym", "cifar10", {"dataset": 2, "loss": 19, "noise": 3, "protocol": 6}),
        ("cifarn", "cifar10", {"cifar_n": 6, "loss": 19, "protocol": 6}),
        ("demo", "synthetic", {"loss": 2, "noise": 2, "protocol": 3}),
        ("demo_mnist", "mnist", {"loss": 2, "noise": 2, "protocol": 3}),
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
        (["optim.momentum=0"], "optim.momentum"),
        (["optim.weight_decay=-1"], "optim.weight_decay"),
        (["dataset.test_size=-1"], "dataset.test_size"),
        (["optim.lr_gamma=0"], "optim.lr_gamma"),
        (["loss=gce", "loss.q=2"], "loss.q"),
        (["loss=taylor", "loss.t=2.5"], "loss.t"),  # a wrong type: Hydra's own error, in one line too
        (["loss=logit_clip", "loss.semantics=papers"], "loss.semantics"),
        (["loss.gama=0.5"], "loss.gama"),
        (["noise_type=human", "noise_set=worst", "dataset=mnist"], "noise_type"),
        (["noise_type=human", "noise_set=unknown"], "noise_set"),
        (["noise_type=human", "noise_set=worst", "noise=0.4"], "noise"),
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
