"""Paired comparison of every loss setting with CE, over the seeds: is the difference significant?

The full runs of a cell share their noisy labels with the same seed's runs of every other loss (noise_seed = seed),
so the runs of a setting and of CE pair naturally by (seed, noise_seed). Each run contributes its test accuracy at
the protocol's epoch, the one its own cell's validation run picked (scripts/aggregate.py, CellAccuracies; a row of
selection such as tce@val pairs the chosen setting's runs); a diverged full run contributes chance accuracy
(100 / classes), as protocol_mean_with_diverged counts it, so that a loss is never paired over its lucky seeds
alone. A pair's difference is setting − CE, taken in whole test images (an accuracy is a count of correct test
images: equal differences are equal exactly, never by float rounding), and reported in percent. Per table column
(recipe, dataset, noise type, noise, noise set) and setting other than CE:

- n_pairs, and of them n_diverged_setting and n_diverged_baseline, the pairs with a diverged run;
- mean_diff, the 95% Student-t interval of the mean difference (ci_low, ci_high) and the two-sided paired t-test's
  p_value; empty with fewer than 2 pairs, and the interval and p_value are empty when every difference is the same
  (zero spread: the t statistic is undefined, not infinite);
- p_exact: the two-sided exact sign-flip permutation test of the mean difference, over all 2^n sign assignments
  (n <= 12; above, a Monte Carlo estimate from 100,000 draws of a fixed seed). It assumes no normality, and it
  cannot go below 2 / 2^n: 0.0625 at n = 5, so at 5 seeds no exact test reaches 0.05;
- family (scripts/layout.py): the confirmatory family of a table (TCE's rows of selection across its columns) or
  its exploratory one (every other row); p_holm: p_value adjusted by Holm's method within the family.

The tables' † marks p_holm < 0.05 with at least MARK_PAIRS pairs, and its sign: two-sided, a loss significantly
worse than CE is marked too. A paired test removes what the seed does to both runs of a pair (the noisy labels,
and much of the split's luck), so it is far stronger than comparing mean ± std of independent samples.
"""

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from experiments.identity import CELL, COLUMN
from scripts.aggregate import Aggregation, CellAccuracies, paper_recipe_tag
from scripts.layout import family_of

BASELINE = "ce"
COLUMNS = [*COLUMN, "setting", "baseline", "family", "n_pairs", "n_diverged_setting", "n_diverged_baseline",
           "mean_diff", "ci_low", "ci_high", "p_value", "p_exact", "p_holm"]
CONFIDENCE = 0.95
SIGNIFICANCE = 0.05
MARK_PAIRS = 3  # † needs this many pairs: with 2, the t-test has one degree of freedom
EXACT_PAIRS = 12  # up to 2^12 sign assignments are enumerated; more are sampled
MONTE_CARLO_DRAWS = 100_000
# Differences in test images: equal ones agree to far better than this (chance is a fraction of an image: N / C).
ZERO_SPREAD = 1e-6


def paired_statistics(differences: list[float], resolution: float = 1.0) -> dict:
    """n_pairs, mean_diff, ci_low, ci_high, p_value and p_exact of paired differences counted in test images, the
    results in units of `resolution` (one test image in percent); NaN below 2 pairs."""
    n = len(differences)
    row = {"n_pairs": n, "mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
           "p_exact": math.nan}
    if n < 2:
        return row
    values = np.asarray(differences, dtype=float)
    mean = values.mean()
    row.update(mean_diff=float(mean * resolution), p_exact=sign_flip_p(values))
    if np.ptp(values) > ZERO_SPREAD:
        spread = values.std(ddof=1) / math.sqrt(n)
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * spread
        row.update(ci_low=float((mean - half) * resolution), ci_high=float((mean + half) * resolution),
                   p_value=float(2 * stats.t.sf(abs(mean / spread), n - 1)))
    return row


