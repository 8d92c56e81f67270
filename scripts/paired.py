"""Paired comparison of every loss setting with CE, over the seeds: is the gain significant at 5 seeds?

The full runs of a cell share their noisy labels with the same seed's runs of every other loss (noise_seed = seed),
so the runs of a setting and of CE pair naturally by (seed, noise_seed). Each run contributes its test accuracy at
the protocol's epoch, the one its own cell's validation run picked (scripts/aggregate.py); a pair's difference is
setting − CE. Per cell (dataset, noise type, noise, noise set) and setting other than CE:

    n_pairs, mean_diff, the 95% Student-t interval of the mean difference (ci_low, ci_high) and the two-sided
    paired t-test's p_value; empty with fewer than 2 pairs (and, with zero spread, the interval is the mean and
    p_value 0, or 1 when every difference is 0).

A paired test removes what the seed does to both runs of a pair (the noisy labels, and much of the split's luck),
so it is far stronger than comparing mean ± std of independent samples.
"""

import math

import numpy as np
import pandas as pd
from scipy import stats

from scripts.aggregate import Aggregation

BASELINE = "ce"
CONDITION = ["dataset", "noise_type", "noise", "noise_set"]
COLUMNS = [*CONDITION, "setting", "baseline", "n_pairs", "mean_diff", "ci_low", "ci_high", "p_value"]
LEVEL = 0.95


def protocol_accuracies(aggregation: Aggregation) -> dict[tuple, dict[tuple, float]]:
    """For each cell (CONDITION + setting), each complete full run's test accuracy at the cell's protocol epoch,
    by (seed, noise_seed)."""
    best = {
        (*(r[k] for k in CONDITION), r["setting"]): r["best_epoch"]
        for _, r in aggregation.cells.fillna({"noise_set": ""}).iterrows()
        if pd.notna(r["best_epoch"])
    }
    found: dict[tuple, dict[tuple, float]] = {}
    for run in aggregation.runs:
        if run.status != "complete" or run.identity["holdout"] != 0:
            continue
        key = (*(run.identity[k] for k in CONDITION), run.identity["setting"])
        epoch = best.get(key)
        if epoch is not None and epoch <= len(run.metrics):
            seeds = (run.identity["seed"], run.identity["noise_seed"])
            found.setdefault(key, {})[seeds] = float(run.metrics["test_acc"].iloc[int(epoch) - 1])
    return found


def paired_statistics(differences: list[float]) -> dict:
    """n_pairs, mean_diff, ci_low, ci_high and p_value of paired differences (NaN below 2 pairs)."""
    n = len(differences)
    row = {"n_pairs": n, "mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    if n < 2:
        return row
    values = np.asarray(differences, dtype=float)
    mean, spread = values.mean(), values.std(ddof=1) / math.sqrt(n)
    if spread == 0:
        return {**row, "mean_diff": mean, "ci_low": mean, "ci_high": mean, "p_value": 0.0 if mean else 1.0}
    half = stats.t.ppf(0.5 + LEVEL / 2, n - 1) * spread
    p_value = 2 * stats.t.sf(abs(mean / spread), n - 1)
    return {**row, "mean_diff": mean, "ci_low": mean - half, "ci_high": mean + half, "p_value": float(p_value)}


def paired_table(aggregation: Aggregation) -> pd.DataFrame:
    """One row per (cell, setting other than CE) whose condition has CE full runs (see the module docstring)."""
    accuracies = protocol_accuracies(aggregation)
    cells = aggregation.cells.fillna({"noise_set": ""})
    rows = []
    for _, cell in cells[cells["setting"] != BASELINE].iterrows():
        condition = tuple(cell[k] for k in CONDITION)
        baseline = accuracies.get((*condition, BASELINE))
        if baseline is None:
            continue
        runs = accuracies.get((*condition, cell["setting"]), {})
        differences = [runs[seeds] - baseline[seeds] for seeds in sorted(runs.keys() & baseline.keys())]
        rows.append({**dict(zip(CONDITION, condition, strict=True)), "setting": cell["setting"],
                     "baseline": BASELINE, **paired_statistics(differences)})
    return pd.DataFrame(rows, columns=COLUMNS).astype({"n_pairs": "Int64"})


def excludes_zero(comparison) -> bool:
    """Whether a comparison's (a row of paired_table) interval excludes 0; False without an interval."""
    return bool(comparison["ci_low"] > 0 or comparison["ci_high"] < 0)


def significant(paired: pd.DataFrame) -> set[tuple]:
    """(dataset, noise_type, noise, noise_set, setting) of the comparisons whose interval excludes 0."""
    return {tuple(r[k] for k in [*CONDITION, "setting"]) for _, r in paired.iterrows() if excludes_zero(r)}


DISPLAY_HEADER = ["dataset", "noise", "setting", "n", "mean diff", "95% interval", "p"]


def display_rows(paired: pd.DataFrame) -> list[list[str]]:
    """paired.csv for people, one list of strings per comparison (DISPLAY_HEADER): the mean difference marked †
    where its interval excludes 0, and "—" where there are fewer than 2 pairs."""
    rows = []
    for _, r in paired.iterrows():
        noise = r["noise_set"] or f"{r['noise_type']} {r['noise']:g}"
        if pd.isna(r["mean_diff"]):
            numbers = ["—", "—", "—"]
        else:
            mark = " †" if excludes_zero(r) else ""
            interval = f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
            numbers = [f"{r['mean_diff']:+.2f}{mark}", interval, f"{r['p_value']:.3g}"]
        rows.append([r["dataset"], noise, r["setting"], str(r["n_pairs"]), *numbers])
    return rows


CAPTION = ("Test accuracy at the protocol's epoch, setting − CE, paired by seed over the full runs: mean difference, "
           "95% Student-t interval and two-sided paired t-test. †: the interval excludes 0.")


def markdown(paired: pd.DataFrame) -> str:
    rows = display_rows(paired) or [["—", "—", "—", "0", "—", "—", "—"]]
    lines = ["### Paired comparison with CE", "", CAPTION, "", "| " + " | ".join(DISPLAY_HEADER) + " |",
             "|" + "---|" * len(DISPLAY_HEADER), *("| " + " | ".join(row) + " |" for row in rows)]
    return "\n".join(lines) + "\n"
