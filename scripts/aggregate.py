"""Collects run directories (docs/run-directory.md) into tidy tables and applies the paper's protocol.

    python -m scripts.aggregate RUNS_DIR --out OUT_DIR

writes four CSV files and prints a status report:

- runs.csv: one row per run directory found at any depth below RUNS_DIR (scripts/runs.py; a folder holding summary.json,
  metrics.csv or config.yaml; hidden folders such as Hydra's .hydra/ are not runs). The identity comes from
  the files (config.yaml, else summary.json's config), never from the folder name. `status` is the one in
  summary.json (complete, running, interrupted, diverged, failed), "running" when summary.json is missing (not
  started, running or killed: a live process cannot be told from a dead one by the files), or "corrupt" when a
  file cannot be read or contradicts another; `reason` says why a run is not complete.
- curves.csv: one row per (run, epoch), wide: run_dir, status, the identity columns and the metrics.csv
  columns, so a plot filters rows and groups by epoch without reshaping. Corrupt runs are left out.
- cells.csv: one row per cell (recipe, dataset, loss setting, noise, noise type, noise variant), see
  `cells_table` for the protocol, and one row per cell and rule of selection on validation (scripts/selection.py).
- noise.csv: one row per noise condition, its realized rate and fingerprint (`noise_table`).

A run's recipe is every config key that can change what it trains or measures, other than its cell's and its
own (experiments.identity.recipe); `recipe` is its short tag. Runs of two recipes never share a cell, and the tables
show the paper's recipe apart from any other (`paper_recipe_tag`).

Run directories written before metrics.csv gained noisy_fit, noisy_true and the nll and ece columns aggregate
too: those columns are empty for them.
"""

import argparse
import functools
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from experiments.identity import CELL, recipe, recipe_tag
from experiments.lifecycle import COMPLETE, DIVERGED
from experiments.resolve import CONFIGS, compose, with_defaults
from experiments.rundir import RunDir
from experiments.sweep import NOTES
from scripts import selection
from scripts.loss_settings import cell_name, setting_of, setting_order
from scripts.runs import (
    FOUND_STATUSES,
    NOISE_COLUMNS,
    RUN_INTEGER_COLUMNS,
    SETTING_COLUMNS,
    RunRecord,
    argmax_epoch,
    curves_table,
    mean_std,
    nullable_integers,
    read_runs,
    runs_table,
)

# A cell (experiments.identity.CELL): what the protocol averages over seeds. The loss's parameters are in `setting`
# (and in their own columns, for reading); noise_variant tells apart noises of one type and rate
# (data.NoiseSpec.variant: the CIFAR-N set of human noise, the std of instance noise when not the default, a noise
# file's SHA-256), "" for the others.
CELL_COLUMNS = [
    *CELL[:3],
    *SETTING_COLUMNS,
    *CELL[3:],
    "selected",
    "note",
    *NOISE_COLUMNS,
    "val_run_dir",
    "val_diverged",
    "n_val",
    "best_epoch",
    "best_val_acc",
    "protocol_mean",
    "protocol_std",
    "n",
    "n_full",
    "n_diverged",
    "n_incomplete",
    "n_short",
    "n_duplicate",
    "protocol_mean_with_diverged",
    "last_epoch_mean",
    "last_epoch_std",
    "oracle_best_test_mean",
    "oracle_best_test_std",
    "protocol_noisy_fit_mean",
    "protocol_test_nll_mean",
    "protocol_test_ece_mean",
]
# The columns of cells.csv (and of the tables' tidy CSVs) that hold whole numbers.
INTEGER_COLUMNS = (*RUN_INTEGER_COLUMNS, "n_val", "best_epoch", "n", "n_full", "n_diverged", "n_incomplete", "n_short",
                   "n_duplicate")


@dataclass(frozen=True)
class CellAccuracies:
    """What a cell's full runs give the protocol, for pairing (scripts/paired.py): each complete run's test
    accuracy at the protocol's epoch and the seeds of its diverged runs, which count at chance, by (seed,
    noise_seed); empty without a protocol epoch. `resolution` is one test image in percent (100 / test images):
    every accuracy is a whole number of it."""

    accuracies: dict[tuple, float]
    diverged: frozenset[tuple]
    chance: float  # 100 / classes
    resolution: float