def paired_images(setting: CellAccuracies, baseline: CellAccuracies) -> tuple[list[float], int, int]:
    """The pairs' differences setting − baseline in test images, by (seed, noise_seed) in order, a diverged run at
    chance; and how many pairs have a diverged run of the setting, and of the baseline."""
    def images(cell: CellAccuracies, seeds: tuple) -> float:
        if seeds in cell.diverged:
            return cell.chance / cell.resolution
        return float(round(cell.accuracies[seeds] / cell.resolution))  # a whole number of images

    seeds = sorted((setting.accuracies.keys() | setting.diverged) & (baseline.accuracies.keys() | baseline.diverged))
    differences = [images(setting, s) - images(baseline, s) for s in seeds]
    return differences, len(setting.diverged & set(seeds)), len(baseline.diverged & set(seeds))


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
    paper = paper_recipe_tag()
    rows = []
    for _, cell in aggregation.cells[aggregation.cells["setting"] != BASELINE].iterrows():
        condition = {k: cell[k] for k in COLUMN}
        baseline = aggregation.protocol.get(_key(condition, BASELINE))
        if baseline is None:
            continue
        differences, diverged, diverged_baseline = paired_images(aggregation.protocol[_key(condition, cell["setting"])],
                                                                 baseline)
        rows.append({**condition, "setting": cell["setting"], "baseline": BASELINE, "family": family_of(cell, paper),
                     "n_diverged_setting": diverged, "n_diverged_baseline": diverged_baseline,
                     **paired_statistics(differences, baseline.resolution)})
    table = pd.DataFrame(rows, columns=COLUMNS).astype(
        {"n_pairs": "Int64", "n_diverged_setting": "Int64", "n_diverged_baseline": "Int64"})
    if len(table):
        table["p_holm"] = table.groupby("family", sort=False)["p_value"].transform(holm)
    return table


def _key(condition: dict, setting: str) -> tuple:
    """The cell key of Aggregation.protocol."""
    return tuple({**condition, "setting": setting}[k] for k in CELL)


def significant(paired: pd.DataFrame) -> dict[tuple, int]:
    """(recipe, dataset, noise_type, noise, noise_variant, setting) of the comparisons marked †, with the sign of
    their mean difference (+1: above CE, -1: below)."""
    return {tuple(r[k] for k in [*COLUMN, "setting"]): 1 if r["mean_diff"] > 0 else -1
            for _, r in paired.iterrows() if _significant(r)}


def _significant(comparison) -> bool:
    return bool(comparison["p_holm"] < SIGNIFICANCE and comparison["n_pairs"] >= MARK_PAIRS)  # False for NaN


def mark(sign: int) -> str:
    """The † of a significant difference with its sign: "†+" above CE, "†−" below."""
    return "†+" if sign > 0 else "†−"


DISPLAY_HEADER = ["recipe", "dataset", "noise", "setting", "n", "mean diff", "95% interval", "p (t)", "family",
                  "p (Holm)", "p (exact)"]


def display_rows(paired: pd.DataFrame) -> list[list[str]]:
    """paired.csv for people, one list of strings per comparison (DISPLAY_HEADER): n with its pairs that hold a
    diverged run, the mean difference marked † with its sign where significant, and "—" where a number is
    undefined."""
    rows = []
    for _, r in paired.iterrows():
        noise = r["noise_variant"] or f"{r['noise_type']} {r['noise']:g}"
        interval = "—" if pd.isna(r["ci_low"]) else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
        mean = "—" if pd.isna(r["mean_diff"]) else f"{r['mean_diff']:+.2f}"
        if _significant(r):
            mean += " " + mark(1 if r["mean_diff"] > 0 else -1)
        diverged = [f"{r[column]} diverged {who}" for column, who in (("n_diverged_setting", "setting"),
                                                                      ("n_diverged_baseline", "CE")) if r[column]]
        n = f"{r['n_pairs']}" + (f" ({', '.join(diverged)})" if diverged else "")
        p_test, p_holm, p_exact = ("—" if pd.isna(r[k]) else f"{r[k]:.3g}" for k in ("p_value", "p_holm", "p_exact"))
        rows.append([r["recipe"], r["dataset"], noise, r["setting"], n, mean, interval, p_test, r["family"], p_holm,
                     p_exact])
    return rows


CAPTION = ("Test accuracy at the protocol's epoch, setting − CE, paired by seed over the full runs (a diverged run at "
           "chance accuracy; differences in whole test images): mean difference, 95% Student-t interval, two-sided "
           "paired t-test, the same p adjusted by Holm's method within its family, and the exact sign-flip "
           "permutation test. A table's confirmatory family is TCE's rows of selection on validation against CE "
           "across all of its columns (the claim that TCE beats CE); its exploratory family, every other row. †+ and "
           "†−: Holm-adjusted p < 0.05 over at least 3 pairs, above or below CE (the test is two-sided); it rests on "
           "the t-test's normality assumption, since an exact test over n pairs cannot go below 2/2^n (0.0625 at "
           "n = 5). — with zero spread or fewer than 2 pairs.")


def markdown(paired: pd.DataFrame) -> str:
    rows = display_rows(paired) or [["—"] * 4 + ["0"] + ["—"] * (len(DISPLAY_HEADER) - 5)]
    lines = ["### Paired comparison with CE", "", CAPTION, "", "| " + " | ".join(DISPLAY_HEADER) + " |",
             "|" + "---|" * len(DISPLAY_HEADER), *("| " + " | ".join(row) + " |" for row in rows)]
    return "\n".join(lines) + "\n"
