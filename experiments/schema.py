"""The config's schema: dataclasses whose fields are every key a run has, with their types and defaults, so that a
wrong key or type fails at composition (docs/configuration.md lists them). What each key says about a run (how it
executes, where its inputs are, what makes its cell and recipe) is experiments/identity.py's; checking the values is
experiments/validation.py's, filling in the derived ones experiments/resolve.py's.
"""

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from omegaconf import MISSING, OmegaConf

import tce
from data.sources import DEFAULT_ROOT

COMPILE_MODES = ("default", "reduce-overhead")
OPTIMIZERS = ("sgd", "adam", "adamw")  # optim.name
# The optim keys that only some optimizers read: a run's recipe holds those of its own optimizer only.
OPTIMIZER_KEYS = {"sgd": ("momentum", "nesterov"), "adam": ("betas", "eps"), "adamw": ("betas", "eps")}
SCHEDULES = ("step", "cosine", "cosine_restarts", "exponential")  # optim.schedule: experiments.optimizer.lr_at


class ConfigError(ValueError):
    """A config value that cannot run; the message is one line naming the key."""


@dataclass
class DatasetConfig:
    name: str = MISSING
    # Downloaded and cached data lives here, never in the repo; the TCE_DATA_ROOT environment variable overrides it.
    root: str = DEFAULT_ROOT
    download: bool = True  # fetch missing files (python -m data.download does it beforehand); false: never
    train_size: int | None = None  # keep the first N training images (synthetic: how many to generate)
    test_size: int | None = None
    split_seed: int = 0  # the holdout split, fixed per dataset and independent of the run seed
    val_holdout: int = 5000  # the holdout of the protocol's validation run (protocol=val), 5000 in the paper
    # The synthetic dataset's own keys (configs/dataset/synthetic.yaml sets them); null for the real datasets.
    num_classes: int | None = None
    seed: int | None = None  # the generator's seed
    image_size: int | None = None  # smaller images cost ResNet-20 less per image (the real ones are 32 x 32)


@dataclass
class LossConfig:
    """The loss (tce.LOSSES) and its parameters (tce.LOSS_PARAMS; each loss's docstring in tce says what they mean
    and may be).

    A parameter left null takes its default: the authors' value for the dataset where
    experiments.resolve.DATASET_LOSS_DEFAULTS has one, else the loss's own. The parameters a loss does not take are
    recorded as null, so that a sweep such as `loss=ce,tce loss.alpha=1,2` gives CE once.
    """

    name: str = MISSING
    alpha: float | None = None  # TCE's alpha; the weight of the first term of sce, nce+*, eps_softmax
    beta: float | None = None  # the weight of their second term; bootstrapping's weight of the label
    q: float | None = None  # the exponent of gce, agce, aul
    A: float | None = None  # rce, sce: the value of log 0
    gamma: float | None = None  # focal
    t: int | None = None  # taylor: the number of terms
    epsilon: float | None = None  # poly1, label_smoothing
    a: float | None = None  # agce, aul, ael and their sums with NCE: the shift of p_y
    m: float | None = None  # eps_softmax: the mass added to the argmax class
    pi: float | None = None  # js: the label's weight in the mixture
    tau: float | None = None  # logit_clip: the norm above which logits are clipped
    p_norm: float | None = None  # logit_clip: the order of that norm
    semantics: str | None = None  # logit_clip: "code" (rescale to norm 1/tau, the authors' code) or "paper" (to tau)
    delta: float | None = None  # anl_ce, jal_ce: the weight of the L1 penalty on every parameter of the model
    lambda_: float | None = None  # elr: the weight of its regularizer
    # forward, backward: the transition matrix T, a CSV file of C x C numbers (row = true class, column = noisy
    # label, rows summing to 1), and its SHA-256: checked when given, else computed from the file, like noise_file's;
    # null: the oracle, the run's realized noise matrix of its training portion normalized by rows.
    transition: str | None = None
    transition_sha256: str | None = None
    # Derived, for a loss whose L1 penalty replaces weight decay (it trains with optim.weight_decay 0): the recipe's
    # weight decay it replaced, so that the run stays in its recipe (`recipe`) next to the other losses.
    replaced_weight_decay: float | None = None


