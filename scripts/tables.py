"""The paper's Tables 1 and 2, and the same losses-by-noise layout for other datasets, from run directories.

    python -m scripts.tables --runs RUNS_DIR --out OUT_DIR [--reference results/paper_reference.csv]

writes table1, table2 and one table per other (dataset, noise_type) present, each as .md and .tex (for
people: one cell = our protocol mean ± std, n, the paper's value and ours − paper; the best of ours per
column in bold; "—" where there is no value) and .csv (tidy, one row per cell with every number, including
the last-epoch and oracle values that the human tables leave out). It prints the Markdown tables and copies
runs.csv, curves.csv and cells.csv (scripts/aggregate.py) into OUT_DIR.
"""

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scripts.aggregate import (
    CELL_COLUMNS,
    CELL_KEYS,
    PAPER_SETTINGS,
    aggregate,
    dataset_label,
    format_level,
    nullable_integers,
    ordered_settings,
    setting_key,
    setting_label,
    status_report,
    write_csvs,
)

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / "results" / "paper_reference.csv"
# The paper replaces a proportion of the labels by labels drawn uniformly from all classes (Section 3.3).
PAPER_NOISE_TYPE = "uniform"
PAPER_TABLES = {
    "table1": ("Table 1", ["cifar100"], [0.0, 0.2, 0.4, 0.6, 0.8]),
    "table2": ("Table 2", ["mnist", "cifar10", "svhn"], [0.0, 0.4, 0.8]),
}
# The numbers of a cell, as aggregation computes them.
NUMBER_COLUMNS = [c for c in CELL_COLUMNS if c not in (*CELL_KEYS, "val_run_dir")]


@dataclass
class Table:
    name: str  # the file stem
    title: str
    datasets: list[str]  # column groups, each with one column per noise level
    noises: list[float]
    settings: list[tuple[str, float | None]]  # rows, as (loss, alpha)
    cells: pd.DataFrame  # tidy: one row per (dataset, noise, setting), in the table's reading order
    with_reference: bool


def load_reference(path: Path) -> pd.DataFrame:
    """The paper's published Top-1 accuracies (dataset, loss, alpha, noise, top1) with a `setting` column."""
    reference = pd.read_csv(path)
    reference["setting"] = [
        setting_key(loss, alpha) for loss, alpha in zip(reference["loss"], reference["alpha"], strict=True)
    ]
    return reference


def losses_by_noise(
    name: str,
    title: str,
    cells: pd.DataFrame,
    datasets: list[str],
    noises: list[float],
    settings: list[tuple[str, float | None]],
    noise_type: str,
    reference: pd.DataFrame | None,
) -> Table:
    """The table of loss settings (rows) by noise level (columns, grouped by dataset), from cells.csv rows.

    The best protocol mean of each column, compared as printed (two decimals), is marked best; ties all are.
    """
    ours = {(r.dataset, r.setting, r.noise): r for r in cells[cells["noise_type"] == noise_type].itertuples()}
    paper = (
        {} if reference is None else {(r.dataset, r.setting, round(r.noise, 6)): r.top1 for r in reference.itertuples()}
    )
    records = []
    for dataset in datasets:
        for noise in noises:
            for loss, alpha in settings:
                key = (dataset, setting_key(loss, alpha), noise)
                found = ours.get(key)
                record = {
                    "table": name,
                    "dataset": dataset,
                    "noise": noise,
                    "noise_type": noise_type,
                    "setting": key[1],
                    "loss": loss,
                    "alpha": alpha,
                }
                record.update({c: getattr(found, c) if found is not None else math.nan for c in NUMBER_COLUMNS})
                if reference is not None:
                    record["paper_top1"] = paper.get(key, math.nan)
                records.append(record)
    frame = nullable_integers(pd.DataFrame(records))
    if reference is not None:
        frame["diff_vs_paper"] = frame["protocol_mean"] - frame["paper_top1"]
    shown = frame["protocol_mean"].round(2)
    frame["best"] = shown.notna() & (shown == shown.groupby([frame["dataset"], frame["noise"]]).transform("max"))
    return Table(name, title, datasets, noises, settings, frame, reference is not None)


