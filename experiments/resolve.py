"""Composition and resolution: the config train.py composes from configs/, and a validated copy with every derived
value filled in (noise_seed, the loss's parameters with the authors' per-dataset values, the device and its
performance defaults) that a run records and its name depends on."""

import logging
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import tce
from data.instance_noise import DEFAULT_STD
from data.label_files import sha256_of
from experiments import precision
from experiments.identity import run_name
from experiments.needs import PARAMETERS_NEED
from experiments.schema import LOSS_KEYS, ConfigError, TrainConfig, loss_params
from experiments.validation import absolute, resolve_device, validate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# The authors' values per dataset, from their code, for the parameters that depend on it; a dataset a loss does
# not list (SVHN and the synthetic dataset always) takes its CIFAR-10 values. They never depend on the noise
# (type or rate), which a method cannot know: where the authors tune per noise rate, their value at 40 % uniform
# noise is taken, the middle of the zoo's rates.
DATASET_LOSS_DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    # Active-Passive-Losses configs; the official SCE code.
    "sce": {
        "mnist": {"alpha": 0.01, "beta": 1.0},
        "cifar10": {"alpha": 0.1, "beta": 1.0},
        "cifar100": {"alpha": 6.0, "beta": 0.1},
    },
    "nce+rce": {
        "mnist": {"alpha": 1.0, "beta": 10.0},
        "cifar10": {"alpha": 1.0, "beta": 1.0},
        "cifar100": {"alpha": 10.0, "beta": 0.1},
    },
    "nce+mae": {
        "mnist": {"alpha": 1.0, "beta": 10.0},
        "cifar10": {"alpha": 1.0, "beta": 1.0},
        "cifar100": {"alpha": 10.0, "beta": 1.0},
    },
    # hitcszx/ALFs config.py @898961f, the same in Virusdoll/Active-Negative-Loss config/*_nce_a*.json @f8c23b3
    # and cswjl/eps-softmax config.py @1b9efb5. MNIST's "NCE+" settings have alpha = 0: the asymmetric loss alone.
    "agce": {"mnist": {"a": 4.0, "q": 0.2}, "cifar10": {"a": 0.6, "q": 0.6}, "cifar100": {"a": 0.6, "q": 0.6}},
    "aul": {"mnist": {"a": 3.0, "q": 0.1}, "cifar10": {"a": 5.5, "q": 3.0}, "cifar100": {"a": 5.5, "q": 3.0}},
    "ael": {"mnist": {"a": 3.5}, "cifar10": {"a": 2.5}, "cifar100": {"a": 2.5}},
    "nce+agce": {
        "mnist": {"alpha": 0.0, "beta": 1.0, "a": 4.0, "q": 0.2},
        "cifar10": {"alpha": 1.0, "beta": 4.0, "a": 6.0, "q": 1.5},
        "cifar100": {"alpha": 10.0, "beta": 0.1, "a": 1.8, "q": 3.0},
    },
    "nce+aul": {
        "mnist": {"alpha": 0.0, "beta": 1.0, "a": 3.0, "q": 0.1},
        "cifar10": {"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5},
        "cifar100": {"alpha": 10.0, "beta": 0.015, "a": 6.0, "q": 3.0},
    },
    "nce+ael": {
        "mnist": {"alpha": 0.0, "beta": 1.0, "a": 3.5},
        "cifar10": {"alpha": 1.0, "beta": 4.0, "a": 5.0},
        "cifar100": {"alpha": 10.0, "beta": 0.1, "a": 1.5},
    },
    # cswjl/eps-softmax config.py @1b9efb5 (ECEandMAE): CIFAR-10 symmetric noise (asymmetric: 0.02, 5, 1e3).
    # CIFAR-100 symmetric: alpha by noise rate (0.1, 0.05, 0.03, 0.00125, 0.0075 at 0 to 0.8), beta 1, m 1e4:
    # 0.03 is the 40 % value. No MNIST setting: CIFAR-10's, the other 10-class one.
    "eps_softmax": {
        "cifar10": {"alpha": 0.01, "beta": 5.0, "m": 1e5},
        "cifar100": {"alpha": 0.03, "beta": 1.0, "m": 1e4},
    },
    # ErikEnglesson/GJS scripts/C10,C100/sym/js-*.yaml @f124785, js_weights by noise rate (CIFAR-10: 0.1, 0.7,
    # 0.7, 0.9, 0.9 at 0 to 0.8; CIFAR-100: 0.1, 0.1, 0.3, 0.5, 0.3): the 40 % values. No MNIST setting.
    "js": {"cifar10": {"pi": 0.7}, "cifar100": {"pi": 0.3}},
    # cswjl/eps-softmax config.py @1b9efb5 (CEandLC, delta = 1/tau): CIFAR-10 symmetric below 50 % delta 1,
    # CIFAR-100 symmetric delta 0.5; hongxin001/LogitClip's own default --temp is 1 too. No MNIST setting.
    "logit_clip": {"cifar10": {"tau": 1.0}, "cifar100": {"tau": 2.0}},
    # Virusdoll/Active-Negative-Loss config/{mnist,cifar10,cifar100}_anl_ce.json @f8c23b3 (alpha, beta, delta; weight
    # decay 0), read against the repository.
    "anl_ce": {
        "mnist": {"alpha": 1.0, "beta": 1.0, "delta": 1e-6},
        "cifar10": {"alpha": 5.0, "beta": 5.0, "delta": 5e-5},
        "cifar100": {"alpha": 10.0, "beta": 1.0, "delta": 5e-7},
    },
    # cswjl/joint-asymmetric-loss config.py @0f9eb7b (NCEandAMSE; get_weight_decay_config: the L1 delta, no L2). No
    # MNIST setting: CIFAR-10's, the other 10-class one.
    "jal_ce": {
        "cifar10": {"alpha": 1.0, "beta": 1.0, "a": 30.0, "delta": 5e-5},
        "cifar100": {"alpha": 5.0, "beta": 1.0, "a": 20.0, "delta": 5e-6},
    },
    # shengliu66/ELR ELR/config_cifar10.json @2f4cd32, config_cifar100.json @4e6cb7d, read against the repository. No
    # MNIST setting: CIFAR-10's, the other 10-class one.
    "elr": {"cifar10": {"beta": 0.7, "lambda_": 3.0}, "cifar100": {"beta": 0.9, "lambda_": 7.0}},
    # The APL family's CIFAR-100 runs, HanxunH/Active-Passive-Losses slurm/cifar100/<loss>.slurm @89fa39a (symmetric
    # blocks), those of the fdd52a2 result log; CIFAR-10 and MNIST run their signature's defaults (alpha = beta = 1,
    # gamma 0.5, q 0.7). Its notebook's notes say q 0.3 for NGCE where the script passes 0.2: the script's is taken.
    "ngce": {"cifar100": {"q": 0.2}},
    "ngce+nce": {"cifar100": {"q": 0.2}},
    "ngce+mae": {"cifar100": {"alpha": 10.0, "q": 0.2}},
    "ngce+rce": {"cifar100": {"alpha": 10.0, "beta": 0.1, "q": 0.2}},
    "nfl+mae": {"cifar100": {"alpha": 10.0}},
    "nfl+rce": {"cifar100": {"alpha": 10.0, "beta": 0.1}},
    "gce+rce": {"cifar100": {"beta": 0.1}},
}


