"""The registry of published numbers, results/claims.csv: what the peers report for a loss under their own recipe
and how they selected it, so that the tables of that recipe show it beside ours (scripts/tables.py).

One row per published number, with these columns (CLAIM_COLUMNS):
- source: the paper (authors, venue, year, table); repository: its code (owner/name);
- read_in: where we read the number: the paper's table, a file of the repository, or an issue thread of it;
- verified: true where read in the paper's own text or in the repository's files, false where read in a quote
  of the paper (an issue thread of its repository) not yet checked against the paper's table. Numbers read
  anywhere else (summaries, leaderboards, citing papers) never go in;
- dataset, model: the claim's dataset and network (models.MODELS), which must be its recipe's;
- recipe: the recipe preset the number belongs to, configs/recipe/<recipe>.yaml;
- noise_type, noise, noise_set: the noise as our configs name it (human noise: noise 0 and its CIFAR-N set);
- loss, params: the loss (tce.LOSSES) and, space-separated key=value, the parameters that differ from ours for
  the dataset (empty: our defaults, which are the authors' where experiments.resolve.DATASET_LOSS_DEFAULTS has
  them);
- top1: the reported top-1 test accuracy (%), the mean where the source averages several runs;
- selection: the epoch the source reports (SELECTIONS): last_epoch, best_test_epoch (the best of all epochs on
  the test set) or validation (the epoch of best validation accuracy);
- note: anything else a reader needs (the number of runs, a quirk of the source).

A claim is compared with the cell of our runs that its row composes to: the preset with the claim's dataset,
loss and noise (`train.py recipe=<recipe> dataset=<dataset> loss=<loss> ...`), whose recipe tag, loss setting and
noise variant are the cell's keys (scripts/aggregate.py); a run belongs to the cell when its recipe is the
preset's. A claim whose preset does not exist (yet) belongs to no cell, and the tables say so.
"""

import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import models
import tce
from data import NoiseSpec
from experiments.identity import CELL, loss_tag, recipe, recipe_tag
from experiments.resolve import CONFIGS, compose, with_defaults
from experiments.schema import ConfigError
from experiments.validation import validate

CLAIMS = Path(__file__).resolve().parents[1] / "results" / "claims.csv"
CLAIM_COLUMNS = [
    "source", "repository", "read_in", "verified", "dataset", "model", "recipe", "noise_type", "noise", "noise_set",
    "loss", "params", "top1", "selection", "note",
]
OPTIONAL_COLUMNS = ("noise_set", "params", "note")
# The values of ours that a claim is set beside: the protocol's (the epoch of best validation accuracy), the last
# epoch's and the oracle's (each run's best test epoch), by their columns of cells.csv.
OURS = {"protocol": "protocol_mean", "last": "last_epoch_mean", "oracle": "oracle_best_test_mean"}
# Each rule of selection, in words, and the value of ours that selects the same way.
SELECTIONS = {
    "last_epoch": ("at the last epoch", "last"),
    "best_test_epoch": ("at the best test epoch, selected on the test set", "oracle"),
    "validation": ("at the epoch of best validation accuracy", "protocol"),
}
# What a claim adds to its cell: the preset's recipe tag (null while the preset does not exist) and the cell's keys.
CELL_COLUMNS = ["recipe_tag", "setting", "noise_variant"]


class ClaimsError(ValueError):
    """A row of the registry that cannot be a claim; the message is one line naming the row and the column."""


