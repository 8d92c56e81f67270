"""Paired comparison of every loss setting with CE, over the seeds: is the difference significant?

The full runs of a cell share their noisy labels with the same seed's runs of every other loss (noise_seed = seed),
so the runs of a setting and of CE pair naturally by (seed, noise_seed). Each run contributes its test accuracy at
the protocol's epoch, the one its own cell's validation run picked (scripts/aggregate.py, Aggregation.protocol; a
row of selection such as tce@val pairs the chosen setting's runs); a pair's difference is setting − CE. Per table
column (recipe, dataset, noise type, noise, noise set) and setting other than CE:

- n_pairs, mean_diff, the 95% Student-t interval of the mean difference (ci_low, ci_high) and the two-sided paired
  t-test's p_value; empty with fewer than 2 pairs, and the interval and p_value are empty when every difference is
  the same (zero spread: the t statistic is undefined, not infinite);
- p_exact: the two-sided exact sign-flip permutation test of the mean difference, over all 2^n sign assignments
  (n <= 12; above, a Monte Carlo estimate from 100,000 draws of a fixed seed). It assumes no normality, and it
  cannot go below 2 / 2^n: 0.0625 at n = 5, so at 5 seeds no exact test reaches 0.05;
- p_holm: p_value adjusted by Holm's method within the table column, the settings compared with CE being the
  family. The tables' † marks p_holm < 0.05.

A paired test removes what the seed does to both runs of a pair (the noisy labels, and much of the split's luck),
so it is far stronger than comparing mean ± std of independent samples.
"""

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from scripts.aggregate import CELL_KEYS, Aggregation

BASELINE = "ce"
CONDITION = ["recipe", "dataset", "noise_type", "noise", "noise_variant"]
COLUMNS = [*CONDITION, "setting", "baseline", "n_pairs", "mean_diff", "ci_low", "ci_high", "p_value", "p_exact",
           "p_holm"]
LEVEL = 0.95
SIGNIFICANCE = 0.05
EXACT_PAIRS = 12  # up to 2^12 sign assignments are enumerated; more are sampled
MONTE_CARLO_DRAWS = 100_000


def paired_statistics(differences: list[float]) -> dict:
    """n_pairs, mean_diff, ci_low, ci_high, p_value and p_exact of paired differences (NaN below 2 pairs)."""
    n = len(differences)
    row = {"n_pairs": n, "mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
           "p_exact": math.nan}
    if n < 2:
        return row
    values = np.asarray(differences, dtype=float)
    mean, spread = values.mean(), values.std(ddof=1) / math.sqrt(n)
    row.update(mean_diff=float(mean), p_exact=sign_flip_p(values))
    if spread > 0:
        half = stats.t.ppf(0.5 + LEVEL / 2, n - 1) * spread
        row.update(ci_low=float(mean - half), ci_high=float(mean + half),
                   p_value=float(2 * stats.t.sf(abs(mean / spread), n - 1)))
    return row


def sign_flip_p(differences: np.ndarray) -> float:
    """The two-sided sign-flip permutation p of the mean of `differences`: the share of sign assignments whose
    mean is at least as far from 0 as the observed one (exact up to EXACT_PAIRS pairs, else (k + 1) / (draws + 1)
    over MONTE_CARLO_DRAWS random assignments of seed 0)."""
    n = len(differences)
    observed = abs(differences.sum())
    tolerance = 1e-9 * max(1.0, float(np.abs(differences).sum()))  # sums of the same values in another order
    if n <= EXACT_PAIRS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        return float(np.mean(np.abs(signs @ differences) >= observed - tolerance))
    signs = np.random.default_rng(0).choice((1.0, -1.0), size=(MONTE_CARLO_DRAWS, n))
    extreme = int(np.sum(np.abs(signs @ differences) >= observed - tolerance))
    return (extreme + 1) / (MONTE_CARLO_DRAWS + 1)