#: The keys of LossConfig that hold a loss's transition matrix rather than a parameter (tce.LOSS_PARAMS).
TRANSITION_KEYS = ("transition", "transition_sha256")
#: The key of LossConfig that records the weight decay a penalty replaced (derived, not a parameter).
REPLACED_WEIGHT_DECAY = "replaced_weight_decay"
LOSS_KEYS = tuple(f.name for f in fields(LossConfig)
                  if f.name not in ("name", *TRANSITION_KEYS, REPLACED_WEIGHT_DECAY))
# Each parameter's type, from its annotation ("float | None" -> float): how a value read back from a file is cast.
LOSS_KEY_TYPES = {f.name: next(t for t in typing.get_args(f.type) if t is not type(None))
                  for f in fields(LossConfig) if f.name in LOSS_KEYS}

@dataclass
class ModelConfig:
    name: str = "resnet"  # models.MODELS; configs/model/<name>.yaml selects one (model=cnn8)
    depth: int | None = 20  # resnet's depth 6n + 2; null for the other models, which have one depth


@dataclass
class OptimConfig:
    # OPTIMIZERS (experiments.optimizer.build): "sgd", the paper's; "adam"; "adamw", with decoupled weight decay.
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9  # sgd's (OPTIMIZER_KEYS)
    nesterov: bool = True  # sgd's
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam's and adamw's, torch's defaults
    eps: float = 1e-8  # adam's and adamw's
    weight_decay: float = 1e-4
    # Epochs of linear warm-up of the lr before the schedule (experiments.optimizer.lr_at); 0: none, the paper's.
    warmup_epochs: int = 0
    # Fractions of `epochs` at which the lr is multiplied by lr_gamma: 128 and 192 of 256, as in the paper.
    lr_milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    lr_gamma: float = 0.1
    # The lr of each epoch (SCHEDULES), every one stepped once per epoch as torch's schedulers are: "step" at
    # lr_milestones and lr_gamma, the paper's; "cosine" from lr to lr_min over `epochs` (CosineAnnealingLR(T_max=epochs,
    # eta_min=lr_min)); "cosine_restarts" from lr to lr_min over every restart_epochs (CosineAnnealingWarmRestarts(T_0,
    # eta_min=lr_min), ELR's); "exponential" times lr_gamma every epoch (StepLR(step_size=1), SCELoss-Reproduce's).
    schedule: str = "step"
    lr_min: float = 0.0
    restart_epochs: int | None = None
    # Scale each run's gradient down to this 2-norm over all its parameters before every step, as torch's
    # clip_grad_norm_ (each member of a pack by its own norm); null: no clipping, the paper's.
    clip_grad_norm: float | None = None


@dataclass
class AugmentConfig:
    """The training images' augmentation, batch-wise on the device (data/loader.py); the defaults are the paper's.
    Mirroring is the dataset's (natural images yes, digits no: data.sources)."""

    crop: bool = True  # translations of up to 1/8 of the image (4 of 32 pixels): a random crop of the padded image
    rotate: float = 0.0  # rotation by an angle uniform in [-rotate, rotate] degrees after crop and flip; 0: none
    # What the padding and the rotation's corners show (FILLS): "mean", the channel mean (0 after normalization, as
    # fb.resnet.torch pads, the paper's), or "black" (torchvision pads and rotates with 0 before its Normalize).
    fill: str = "mean"


