"""The registry of published numbers, results/claims.csv: what the peers report for a loss under their own recipe,
how they selected it and how it still differs from our cell, so that the tables and the report of that recipe show
it beside ours (scripts/tables.py, scripts/report.py).

One row per published number, with these columns (CLAIM_COLUMNS):
- source: the paper (authors, venue, year, table); repository: its code (owner/name);
- read_in: where we read the number: a file of the repository at a commit, the paper's table, or an issue thread;
- verified: true where read in the source's own files (the paper's text, or the repository's files at the commit
  that read_in names in full, 40 hex digits), false where read in a quote of the source (an issue thread of its
  repository) not yet checked against the source. Numbers read anywhere else (summaries, leaderboards, citing
  papers) never go in;
- dataset, model: the claim's dataset and network (models.MODELS), which must be its recipe's;
- recipe: the recipe preset the number belongs to, configs/recipe/<recipe>.yaml, which must exist;
- noise_type, noise, noise_set: the noise as our configs name it (human noise: noise 0 and its CIFAR-N set);
- loss, params: the loss (tce.LOSSES) and, space-separated key=value, the parameters that differ from ours for
  the dataset (empty: our defaults, which are the authors' where experiments.resolve.DATASET_LOSS_DEFAULTS has
  them);
- top1: the reported top-1 test accuracy (%), the mean where the source averages several runs;
- selection: the epoch the source reports (SELECTIONS): last_epoch, best_test_epoch (the best of all epochs on
  the test set), validation (the epoch of best validation accuracy) or unknown (the source does not say: the claim
  is shown, and compared with no value of ours);
- differs: how the source's experiment still differs from our cell where no setting of ours expresses it (its
  loss, noise, training set or data), in words; the tables and the report print it beside Δ. Empty: like is
  compared with like, as far as we know;
- note: anything else a reader needs (the number of runs, a quirk of the source).

A claim is compared with the cell of our runs that its row composes to: the preset with the claim's dataset,
loss and noise (`train.py recipe=<recipe> dataset=<dataset> loss=<loss> ...`), whose recipe tag, loss setting and
noise variant are the cell's keys (scripts/aggregate.py); a run belongs to the cell when its recipe is the
preset's. A cell takes one claim.

results/claims_out_of_scope.csv holds the numbers of the same sources that no cell can hold, with the same columns
and a `reason` (a training procedure rather than a loss; a network or schedule our models cannot express); the
status report counts them by reason.

    python -m scripts.claims [--missing RECIPE] [--runs RUNS_DIR] [--device cpu]

prints the registry's status; with --missing, the claims of recipe RECIPE that RUNS_DIR has no runs for, the sweep
that would fill their cells (our protocol: a validation run and 5 full runs each) and the engine's estimate of its
cost on the device (experiments/cost.py, from this device's bench record as `make bench` writes it).
"""

import argparse
import contextlib
import functools
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import models
import tce
from data import NoiseSpec
from experiments import cost
from experiments.identity import CELL, loss_tag, recipe, recipe_tag
from experiments.resolve import CONFIGS, compose, with_defaults
from experiments.schema import ConfigError
from experiments.validation import validate

RESULTS = Path(__file__).resolve().parents[1] / "results"
CLAIMS = RESULTS / "claims.csv"
OUT_OF_SCOPE = RESULTS / "claims_out_of_scope.csv"
CLAIM_COLUMNS = [
    "source", "repository", "read_in", "verified", "dataset", "model", "recipe", "noise_type", "noise", "noise_set",
    "loss", "params", "top1", "selection", "differs", "note",
]
OPTIONAL_COLUMNS = ("noise_set", "params", "differs", "note")
OUT_OF_SCOPE_COLUMNS = [*CLAIM_COLUMNS, "reason"]
# The values of ours that a claim is set beside: the protocol's (the epoch of best validation accuracy), the last
# epoch's and the oracle's (each run's best test epoch), by their columns of cells.csv.
OURS = {"protocol": "protocol_mean", "last": "last_epoch_mean", "oracle": "oracle_best_test_mean"}
# Each rule of selection, in words, and the value of ours that selects the same way (None: none does).
SELECTIONS = {
    "last_epoch": ("at the last epoch", "last"),
    "best_test_epoch": ("at the best test epoch, selected on the test set", "oracle"),
    "validation": ("at the epoch of best validation accuracy", "protocol"),
    "unknown": ("at an epoch it does not state", None),
}
# A commit named in full: github.com/<owner>/<name>/blob/<commit>/..., or <owner>/<name>@<commit>.
PINNED = re.compile(r"(/blob/|/tree/|@)[0-9a-f]{40}(\b|/|:)")
# What a claim adds to its cell: the preset's recipe tag and the cell's keys.
CELL_COLUMNS = ["recipe_tag", "setting", "noise_variant"]
# Our protocol's runs of a cell (configs/protocol/): the validation run and the 5 full runs.
PROTOCOL_RUNS = ("val", "full0", "full1", "full2", "full3", "full4")


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


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise ClaimsError(f"{path}: unreadable ({' '.join(str(error).split())})") from None
    if list(frame.columns) != columns:
        raise ClaimsError(f"{path}: the header must be {','.join(columns)}")
    return frame


