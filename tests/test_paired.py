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
from scripts.paired import holm, paired_statistics, paired_table, significant

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
                                     "family", "n_pairs", "n_diverged_setting", "n_diverged_baseline", "mean_diff",
                                     "ci_low", "ci_high", "p_value", "p_exact", "p_holm"]
    assert written.set_index("setting").at["tce-a1", "n_pairs"] == 4
    markdown = (out / "paired.md").read_text()
    recipe = written.at[0, "recipe"]
    assert (f"| {recipe} | cifar10 | uniform 0.4 | tce-a1 | 4 | +4.50 †+ | [+1.19, +7.81] | 0.0228 | table2 "
            "exploratory") in markdown
    assert f"| {recipe} | cifar10 | uniform 0.4 | mse | 1 | — | — | — | table2 exploratory | — | — |" in markdown
    assert "cannot go below 2/2^n (0.0625 at n = 5)" in markdown
    # TCE's Holm-adjusted p is below 0.05: Table 2 marks it (its mean is over its 5 full runs, paired or not), not in
    # bold: one of TCE's α, not chosen without the test set.
    table2 = (out / "table2.md").read_text()
    assert "| 71.80 †+ ± 15.63 (n=5)" in table2 and "†+, †−: above or below CE (two-sided)" in table2
    assert "an exact test over n seeds cannot go below p = 2/2^n, 0.0625 at n = 5" in table2


def _column(root, accuracies: dict[str, dict[int, float | None]], noise: float = 0.4, dataset: str = "cifar10"):
    """Runs of one column: per setting tag ("ce", "tce-a1", "tce-a2", "gce"), a validation run whose best epoch is 2
    and full runs by seed with their test accuracy at epoch 2 (None: the run diverged)."""
    settings = {"ce": ("ce", None, None), "tce-a1": ("tce", 1.0, None), "tce-a2": ("tce", 2.0, None),
                "gce": ("gce", None, {"q": 0.7})}
    for tag, by_seed in accuracies.items():
        loss, alpha, params = settings[tag]
        cell = {"dataset": dataset, "loss": loss, "alpha": alpha, "params": params, "noise": noise}
        write_run(root, holdout=5000, test_acc=[1, 1, 1], val_acc=[30, 40 + (alpha or 0), 35], **cell)
        for seed, accuracy in by_seed.items():
            if accuracy is None:
                write_run(root, seed=seed, test_acc=[50], train_loss=[math.nan], status="diverged", **cell)
            else:
                write_run(root, seed=seed, test_acc=[1, accuracy, 1], **cell)


def test_a_diverged_run_enters_its_pair_at_chance_and_takes_the_mark_away(tmp_path):
    """TCE's seed 2 diverged: paired with CE at chance (10 %), the mean difference is negative and nothing is marked,
    where leaving it out gave +10.5 over 2 pairs and a †."""
    _column(tmp_path, {"ce": {0: 70, 1: 71, 2: 72, 3: 70}, "tce-a1": {0: 80, 1: 82, 2: None, 3: 81}})
    row = paired_table(aggregate(tmp_path)).set_index("setting").loc["tce-a1"]
    differences = [10, 11, 10 - 72, 11]  # seed 2: chance 10 % against CE's 72 %
    assert (row["n_pairs"], row["n_diverged_setting"], row["n_diverged_baseline"]) == (4, 1, 0)
    assert row["mean_diff"] == pytest.approx(np.mean(differences))
    assert row["p_value"] == pytest.approx(stats.ttest_1samp(differences, 0).pvalue)
    assert row["p_value"] > 0.05
    assert paired_table(aggregate(tmp_path)).pipe(significant) == {}


def test_differences_are_whole_test_images_so_equal_ones_have_zero_spread(tmp_path):
    """91.47, 91.62, 91.18 against 91.37, 91.52, 91.08 on 10,000 test images: 10 images more each time, which floats
    read as 0.1 give or take 1e-14. Zero spread: no t statistic, no interval, no mark; the exact test is 2/8."""
    _column(tmp_path, {"ce": {0: 91.37, 1: 91.52, 2: 91.08}, "tce-a1": {0: 91.47, 1: 91.62, 2: 91.18}})
    row = paired_table(aggregate(tmp_path)).set_index("setting").loc["tce-a1"]
    assert row["n_pairs"] == 3 and row["mean_diff"] == pytest.approx(0.1, abs=1e-12)
    assert pd.isna(row["p_value"]) and pd.isna(row["ci_low"]) and pd.isna(row["p_holm"])
    assert row["p_exact"] == 2 / 8


def test_a_mark_needs_three_pairs(tmp_path):
    """Two pairs: a t-test with one degree of freedom, p = 0.0303 here (10.5 / 0.5 = 21), marks nothing."""
    _column(tmp_path, {"ce": {0: 70, 1: 71}, "tce-a1": {0: 80, 1: 82}})
    row = paired_table(aggregate(tmp_path)).set_index("setting").loc["tce-a1"]
    assert row["p_holm"] == pytest.approx(2 * stats.t.sf(21, 1)) and row["p_holm"] < 0.05
    assert significant(paired_table(aggregate(tmp_path))) == {}


# Two columns of Table 2 (CIFAR-10+ at 0.4 and 0.8), TCE at two α, five seeds; the zoo adds GCE in the same columns.
TABLE2 = {
    0.4: {"ce": {s: 70 + s for s in range(5)}, "tce-a1": {s: 74 + s + (s % 2) for s in range(5)},
          "tce-a2": {s: 73 + 2 * s for s in range(5)}},
    0.8: {"ce": {s: 30 + s for s in range(5)}, "tce-a1": {s: 40 + 1.5 * s for s in range(5)},
          "tce-a2": {s: 41 + s - (s % 2) for s in range(5)}},
}
ZOO = {0.4: {"gce": {s: 71 + s + (s % 3) for s in range(5)}}, 0.8: {"gce": {s: 30 + 2 * s for s in range(5)}}}


def test_holm_families_are_the_claims_and_zoo_runs_leave_table_2_alone(tmp_path):
    for noise, column in TABLE2.items():
        _column(tmp_path / "table2", column, noise)
    before = paired_table(aggregate(tmp_path / "table2")).set_index(["setting", "noise"])
    for noise, column in ZOO.items():
        _column(tmp_path / "zoo", column, noise)
    after = paired_table(aggregate(tmp_path)).set_index(["setting", "noise"])
    assert set(after["family"]) == {"table2 confirmatory", "table2 exploratory", "zoo exploratory"}
    confirmatory = after[after["family"] == "table2 confirmatory"]
    assert sorted(confirmatory.index) == [(rule, noise) for rule in ("tce@val", "tce@val-dataset")
                                          for noise in (0.4, 0.8)]
    # Holm by hand over the 4 confirmatory p-values: sorted p_(1) <= ... <= p_(4), adjusted max over j <= i of
    # (4 - j + 1) p_(j).
    p = confirmatory["p_value"].sort_values()
    expected = np.minimum(1, np.maximum.accumulate([(4 - i) * value for i, value in enumerate(p)]))
    assert confirmatory.loc[p.index, "p_holm"].tolist() == pytest.approx(list(expected))
    # Table 2's rows keep their family and their p_holm, the zoo's GCE rows being a family of their own.
    shared = before.index
    assert after.loc[shared, "family"].tolist() == before["family"].tolist()
    assert after.loc[shared, "p_holm"].tolist() == pytest.approx(before["p_holm"].tolist())
    assert set(after.loc[[("gce-q0.7", 0.4), ("gce-q0.7", 0.8)], "family"]) == {"zoo exploratory"}
