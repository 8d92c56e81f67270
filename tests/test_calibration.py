"""Signed calibration (scripts/calibration.py): its numbers by hand from bins, and per cell from run directories
at the protocol's epoch and the last."""

import numpy as np
import pandas as pd
import pytest

from compose import train_tiny
from rundirs import write_run
from scripts import calibration
from scripts.aggregate import aggregate
from scripts.calibration_metrics import signed_from_bins


def test_the_signed_gap_splits_the_ece_into_over_and_under_confidence_by_hand():
    """Two bins of 10 predictions: confidence 0.9 with 5 right (over by 0.4), 0.2 with 4 right (under by 0.2)."""
    found = signed_from_bins(np.array([[10, 9.0, 5], [10, 2.0, 4]]))
    assert found == pytest.approx({"accuracy": 45.0, "confidence": 55.0, "ece": 30.0, "over": 20.0, "under": 10.0,
                                   "signed_gap": 10.0})


def test_the_table_reads_each_cell_at_the_protocols_epoch_and_the_last(tmp_path, capsys):
    """Validation best at epoch 2; the full run's 100 test predictions sit in one bin per epoch: at epoch 2 at
    confidence 0.9 with 60 right (+30, over-confident), at the last, 0.5 with 55 right (-5, under-confident)."""
    cell = {"epochs": 3, "noise": 0.6}
    write_run(tmp_path, subdir="val", holdout=5000, test_acc=[1, 1, 1], val_acc=[50, 60, 55], **cell)
    write_run(tmp_path, subdir="full", test_acc=[50, 60, 55], confidence=[0.7, 0.9, 0.5], **cell)
    frame = calibration.calibration_frame(aggregate(tmp_path)).set_index("at")
    assert frame.loc["protocol", ["epoch", "accuracy", "confidence", "signed_gap", "over", "under"]].tolist() == \
        pytest.approx([2, 60.0, 90.0, 30.0, 30.0, 0.0])
    assert frame.loc["last", ["epoch", "accuracy", "confidence", "signed_gap", "over", "under"]].tolist() == \
        pytest.approx([3, 55.0, 50.0, -5.0, 0.0, 5.0])
    calibration.main(["--runs", str(tmp_path)])
    row = "| cifar10 | uniform 0.6 | CE | protocol (2) | 1 | 60.0 | 90.0 | 30.0 | — | 30.0 | 0.0 | +30.0 | — | — |"
    assert row in capsys.readouterr().out


def test_snapshots_add_the_nll_and_temperatures_fitted_on_the_holdout(tmp_path, capsys):
    """A detecting validation run and full run: the pooled test NLL from the snapshot equals the evaluation pass's
    (float16 log-probabilities against float32), and each temperature minimizes its NLL on the holdout, by a grid."""
    common = ("detect=true", "detect_snapshots=1", "noise=0.4", "epochs=4")
    (status_val, val_dir), (status_full, full_dir) = [train_tiny(tmp_path, *common, *extra)
                                                      for extra in [(), ("holdout=0", "seed=1")]]
    assert status_val == status_full == "complete"
    frame = calibration.calibration_frame(aggregate(tmp_path)).set_index("at")
    metrics = pd.read_csv(full_dir / "metrics.csv")
    last = frame.loc["last"]
    assert last["snapshot_epoch"] == 4
    assert last["nll"] == pytest.approx(metrics["test_nll"].iloc[-1], abs=2e-3)
    assert last["ece_lo"] <= last["ece"] <= last["ece_hi"]
    scaling = calibration.temperature_frame(aggregate(tmp_path)).set_index("variant")
    assert list(scaling.index) == ["none", *calibration.VARIANTS]
    assert scaling.loc["none", "temperature"] == 1.0 and scaling.loc["none", "ece"] == pytest.approx(
        scaling.loc["none", "ece_before"])
    epoch = int(scaling["epoch"].iloc[0])
    snapshot, samples = np.load(val_dir / "snapshots" / f"epoch-{epoch:04d}.npz"), np.load(val_dir / "samples.npz")
    z = snapshot["val"].astype(np.float64)

    def nll(t: float, labels: np.ndarray) -> float:
        scaled = z / t - np.log(np.exp(z / t).sum(1, keepdims=True))
        return -scaled[np.arange(len(labels)), labels].mean()

    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 2001))
    for variant, labels in (("plain", samples["val_given"]), ("oracle", samples["val_clean"])):
        best = grid[np.argmin([nll(t, labels) for t in grid])]
        assert scaling.loc[variant, "temperature"] == pytest.approx(best, rel=5e-3), variant
    calibration.main(["--runs", str(tmp_path)])
    assert "| forward |" in capsys.readouterr().out