def load_claims(path: Path = CLAIMS) -> pd.DataFrame:
    """The registry, every row checked (ClaimsError otherwise), with its cell (CELL_COLUMNS); `verified` is a bool
    and `noise` and `top1` are floats. A registry read before in this process (same text, same configs/) is not
    composed again."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ClaimsError(f"{path}: unreadable ({' '.join(str(error).split())})") from None
    return _checked(str(path), text, str(CONFIGS)).copy()


@functools.cache
def _checked(path: str, text: str, configs: str) -> pd.DataFrame:
    frame = _read(Path(path), CLAIM_COLUMNS)
    rows = [_claim(path, line, row) for line, row in enumerate(frame.to_dict("records"), start=2)]
    claims = pd.DataFrame(rows, columns=[*CLAIM_COLUMNS, *CELL_COLUMNS])
    repeated = claims.duplicated(list(CELL), keep=False)  # its recipe is the preset's name
    if repeated.any():
        lines = [str(i + 2) for i in claims.index[repeated]]
        raise ClaimsError(f"{path}: rows {', '.join(lines)} claim the same cell; keep one claim per cell")
    return claims


def _claim(path: str, line: int, row: dict) -> dict:
    def fail(column: str, message: str) -> ClaimsError:
        return ClaimsError(f"{path} row {line}: {column}: {message}")

    row = _checked_fields(row, fail)
    if row["verified"] == "true" and not PINNED.search(row["read_in"]):
        raise fail("read_in", "a verified claim names the commit it was read at in full (40 hex digits: "
                              f".../blob/<commit>/<file> or owner/name@<commit>), got {row['read_in']!r}")
    if not preset_exists(row["recipe"]):
        raise fail("recipe", f"configs/recipe/{row['recipe']}.yaml does not exist; a claim needs its recipe's "
                             "preset (or belongs in claims_out_of_scope.csv)")
    params = dict(_parameter(fail, item) for item in row["params"].split())
    for key in params:
        if key not in tce.LOSS_PARAMS[row["loss"]]:
            raise fail("params", f"{row['loss']} has no parameter {key!r}; it takes: "
                                 f"{', '.join(tce.LOSS_PARAMS[row['loss']]) or 'none'}")
    noise = float(row["noise"])
    overrides = [*(f"loss.{key}={value}" for key, value in params.items()), f"noise={noise}",
                 f"noise_type={row['noise_type']}", f"noise_set={row['noise_set'] or 'null'}"]
    try:
        cfg = OmegaConf.merge(_composed(str(CONFIGS), row["recipe"], row["dataset"], row["loss"]),
                              OmegaConf.from_dotlist(overrides))
        validate(cfg)
        cfg = with_defaults(cfg)
    except (HydraException, OmegaConfBaseException, ConfigError) as error:  # a ConfigError names its key
        raise ClaimsError(f"{path} row {line}: {' '.join(str(error).split())}") from None
    if cfg.model.name != row["model"]:
        raise fail("model", f"{row['model']}, but recipe={row['recipe']} trains {cfg.model.name}")
    return {
        **row, "verified": row["verified"] == "true", "noise": round(noise, 6), "top1": float(row["top1"]),
        "recipe_tag": _recipe_tag(cfg, row["recipe"], row["dataset"], row["loss"], row["params"]),
        "setting": loss_tag(cfg.loss),
        "noise_variant": NoiseSpec.of(cfg).variant,
    }


def _checked_fields(row: dict, fail) -> dict:
    """The row stripped, its columns checked one by one: those that must not be empty, the words and the numbers."""
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
    top1, _ = (_number(fail, column, row[column]) for column in ("top1", "noise"))
    if not 0 < top1 <= 100:
        raise fail("top1", f"must be a top-1 accuracy in (0, 100], got {top1}")
    return row


@functools.cache
def _composed(configs: str, preset: str, dataset: str, loss: str) -> DictConfig:
    """The config of recipe=`preset` dataset=`dataset` loss=`loss`, composed once per configs/ tree: a claim's own
    values (noise, loss parameters) are merged into it, composing being the slow part of reading the registry."""
    return compose(f"recipe={preset}", f"dataset={dataset}", f"loss={loss}")


_RECIPE_TAGS: dict[tuple[str, ...], str] = {}


def _recipe_tag(cfg: DictConfig, *claim: str) -> str:
    """The recipe tag of a claim's resolved config, computed once per preset, dataset, loss and parameters: the
    tag leaves out the cell's keys (noise, loss), so the claims of one loss setting share it, and computing it is
    the other slow part."""
    key = (str(CONFIGS), *claim)
    if key not in _RECIPE_TAGS:
        _RECIPE_TAGS[key] = recipe_tag(recipe(OmegaConf.to_container(cfg)))
    return _RECIPE_TAGS[key]


def _parameter(fail, item: str) -> tuple[str, str]:
    key, equals, value = item.partition("=")
    if not equals or not key or not value:
        raise fail("params", f"expected key=value items separated by spaces, got {item!r}")
    return key, value


def _number(fail, column: str, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise fail(column, f"must be a number, got {text!r}") from None
    if not math.isfinite(number):
        raise fail(column, f"must be a finite number, got {text!r}")
    return number


def out_of_scope_beside(claims_path: Path) -> Path:
    """The list of numbers left out that goes with a registry: claims_out_of_scope.csv in its folder."""
    return Path(claims_path).with_name(OUT_OF_SCOPE.name)


def load_out_of_scope(path: Path = OUT_OF_SCOPE) -> pd.DataFrame:
    """The published numbers that no cell can hold, each with its reason (ClaimsError where one has none)."""
    frame = _read(path, OUT_OF_SCOPE_COLUMNS)
    for line, row in enumerate(frame.to_dict("records"), start=2):
        if not row["reason"].strip():
            raise ClaimsError(f"{path} row {line}: reason: must not be empty")
        for column in ("source", "read_in", "loss", "top1"):
            if not row[column].strip():
                raise ClaimsError(f"{path} row {line}: {column}: must not be empty")
    return frame


def status_lines(claims: pd.DataFrame, out_of_scope: pd.DataFrame) -> list[str]:
    """The registry in a few lines: claims per recipe (verified, selection unknown), and what was left out, by
    reason."""
    per_recipe = ", ".join(f"{name} {len(group)}" for name, group in claims.groupby("recipe", sort=True))
    lines = [f"claims.csv: {len(claims)} claims, {int(claims['verified'].sum())} verified, "
             f"{int((claims['selection'] == 'unknown').sum())} of unknown selection (compared with none of ours); "
             f"by recipe: {per_recipe or 'none'}"]
    for reason, group in out_of_scope.groupby("reason", sort=False):
        losses = ", ".join(f"{loss} {n}" for loss, n in group.groupby("loss").size().items())
        lines.append(f"claims_out_of_scope.csv: {len(group)} claims left out ({losses}): {reason}")
    return lines


def beside_ours(claims: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Each claim with the values of ours of its cell (OURS' columns, NaN where it has none), `ours`: the value
    that selects as the claim did (NaN for a claim of unknown selection), and `has_runs`: whether its cell has
    any of ours."""
    keys = list(CELL)
    mine = (cells.fillna({"noise_variant": ""})[[*keys, *OURS.values()]].rename(columns={"recipe": "recipe_tag"})
            .astype({"noise": float}))  # an empty cells.csv reads as text
    cell_keys = ["recipe_tag", *keys[1:]]
    joined = claims.merge(mine, how="left", on=cell_keys, validate="one_to_one")
    compared = [None if SELECTIONS[s][1] is None else OURS[SELECTIONS[s][1]] for s in joined["selection"]]
    joined["ours"] = [math.nan if c is None else row[c] for c, (_, row) in zip(compared, joined.iterrows(),
                                                                              strict=True)]
    joined["has_runs"] = joined[list(OURS.values())].notna().any(axis=1)
    return joined