def register_configs() -> None:
    """Make the schema and the run_name resolver (used by hydra.run.dir) known to Hydra; idempotent."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    OmegaConf.register_new_resolver("run_name", lambda *, _root_: _composed_run_name(_root_), replace=True)


def compose(*overrides: str, hydra: bool = False) -> DictConfig:
    """The config train.py composes from configs/ with `overrides` (with Hydra's own node when `hydra`), unresolved:
    for code and tests that run the engine in-process."""
    register_configs()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return hydra_compose("train", overrides=list(overrides), return_hydra_config=hydra)


def _loss_defaults(loss: str, dataset: str) -> dict:
    """The parameters of `loss` with their defaults: the authors' value for the dataset, else the loss's own."""
    per_dataset = DATASET_LOSS_DEFAULTS.get(loss, {})
    return {**tce.LOSS_PARAMS[loss], **per_dataset.get(dataset, per_dataset.get("cifar10", {}))}


def with_defaults(cfg: DictConfig) -> DictConfig:
    """A copy of a composed config with the derived values a run's identity depends on filled in, without
    checking them: noise_seed, instance noise's instance_std, a noise file's absolute path and SHA-256 (read
    from the file when not given), and the loss's: its parameters (given, else their default) with the others null,
    a transition file's absolute path and SHA-256, and weight decay 0 for a loss whose L1 penalty replaces it
    (tce.LOSS_NEEDS "parameters")."""
    if "hydra" in cfg:  # composed with Hydra's node, which says how the run was launched, not what it is
        cfg = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    OmegaConf.set_struct(cfg, True)
    if cfg.noise_seed is None:
        cfg.noise_seed = cfg.seed
    if cfg.noise_type == "instance" and cfg.instance_std is None:
        cfg.instance_std = DEFAULT_STD
    if cfg.noise_type == "file" and cfg.noise_file is not None:
        cfg.noise_file = absolute(cfg.noise_file)
        cfg.noise_sha256 = (cfg.noise_sha256 or sha256_of(cfg.noise_file)).lower()
    if cfg.loss.transition is not None:
        cfg.loss.transition = absolute(cfg.loss.transition)
        cfg.loss.transition_sha256 = (cfg.loss.transition_sha256 or sha256_of(cfg.loss.transition)).lower()
    if PARAMETERS_NEED in tce.LOSS_NEEDS[cfg.loss.name]:  # its L1 penalty replaces weight decay
        if cfg.loss.replaced_weight_decay is None:
            cfg.loss.replaced_weight_decay = cfg.optim.weight_decay
        cfg.optim.weight_decay = 0.0
    else:
        cfg.loss.replaced_weight_decay = None
    defaults = _loss_defaults(cfg.loss.name, cfg.dataset.name)
    for key in LOSS_KEYS:
        given = cfg.loss[key]
        cfg.loss[key] = (defaults[key] if given is None else given) if key in defaults else None
    return cfg


def _composed_run_name(cfg: DictConfig) -> str:
    """run_name of a config as Hydra composed it, for hydra.run.dir; a config that cannot be named is refused by
    resolve before the run starts, so it gets a placeholder rather than an error inside Hydra."""
    try:
        # Without the hydra node: resolving it would evaluate hydra.run.dir, and so this resolver, again.
        return run_name(with_defaults(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])))
    except Exception:  # noqa: BLE001 - whatever is wrong, resolve reports it in one line
        return "invalid-config"


_said: set[str] = set()


def _say_once(message: str) -> None:
    """A warning that a sweep, which resolves every one of its runs, gives once per process."""
    if message not in _said:
        _said.add(message)
        logging.getLogger("tce").warning(message)


def resolve(cfg: DictConfig, job_num: int = 0, quiet: bool = False) -> DictConfig:
    """A validated copy with every derived value filled in: what the run records and what its name depends on;
    `quiet`: without the warnings it would give (for a check before the run's log is set up)."""
    validate(cfg)
    cfg = with_defaults(cfg)
    try:
        tce.build_loss(cfg.loss.name, **loss_params(cfg.loss))
    except ValueError as error:  # tce's messages start with the parameter's name
        key, message = " ".join(str(error).split()).split(" ", 1)
        raise ConfigError(f"loss.{key}: {message}") from None
    device = resolve_device(cfg.device, job_num)
    if cfg.device == "auto" and device.type == "cpu" and cfg.dataset.name != "synthetic" and not quiet:
        _say_once(f"device=auto: no usable GPU here, so {cfg.dataset.name} trains on the CPU (hours per run)")
    cfg.device = str(device)
    if cfg.precision not in precision.supported(device):
        raise ConfigError(
            f"precision: {cfg.precision} is not computed natively on {device} (supported: "
            f"{', '.join(precision.supported(device))})"
        )
    if cfg.compile is None:
        cfg.compile = device.type == "cuda"
    if cfg.channels_last is None:
        cfg.channels_last = device.type == "cuda"
    if cfg.compile_mode == "reduce-overhead" and (device.type != "cuda" or not cfg.compile):
        raise ConfigError(
            f"compile_mode: reduce-overhead (CUDA graphs) needs a CUDA device and compile=true, not {device} "
            f"with compile={str(cfg.compile).lower()}"
        )
    if cfg.eval_batch_size is None:
        cfg.eval_batch_size = 1000 if device.type == "cuda" else 256
    return cfg
