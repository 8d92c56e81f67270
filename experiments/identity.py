"""A run's identity: what each config key says about it, its recipe and recipe tag, its loss setting's tag and its
run directory's name; and the keys of a cell as aggregation's columns name them. Functions of the config alone.
"""

import hashlib
import json
from collections.abc import Mapping

from omegaconf import DictConfig

from data import NoiseSpec
from experiments.needs import needs_transition
from experiments.schema import OPTIMIZER_KEYS, REPLACED_WEIGHT_DECAY, covered, loss_params, with_schema_defaults

# What each key says about a run, for the code that compares configs:
# - EXECUTION_KEYS say how to execute it, not what it computes: they may differ when a run resumes.
# - LOCATION_KEYS say where its inputs are and whether they may be fetched, not what they are.
# - PER_RUN_KEYS may differ between the runs trained together in one pack (pack=K); all else must agree, how they
#   execute included (a pack trains on one device, compiled or not, in one layout).
# - CELL_KEYS name the protocol's cell a run belongs to (a table's row and column); RUN_KEYS tell the runs of one
#   cell apart: the seeds, and the protocol role (holdout > 0 is the validation run).
# - Every other key is the run's recipe (`recipe`): runs of two recipes are never averaged or compared.
# A name covers the key and every key below it ("loss" covers loss.alpha).
EXECUTION_KEYS = (
    "device", "force", "progress", "pack", "threads", "runs_dir", "compile", "compile_mode", "channels_last",
    "eval_batch_size", "lock_timeout", "checkpoint_every", "detect",
    "detect_snapshots", "deterministic",
)
LOCATION_KEYS = ("dataset.root", "dataset.download", "noise_file", "loss.transition")
PER_RUN_KEYS = (
    "loss", "noise", "noise_type", "noise_set", "instance_std", "noise_file", "noise_sha256", "noise_seed", "seed",
    "clean_val", "force",
)
# The noise's keys name its cell's column: the type and rate, and what tells apart noises of one type
# (data.NoiseSpec.variant: the CIFAR-N set, the instance noise's std, the noise file's SHA-256).
CELL_KEYS = ("dataset.name", "loss", "noise", "noise_type", "noise_set", "instance_std", "noise_sha256")
RUN_KEYS = ("seed", "noise_seed", "holdout")
# Recipe keys added after recipe tags were first written: at their schema default they are left out of the recipe,
# so that every earlier recipe keeps its tag (the paper's is re2d072ec).
LATER_KEYS = ("optim.name", "optim.warmup_epochs")


# A table's column as aggregation's columns name it (scripts/aggregate.py): a GROUP of columns (recipe tag, dataset,
# noise type) and a LEVEL within it (the noise's rate, and its variant: data.NoiseSpec.variant of the noise's other
# CELL_KEYS); the paired tests pair the settings of one column.
GROUP = ("recipe", "dataset", "noise_type")
LEVEL = ("noise", "noise_variant")
COLUMN = (*GROUP, *LEVEL)
# A cell: a column and a loss setting's tag (loss_tag), in cells.csv's order.
CELL = ("recipe", "dataset", "setting", "noise", "noise_type", "noise_variant")


def recipe(config: Mapping) -> dict:
    """The recipe of a resolved config (a run's config.yaml): every key but the cell's, the run's, those that
    say where and how fast it runs, and the optim keys of other optimizers than its own (OPTIMIZER_KEYS), flattened
    and sorted; an older config's missing keys take the schema's default (with_schema_defaults), and LATER_KEYS
    at their default are left out."""
    flat = with_schema_defaults(config)
    defaults = with_schema_defaults({})
    own = OPTIMIZER_KEYS[flat["optim.name"]]
    unread = [f"optim.{key}" for keys in OPTIMIZER_KEYS.values() for key in keys if key not in own]
    later = [key for key in LATER_KEYS if flat[key] == defaults[key]]
    replaced = flat.get(f"loss.{REPLACED_WEIGHT_DECAY}")
    if replaced is not None:  # the loss's penalty took weight decay's place: the recipe is what it replaced
        flat["optim.weight_decay"] = replaced
    ignored = (*CELL_KEYS, *RUN_KEYS, *EXECUTION_KEYS, *LOCATION_KEYS, *unread, *later)
    # Numbers compare as floats: YAML may give 1 where the schema's float is 1.0.
    return {key: float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
            for key, value in sorted(flat.items()) if not covered(key, ignored)}


def recipe_tag(values: Mapping) -> str:
    """A short stable name of a recipe: "r" and the first 8 hex digits of the SHA-256 of its canonical JSON (the
    letter keeps a tag such as 095223e3 from reading as a number in a CSV file)."""
    return "r" + hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]


def number_text(value: float) -> str:
    """A parameter's value as run names and tables spell it: its shortest form ("1.5", "5e-05"), or every digit
    where that would round it ("1.0000001", not "1"), so that two values never share a name."""
    text = f"{value:g}"
    return text if float(text) == value else repr(float(value))


def loss_tag(loss: Mapping) -> str:
    """A loss setting as a short key, e.g. "ce", "tce-a1.5", "gce-q0.7", "sce-alpha0.1-beta1-A-9.210340371976182",
    "logit_clip-tau1-p_norm2-code", "forward-oracleT", "backward-T1a2b3c4d5e6f": the loss and the value of each of
    its parameters (a word as itself), and the transition matrix of those that need one (the oracle, or a file's
    first 12 hex digits of SHA-256), so that two settings never share a run directory or a table row."""
    params = loss_params(loss)
    if loss["name"] == "tce":  # the paper's rows keep their short spelling
        return f"tce-a{number_text(params['alpha'])}"
    parts = [value if isinstance(value, str) else f"{key}{number_text(value)}" for key, value in params.items()]
    if needs_transition(loss["name"]):
        sha256 = loss.get("transition_sha256")
        parts.append(f"T{sha256.lower()[:12]}" if sha256 else "oracleT")
    return "-".join([loss["name"], *parts])


def run_name(cfg: DictConfig) -> str:
    """The run directory's name below runs_dir, a function of what makes a run distinct, never of time."""
    noise_seed = "" if cfg.noise_seed in (None, cfg.seed) else f"-noiseseed{cfg.noise_seed}"
    clean_val = "-cleanval" if cfg.clean_val and cfg.holdout else ""
    return (f"{cfg.dataset.name}/{loss_tag(cfg.loss)}/{NoiseSpec.of(cfg).name}-holdout{cfg.holdout}-seed{cfg.seed}"
            f"{noise_seed}{clean_val}")