NO_RUNS = CellAccuracies({}, frozenset(), math.nan, math.nan)
# metrics.csv's wall-clock column: copies of one run differ in it and in nothing else.
WALL_CLOCK = "seconds"


@dataclass
class Aggregation:
    runs_dir: Path
    runs: list[RunRecord]
    runs_table: pd.DataFrame
    curves: pd.DataFrame
    cells: pd.DataFrame
    # Per cell (its CELL values, the rows of selection included): what its full runs give the protocol, by
    # (seed, noise_seed); paired.py pairs these.
    protocol: dict[tuple, CellAccuracies]
    recipes: dict[str, dict]  # tag -> recipe, of every run that could be identified
    problems: list[str]  # what the protocol left out, and why, one line each (the status report lists them)
    merged: list[str]  # the copies of a run counted once, one line each (the status report lists them)


def aggregate(runs_dir: Path | str) -> Aggregation:
    """All runs below `runs_dir` (none when it does not exist) and the tables built from them."""
    runs_dir = Path(runs_dir)
    runs = read_runs(runs_dir)
    cells, protocol, problems, merged = cells_table(runs)
    recipes = {r.identity["recipe"]: r.recipe for r in runs if r.identity is not None}
    return Aggregation(runs_dir, runs, runs_table(runs), curves_table(runs), cells, protocol, recipes, problems,
                       merged)


@functools.cache
def paper_recipe() -> dict:
    """The recipe of the paper's presets (configs/experiment/table1.yaml; a test checks that every preset of a
    paper artifact composes to the same one): the one recipe that Tables 1 and 2 and the zoo table show."""
    return recipe(OmegaConf.to_container(with_defaults(compose("experiment=table1"))))


def paper_recipe_tag() -> str:
    return recipe_tag(paper_recipe())


@functools.cache
def paper_recipe_on(dataset: str) -> dict:
    """The paper's recipe as it runs on `dataset`: the keys that the dataset's own config sets (the synthetic set's
    size, classes, image size and seed; configs/dataset/<name>.yaml) take its values, which the paper fixes for no
    dataset, so that only what a run changes reads as a difference. A dataset without a config: the paper's."""
    if not (CONFIGS / "dataset" / f"{dataset}.yaml").is_file():
        return paper_recipe()
    own = recipe(OmegaConf.to_container(with_defaults(compose(f"dataset={dataset}"))))
    return {**paper_recipe(), **{key: value for key, value in own.items() if key.startswith("dataset.")}}


def recipe_differences(values: Mapping, reference: Mapping) -> list[str]:
    """The keys in which a recipe differs from `reference`, as "key=value (not reference's)" strings."""
    def text(value) -> str:
        return f"{value:g}" if isinstance(value, float) else "null" if value is None else str(value)

    return [f"{key}={text(values.get(key))} (not {text(reference.get(key))})"
            for key in sorted(values.keys() | reference.keys()) if values.get(key) != reference.get(key)]


