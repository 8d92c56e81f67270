"""Label-error detection (scripts/detect.py): its metrics against scikit-learn's and by hand, its scores on
hand-made dynamics, cleanlab's flags where the answer is known, and the command on a detecting run."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from compose import train_tiny
from experiments.sample_dynamics import EMA_DECAY
from scripts import detect


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_average_precision_equal_scikit_learns_with_ties(seed):
    rng = np.random.default_rng(seed)
    wrong = rng.random(500) < 0.3
    score = np.round(rng.normal(size=500) - wrong, 1)  # wrong labels score lower; rounding makes ties
    # scikit-learn ranks by "more positive"; a detection score is lower for a wrong label.
    assert detect.auroc(score, wrong) == pytest.approx(roc_auc_score(wrong, -score), abs=1e-12)
    assert detect.average_precision(score, wrong) == pytest.approx(average_precision_score(wrong, -score), abs=1e-12)


def test_precision_at_the_true_count_and_flag_metrics_by_hand():
    wrong = np.array([True, False, True, False, False])
    score = np.array([0.1, 0.2, 0.9, 0.3, 0.4])  # the 2 lowest: one wrong, one right
    assert detect.precision_at_true_count(score, wrong) == 0.5
    found = detect.flag_metrics(np.array([True, True, False, False, False]), wrong)
    assert found == {"flagged": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert detect.flag_metrics(np.zeros(5, bool), wrong)["f1"] == 0.0  # nothing flagged: no F1 to speak of


def test_scores_of_hand_made_dynamics():
    """Two samples of 3 classes seen 3 times: the average divided by 1 - 0.9^3 = 0.271."""
    samples = {"ema": np.array([[0.0271, 0.1355, 0.1084], [0.2168, 0.0271, 0.0271]], np.float16),
               "seen": np.array([3, 3]), "given": np.array([1, 0]), "aum_sum": np.array([1.5, -3.0]),
               "aum_count": np.array([2, 2]), "forgotten": np.array([2, 0]), "first_learned": np.array([1, 0])}
    found = detect.scores(samples)
    correction = 1 - EMA_DECAY ** 3
    assert found["self_confidence"] == pytest.approx([0.1355 / correction, 0.2168 / correction], rel=1e-3)
    # margin: (0.5 - 0.4 + 1) / 2 and (0.8 - 0.1 + 1) / 2
    assert found["normalized_margin"] == pytest.approx([0.55, 0.85], rel=1e-3)
    assert found["aum"].tolist() == [0.75, -1.5]
    assert found["forgetting"].tolist() == [-2.0, -3.0]  # the second never learned: its 3 presentations


def test_cleanlab_flags_exactly_the_flips_of_a_confident_right_model():
    rng = np.random.default_rng(0)
    clean = np.arange(600) % 3
    given = clean.copy()
    flipped = rng.random(600) < 0.2
    given[flipped] = (clean[flipped] + 1) % 3
    p = np.full((600, 3), 0.05)
    p[np.arange(600), clean] = 0.9
    samples = {"ema": (p * (1 - EMA_DECAY ** 5)).astype(np.float16), "seen": np.full(600, 5), "given": given}
    flags = detect.flags(samples)
    np.testing.assert_array_equal(flags["cleanlab"], flipped)
    np.testing.assert_array_equal(flags["argmax_not_given"], flipped)


def test_the_command_prints_the_table_of_a_detecting_run(tmp_path, capsys):
    status, run_dir = train_tiny(tmp_path, "detect=true", "noise=0.4", "holdout=0")
    assert status == "complete"
    detect.main(["--runs", str(tmp_path), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "out" / "detection.csv")
    assert sorted(frame["what"]) == sorted([*detect.SCORES, *detect.RULES])
    samples = np.load(run_dir / "samples.npz")
    eta = (samples["given"] != samples["clean"]).mean()
    assert frame["flag_all_f1"].iloc[0] == pytest.approx(2 * eta / (1 + eta))
    assert frame["true_count"].iloc[0] == (samples["given"] != samples["clean"]).sum()
    assert "| synthetic | uniform 0.4 | ce | 1 | self_confidence |" in printed
