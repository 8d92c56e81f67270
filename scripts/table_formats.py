"""A table of results (Table, built by scripts/tables.py) as people read it: Markdown, LaTeX and HTML, one cell per
(row, column) with our protocol value, its spread and notes, the paper's and the claimed numbers beside it, and a
caption that says what each mark means."""

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scripts import paired
from scripts.claims import OURS, SELECTIONS
from scripts.loss_settings import dataset_label, format_level, parameter_text, setting_label, setting_of, setting_tag


@dataclass(frozen=True)
class Column:
    """A column of a table: a dataset at a noise level, or with a set of human labels (noise_variant)."""

    dataset: str
    noise: float
    noise_variant: str = ""

    def label(self) -> str:
        return self.noise_variant or f"η={format_level(self.noise)}"


@dataclass
class Table:
    name: str  # the file stem
    title: str
    columns: list[Column]  # grouped by dataset
    settings: list[dict]  # rows (scripts.loss_settings.setting)
    cells: pd.DataFrame  # tidy: one row per (column, setting), in the table's reading order
    with_reference: bool
    recipe_note: str = ""  # for a recipe other than the paper's: how it differs
    claims: pd.DataFrame | None = None  # the published numbers of its cells (scripts/claims.py), when it has any

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(column.dataset for column in self.columns))

    @property
    def differs_marks(self) -> dict[str, str]:
        """Each way a claim of the table differs from our cell (its `differs`), in reading order, with the mark
        that the cells print beside the claim and the caption explains: ‡1, ‡2, ..."""
        if self.claims is None:
            return {}
        texts = [t for t in self.cells["claim_differs"] if isinstance(t, str) and t]
        return {text: f"‡{i}" for i, text in enumerate(dict.fromkeys(texts), start=1)}


@dataclass(frozen=True)
class Dialect:
    """How one output format spells text, bold and the frame around the rows."""

    suffix: str
    escape: Callable[[str], str]
    bold: Callable[[str], str]
    document: Callable[["Table", list[list[str]], str], str]


def render(table: Table, dialect: Dialect) -> str:
    cells = {(r.dataset, r.noise, r.noise_variant, r.setting): r for r in table.cells.itertuples()}
    body = [
        [dialect.escape(setting_label(loss))]
        + [
            _cell_text(cells[c.dataset, c.noise, c.noise_variant, setting_tag(loss)], table, dialect)
            for c in table.columns
        ]
        for loss in table.settings
    ]
    missing = int(table.cells["protocol_mean"].isna().sum())
    footer = f"Missing cells (no protocol value): {missing} of {len(table.cells)}."
    return dialect.document(table, body, footer)


def _cell_text(cell, table: Table, dialect: Dialect) -> str:
    escape = dialect.escape
    notes = []
    if pd.isna(cell.protocol_mean):
        text = escape("—")
    else:
        mean = escape(f"{cell.protocol_mean:.2f}")
        text = (dialect.bold(mean) if cell.best else mean) + (
            escape(" " + paired.mark(cell.significant_vs_ce)) if cell.significant_vs_ce else "")
        if pd.notna(cell.protocol_std):
            text += escape(f" ± {cell.protocol_std:.2f}")
        notes.append(f"n={cell.n}")
    if isinstance(cell.selected, str):
        notes.append(parameter_text(setting_of({**cell._asdict(), "setting": cell.selected})))
    if pd.notna(cell.n_diverged) and cell.n_diverged > 0:
        diverged = f"{cell.n_diverged} diverged"
        if pd.notna(cell.protocol_mean_with_diverged):
            diverged += f": {cell.protocol_mean_with_diverged:.2f} counting them at chance"
        notes.append(diverged)
    if isinstance(cell.note, str):
        notes.append(cell.note)
    if notes:
        text += escape(f" ({', '.join(notes)})")
    if table.with_reference:
        if pd.isna(cell.paper_top1):
            paper = "paper —"
        elif pd.isna(cell.diff_vs_paper):
            paper = f"paper {cell.paper_top1:.2f}"
        else:
            paper = f"paper {cell.paper_top1:.2f} (Δ {cell.diff_vs_paper:+.2f})".replace("-", "−")
        text += escape(f"; {paper}")
    if table.claims is not None and pd.notna(cell.claimed_top1):
        text += escape(_beside_claim(cell, table.differs_marks))
    return text


def _beside_claim(cell, differs_marks: dict[str, str]) -> str:
    """E.g. "; last 67.89, oracle 76.90; claimed 77.69 ‡1 (Δ protocol −8.00, last −9.80, oracle −0.79)": our
    values that the protocol's leaves out, the published one with the mark of how it differs from our cell (the
    caption says), and ours − published for each of ours that is known; a claim of unknown selection has no Δ."""
    def number(value: float) -> str:
        return "—" if pd.isna(value) else f"{value:.2f}"

    ours = f"last {number(cell.last_epoch_mean)}, oracle {number(cell.oracle_best_test_mean)}"
    claimed = f"claimed {cell.claimed_top1:.2f}"
    if isinstance(cell.claim_differs, str) and cell.claim_differs:
        claimed += f" {differs_marks[cell.claim_differs]}"
    deltas = ", ".join(f"{name} {getattr(cell, f'diff_{name}_vs_claimed'):+.2f}" for name in OURS
                       if pd.notna(getattr(cell, f"diff_{name}_vs_claimed")))
    if cell.claim_selection == "unknown":
        claimed += " (selection unknown: no Δ)"
    elif deltas:
        claimed += f" (Δ {deltas})"
    return f"; {ours}; {claimed}".replace("-", "−")