def holm(p_values: pd.Series) -> pd.Series:
    """Holm's step-down adjustment of a family of p-values; NaN ones are not part of the family and stay NaN."""
    known = p_values.dropna().sort_values(kind="stable")
    m = len(known)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * known.to_numpy()))
    return pd.Series(adjusted, index=known.index).reindex(p_values.index)


def paired_table(aggregation: Aggregation) -> pd.DataFrame:
    """One row per (cell, setting other than CE) whose column has CE full runs (see the module docstring)."""
    accuracies = aggregation.protocol
    rows = []
    for _, cell in aggregation.cells[aggregation.cells["setting"] != BASELINE].iterrows():
        condition = {k: cell[k] for k in CONDITION}
        baseline = accuracies.get(_key(condition, BASELINE))
        if baseline is None:
            continue
        runs = accuracies.get(_key(condition, cell["setting"]), {})
        differences = [runs[seeds] - baseline[seeds] for seeds in sorted(runs.keys() & baseline.keys())]
        rows.append({**condition, "setting": cell["setting"], "baseline": BASELINE, **paired_statistics(differences)})
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"n_pairs": "Int64"})
    if len(table):
        table["p_holm"] = table.groupby(CONDITION, dropna=False, sort=False)["p_value"].transform(holm)
    return table


def _key(condition: dict, setting: str) -> tuple:
    """The cell key of Aggregation.protocol."""
    return tuple({**condition, "setting": setting}[k] for k in CELL_KEYS)


def significant(paired: pd.DataFrame) -> set[tuple]:
    """(recipe, dataset, noise_type, noise, noise_variant, setting) of the comparisons with p_holm < SIGNIFICANCE."""
    return {tuple(r[k] for k in [*CONDITION, "setting"]) for _, r in paired.iterrows() if _significant(r)}


def _significant(comparison) -> bool:
    return bool(comparison["p_holm"] < SIGNIFICANCE)  # False for NaN


DISPLAY_HEADER = ["recipe", "dataset", "noise", "setting", "n", "mean diff", "95% interval", "p (t)", "p (Holm)",
                  "p (exact)"]


def display_rows(paired: pd.DataFrame) -> list[list[str]]:
    """paired.csv for people, one list of strings per comparison (DISPLAY_HEADER): the mean difference marked †
    where p_holm < 0.05, and "—" where a number is undefined."""
    rows = []
    for _, r in paired.iterrows():
        noise = r["noise_variant"] or f"{r['noise_type']} {r['noise']:g}"
        interval = "—" if pd.isna(r["ci_low"]) else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
        mean = "—" if pd.isna(r["mean_diff"]) else f"{r['mean_diff']:+.2f}" + (" †" if _significant(r) else "")
        p_values = ["—" if pd.isna(r[k]) else f"{r[k]:.3g}" for k in ("p_value", "p_holm", "p_exact")]
        rows.append([r["recipe"], r["dataset"], noise, r["setting"], str(r["n_pairs"]), mean, interval, *p_values])
    return rows


CAPTION = ("Test accuracy at the protocol's epoch, setting − CE, paired by seed over the full runs: mean difference, "
           "95% Student-t interval, two-sided paired t-test, the same p adjusted by Holm's method within the column "
           "(dataset, noise type and level), and the exact sign-flip permutation test. †: Holm-adjusted p < 0.05; it "
           "rests on the t-test's normality assumption, since an exact test over n pairs cannot go below 2/2^n "
           "(0.0625 at n = 5). — with zero spread or fewer than 2 pairs.")


def markdown(paired: pd.DataFrame) -> str:
    rows = display_rows(paired) or [["—"] * 4 + ["0"] + ["—"] * 5]
    lines = ["### Paired comparison with CE", "", CAPTION, "", "| " + " | ".join(DISPLAY_HEADER) + " |",
             "|" + "---|" * len(DISPLAY_HEADER), *("| " + " | ".join(row) + " |" for row in rows)]
    return "\n".join(lines) + "\n"
