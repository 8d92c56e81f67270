"""The paper's Tables 1 and 2, and the same losses-by-noise layout for other datasets, from run directories.

    python -m scripts.tables --runs RUNS_DIR --out OUT_DIR [--reference results/paper_reference.csv]

writes table1 and table2 (each where a run of its datasets is; else a line says why), zoo (when losses beyond the
paper's ran: experiment=zoo) and one table per other (dataset,
noise_type) present (e.g. cifar10_asymmetric, cifar10_human with one column per CIFAR-N label set), each as .md and
.tex (for people: one cell = our protocol mean ± std, n, the paper's value and ours − paper; the best of ours per
column in bold; "—" where there is no value) and .csv (tidy, one row per cell with every number, including
the last-epoch and oracle values that the human tables leave out); a cell that results/claims.csv (--claims,
scripts/claims.py) has a published number for shows it, with ours − claimed for our protocol, last-epoch and
oracle values, and the claim's rule of selection in the caption; paired.csv and paired.md, every setting against
CE paired by seed (scripts/paired.py), whose significant gains the tables mark with †. It prints the Markdown
tables and copies runs.csv, curves.csv, cells.csv and noise.csv (scripts/aggregate.py) into OUT_DIR. The tables
an earlier call wrote into OUT_DIR and this one does not are removed (OUT_DIR/.tables-written lists them).
"""

import argparse
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from experiments.identity import CELL
from scripts import paired
from scripts.aggregate import (
    CELL_COLUMNS,
    INTEGER_COLUMNS,
    Aggregation,
    aggregate,
    paper_recipe_tag,
    recipe_caption,
    status_report,
    write_csvs,
)
from scripts.claims import (
    CLAIMS,
    OURS,
    load_claims,
    load_out_of_scope,
    out_of_scope_beside,
    refusing_bad_claims,
    status_lines,
)
from scripts.layout import PAPER_DATASETS, PAPER_NOISE_TYPE, PAPER_TABLES, ZOO, table_of
from scripts.loss_settings import (
    PAPER_SETTINGS,
    dataset_label,
    ordered_settings,
    setting,
    setting_of,
    setting_tag,
)
from scripts.runs import SETTING_COLUMNS, nullable_integers
from scripts.table_formats import Column, Table, table_files, write_table

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / "results" / "paper_reference.csv"
# What a table keeps of a cell of cells.csv, besides its keys: its numbers and, for a row of selection, the setting
# it selected.
VALUE_COLUMNS = [c for c in CELL_COLUMNS if c not in (*CELL, *SETTING_COLUMNS, "val_run_dir")]


def load_reference(path: Path) -> pd.DataFrame:
    """The paper's published Top-1 accuracies (dataset, loss, alpha, noise, top1) with a `setting` column."""
    reference = pd.read_csv(path)
    reference["setting"] = [
        setting_tag(setting(loss, alpha=None if pd.isna(alpha) else alpha))
        for loss, alpha in zip(reference["loss"], reference["alpha"], strict=True)
    ]
    return reference


def losses_by_noise(
    name: str,
    title: str,
    cells: pd.DataFrame,
    columns: list[Column],
    settings: list[dict],
    noise_type: str,
    reference: pd.DataFrame | None,
    significant: Mapping[tuple, int] | None = None,
    recipe: str | None = None,
    recipe_note: str = "",
    claims: pd.DataFrame | None = None,
) -> Table:
    """The table of loss settings (rows) by column (a dataset at a noise level or noise set), from the cells.csv
    rows of one recipe (default: the paper's).

    Bold goes only to rows chosen without the test set: a row of selection on validation (tce@val), and a loss's
    setting where the table holds no other setting of it (CE, MSE, MAE); never to one of several settings of a
    loss (TCE's α), which would be the α picked on the test set. Among those, the best mean of each column,
    compared as printed (two decimals), is bold (ties all are); the mean is protocol_mean_with_diverged, so that a
    loss whose runs diverge does not win on its lucky seeds. `significant` maps the (recipe, dataset, noise_type,
    noise, noise_variant, setting) whose paired comparison with CE is marked (scripts/paired.py) to the sign of the
    difference (significant_vs_ce: 1 above CE, -1 below, 0 not marked). A row of selection (tce@val) shows the
    parameters of the setting it selected. A cell that `claims` (scripts.claims.load_claims) has a published number
    for gets it (claimed_top1, its selection, source and whether verified) and ours − claimed for our protocol,
    last-epoch and oracle values.
    """
    recipe = recipe or paper_recipe_tag()
    records = _records(name, cells, columns, settings, noise_type, reference, significant or {}, recipe)
    frame = nullable_integers(pd.DataFrame(records), INTEGER_COLUMNS)
    if reference is not None:
        frame["diff_vs_paper"] = frame["protocol_mean"] - frame["paper_top1"]
    eligible = pd.Series(chosen_without_test(settings) * len(columns), index=frame.index)  # columns, then rows
    shown = frame["protocol_mean_with_diverged"].astype(float).round(2).where(eligible)
    column_of = [frame["dataset"], frame["noise"], frame["noise_variant"]]
    frame["best"] = shown.notna() & (shown == shown.groupby(column_of).transform("max"))
    shown_claims = None if claims is None else _add_claims(frame, claims[claims["recipe_tag"] == recipe])
    return Table(name, title, columns, settings, frame, reference is not None, recipe_note, shown_claims)


