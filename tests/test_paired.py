"""The paired comparison with CE (scripts/paired.py): recomputed here from runs made for it."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rundirs import write_run
from scripts import tables
from scripts.aggregate import aggregate
from scripts.paired import holm, paired_statistics, paired_table

# Test accuracy of the full runs at each epoch, by seed. CE's validation run peaks at epoch 2, TCE's at epoch 3:
# each run is read at its own cell's epoch.
CE = {0: [50, 60, 55], 1: [52, 61, 50], 2: [49, 58, 57], 3: [51, 63, 40]}
TCE = {0: [40, 50, 64], 1: [41, 52, 66], 2: [45, 51, 60], 3: [44, 50, 70], 4: [40, 40, 99]}  # seed 4: no CE pair


@pytest.fixture
def runs(tmp_path):
    cell = {"dataset": "cifar10", "noise": 0.4}
    write_run(tmp_path, loss="ce", holdout=5000, test_acc=[1, 1, 1], val_acc=[30, 40, 35], **cell)
    write_run(tmp_path, loss="tce", alpha=1.0, holdout=5000, test_acc=[1, 1, 1], val_acc=[30, 35, 40], **cell)
    for seed, acc in CE.items():
        write_run(tmp_path, loss="ce", seed=seed, test_acc=acc, **cell)
    for seed, acc in TCE.items():
        write_run(tmp_path, loss="tce", alpha=1.0, seed=seed, test_acc=acc, **cell)
    # A diverged CE run of seed 4 pairs with nothing; an MSE cell with one full run has a single pair.
    write_run(tmp_path, loss="ce", seed=4, test_acc=[1, 1], epochs=3, train_loss=[1, math.nan], status="diverged",
              **cell)
    write_run(tmp_path, loss="mse", holdout=5000, test_acc=[1, 1, 1], val_acc=[1, 2, 3], **cell)
    write_run(tmp_path, loss="mse", seed=0, test_acc=[10, 20, 30], **cell)
    # Another noise level without CE: nothing to compare with.
    write_run(tmp_path, loss="mse", holdout=5000, noise=0.8, test_acc=[1], val_acc=[1])
    return tmp_path


def test_paired_numbers_are_recomputed_from_the_runs(runs):
    paired = paired_table(aggregate(runs)).set_index("setting")
    assert list(paired.index) == ["mse", "tce-a1"]  # CE's own cell is the baseline; noise 0.8 has no CE
    tce = paired.loc["tce-a1"]
    differences = [TCE[s][2] - CE[s][1] for s in range(4)]  # TCE at epoch 3, CE at epoch 2; seeds 0-3 pair
    assert (tce["dataset"], tce["noise_type"], tce["noise"], tce["noise_variant"], tce["baseline"]) == (
        "cifar10", "uniform", 0.4, "", "ce"
    )
    assert tce["n_pairs"] == 4 and tce["mean_diff"] == pytest.approx(np.mean(differences))
    low, high = stats.t.interval(0.95, 3, loc=np.mean(differences), scale=stats.sem(differences))
    assert (tce["ci_low"], tce["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert tce["p_value"] == pytest.approx(stats.ttest_rel([TCE[s][2] for s in range(4)], [CE[s][1] for s in range(4)])
                                           .pvalue)
    # Every difference is positive: of the 16 sign assignments only all + and all - reach |sum| = 18.
    assert tce["p_exact"] == 2 / 16
    assert tce["p_holm"] == tce["p_value"]  # the column's only comparison with a p-value: a family of one
    mse = paired.loc["mse"]
    assert mse["n_pairs"] == 1 and pd.isna(mse["mean_diff"]) and pd.isna(mse["p_value"])  # one pair: no statistics
    assert pd.isna(mse["p_exact"]) and pd.isna(mse["p_holm"])


def _brute_force_sign_flip(differences: list[float]) -> float:
    """The share of the 2^n sign assignments whose mean difference is at least as far from 0 as the observed one."""
    observed = abs(sum(differences)) / len(differences)
    hits = total = 0
    for signs in itertools.product((1, -1), repeat=len(differences)):
        mean = sum(s * d for s, d in zip(signs, differences, strict=True)) / len(differences)
        hits += abs(mean) >= observed - 1e-12
        total += 1
    return hits / total


def test_exact_sign_flip_test_equals_a_brute_force_enumeration():
    # By hand: the 8 sums of ±1 ±2 ±3 are 6, 0, 2, -4, 4, -2, 0, -6; two reach |6|.
    assert paired_statistics([1.0, 2.0, 3.0])["p_exact"] == 0.25
    for differences in ([1.5, -0.5, 2.0, 3.0, 0.25], [0.1, 0.2, -0.3, 0.4, -0.1, 0.6, 0.2], [-1.0, 1.0, -1.0, 1.0]):
        assert paired_statistics(differences)["p_exact"] == pytest.approx(_brute_force_sign_flip(differences))
    # Above 12 pairs: a seeded Monte Carlo estimate, within a few standard errors of the exact value.
    differences = [0.9, -0.2, 1.4, 0.3, -0.8, 1.1, 0.6, -0.1, 0.7, 1.9, -0.4, 0.5, 0.2, 1.0]
    exact = _brute_force_sign_flip(differences)
    assert abs(paired_statistics(differences)["p_exact"] - exact) < 4 * math.sqrt(exact * (1 - exact) / 100_000)


def test_holm_adjustment_by_hand():
    # Sorted 0.01, 0.03, 0.04 of m = 3: 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; max(0.06, 1 x 0.04) = 0.06.
    adjusted = holm(pd.Series([0.01, 0.04, math.nan, 0.03], index=list("abcd")))
    assert adjusted["a"] == pytest.approx(0.03) and adjusted["b"] == pytest.approx(0.06)
    assert adjusted["d"] == pytest.approx(0.06) and math.isnan(adjusted["c"])
    assert holm(pd.Series([0.5, 0.9])).tolist() == [1.0, 1.0]  # capped at 1


def test_statistics_at_the_edges():
    assert paired_statistics([])["n_pairs"] == 0 and math.isnan(paired_statistics([3.0])["ci_low"])
    # Zero spread: the t statistic is undefined, so are the interval and p; the exact test still answers.
    same = paired_statistics([2.0, 2.0, 2.0])
    assert same["mean_diff"] == 2.0 and all(math.isnan(same[k]) for k in ("ci_low", "ci_high", "p_value"))
    assert same["p_exact"] == 2 / 8
    zeros = paired_statistics([0.0, 0.0])
    assert math.isnan(zeros["p_value"]) and zeros["p_exact"] == 1.0


def test_make_tables_writes_paired_files_and_marks_significant_gains(runs, tmp_path):
    out = tmp_path / "tables"
    tables.main(["--runs", str(runs), "--out", str(out)])
    written = pd.read_csv(out / "paired.csv")
    assert list(written.columns) == ["recipe", "dataset", "noise_type", "noise", "noise_variant", "setting", "baseline",
                                     "n_pairs", "mean_diff", "ci_low", "ci_high", "p_value", "p_exact", "p_holm"]
    assert written.set_index("setting").at["tce-a1", "n_pairs"] == 4
    markdown = (out / "paired.md").read_text()
    recipe = written.at[0, "recipe"]
    assert f"| {recipe} | cifar10 | uniform 0.4 | tce-a1 | 4 | +4.50 † |" in markdown
    assert f"| {recipe} | cifar10 | uniform 0.4 | mse | 1 | — | — | — | — | — |" in markdown
    assert "cannot go below 2/2^n (0.0625 at n = 5)" in markdown
    # TCE's Holm-adjusted p is below 0.05: Table 2 marks it (its mean is over its 5 full runs, paired or not).
    table2 = (out / "table2.md").read_text()
    assert "**71.80** † ± 15.63 (n=5)" in table2 and "†: differs from CE" in table2
    assert "an exact test over n seeds cannot go below p = 2/2^n, 0.0625 at n = 5" in table2
