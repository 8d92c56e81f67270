"""Loss settings as the tables name and order them: the rows of cells.csv, the tables and paired.csv.

A setting is a loss and its parameters, {"name", "rule", and every key of experiments.schema.LOSS_KEYS}; its tag
(the `setting` column) is experiments.identity.loss_tag, e.g. "tce-a1.5". A setting with a rule (RULES) is the row of
selection on validation (scripts/selection.py): "tce@val" reports the setting of TCE that the validation runs chose.
"""

from collections.abc import Iterable, Mapping

import pandas as pd

import tce
from experiments.identity import COLUMN, loss_tag, number_text
from experiments.schema import LOSS_KEYS

DATASET_LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10+", "cifar100": "CIFAR-100+", "svhn": "SVHN"}
PAPER_LOSSES = ("ce", "mse", "mae", "tce")
LOSS_LABELS = {
    "ce": "CE", "mse": "MSE", "mae": "MAE", "tce": "TCE", "gce": "GCE", "rce": "RCE", "sce": "SCE", "nce": "NCE",
    "nce+rce": "NCE+RCE", "nce+mae": "NCE+MAE", "focal": "Focal", "taylor": "Taylor-CE", "poly1": "Poly-1",
    "label_smoothing": "LS", "bootstrap_soft": "Bootstrap-soft", "bootstrap_hard": "Bootstrap-hard",
    "agce": "AGCE", "aul": "AUL", "ael": "AEL", "nce+agce": "NCE+AGCE", "nce+aul": "NCE+AUL", "nce+ael": "NCE+AEL",
    "nnce": "NNCE", "eps_softmax": "CE_ε+MAE", "js": "JS", "logit_clip": "LogitClip",
    "anl_ce": "ANL-CE", "jal_ce": "JAL-CE", "forward": "Forward", "backward": "Backward", "elr": "ELR",
    "apl_mae": "MAE (APL)", "nfl": "NFL", "ngce": "NGCE", "nmae": "NMAE", "nrce": "NRCE", "nfl+nce": "NFL+NCE",
    "nfl+mae": "NFL+MAE", "nfl+rce": "NFL+RCE", "ngce+nce": "NGCE+NCE", "ngce+mae": "NGCE+MAE", "ngce+rce": "NGCE+RCE",
    "gce+mae": "GCE+MAE", "gce+rce": "GCE+RCE", "gce+nce": "GCE+NCE", "mae+rce": "MAE+RCE",
}
PARAM_SYMBOLS = {"alpha": "α", "beta": "β", "q": "q", "A": "A", "gamma": "γ", "t": "t", "epsilon": "ε",
                 "a": "a", "m": "m", "pi": "π", "tau": "τ", "p_norm": "p", "delta": "δ", "lambda_": "λ"}


# The rules of selection on validation (scripts/selection.py), in row order: a row `<loss>@<rule>` reports the
# setting of the loss that its validation runs chose.
RULES = ("val", "val-dataset")


def setting(name: str, rule: str | None = None, **params) -> dict:
    """A loss setting as aggregation handles it: {"name": ..., "rule": ..., and every key of LOSS_KEYS, None where
    unused}. A setting with a rule (RULES) stands for the setting its validation runs chose, and has no
    parameters of its own."""
    return {"name": name, "rule": rule, **{key: None if rule else params.get(key) for key in LOSS_KEYS}}


# The rows of the paper's Tables 1 and 2.
PAPER_SETTINGS = [setting("ce"), setting("mse"), setting("mae"), *(setting("tce", alpha=a) for a in (0.5, 1, 1.5, 2))]


def setting_tag(loss: Mapping) -> str:
    """The `setting` column's value: loss_tag ("tce-a1.5"), or "<loss>@<rule>" ("tce@val")."""
    return f"{loss['name']}@{loss['rule']}" if loss.get("rule") else loss_tag(loss)


def format_level(value: float) -> str:
    """0.4 -> "0.4", 1 -> "1.0" (the paper's style), 0.25 -> "0.25", 1.0000001 -> "1.0000001" (never rounded
    away)."""
    return f"{value:.1f}" if round(value, 1) == value else number_text(value)


def setting_of(row: Mapping) -> dict:
    """The setting of a row of runs.csv, curves.csv or cells.csv (its `setting`, `loss` and parameter columns)."""
    rule = row["setting"].partition("@")[2] or None
    return setting(row["loss"], rule, **{key: _none_if_nan(row[key]) for key in LOSS_KEYS})