def cells_table(runs: list[RunRecord]) -> tuple[pd.DataFrame, dict[tuple, CellAccuracies], list[str], list[str]]:
    """The paper's protocol (Section 3.1): one row per cell (recipe, dataset, loss setting, noise, noise type and
    set), then the rows of selection on validation (scripts/selection.py); the protocol's accuracies per cell
    (Aggregation.protocol); the problems found, one line each; and the identical copies merged, one line each.

    The cell's validation run is its one complete run with holdout > 0; best_epoch is the epoch of its highest
    val_acc (best_val_acc; lowest validation error), the earliest on ties. Copies of one run (the same identity and
    recipe, metrics.csv but its wall-clock column, and noisy labels: a sweep copied from another machine) count
    once. With several distinct complete validation runs (n_val > 1) the epoch is ambiguous and the cell has no
    protocol value; so too when the validation run shares its (seed, noise_seed) with a full run (its labels and
    weights would be those of a reported run), or when it diverged (`note`). Each complete full run (holdout == 0)
    contributes its test_acc at best_epoch: protocol_mean, protocol_std (sample std, ddof=1; empty when n = 1) and
    n, and likewise the means of noisy_fit, test_nll and test_ece at that epoch (empty where the runs did not
    record them). Distinct complete full runs of one (seed, noise_seed) are all left out (n_duplicate), and a full
    run shorter than best_epoch is counted in n_short. Without the validation run the protocol values are empty.
    For comparison, over the same full runs: last_epoch_* (test_acc at each run's final epoch) and
    oracle_best_test_* (each run's highest test_acc over all epochs: an oracle that peeks at the test set, not a
    valid result). noise_realized (the fraction of wrong training labels) and the noise's fingerprint
    (data/fingerprint.py) are the means over the cell's complete full runs (over any of its runs when it has none)
    of what their summaries record. Diverged full runs are counted in n_diverged and left out of
    protocol_mean; protocol_mean_with_diverged counts each at chance accuracy (100 / classes), so that a loss that
    diverges is not averaged over its lucky seeds. Running, interrupted, failed and corrupt full runs are counted in
    n_incomplete.
    """
    members: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        if run.identity is not None:
            members.setdefault(tuple(run.identity[k] for k in CELL), []).append(run)
    rows, protocol, problems, merged = [], {}, [], []
    for key, cell_runs in members.items():
        row, protocol[key], found, copies = _cell(cell_runs)
        rows.append(row)
        problems += found
        merged += copies
    chosen, sources, found = selection.selection_rows(rows)
    for row, source in zip(chosen, sources, strict=True):
        key = tuple(row[k] for k in CELL)
        protocol[key] = protocol[tuple(source[k] for k in CELL)] if source else NO_RUNS
    rows += chosen
    problems += found
    rows.sort(key=lambda r: (r["recipe"], r["dataset"], setting_order(setting_of(r)), r["noise_type"],
                             r["noise_variant"], r["noise"]))
    return nullable_integers(pd.DataFrame(rows, columns=CELL_COLUMNS), INTEGER_COLUMNS), protocol, problems, merged


def _same_run(a: RunRecord, b: RunRecord) -> bool:
    """Whether two run directories are copies of one run: the same identity and recipe, the same metrics.csv but its
    wall-clock column, and the same noisy labels (both without them: the same)."""
    return (a.identity == b.identity and a.recipe == b.recipe
            and a.metrics.drop(columns=WALL_CLOCK).equals(b.metrics.drop(columns=WALL_CLOCK))
            and RunDir(a.run_dir).noisy_labels_bytes() == RunDir(b.run_dir).noisy_labels_bytes())


def _distinct(runs: list[RunRecord], where: str) -> tuple[list[RunRecord], list[str]]:
    """`runs` (complete, of one role and seeds, sorted by directory) less their copies, and a line naming each run
    kept with its copies."""
    kept, lines = [], []
    for run in runs:
        original = next((k for k in kept if _same_run(k, run)), None)
        if original is None:
            kept.append(run)
        else:
            lines.append(f"{where}: {run.run_dir} is a copy of {original.run_dir}, counted once")
    return kept, lines