def _records(name: str, cells: pd.DataFrame, columns: list[Column], settings: list[dict], noise_type: str,
             reference: pd.DataFrame | None, significant: Mapping[tuple, int], recipe: str) -> list[dict]:
    """losses_by_noise's rows of its tidy frame, column after column, each with every setting in order: the
    setting's keys, its cell's numbers from `cells` (a row of selection with the parameters it selected), its mark
    and the paper's number."""
    mine = cells[(cells["noise_type"] == noise_type) & (cells["recipe"] == recipe)].fillna({"noise_variant": ""})
    ours = {(r.dataset, r.noise, r.noise_variant, r.setting): r for r in mine.itertuples()}
    paper = (
        {} if reference is None else {(r.dataset, round(r.noise, 6), r.setting): r.top1 for r in reference.itertuples()}
    )
    records = []
    for column in columns:
        for loss in settings:
            key = setting_tag(loss)
            found = ours.get((column.dataset, column.noise, column.noise_variant, key))
            params = found if loss["rule"] and found is not None else None
            record = {
                "table": name, "recipe": recipe, "dataset": column.dataset, "noise": column.noise,
                "noise_type": noise_type, "noise_variant": column.noise_variant, "setting": key, "loss": loss["name"],
                **{c: getattr(params, c) if params is not None else loss[c] for c in SETTING_COLUMNS[1:]},
                "significant_vs_ce": significant.get(
                    (recipe, column.dataset, noise_type, column.noise, column.noise_variant, key), 0),
                **{c: getattr(found, c) if found is not None else math.nan for c in VALUE_COLUMNS},
            }
            if reference is not None:
                record["paper_top1"] = paper.get((column.dataset, column.noise, key), math.nan)
            records.append(record)
    return records


def chosen_without_test(settings: list[dict]) -> list[bool]:
    """Per setting (a table's row): whether it was chosen without the test set, a row of selection or its loss's
    only setting in the table."""
    losses = Counter(loss["name"] for loss in settings if not loss["rule"])
    return [bool(loss["rule"]) or losses[loss["name"]] == 1 for loss in settings]


