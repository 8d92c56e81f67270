"""One page for a runs directory: the tables, the paired comparison, the figures and the runs that are not complete.

    python -m scripts.report --runs RUNS_DIR --out results/report.html

A single static HTML file, the figures embedded as PNG (data URIs), no script and no server: it opens in any
browser, and it can be mailed or attached to a review as it is. Tables with no protocol value at all are left out
(the paper's Tables 1 and 2 before any of their runs exist, say). A table of every noise condition says what each
noise is (its realized rate and fingerprint); per recipe with published numbers (results/claims.csv), a scatter of
claimed against ours and the claims that no run has a value for yet; the recipes found, the runs that are not
complete and what the protocol left out are listed, as `make tables` prints them. Runs trained with detect=true
add the label-error detection tables, ROC curves and histograms; every run adds its signed calibration.
"""

import argparse
import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from data import FINGERPRINT_KEYS
from experiments.lifecycle import COMPLETE
from experiments.provenance import git_commit
from scripts import calibration, detect, paired, table_formats, tables
from scripts.aggregate import Aggregation, aggregate, noise_table, recipe_lines
from scripts.claims import beside_ours, load_claims, load_out_of_scope, refusing_bad_claims, status_lines
from scripts.detection_figures import detection_runs, plot_detection
from scripts.figures import all_figures, plot_claimed_vs_ours
from scripts.runs import FOUND_STATUSES, NOISE_COLUMNS

STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0 1.5em; }
.muted { color: #666; }
"""


DETECTION_CAPTION = (
    "Which training labels are wrong (python -m scripts.detect): each score's AUROC, AP and precision at the true "
    "count against the known flips, each clean-label-free rule's F1 beside the F1 of flagging everything; in-sample "
    "sources score labels the network trained on, the holdout source labels it never saw. Then the test set's signed "
    "calibration (python -m scripts.calibration): over- and under-confidence, and temperature scaling fitted on the "
    "validation run's holdout (plain on its noisy labels, forward-corrected through the noise matrix, and the "
    "clean-label oracle)."
)


CLAIMS_CAPTION = (
    "Each recipe's published numbers (results/claims.csv) against ours: a point per cell, the claimed top-1 (x) "
    "against our mean top-1 selected as the claim was (y: at the last epoch, at the best test epoch, or at the "
    "epoch of best validation accuracy), coloured by loss; hollow where the claim differs from our cell in a way no "
    "setting of ours expresses (the tables print how, beside Δ); the dashed line is y = x. A claim of unknown "
    "selection is compared with none of ours."
)


def figure_png(fig: plt.Figure) -> str:
    """The figure as a base64 PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def paired_html(comparison: pd.DataFrame) -> str:
    if comparison.empty:
        return "<p class='muted'>No setting has full runs next to CE's in the same cell.</p>"
    body = [[html.escape(cell) for cell in row] for row in paired.display_rows(comparison)]
    return table_formats.html_table(paired.DISPLAY_HEADER, body)


def incomplete_html(aggregation: Aggregation) -> str:
    runs = [r for r in aggregation.runs if r.status != COMPLETE]
    if not runs:
        return "<p>Every run is complete.</p>"
    body = [[html.escape(r.status), html.escape(r.run_dir), html.escape(r.reason)] for r in runs]
    return table_formats.html_table(["status", "run directory", "reason"], body)


NOISE_CAPTION = (
    "Per noise condition, the mean over its runs of the realized rate (the share of wrong training labels) and the "
    "fingerprint of the noisy labels (holdout included): the lowest and highest per-class rate of wrong labels; the "
    "share of a class's flips that go to its most frequent target (mean over the classes with flips); the share of "
    "all flips that go to the single most frequent target class; on CIFAR-100, the share of flips that stay within "
    "the true superclass. Uniform noise spreads its flips (shares near 1/(C-1)); class-conditional noise sends "
    "them to one target; human noise (CIFAR-N) keeps many within the superclass. —: not recorded (older runs) or "
    "nothing flipped."
)


def noise_html(noise: pd.DataFrame) -> str:
    if noise.empty:
        return "<p class='muted'>No runs.</p>"
    header = ["dataset", "noise", "runs", "realized", *(key.replace("_", " ") for key in FINGERPRINT_KEYS)]
    body = []
    for _, row in noise.iterrows():
        condition = " ".join(filter(None, [row["noise_type"], row["noise_variant"], f"{row['noise']:g}"]))
        figures = ["—" if pd.isna(row[c]) else f"{100 * row[c]:.1f} %" for c in NOISE_COLUMNS]
        body.append([html.escape(str(row["dataset"])), html.escape(condition), str(row["runs"]), *figures])
    return table_formats.html_table(header, body)


def claims_html(claims: pd.DataFrame, cells: pd.DataFrame) -> str:
    """Published numbers beside ours, per recipe preset that has claims and runs: the scatter of claimed against
    ours, and the claims still without a value of ours; a line per recipe whose claims have no runs at all."""
    joined = beside_ours(claims, cells)
    parts, idle = [], []
    for preset, group in joined.groupby("recipe", sort=True):
        fill = f"python -m scripts.claims --missing {preset} prints the sweep that fills them and its cost"
        if not group["has_runs"].any():
            idle.append(f"recipe={preset}: {len(group)} claims, no runs yet ({fill}).")
            continue
        both = group[group["ours"].notna()]
        parts.append(f"<h3>recipe={html.escape(preset)}</h3>")
        parts.append(f"<p>{len(group)} claims: {len(both)} beside a value of ours that selects the same way, "
                     f"{int((group['has_runs'] & group['ours'].isna()).sum())} with runs but no such value (selection "
                     f"unknown, or no run yet has it), {int((~group['has_runs']).sum())} without runs ({fill}).</p>")
        fig = plot_claimed_vs_ours(group, f"recipe={preset}")
        if fig is not None:
            parts.append(f"<img alt='claimed against ours, recipe={html.escape(preset)}' src='{figure_png(fig)}'>")
        waiting = group[group["ours"].isna()]
        if not waiting.empty:
            header = ["dataset", "noise", "loss", "params", "claimed", "selection", "runs", "differs"]
            body = [[html.escape(str(v)) for v in (r.dataset, f"{r.noise_type} {r.noise:g} {r.noise_set}".strip(),
                                                    r.loss, r.params or "ours", f"{r.top1:.2f}", r.selection,
                                                    "yes" if r.has_runs else "none", r.differs or "—")]
                    for r in waiting.itertuples()]
            parts.append(f"<details><summary>{len(waiting)} claims without a value of ours</summary>\n"
                         f"{table_formats.html_table(header, body)}\n</details>")
    if idle:
        parts.append(lines_html(idle))
    return "\n".join(parts)


def analysis_html(aggregation: Aggregation) -> list[str]:
    """The label-error detection tables and figures (runs trained with detect=true) and the calibration tables."""
    frame, left_out = detect.detection_frame(aggregation)
    parts = [f"<p>{html.escape(DETECTION_CAPTION)}</p>"]
    if frame.empty:
        parts.append("<p class='muted'>No run recorded its training dynamics (train with detect=true).</p>")
    else:
        parts += [_table_html(*table) for table in detect.display_tables(frame, detect.paired_frame(frame))]
        parts += [f"<img alt='detection' src='{figure_png(plot_detection(condition, members))}'>"
                  for condition, members in detection_runs(aggregation.runs_table, aggregation.cells).items()]
        parts += [lines_html([f"left out: {line}" for line in left_out])] if left_out else []
    calibrated = calibration.calibration_frame(aggregation)
    if not calibrated.empty:
        scaling = calibration.temperature_frame(aggregation)
        parts += [_table_html(*table) for table in calibration.display_tables(calibrated, scaling)]
    return parts


def _table_html(caption: str, header: list[str], rows: list[list[str]]) -> str:
    body = [[html.escape(cell) for cell in row] for row in rows]
    return f"<p>{html.escape(caption)}</p>\n{table_formats.html_table(header, body)}"


def lines_html(lines: list[str]) -> str:
    return "<ul>\n" + "\n".join(f"<li>{html.escape(line.strip())}</li>" for line in lines) + "\n</ul>"


def render(runs_dir: Path) -> str:
    """The report of every run below `runs_dir`, as one HTML document."""
    aggregation = aggregate(runs_dir)
    comparison = paired.paired_table(aggregation)
    significant = paired.significant(comparison)
    claims, out_of_scope = load_claims(), load_out_of_scope()
    built = tables.build_tables(aggregation, tables.load_reference(tables.DEFAULT_REFERENCE), significant, claims)
    shown = [t for t in built if t.cells["protocol_mean"].notna().any()]
    counts = {status: sum(r.status == status for r in aggregation.runs) for status in FOUND_STATUSES}
    parts = [
        f"<h1>Runs under {html.escape(str(runs_dir))}</h1>",
        f"<p class='muted'>Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from commit "
        f"{html.escape(str(git_commit()))}; {len(aggregation.runs)} run directories: "
        + ", ".join(f"{n} {label}" for label, n in counts.items()) + ".</p>",
        "<h2>Tables</h2>",
        *(table_formats.render(t, table_formats.HTML) for t in shown),
        *([] if shown else ["<p class='muted'>No cell has a protocol value yet.</p>"]),
        "<h2>What each noise is</h2>",
        f"<p>{html.escape(NOISE_CAPTION)}</p>",
        noise_html(noise_table(aggregation)),
        "<h2>Paired comparison with CE</h2>",
        f"<p>{html.escape(paired.CAPTION)}</p>",
        paired_html(comparison),
        "<h2>Label-error detection and calibration</h2>",
        *analysis_html(aggregation),
        "<h2>Figures</h2>",
    ]
    for stem, draw, missing in all_figures(aggregation):
        fig = draw()
        if fig is None:
            parts.append(f"<p class='muted'>{html.escape(stem)}: not drawn, {html.escape(missing)}.</p>")
        else:
            parts.append(f"<h3>{html.escape(stem)}</h3>\n<img alt='{html.escape(stem)}' src='{figure_png(fig)}'>")
    parts += ["<h2>Published numbers beside ours</h2>",
              f"<p>{html.escape(CLAIMS_CAPTION)}</p>", claims_html(claims, aggregation.cells),
              "<h2>Recipes</h2>", lines_html(recipe_lines(aggregation) + status_lines(claims, out_of_scope)),
              "<h2>Runs that are not complete</h2>", incomplete_html(aggregation),
              "<h2>Left out by the protocol</h2>", lines_html(aggregation.problems or ["Nothing."]),
              "<h2>Identical copies counted once</h2>", lines_html(aggregation.merged or ["None."])]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n<title>TCE runs: "
            f"{html.escape(str(runs_dir))}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding run directories")
    parser.add_argument("--out", type=Path, default=Path("results/report.html"), help="the HTML file to write")
    args = parser.parse_args(argv)
    with refusing_bad_claims("report"):
        page = render(args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