def _cell(members: list[RunRecord]) -> tuple[dict, CellAccuracies, list[str], list[str]]:
    """A cell's row of cells.csv, its accuracies for pairing, its problems and the copies it merged."""
    where = cell_name(members[0].identity)
    complete = sorted((r for r in members if r.status == COMPLETE), key=lambda r: r.run_dir)
    validation, merged = _distinct([r for r in complete if r.identity["holdout"] > 0], where)
    by_seeds: dict[tuple, list[RunRecord]] = {}
    for run in complete:
        if run.identity["holdout"] == 0:
            by_seeds.setdefault((run.identity["seed"], run.identity["noise_seed"]), []).append(run)
    full, problems = {}, []
    for seeds, found in sorted(by_seeds.items()):
        found, copies = _distinct(found, where)
        merged += copies
        by_seeds[seeds] = found
        if len(found) == 1:
            full[seeds] = found[0]
        else:
            problems.append(f"{where}: {len(found)} distinct complete full runs of seed {seeds[0]} (noise seed "
                            f"{seeds[1]}), all left out: {', '.join(r.run_dir for r in found)}")
    best_epoch, best_val_acc, note, found = _protocol_epoch(members, validation, full, where)
    problems += found
    at_best = {seeds: r.metrics.iloc[best_epoch - 1] for seeds, r in full.items()
               if best_epoch is not None and best_epoch <= len(r.metrics)}
    short = [r.run_dir for r in full.values() if best_epoch is not None and best_epoch > len(r.metrics)]
    if short:
        problems.append(f"{where}: {len(short)} full runs end before the protocol epoch {best_epoch}, left out: "
                        + ", ".join(short))
    unfinished = [r for r in members if r.identity["holdout"] == 0 and r.status != COMPLETE]
    diverged = frozenset((r.identity["seed"], r.identity["noise_seed"]) for r in unfinished
                         if r.status == DIVERGED) - set(by_seeds)
    accuracies = {seeds: float(r["test_acc"]) for seeds, r in at_best.items()}
    identity = members[0].identity
    chance = 100.0 / identity["num_classes"]
    counted = list(accuracies.values()) + [chance] * len(diverged)
    row = {
        **{key: identity[key] for key in (*CELL, *SETTING_COLUMNS)},
        "selected": None,
        "note": note,
        **{column: _mean([r.noise[column] for r in (list(full.values()) or members)]) for column in NOISE_COLUMNS},
        "val_run_dir": validation[0].run_dir if len(validation) == 1 else None,
        "val_diverged": note == VAL_DIVERGED,
        "n_val": len(validation),
        "best_epoch": best_epoch,
        "best_val_acc": best_val_acc,
        "n": len(at_best),
        "n_full": len(full),
        "n_diverged": sum(r.status == DIVERGED for r in unfinished),
        "n_incomplete": sum(r.status != DIVERGED for r in unfinished),
        "n_short": len(short),
        "n_duplicate": sum(len(found) for found in by_seeds.values() if len(found) > 1),
        "protocol_mean_with_diverged": float(np.mean(counted)) if best_epoch is not None and counted else math.nan,
        **_spread(members, full, at_best),
    }
    pairing = CellAccuracies(accuracies, diverged if best_epoch is not None else frozenset(), chance,
                             100.0 / identity["test_images"])
    return row, pairing, problems, merged


VAL_DIVERGED = "val run diverged"


def _protocol_epoch(members: list[RunRecord], validation: list[RunRecord], full: dict[tuple, RunRecord],
                    where: str) -> tuple[int | None, float, str | None, list[str]]:
    """(best_epoch, best_val_acc, note, problems) of a cell: its one validation run's best epoch, or None with the
    note and problem that say why not."""
    if len(validation) > 1:
        return None, math.nan, None, [f"{where}: {len(validation)} distinct complete validation runs, so no protocol "
                                      "epoch: " + ", ".join(r.run_dir for r in validation)]
    if not validation:
        diverged = [r for r in members if r.identity["holdout"] > 0 and r.status == DIVERGED]
        return None, math.nan, (VAL_DIVERGED if diverged else None), []
    run = validation[0]
    seeds = (run.identity["seed"], run.identity["noise_seed"])
    if seeds in full:
        note = f"val run shares seed {seeds[0]} (noise seed {seeds[1]}) with a full run"
        return None, math.nan, note, [f"{where}: the validation run {run.run_dir} shares seed {seeds[0]} (noise seed "
                                      f"{seeds[1]}) with the full run {full[seeds].run_dir}: protocol value withheld"]
    epoch, accuracy = argmax_epoch(run.metrics, "val_acc") or (None, math.nan)
    return epoch, accuracy, None, []


def _spread(members: list[RunRecord], full: dict[tuple, RunRecord], at_best: dict[tuple, pd.Series]) -> dict:
    """A cell's means and standard deviations: at the protocol's epoch, at the last epoch, and the oracle's."""
    row = {}
    row["protocol_mean"], row["protocol_std"] = mean_std([float(r["test_acc"]) for r in at_best.values()])
    for column in ("noisy_fit", "test_nll", "test_ece"):
        values = [r[column] for r in at_best.values() if not math.isnan(r[column])]
        row[f"protocol_{column}_mean"] = float(np.mean(values)) if values else math.nan
    row["last_epoch_mean"], row["last_epoch_std"] = mean_std([r.metrics["test_acc"].iloc[-1] for r in full.values()])
    row["oracle_best_test_mean"], row["oracle_best_test_std"] = mean_std([r.metrics["test_acc"].max()
                                                                           for r in full.values()])
    return row


def _mean(values: list[float | None]) -> float:
    """The mean of the known values; NaN when none is."""
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else math.nan


