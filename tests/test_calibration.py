"""Signed calibration (scripts/calibration.py): its numbers by hand from bins, and per cell from run directories
at the protocol's epoch and the last."""

import numpy as np
import pytest

from rundirs import write_run
from scripts import calibration


def test_the_signed_gap_splits_the_ece_into_over_and_under_confidence_by_hand():
    """Two bins of 10 predictions: confidence 0.9 with 5 right (over by 0.4), 0.2 with 4 right (under by 0.2)."""
    found = calibration.signed(np.array([[10, 9.0, 5], [10, 2.0, 4]]))
    assert found == pytest.approx({"accuracy": 45.0, "confidence": 55.0, "ece": 30.0, "over": 20.0, "under": 10.0,
                                   "signed_gap": 10.0})


def test_the_table_reads_each_cell_at_the_protocols_epoch_and_the_last(tmp_path, capsys):
    """Validation best at epoch 2; the full run's 100 test predictions sit in one bin per epoch: at epoch 2 at
    confidence 0.9 with 60 right (+30, over-confident), at the last, 0.5 with 55 right (-5, under-confident)."""
    cell = {"epochs": 3, "noise": 0.6}
    write_run(tmp_path, subdir="val", holdout=5000, test_acc=[1, 1, 1], val_acc=[50, 60, 55], **cell)
    write_run(tmp_path, subdir="full", test_acc=[50, 60, 55], confidence=[0.7, 0.9, 0.5], **cell)
    frame = calibration.calibration_frame(tmp_path).set_index("at")
    assert frame.loc["protocol", ["epoch", "accuracy", "confidence", "signed_gap", "over", "under"]].tolist() == \
        pytest.approx([2, 60.0, 90.0, 30.0, 30.0, 0.0])
    assert frame.loc["last", ["epoch", "accuracy", "confidence", "signed_gap", "over", "under"]].tolist() == \
        pytest.approx([3, 55.0, 50.0, -5.0, 0.0, 5.0])
    calibration.main(["--runs", str(tmp_path)])
    assert "| cifar10 | uniform 0.6 | ce | protocol (2) | 1 | 60.0 | 90.0 | 30.0 | 30.0 | 0.0 | +30.0 |" in \
        capsys.readouterr().out