def missing_sweeps(claims: pd.DataFrame) -> list[list[str]]:
    """The overrides of the multirun sweeps that fill the cells of `claims` (one recipe's): one sweep per dataset,
    loss setting and noise (type and set), over its noise levels and our protocol's runs."""
    keys = ["recipe", "dataset", "loss", "params", "noise_type", "noise_set"]
    sweeps = []
    for (preset, dataset, loss, params, noise_type, noise_set), group in claims.groupby(keys, sort=True):
        levels = ",".join(f"{n:g}" for n in sorted(set(group["noise"])))
        sweeps.append([f"recipe={preset}", f"dataset={dataset}", f"loss={loss}",
                       *(f"loss.{item}" for item in params.split()), f"noise_type={noise_type}",
                       *([f"noise_set={noise_set}"] if noise_set else []), f"noise={levels}",
                       f"protocol={','.join(PROTOCOL_RUNS)}"])
    return sweeps


def sweep_runs(sweep: list[str]) -> list[DictConfig]:
    """The resolved config of every run of a sweep of missing_sweeps: the sweep's fixed overrides composed once,
    each noise level and protocol role (configs/protocol/<role>.yaml, a package of global keys) merged into it."""
    fixed = [item for item in sweep if not item.startswith(("noise=", "protocol="))]
    levels = next(item for item in sweep if item.startswith("noise=")).partition("=")[2].split(",")
    base = compose(*fixed)
    roles = {role: OmegaConf.load(CONFIGS / "protocol" / f"{role}.yaml") for role in PROTOCOL_RUNS}
    return [with_defaults(OmegaConf.merge(base, OmegaConf.from_dotlist([f"noise={level}"]), roles[role]))
            for level in levels for role in PROTOCOL_RUNS]