@dataclass
class TrainConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    noise: float = 0.0
    noise_type: str = "uniform"  # data.NOISE_TYPES (data/noise_spec.py)
    noise_set: str | None = None  # noise_type=human: which CIFAR-N label set (data.cifar_n.NOISE_SETS)
    instance_std: float | None = None  # noise_type=instance: the std of the per-sample flip rate (null: 0.1)
    # noise_type=file: a noisy-label file (data/label_files.py lists the formats), and its SHA-256: checked when
    # given, else computed from the file. The path is where the input is, the SHA-256 what it is: a run's
    # identity and name hold the SHA-256, so a moved file resumes its runs and a changed one cannot.
    noise_file: str | None = None
    noise_sha256: str | None = None
    noise_seed: int | None = None  # defaults to seed
    clean_val: bool = False  # the paper's validation labels are as noisy as the training labels
    seed: int = 0
    holdout: int = 5000
    epochs: int = 256
    batch_size: int = 128
    drop_last: bool = False
    eval_batch_size: int | None = None  # null: 1000 on CUDA, 256 on the CPU (faster there: activations stay in cache)
    # Training images the per-epoch evaluation pass reads (train_clean_acc, noisy_fit, noisy_true): a fixed
    # class-stratified subset of the training portion, null for all of it. make bench measures the cost.
    eval_train_size: int | None = 5000
    # Record each training image's dynamics (AUM, forgetting, a softmax average, prediction changes) on the device
    # and write them to samples.npz, for label-error detection (experiments/sample_dynamics.py, scripts/detect.py).
    detect: bool = False
    # A detecting run's eval-mode softmax over its whole training portion, holdout and test set (float16 log-softmax,
    # snapshots/epoch-NNNN.npz) every this many epochs and at its last: the probabilities at the epoch the protocol
    # chooses, and the held-out logits that temperature scaling is fitted on (scripts/detect.py, calibration.py).
    detect_snapshots: int = 16
    # auto unless $TCE_DEVICE says otherwise: hydra/launcher=slurm_gpu sets it to cuda in every job it runs.
    device: str = "${oc.env:TCE_DEVICE,auto}"
    # fp32 (strict, as the paper), or the measured opt-ins tf32 and bf16 (experiments/precision.py)
    precision: str = "fp32"
    # Performance options that leave the arithmetic alone; null means the device's default (see resolve).
    # Channels-last memory format; null: on CUDA (the tensor-core layout), off on the CPU, whose channels-last
    # float32 BatchNorm is some 40x less accurate than its NCHW one (for 1.1-1.2x the speed; docs/performance.md).
    channels_last: bool | None = None
    compile: bool | None = None  # torch.compile the model: on for CUDA (falls back to eager if it cannot)
    compile_mode: str = "default"  # torch.compile's mode: default, or reduce-overhead (CUDA graphs, CUDA only)
    # CUDA: cuDNN's and cuBLAS's deterministic algorithms, so that a resumed run computes an uninterrupted one's bits;
    # false: cudnn.benchmark, the fastest algorithms (experiments/placement.py). The CPU is deterministic either way.
    deterministic: bool = False
    # A multirun sweep is launched in packs of this many compatible runs, each pack one job that trains its runs
    # at once in one grouped model (every launcher).
    pack: int = 1
    threads: int | None = None  # CPU threads of this process (null: torch's default); parallel sweep jobs want 1
    force: bool = False  # rerun a complete or diverged run from scratch
    # Write a run's checkpoint and records every this many epochs (and at its last); a stop signal writes the
    # epochs since, kept in memory. A killed run loses at most checkpoint_every - 1 epochs.
    checkpoint_every: int = 1
    progress: bool = True  # tqdm bar within each epoch
    runs_dir: str = "runs"
    # Seconds after which a run directory's lock that nobody refreshes is stale (its trainer died), wherever
    # it was written; a training run refreshes its lock at least once a minute.
    lock_timeout: float = 600.0


def flatten(node: Mapping, prefix: str = "") -> dict:
    """A nested config as {"dotted.key": value}."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def covered(key: str, names: tuple[str, ...]) -> bool:
    """Whether the dotted `key` is one of `names` or lies below one of them."""
    return any(key == name or key.startswith(f"{name}.") for name in names)


def with_schema_defaults(config: Mapping) -> dict:
    """A config (a run's config.yaml), flattened, with the schema's default for every key it lacks: an older
    config lacks the keys added since, whose default is the value they had before they existed."""
    return {**flatten(OmegaConf.to_container(OmegaConf.structured(TrainConfig))), **flatten(config)}


def loss_params(loss: Mapping) -> dict:
    """The parameters the loss of a resolved loss config takes, by name, as tce.build_loss wants them."""
    return {key: loss[key] for key in tce.LOSS_PARAMS[loss["name"]]}