def build_tables(cells: pd.DataFrame, reference: pd.DataFrame) -> list[Table]:
    """Tables 1 and 2 in the paper's layout, then one table per other (dataset, noise_type) in the cells."""
    tables = []
    for name, (title, datasets, noises) in PAPER_TABLES.items():
        present = cells[cells["dataset"].isin(datasets) & (cells["noise_type"] == PAPER_NOISE_TYPE)]
        labels = ", ".join(dataset_label(d) for d in datasets)
        settings = ordered_settings([*PAPER_SETTINGS, *zip(present["loss"], present["alpha"], strict=True)])
        tables.append(
            losses_by_noise(name, f"{title}: {labels}", cells, datasets, noises, settings, PAPER_NOISE_TYPE, reference)
        )
    paper_datasets = [d for _, datasets, _ in PAPER_TABLES.values() for d in datasets]
    in_paper_tables = cells["dataset"].isin(paper_datasets) & (cells["noise_type"] == PAPER_NOISE_TYPE)
    for (dataset, noise_type), group in cells[~in_paper_tables].groupby(["dataset", "noise_type"]):
        name = dataset if noise_type == PAPER_NOISE_TYPE else f"{dataset}_{noise_type}"
        title = f"{dataset_label(dataset)}, {noise_type} noise"
        noises = sorted(group["noise"].unique().tolist())
        settings = ordered_settings(zip(group["loss"], group["alpha"], strict=True))
        tables.append(losses_by_noise(name, title, cells, [dataset], noises, settings, noise_type, None))
    return tables


@dataclass(frozen=True)
class Dialect:
    """How one output format spells text, bold and the frame around the rows."""

    suffix: str
    escape: Callable[[str], str]
    bold: Callable[[str], str]
    document: Callable[["Table", list[list[str]], str], str]


def render(table: Table, dialect: Dialect) -> str:
    cells = {(r.dataset, r.noise, r.setting): r for r in table.cells.itertuples()}
    body = [
        [dialect.escape(setting_label(loss, alpha))]
        + [
            _cell_text(cells[dataset, noise, setting_key(loss, alpha)], table.with_reference, dialect)
            for dataset in table.datasets
            for noise in table.noises
        ]
        for loss, alpha in table.settings
    ]
    missing = int(table.cells["protocol_mean"].isna().sum())
    footer = f"Missing cells (no protocol value): {missing} of {len(table.cells)}."
    return dialect.document(table, body, footer)


def _cell_text(cell, with_reference: bool, dialect: Dialect) -> str:
    escape = dialect.escape
    notes = []
    if pd.isna(cell.protocol_mean):
        text = escape("—")
    else:
        mean = escape(f"{cell.protocol_mean:.2f}")
        text = dialect.bold(mean) if cell.best else mean
        if pd.notna(cell.protocol_std):
            text += escape(f" ± {cell.protocol_std:.2f}")
        notes.append(f"n={cell.n}")
    if pd.notna(cell.n_diverged) and cell.n_diverged > 0:
        notes.append(f"{cell.n_diverged} diverged")
    if notes:
        text += escape(f" ({', '.join(notes)})")
    if with_reference:
        if pd.isna(cell.paper_top1):
            paper = "paper —"
        elif pd.isna(cell.diff_vs_paper):
            paper = f"paper {cell.paper_top1:.2f}"
        else:
            paper = f"paper {cell.paper_top1:.2f} (Δ {cell.diff_vs_paper:+.2f})".replace("-", "−")
        text += escape(f"; {paper}")
    return text


