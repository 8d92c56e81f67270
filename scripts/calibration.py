"""Signed calibration of the test predictions: over- or under-confident, and by how much, per cell.

    python -m scripts.calibration --runs RUNS_DIR

Per cell (recipe, dataset, noise, loss setting), at the protocol's epoch (the validation run's best) and at the last
epoch, the complete full runs' test predictions pooled from their calibration.csv (the ECE's 15 equal-width bins):
accuracy, mean confidence, the ECE (L1 over the bins), and its sign: over-confidence sum_b n_b / N
max(conf_b - acc_b, 0) and under-confidence sum_b n_b / N max(acc_b - conf_b, 0), whose sum is the ECE and whose
difference the signed gap, mean confidence - accuracy (> 0: over-confident). The ECE that metrics.csv reports has no
sign; this says which way it goes. From bins alone there is no per-sample bootstrap, NLL or Brier score here.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.lifecycle import COMPLETE
from scripts.aggregate import aggregate
from scripts.figures import reliability_bins

CELL_KEYS = ["recipe", "dataset", "noise_type", "noise", "noise_variant", "setting"]


def signed(bins: np.ndarray) -> dict[str, float]:
    """Accuracy, confidence, ECE, over- and under-confidence and the signed gap (%) of (count, confidence sum,
    correct sum) bins."""
    count, confidence, correct = bins[:, 0], bins[:, 1], bins[:, 2]
    n = count.sum()
    gap = (confidence - correct) / n  # each bin's n_b / N (conf_b - acc_b)
    return {"accuracy": 100 * correct.sum() / n, "confidence": 100 * confidence.sum() / n,
            "ece": 100 * np.abs(gap).sum(), "over": 100 * gap.clip(min=0).sum(),
            "under": 100 * (-gap).clip(min=0).sum(), "signed_gap": 100 * gap.sum()}


def calibration_frame(runs_dir: Path) -> pd.DataFrame:
    """One row per cell and epoch rule (protocol, last) with signed()'s numbers and the runs pooled."""
    aggregation = aggregate(runs_dir)
    runs, cells = aggregation.runs_table, aggregation.cells.fillna({"noise_variant": ""})
    full = runs[(runs["status"] == COMPLETE) & (runs["holdout"] == 0)].fillna({"noise_variant": ""})
    rows = []
    for key, group in full.groupby(CELL_KEYS, sort=True):
        cell = cells[(cells[CELL_KEYS] == pd.Series(key, index=CELL_KEYS)).all(axis=1)]
        epochs = {"last": int(group["epochs"].iloc[0])}
        if not cell.empty and pd.notna(cell["best_epoch"].iloc[0]):
            epochs["protocol"] = int(cell["best_epoch"].iloc[0])
        for rule, epoch in epochs.items():
            bins = reliability_bins(group, epoch)
            if bins is not None:
                rows.append({**dict(zip(CELL_KEYS, key, strict=True)), "at": rule, "epoch": epoch, "runs": len(group),
                             **signed(bins)})
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| dataset | noise | loss | at (epoch) | runs | accuracy | confidence | ECE | over | under | signed gap |",
             "|" + "---|" * 11]
    for r in frame.itertuples():
        noise = " ".join(filter(None, [r.noise_type, r.noise_variant, f"{r.noise:g}"]))
        lines.append(f"| {r.dataset} | {noise} | {r.setting} | {r.at} ({r.epoch}) | {r.runs} | {r.accuracy:.1f} | "
                     f"{r.confidence:.1f} | {r.ece:.1f} | {r.over:.1f} | {r.under:.1f} | {r.signed_gap:+.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding run directories")
    args = parser.parse_args(argv)
    frame = calibration_frame(args.runs)
    if frame.empty:
        print(f"no complete full run under {args.runs} has calibration bins")
        return
    print("Test calibration (%), the full runs' predictions pooled; signed gap = confidence - accuracy "
          "(> 0: over-confident) = over - under; ECE = over + under:\n")
    print(markdown(frame))


if __name__ == "__main__":
    main()