def _add_claims(frame: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame | None:
    """Sets each claim of `claims` beside its cell of `frame` (in place); returns the claims placed, None if none."""
    cell = [key for key in CELL if key != "recipe"]  # `frame` and `claims` are of one recipe
    by_cell = {tuple(c[k] for k in cell): c for c in claims.to_dict("records")}
    found = [by_cell.get(tuple(r[k] for k in cell)) for r in frame.to_dict("records")]
    if not any(found):
        return None
    for column, claim_key in (("claimed_top1", "top1"), ("claim_selection", "selection"),
                              ("claim_source", "source"), ("claim_verified", "verified"),
                              ("claim_differs", "differs")):
        frame[column] = [math.nan if c is None else c[claim_key] for c in found]
    # A claim of unknown selection is compared with no value of ours.
    compared = frame["claimed_top1"].where(frame["claim_selection"] != "unknown")
    for ours, column in OURS.items():
        frame[f"diff_{ours}_vs_claimed"] = frame[column] - compared
    return pd.DataFrame([c for c in found if c is not None])


def _columns(cells: pd.DataFrame, datasets: list[str]) -> list[Column]:
    """Every (noise, noise_variant) of `cells` for each dataset, in order."""
    return [
        Column(dataset, noise, noise_variant)
        for dataset in datasets
        for noise, noise_variant in sorted(set(
            cells.loc[cells["dataset"] == dataset, ["noise", "noise_variant"]].itertuples(index=False, name=None)
        ))
    ]


def build_tables(
    aggregation: Aggregation,
    reference: pd.DataFrame,
    significant: Mapping[tuple, int] | None = None,
    claims: pd.DataFrame | None = None,
) -> list[Table]:
    """Every table (scripts/layout.py says which shows a cell): Tables 1 and 2 in the paper's layout (its loss
    rows, any other TCE alpha present and the rows of selection); the zoo table: the paper recipe's uniform-noise
    cells of every loss beyond the paper's, on every dataset where one ran (the paper's datasets first), beside CE's
    and TCE's rows for reference; then one table per other (recipe, dataset, noise type), its columns the noise
    levels or, for human noise, the label sets present; one of another recipe is named and titled with the
    recipe's tag, its caption saying how the recipe differs from the paper's. Every table sets the published
    numbers of `claims` (scripts.claims.load_claims) beside the cells they are for."""
    cells = aggregation.cells.fillna({"noise_variant": ""})
    paper_tag = paper_recipe_tag()
    table = [table_of(r.recipe, r.dataset, r.noise_type, r.loss, paper_tag) for r in cells.itertuples()]
    cells = cells.assign(table=table)
    tables = []
    for name, (title, datasets, noises) in PAPER_TABLES.items():
        present = cells[cells["table"] == name]
        settings = ordered_settings([*PAPER_SETTINGS, *(setting_of(r) for _, r in present.iterrows())])
        columns = [Column(dataset, noise) for dataset in datasets for noise in noises]
        labels = ", ".join(dataset_label(d) for d in datasets)
        tables.append(losses_by_noise(name, f"{title}: {labels}", cells, columns, settings, PAPER_NOISE_TYPE,
                                      reference, significant, claims=claims))
    zoo = cells[cells["table"] == ZOO]
    if len(zoo):
        with_zoo = set(zoo["dataset"])
        datasets = [d for d in PAPER_DATASETS if d in with_zoo] + sorted(with_zoo - set(PAPER_DATASETS))
        beside = cells[(cells["recipe"] == paper_tag) & (cells["noise_type"] == PAPER_NOISE_TYPE)
                       & cells["dataset"].isin(datasets) & cells["loss"].isin(("ce", "tce"))]
        settings = ordered_settings(setting_of(r) for _, r in pd.concat([zoo, beside]).iterrows())
        labels = ", ".join(dataset_label(d) for d in datasets)
        tables.append(losses_by_noise(ZOO, f"Robust losses, uniform noise: {labels}", cells,
                                      _columns(zoo, datasets), settings, PAPER_NOISE_TYPE, None, significant,
                                      claims=claims))
    others = cells[~cells["table"].isin([*PAPER_TABLES, ZOO])]
    groups = sorted(others.groupby(["recipe", "dataset", "noise_type"]), key=lambda g: (g[0][0] != paper_tag,))
    for (recipe, dataset, noise_type), group in groups:
        title = f"{dataset_label(dataset)}, {noise_type} noise"
        note = ""
        if recipe != paper_tag:
            title = f"{title}, recipe {recipe}"
            note = f"Recipe {recipe}: {recipe_caption(aggregation, recipe, {dataset})}."
        settings = ordered_settings(setting_of(r) for _, r in group.iterrows())
        tables.append(losses_by_noise(group["table"].iloc[0], title, cells, _columns(group, [dataset]), settings,
                                      noise_type, None, significant, recipe, note, claims))
    return tables


WRITTEN = ".tables-written"  # in OUT_DIR: the tables the last call wrote there, one file name a line


def _remove_stale(out: Path, written: list[str]) -> None:
    """Removes the table files an earlier call wrote into `out` that this one does not (a table whose runs are
    gone, or left out by --datasets), and records this call's; files it did not write stay."""
    record = out / WRITTEN
    earlier = record.read_text().splitlines() if record.exists() else []
    for name in set(earlier) - set(written):
        (out / Path(name).name).unlink(missing_ok=True)
    record.write_text("".join(f"{name}\n" for name in written))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding run directories")
    parser.add_argument("--out", type=Path, default=Path("results/tables"), help="folder for the tables")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="the paper's values (CSV)")
    parser.add_argument("--claims", type=Path, default=CLAIMS, help="the peers' published numbers (CSV)")
    parser.add_argument("--datasets", nargs="+", help="only the tables of these datasets (default: all)")
    args = parser.parse_args(argv)
    with refusing_bad_claims("tables"):
        claims, out_of_scope = load_claims(args.claims), load_out_of_scope(out_of_scope_beside(args.claims))
    aggregation = aggregate(args.runs)
    print("\n".join([status_report(aggregation), *status_lines(claims, out_of_scope)]), end="\n\n")
    args.out.mkdir(parents=True, exist_ok=True)
    comparison = paired.paired_table(aggregation)
    if args.datasets is not None:
        comparison = comparison[comparison["dataset"].isin(args.datasets)]
    significant = paired.significant(comparison)
    written = []
    for table in build_tables(aggregation, load_reference(args.reference), significant, claims):
        if args.datasets is not None and not set(table.datasets) & set(args.datasets):
            continue
        if table.name in PAPER_TABLES and table.cells[VALUE_COLUMNS].isna().all(axis=None):
            print(f"{table.name}: not written, {args.runs} holds no run of {', '.join(table.datasets)} with the "
                  f"paper's recipe and {PAPER_NOISE_TYPE} noise")
            continue
        print(write_table(table, args.out))
        written += table_files(table.name)
    _remove_stale(args.out, written)
    comparison.to_csv(args.out / "paired.csv", index=False)
    (args.out / "paired.md").write_text(paired.markdown(comparison))
    print(paired.markdown(comparison))
    write_csvs(aggregation, args.out)
    print(f"wrote the tables, paired.csv and .md, and runs.csv, curves.csv, cells.csv to {args.out}")


if __name__ == "__main__":
    main()