def _caption(table: Table) -> str:
    caption = (
        "Top-1 test accuracy (%) at the epoch of lowest validation error: mean ± std over n full runs (std when n > 1)."
    )
    if table.with_reference:
        caption += " paper: the published value; Δ: ours − paper."
    return caption + " Bold: our best per column. —: no value."


def _column_labels(table: Table) -> list[str]:
    return [format_level(noise) for _ in table.datasets for noise in table.noises]


def _markdown_document(table: Table, body: list[list[str]], footer: str) -> str:
    header = ["noise (η)"] + [
        f"{dataset_label(dataset)} η={format_level(noise)}" for dataset in table.datasets for noise in table.noises
    ]
    lines = [f"### {_markdown_escape(table.title)}", "", _markdown_escape(_caption(table)), ""]
    lines.append("| " + " | ".join(_markdown_escape(h) for h in header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(row) + " |" for row in body]
    lines += ["", _markdown_escape(footer)]
    return "\n".join(lines) + "\n"


def _latex_document(table: Table, body: list[list[str]], footer: str) -> str:
    width = len(table.noises)
    # A vertical rule after each dataset's columns but the last, as in the tabular's column specification.
    rules = ["|"] * (len(table.datasets) - 1) + [""]
    groups = " & ".join(
        rf"\multicolumn{{{width}}}{{c{rule}}}{{{_latex_escape(dataset_label(d))}}}"
        for d, rule in zip(table.datasets, rules, strict=True)
    )
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_latex_escape(table.title)}. {_latex_escape(_caption(table))}}}",
        r"\begin{tabular}{l|" + "|".join("l" * width for _ in table.datasets) + "}",
        r"\hline",
        rf" & {groups} \\",
        " & ".join([_latex_escape("noise (η)"), *_column_labels(table)]) + r" \\",
        r"\hline",
        *(" & ".join(row) + r" \\" for row in body),
        r"\hline",
        r"\end{tabular}",
        "",
        _latex_escape(footer),
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def _markdown_escape(text: str) -> str:
    return text.replace("|", r"\|")


_LATEX_REPLACEMENTS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",
    "α": r"$\alpha$",
    "η": r"$\eta$",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": r"$-$",
    "—": "---",
}
_LATEX_SPECIAL = re.compile("|".join(map(re.escape, _LATEX_REPLACEMENTS)))


def _latex_escape(text: str) -> str:
    return _LATEX_SPECIAL.sub(lambda match: _LATEX_REPLACEMENTS[match.group()], text)


MARKDOWN = Dialect(".md", _markdown_escape, lambda text: f"**{text}**", _markdown_document)
LATEX = Dialect(".tex", _latex_escape, lambda text: rf"\textbf{{{text}}}", _latex_document)


def write_table(table: Table, out_dir: Path) -> str:
    """Writes the table as .md, .tex and tidy .csv under out_dir; returns the Markdown."""
    for dialect in (MARKDOWN, LATEX):
        (out_dir / f"{table.name}{dialect.suffix}").write_text(render(table, dialect))
    table.cells.to_csv(out_dir / f"{table.name}.csv", index=False)
    return render(table, MARKDOWN)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding run directories")
    parser.add_argument("--out", type=Path, default=Path("results/tables"), help="folder for the tables")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="the paper's values (CSV)")
    parser.add_argument("--datasets", nargs="+", help="only the tables of these datasets (default: all)")
    args = parser.parse_args(argv)
    aggregation = aggregate(args.runs)
    print(status_report(aggregation), end="\n\n")
    args.out.mkdir(parents=True, exist_ok=True)
    for table in build_tables(aggregation.cells, load_reference(args.reference)):
        if args.datasets is None or set(table.datasets) & set(args.datasets):
            print(write_table(table, args.out))
    write_csvs(aggregation, args.out)
    print(f"wrote the tables and runs.csv, curves.csv, cells.csv to {args.out}")


if __name__ == "__main__":
    main()