def _caption(table: Table) -> str:
    caption = (
        "Top-1 test accuracy (%) at the epoch of lowest validation error: mean ± std over n full runs (std when n > 1)."
    )
    if table.with_reference:
        caption += " paper: the published value; Δ: ours − paper."
    caption += (" Bold: our best per column among the rows chosen without the test set (a loss's only setting, a row"
                " of selection on validation; never one of several settings of a loss), diverged runs counted at"
                " chance accuracy. —: no value.")
    if any(loss["rule"] for loss in table.settings):
        caption += (" @val: the setting of the loss with the best validation accuracy in the column; @val-dataset:"
                    " the one with the best mean validation accuracy over the dataset's noise levels (its parameters"
                    " in brackets).")
    if table.cells["significant_vs_ce"].any():
        caption += (" †+, †−: above or below CE (two-sided), paired t-test over at least 3 seeds, diverged runs at"
                    " chance, Holm-adjusted p < 0.05 within its family (paired.csv): TCE's rows of selection against CE"
                    " across all of the table's columns (confirmatory), every other row of the table (exploratory);"
                    " it rests on normality: an exact test over n seeds cannot go below p = 2/2^n, 0.0625 at n = 5.")
    if table.claims is not None:
        caption += (" last, oracle: our mean test accuracy at each run's last epoch and at its best test epoch (which"
                    " peeks at the test set); claimed: the published value; Δ: ours − claimed. "
                    + " ".join(_claim_source(claim) for claim in
                               table.claims.drop_duplicates(["source", "selection", "read_in"]).to_dict("records")))
        if table.differs_marks:
            caption += " How a claim differs from our cell, as far as no setting of ours expresses it: " + " ".join(
                f"{mark} {text}." for text, mark in table.differs_marks.items())
    if table.recipe_note:
        caption += f" {table.recipe_note}"
    return caption


def _claim_source(claim: dict) -> str:
    """The caption's sentence on a source of claims: who claims, how the number was selected, which value of ours
    selects the same way, and whether the number was checked against the paper."""
    words, ours = SELECTIONS[claim["selection"]]
    unverified = "" if claim["verified"] else f" (not verified against the source: quoted in {claim['read_in']})"
    compared = "none of ours" if ours is None else f"our {ours}"
    return f"Claimed by {claim['source']} for recipe={claim['recipe']} {words}: compare it with {compared}{unverified}."


def _header(table: Table) -> list[str]:
    return ["noise (η)"] + [f"{dataset_label(c.dataset)} {c.label()}" for c in table.columns]


def _markdown_document(table: Table, body: list[list[str]], footer: str) -> str:
    header = _header(table)
    lines = [f"### {_markdown_escape(table.title)}", "", _markdown_escape(_caption(table)), ""]
    lines.append("| " + " | ".join(_markdown_escape(h) for h in header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(row) + " |" for row in body]
    lines += ["", _markdown_escape(footer)]
    return "\n".join(lines) + "\n"


def _latex_document(table: Table, body: list[list[str]], footer: str) -> str:
    widths = [sum(c.dataset == d for c in table.columns) for d in table.datasets]
    # A vertical rule after each dataset's columns but the last, as in the tabular's column specification.
    rules = ["|"] * (len(table.datasets) - 1) + [""]
    groups = " & ".join(
        rf"\multicolumn{{{width}}}{{c{rule}}}{{{_latex_escape(dataset_label(d))}}}"
        for d, width, rule in zip(table.datasets, widths, rules, strict=True)
    )
    labels = [c.noise_variant or format_level(c.noise) for c in table.columns]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_latex_escape(table.title)}. {_latex_escape(_caption(table))}}}",
        r"\begin{tabular}{l|" + "|".join("l" * width for width in widths) + "}",
        r"\hline",
        rf" & {groups} \\",
        " & ".join([_latex_escape("noise (η)"), *map(_latex_escape, labels)]) + r" \\",
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


def html_table(header: list[str], body: list[list[str]]) -> str:
    """An HTML table of the plain-text `header` and the `body` cells, which are HTML already (escaped)."""
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    rows += ["<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in body]
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    """A Markdown table of plain-text cells (a script's printout; Markdown escaping is the tables' own)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body]) + "\n"


def _html_document(table: Table, body: list[list[str]], footer: str) -> str:
    return (f"<h3>{html.escape(table.title)}</h3>\n<p>{html.escape(_caption(table))}</p>\n"
            f"{html_table(_header(table), body)}\n<p>{html.escape(footer)}</p>\n")


MARKDOWN = Dialect(".md", _markdown_escape, lambda text: f"**{text}**", _markdown_document)
LATEX = Dialect(".tex", _latex_escape, lambda text: rf"\textbf{{{text}}}", _latex_document)
HTML = Dialect(".html", html.escape, lambda text: f"<b>{text}</b>", _html_document)


def table_files(name: str) -> list[str]:
    """The files write_table writes for the table `name`: its .md, .tex and tidy .csv."""
    return [f"{name}{dialect.suffix}" for dialect in (MARKDOWN, LATEX)] + [f"{name}.csv"]


def write_table(table: Table, out_dir: Path) -> str:
    """Writes the table's table_files under out_dir; returns the Markdown."""
    markdown, latex, tidy = (out_dir / name for name in table_files(table.name))
    markdown.write_text(render(table, MARKDOWN))
    latex.write_text(render(table, LATEX))
    table.cells.to_csv(tidy, index=False)
    return render(table, MARKDOWN)