@contextlib.contextmanager
def refusing_bad_claims(program: str) -> Iterator[None]:
    """Within the block, a registry that cannot be read or checked ends `program` with its one line and exit 2."""
    try:
        yield
    except ClaimsError as error:
        print(f"{program}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def preset_exists(name: str) -> bool:
    return (CONFIGS / "recipe" / f"{name}.yaml").is_file()


def load_claims(path: Path = CLAIMS) -> pd.DataFrame:
    """The registry, every row checked (ClaimsError otherwise), with its cell (CELL_COLUMNS); `verified` is a bool
    and `noise` and `top1` are floats."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise ClaimsError(f"{path}: unreadable ({' '.join(str(error).split())})") from None
    if list(frame.columns) != CLAIM_COLUMNS:
        raise ClaimsError(f"{path}: the header must be {','.join(CLAIM_COLUMNS)}")
    rows = [_claim(path, line, row) for line, row in enumerate(frame.to_dict("records"), start=2)]
    claims = pd.DataFrame(rows, columns=[*CLAIM_COLUMNS, *CELL_COLUMNS])
    repeated = claims.duplicated(list(CELL), keep=False)  # its recipe is the preset's name
    if repeated.any():
        lines = [str(i + 2) for i in claims.index[repeated]]
        raise ClaimsError(f"{path}: rows {', '.join(lines)} claim the same cell; keep one claim per cell")
    return claims


def _claim(path: Path, line: int, row: dict) -> dict:
    def fail(column: str, message: str) -> ClaimsError:
        return ClaimsError(f"{path} row {line}: {column}: {message}")

    row = {key: value.strip() for key, value in row.items()}
    for column in CLAIM_COLUMNS:
        if column not in OPTIONAL_COLUMNS and not row[column]:
            raise fail(column, "must not be empty")
    if row["selection"] not in SELECTIONS:
        raise fail("selection", f"must be one of {', '.join(SELECTIONS)}, got {row['selection']!r}")
    if row["verified"] not in ("true", "false"):
        raise fail("verified", f"must be true or false, got {row['verified']!r}")
    if row["loss"] not in tce.LOSSES:
        raise fail("loss", f"unknown loss {row['loss']!r}; valid: {', '.join(tce.LOSSES)}")
    if row["model"] not in models.MODELS:
        raise fail("model", f"unknown model {row['model']!r}; valid: {', '.join(models.MODELS)}")
    if not re.fullmatch(r"[a-z0-9_]+", row["recipe"]):
        raise fail("recipe", f"must name a preset of configs/recipe/ (lower case, digits, _), got {row['recipe']!r}")
    top1, noise = (_number(fail, column, row[column]) for column in ("top1", "noise"))
    if not 0 < top1 <= 100:
        raise fail("top1", f"must be a top-1 accuracy in (0, 100], got {top1}")
    params = dict(_parameter(fail, item) for item in row["params"].split())
    for key in params:
        if key not in tce.LOSS_PARAMS[row["loss"]]:
            raise fail("params", f"{row['loss']} has no parameter {key!r}; it takes: "
                                 f"{', '.join(tce.LOSS_PARAMS[row['loss']]) or 'none'}")
    preset = preset_exists(row["recipe"])
    overrides = [
        *([f"recipe={row['recipe']}"] if preset else []), f"dataset={row['dataset']}", f"loss={row['loss']}",
        *(f"loss.{key}={value}" for key, value in params.items()), f"noise={noise}",
        f"noise_type={row['noise_type']}", f"noise_set={row['noise_set'] or 'null'}",
    ]
    try:
        cfg = compose(*overrides)
        validate(cfg)
        cfg = with_defaults(cfg)
    except (HydraException, OmegaConfBaseException, ConfigError) as error:  # a ConfigError names its key
        raise ClaimsError(f"{path} row {line}: {' '.join(str(error).split())}") from None
    if preset and cfg.model.name != row["model"]:
        raise fail("model", f"{row['model']}, but recipe={row['recipe']} trains {cfg.model.name}")
    return {
        **row, "verified": row["verified"] == "true", "noise": round(noise, 6), "top1": top1,
        "recipe_tag": recipe_tag(recipe(OmegaConf.to_container(cfg))) if preset else None,
        "setting": loss_tag(cfg.loss),
        "noise_variant": NoiseSpec.of(cfg).variant,
    }


def _parameter(fail, item: str) -> tuple[str, str]:
    key, equals, value = item.partition("=")
    if not equals or not key or not value:
        raise fail("params", f"expected key=value items separated by spaces, got {item!r}")
    return key, value


def _number(fail, column: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise fail(column, f"must be a number, got {text!r}") from None


def unplaced(claims: pd.DataFrame) -> list[str]:
    """One line per recipe preset that claims name but that does not exist (yet): no table can show them."""
    missing = claims[claims["recipe_tag"].isna()].groupby("recipe").size()
    return [f"claims.csv: {count} claim(s) of recipe {name} shown by no table: configs/recipe/{name}.yaml does not "
            "exist" for name, count in missing.items()]