def missing_report(claims: pd.DataFrame, cells: pd.DataFrame, preset: str, device: torch.device) -> list[str]:
    """For recipe `preset`: how many of its claims have no runs, the sweeps that fill their cells and their cost."""
    mine = beside_ours(claims[claims["recipe"] == preset], cells)
    if mine.empty:
        return [f"recipe {preset}: no claims"]
    missing = mine[~mine["has_runs"]]
    lines = [f"recipe {preset}: {len(mine)} claims, {len(missing)} without runs"]
    if missing.empty:
        return lines
    sweeps = missing_sweeps(missing)
    runs = [cfg for sweep in sweeps for cfg in sweep_runs(sweep)]
    seconds, source = cost.seconds([(cfg, 0) for cfg in runs], device)
    lines += [f"python train.py -m {' '.join(sweep)}" for sweep in sweeps]
    lines.append(f"{len(sweeps)} sweeps, {len(runs)} runs: about {seconds / 3600:,.1f} h on {device} one after the "
                 f"other ({source})")
    return lines


def _device(text: str) -> torch.device:
    """The device an estimate is for; a device this machine does not have ends the program with one line, exit 2."""
    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in cost.ROUGH_RATES or (
            device.type == "cuda" and not torch.cuda.is_available()):
        print(f"claims: --device {text}: not a device of this machine (cpu, cuda, cuda:N)", file=sys.stderr)
        raise SystemExit(2)
    return device


def main(argv: list[str] | None = None) -> None:
    from scripts.aggregate import aggregate  # the runs, read only for --missing

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--missing", metavar="RECIPE", help="the sweep that fills the cells of RECIPE's claims")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding run directories")
    parser.add_argument("--device", default="cpu", help="the device the estimate is for (cpu, cuda, cuda:N)")
    args = parser.parse_args(argv)
    device = _device(args.device)
    with refusing_bad_claims("claims"):
        claims, out_of_scope = load_claims(), load_out_of_scope()
        if args.missing is not None and args.missing not in set(claims["recipe"]):
            raise ClaimsError(f"--missing: no claims of recipe {args.missing!r}; recipes with claims: "
                              f"{', '.join(sorted(set(claims['recipe'])))}")
    print("\n".join(status_lines(claims, out_of_scope)))
    if args.missing is not None:
        print("\n".join(missing_report(claims, aggregate(args.runs).cells, args.missing, device)))


if __name__ == "__main__":
    main()