def noise_table(aggregation: Aggregation) -> pd.DataFrame:
    """One row per noise condition (dataset, noise type and variant, noise) of the runs: how many runs, and the
    means of their realized rate and fingerprint, which tell what a noise really is (class-conditional or not,
    where its flips go)."""
    frame = aggregation.runs_table.dropna(subset=["dataset"])
    condition = ["dataset", "noise_type", "noise_variant", "noise"]
    if frame.empty:
        return pd.DataFrame(columns=[*condition, "runs", *NOISE_COLUMNS])
    grouped = frame.groupby(condition, sort=True)
    table = grouped[NOISE_COLUMNS].mean().join(grouped.size().rename("runs")).reset_index()
    return table[[*condition, "runs", *NOISE_COLUMNS]]


def status_report(aggregation: Aggregation) -> str:
    runs, cells = aggregation.runs, aggregation.cells
    if not aggregation.runs_dir.is_dir():
        return f"{aggregation.runs_dir} does not exist: no runs to aggregate."
    counts = Counter(r.status for r in runs)
    lines = [
        f"{len(runs)} run directories under {aggregation.runs_dir}: "
        + ", ".join(f"{counts[status]} {status}" for status in FOUND_STATUSES)
    ]
    lines += recipe_lines(aggregation)
    not_complete = [r for r in runs if r.status != COMPLETE]
    if not_complete:
        lines.append("Not complete, so not used by the protocol:")
        lines += [f"  {r.status:<11} {r.run_dir}: {r.reason}" for r in not_complete]
    if aggregation.merged:
        lines.append("Identical copies of a run, counted once:")
        lines += [f"  {line}" for line in aggregation.merged]
    if aggregation.problems:
        lines.append("Left out by the protocol:")
        lines += [f"  {problem}" for problem in aggregation.problems]
    notes = sorted({line for path in aggregation.runs_dir.rglob(NOTES) for line in path.read_text().splitlines()})
    if notes:
        lines.append("Noted by the sweeps when composing their runs:")
        lines += [f"  {note}" for note in notes]
    own = cells[cells["selected"].isna() & ~cells["setting"].str.contains("@", regex=False)]
    lines.append(
        f"{len(own)} cells, {int(own['protocol_mean'].notna().sum())} with a protocol value, and "
        f"{len(cells) - len(own)} rows of selection on validation; {int(own['n_diverged'].sum())} diverged full runs "
        "left out of protocol_mean (counted at chance in protocol_mean_with_diverged and in the paired tests)."
    )
    return "\n".join(lines)


def recipe_lines(aggregation: Aggregation) -> list[str]:
    """Every recipe found, its run count, and the keys in which it differs from the paper's."""
    datasets: dict[str, set[str]] = {}
    tags = Counter(r.identity["recipe"] for r in aggregation.runs if r.identity)
    for run in aggregation.runs:
        if run.identity:
            datasets.setdefault(run.identity["recipe"], set()).add(run.identity["dataset"])
    lines = [f"  recipe {tag} ({count} runs): {recipe_caption(aggregation, tag, datasets[tag])}"
             for tag, count in sorted(tags.items())]
    return [f"{len(tags)} recipes (runs of two recipes never share a cell or a table):", *lines] if tags else []


def recipe_caption(aggregation: Aggregation, tag: str, datasets: set[str]) -> str:
    """How recipe `tag` of runs of `datasets` differs from the paper's, in the keys that differ on each of them
    (paper_recipe_on: a key that a dataset's own config sets is no difference there)."""
    differences = sorted(set.intersection(*(set(recipe_differences(aggregation.recipes[tag], paper_recipe_on(d)))
                                            for d in datasets)))
    if differences:
        return "differs from the paper's in " + ", ".join(differences)
    if tag == paper_recipe_tag():
        return "the paper's"
    return f"the paper's as it runs on {', '.join(sorted(datasets))} (the keys of its dataset config aside)"


def write_csvs(aggregation: Aggregation, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in (
        ("runs", aggregation.runs_table),
        ("curves", aggregation.curves),
        ("cells", aggregation.cells),
        ("noise", noise_table(aggregation)),
    ):
        path = out_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", type=Path, help="folder holding run directories at any depth")
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSV files")
    args = parser.parse_args(argv)
    aggregation = aggregate(args.runs_dir)
    paths = write_csvs(aggregation, args.out)
    print(status_report(aggregation))
    print("wrote " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