def _none_if_nan(value):
    return None if pd.isna(value) else value


def parameter_text(loss: Mapping) -> str:
    """The parameters of a setting, e.g. "α=1.5", "α=0.1 β=1 A=-9.210340371976182", "τ=1 p=2 code" (a word as
    itself; every number exact, experiments.identity.number_text); "" for none."""
    def text(key: str, value) -> str:
        if isinstance(value, str):
            return value
        number = format_level(value) if key == "alpha" and loss["name"] == "tce" else number_text(value)
        return f"{PARAM_SYMBOLS[key]}={number}"

    return " ".join(text(k, v) for k, v in ((k, loss.get(k)) for k in LOSS_KEYS) if v is not None)


def setting_label(loss: Mapping) -> str:
    """E.g. "CE", "TCE α=1.5", "SCE α=0.1 β=1 A=-9.210340371976182", "TCE @val"."""
    name = LOSS_LABELS.get(loss["name"], loss["name"])
    if loss.get("rule"):
        return f"{name} @{loss['rule']}"
    return " ".join(filter(None, [name, parameter_text(loss)]))


def setting_order(loss: Mapping) -> tuple:
    """The paper's row order: CE, MSE, MAE, then TCE by increasing alpha; then the other losses in tce.LOSSES
    order, each by its parameters; unknown losses last. A loss's rows of selection follow its settings."""
    rank = tce.LOSSES.index(loss["name"]) if loss["name"] in tce.LOSSES else len(tce.LOSSES)
    rule = RULES.index(loss["rule"]) + 1 if loss.get("rule") else 0
    # (unset, value): an unset parameter sorts last, and a value is compared only with the same key's values.
    return rank, loss["name"], rule, tuple((loss.get(k) is None, loss.get(k) or 0) for k in LOSS_KEYS)


def ordered_settings(losses: Iterable[Mapping]) -> list[dict]:
    """The distinct settings (by setting_tag), in the paper's row order."""
    unique = {setting_tag(loss): setting(loss["name"], loss.get("rule"), **{k: loss.get(k) for k in LOSS_KEYS})
              for loss in losses}
    return sorted(unique.values(), key=setting_order)


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def cell_name(cell: Mapping) -> str:
    """A cell in words, for the status report: "cifar10 tce-a1 uniform 0.4 (recipe 1a2b3c4d)"."""
    level = cell["noise_variant"] or f"{cell['noise']:g}"
    return f"{cell['dataset']} {cell['setting']} {cell['noise_type']} {level} (recipe {cell['recipe']})"


def settings_in(runs: pd.DataFrame) -> list[dict]:
    """The distinct settings of rows of runs.csv or curves.csv, in the paper's row order."""
    return ordered_settings(setting_of(row) for _, row in runs.drop_duplicates("setting").iterrows())


# A cell's keys in the order the detection and calibration tables sort them: its column, then the loss setting.
CELL_KEYS = [*COLUMN, "setting"]


def noise_text(noise_type: str, noise_variant: str, noise: float) -> str:
    """A noise condition in a table cell: "uniform 0.6", "human worst 0.4"."""
    return " ".join(filter(None, [noise_type, noise_variant, f"{noise:g}"]))


def condition_label(condition: tuple) -> str:
    """A noise condition (noise_type, noise_variant, noise) in words: "η = 0.4", "η = 0.2 (asymmetric)",
    "human noise, worst"."""
    noise_type, noise_variant, noise = condition
    if noise_variant:
        return f"{noise_type} noise, {noise_variant}"
    return f"η = {format_level(noise)}" + ("" if noise_type == "uniform" else f" ({noise_type})")


def protocol_epoch(cells: pd.DataFrame, dataset: str, setting: str, condition: tuple) -> int | None:
    """The protocol's epoch (cells.csv's best_epoch) of a setting in a condition (noise_type, noise_variant, noise)
    of `dataset`; None where cells.csv has none."""
    noise_type, noise_variant, noise = condition
    cell = cells[(cells["dataset"] == dataset) & (cells["setting"] == setting) & (cells["noise_type"] == noise_type)
                 & (cells["noise_variant"].fillna("") == noise_variant) & (cells["noise"] == noise)]
    return None if cell.empty or pd.isna(cell["best_epoch"].iloc[0]) else int(cell["best_epoch"].iloc[0])
