"""Label-error detection (scripts/detection_scores.py, scripts/detect.py): its metrics against scikit-learn's and by
hand, its scores on hand-made dynamics, cleanlab's flags against its own confident joint and where the answer is
known, the mixture's threshold on two separated loss populations, and the command on detecting runs."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from compose import train_tiny
from experiments.sample_dynamics import EMA_DECAY
from scripts import detect
from scripts import detection_scores as scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_average_precision_equal_scikit_learns_with_ties(seed):
    rng = np.random.default_rng(seed)
    wrong = rng.random(500) < 0.3
    score = np.round(rng.normal(size=500) - wrong, 1)  # wrong labels score lower; rounding makes ties
    # scikit-learn ranks by "more positive"; a detection score is lower for a wrong label.
    assert scores.auroc(score, wrong) == pytest.approx(roc_auc_score(wrong, -score), abs=1e-12)
    assert scores.average_precision(score, wrong) == pytest.approx(average_precision_score(wrong, -score), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_flag_metrics_equal_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    wrong, flagged = rng.random(300) < 0.4, rng.random(300) < 0.3
    found = scores.flag_metrics(flagged, wrong)
    assert found["flagged"] == flagged.sum()
    assert found["precision"] == pytest.approx(precision_score(wrong, flagged), abs=1e-12)
    assert found["recall"] == pytest.approx(recall_score(wrong, flagged), abs=1e-12)
    assert found["f1"] == pytest.approx(f1_score(wrong, flagged), abs=1e-12)


def test_precision_at_the_true_count_and_flag_metrics_by_hand():
    wrong = np.array([True, False, True, False, False])
    score = np.array([0.1, 0.2, 0.9, 0.3, 0.4])  # the 2 lowest: one wrong, one right
    assert scores.precision_at_true_count(score, wrong) == 0.5
    found = scores.flag_metrics(np.array([True, True, False, False, False]), wrong)
    assert found == {"flagged": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert scores.flag_metrics(np.zeros(5, bool), wrong)["f1"] == 0.0  # nothing flagged: no F1 to speak of


def test_scores_of_hand_made_dynamics():
    """Two samples of 3 classes seen 3 times: the average divided by 1 - 0.9^3 = 0.271."""
    samples = {"ema": np.array([[0.0271, 0.1355, 0.1084], [0.2168, 0.0271, 0.0271]], np.float16),
               "seen": np.array([3, 3]), "given": np.array([1, 0]), "aum_sum": np.array([1.5, -3.0]),
               "aum_count": np.array([2, 2]), "forgotten": np.array([2, 0]), "first_learned": np.array([1, 0])}
    found = {**scores.probability_scores(detect.ema_probabilities(samples), samples["given"]),
             **scores.dynamics_scores(samples)}
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
    flags = scores.flags(p, given)
    np.testing.assert_array_equal(flags["cleanlab"], flipped)
    np.testing.assert_array_equal(flags["argmax_not_given"], flipped)
    # The losses of the flips (-log 0.05) and of the rest (-log 0.9) are two points: the mixture parts them exactly.
    np.testing.assert_array_equal(flags["small_loss_gmm"], flipped)


@pytest.fixture(scope="module")
def cell_runs(tmp_path_factory) -> tuple:
    """A cell's validation run and two full runs of one noise (noise_seed=0), and a TCE full run, all detecting."""
    root = tmp_path_factory.mktemp("detect")
    common = ("detect=true", "detect_snapshots=1", "noise=0.4", "noise_seed=0")
    runs = [train_tiny(root, *common, *extra) for extra in
            [(), ("holdout=0", "seed=1"), ("holdout=0", "seed=2"), ("holdout=0", "seed=1", "loss=tce", "loss.alpha=2")]]
    assert [status for status, _ in runs] == ["complete"] * 4
    return root, runs


def test_the_command_scores_every_source_of_a_cells_runs(cell_runs, tmp_path, capsys):
    """The full runs are scored from their dynamics and their snapshots at the protocol epoch and the last,
    ensembled (same labels), the validation run on its holdout (out of sample), and TCE is paired with CE by seed."""
    root, runs = cell_runs
    detect.main(["--runs", str(root), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "out" / "detection.csv")
    ce = frame[frame["setting"] == "ce"]
    assert set(ce["source"]) == set(detect.SOURCES)
    assert set(frame[frame["setting"] != "ce"]["source"]) == {"dynamics", "last"}  # no validation run: no protocol
    assert set(frame.loc[frame["source"] == "dynamics", "what"]) == {*scores.SCORES, *scores.RULES}
    assert set(frame.loc[frame["source"] == "holdout", "what"]) == {*scores.PROBABILITY_SCORES, *scores.RULES}
    assert frame.loc[frame["source"] == "holdout", "in_sample"].eq(False).all()
    assert frame.loc[frame["source"] != "holdout", "in_sample"].all()
    samples = np.load(runs[1][1] / "samples.npz")
    wrong = samples["given"] != samples["clean"]
    mine = frame[frame["run_dir"] == str(runs[1][1])]
    assert mine["flag_all_f1"].iloc[0] == pytest.approx(2 * wrong.mean() / (1 + wrong.mean()))
    assert mine["true_count"].iloc[0] == wrong.sum()
    held = np.load(runs[0][1] / "samples.npz")
    holdout = frame[frame["source"] == "holdout"]
    assert holdout["true_count"].iloc[0] == (held["val_given"] != held["val_clean"]).sum()
    # The protocol snapshot's self-confidence, by hand from the snapshot file.
    protocol = ce[(ce["source"] == "protocol") & (ce["run_dir"] == str(runs[1][1]))]
    epoch = int(protocol["epoch"].iloc[0])
    log_probs = np.load(runs[1][1] / "snapshots" / f"epoch-{epoch:04d}.npz")["portion"].astype(np.float64)
    own = np.exp(log_probs)[np.arange(len(wrong)), samples["given"]]
    row = protocol[protocol["what"] == "self_confidence"].iloc[0]
    assert row["auroc"] == pytest.approx(roc_auc_score(wrong, -own), abs=1e-3)
    ensemble = frame[frame["source"] == "ensemble"]
    assert ensemble["runs"].eq(2).all() and ensemble["seed"].isna().all()
    paired = pd.read_csv(tmp_path / "out" / "detection_paired.csv")
    assert set(paired["setting"]) == {"tce-a2"} and paired["n_pairs"].eq(1).all()
    assert set(paired["source"]) == {"dynamics", "last"}
    assert "| synthetic | uniform 0.4 | CE | holdout (" in printed and "| out | 1 | self_confidence |" in printed


def test_the_report_shows_detection_with_its_figures(cell_runs):
    from scripts import report

    page = report.render(cell_runs[0])
    section = page.split("<h2>Label-error detection and calibration</h2>")[1].split("<h2>Figures</h2>")[0]
    assert section.count("<img alt='detection'") == 1  # one noise condition
    assert "<th>AUROC</th>" in section and "<td>holdout (" in section
    assert "Temperature scaling fitted on the validation run" in section and "<td>forward</td>" in section
