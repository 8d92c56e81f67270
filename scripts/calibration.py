"""Signed calibration of the test predictions, and temperature scaling that knows the noise, per cell.

    python -m scripts.calibration --runs RUNS_DIR [--out OUT_DIR]

Per cell (recipe, dataset, noise, loss setting), at the protocol's epoch (the validation run's best) and at the last
epoch, the complete full runs' test predictions pooled: accuracy, mean confidence, the ECE (15 equal-width bins,
L1) and its sign, over-confidence sum_b n_b / N max(conf_b - acc_b, 0) and under-confidence sum_b n_b / N
max(acc_b - conf_b, 0), whose sum is the ECE and whose difference the signed gap, mean confidence - accuracy (> 0:
over-confident). Every run has the bins (calibration.csv); a detecting run's snapshots (detect=true) hold each
prediction, which adds the NLL, the Brier score and a 95 % bootstrap interval of the ECE over the test images, at
the snapshot epochs (the latest at or before the protocol's).

Temperature scaling, fitted on the cell's validation run's holdout at the protocol epoch, never on the test set,
and applied to the full runs' test predictions at that epoch:
- plain: on the holdout's labels, as noisy as the training labels: it calibrates to the noisy posterior;
- forward: softmax(z / T) M against those labels, M the realized noise matrix of the run's labels, normalized by
  rows (the oracle's, for synthetic noise; an estimate would stand in for CIFAR-N);
- oracle: on the holdout's clean labels, which a real noisy dataset does not have (an upper bound, like clean_val).
Each gives T (T > 1: the network was over-confident) and the test ECE, signed gap and NLL after it.
OUT_DIR gets calibration_signed.csv, temperature.csv and calibration.md.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.lifecycle import COMPLETE
from experiments.rundir import TEST_LABELS, CorruptRun, RunDir
from scripts.aggregate import Aggregation, aggregate
from scripts.calibration_metrics import bootstrap_ece, fit_temperature, scaled, signed_calibration, signed_from_bins
from scripts.loss_settings import CELL_KEYS, noise_text, setting_label, setting_of
from scripts.reliability import reliability_bins
from scripts.table_formats import markdown_table

VARIANTS = ("plain", "forward", "oracle")


def latest_snapshot(run_dir: RunDir, epoch: int) -> tuple[int, dict[str, np.ndarray]] | None:
    at = run_dir.latest_snapshot(epoch)
    return None if at is None else (at, run_dir.read_snapshot(at))


def test_predictions(group: pd.DataFrame, epoch: int) -> tuple[int, list[np.ndarray], np.ndarray] | None:
    """(the snapshot epoch, each full run's test log-probabilities, the test labels) of a cell's full runs that all
    have a snapshot at the latest snapshot epoch at or before `epoch`; None where they have none."""
    found = [latest_snapshot(RunDir(d), epoch) for d in group["run_dir"]]
    if not found or any(f is None for f in found) or len({f[0] for f in found}) != 1:
        return None
    labels = RunDir(group["run_dir"].iloc[0]).read_samples().get(TEST_LABELS)
    if labels is None:  # recorded before the test labels were
        return None
    return found[0][0], [f[1]["test"] for f in found], labels


def per_sample(group: pd.DataFrame, epoch: int) -> dict:
    """NLL, Brier and the ECE's bootstrap interval of the pooled test predictions; {} without snapshots."""
    found = test_predictions(group, epoch)
    if found is None:
        return {}
    at, log_probs, labels = found
    pooled, pooled_labels = np.concatenate(log_probs), np.tile(labels, len(log_probs))
    lo, hi = bootstrap_ece(pooled, pooled_labels)
    measured = signed_calibration(pooled, pooled_labels)
    return {"snapshot_epoch": at, "nll": measured["nll"], "brier": measured["brier"], "ece_lo": lo, "ece_hi": hi}


def calibration_frame(aggregation: Aggregation) -> pd.DataFrame:
    """One row per cell and epoch rule (protocol, last) with the signed numbers and the runs pooled."""
    full = _full_runs(aggregation.runs_table)
    rows = []
    for key, group in full.groupby(CELL_KEYS, sort=True):
        epochs = {"last": int(group["epochs"].iloc[0])}
        best = _cell(aggregation.cells, key).get("best_epoch")
        if pd.notna(best):
            epochs["protocol"] = int(best)
        for rule, epoch in epochs.items():
            bins = reliability_bins(group, epoch)
            if bins is not None:
                rows.append({**dict(zip(CELL_KEYS, key, strict=True)), "label": _label(group), "at": rule,
                             "epoch": epoch, "runs": len(group), **signed_from_bins(bins), **per_sample(group, epoch)})
    return pd.DataFrame(rows)


def temperatures(val_dir: RunDir, epoch: int) -> tuple[int, dict[str, float]] | None:
    """The snapshot epoch and VARIANTS' temperatures fitted on a validation run's holdout; None without them."""
    found = latest_snapshot(val_dir, epoch)
    samples = val_dir.read_samples() if val_dir.samples.exists() else {}
    if found is None or "val" not in found[1] or "val_given" not in samples:
        return None
    logits, noisy, clean = found[1]["val"], samples["val_given"], samples["val_clean"]
    counts = val_dir.read_noise_matrix().astype(np.float64)
    rows = counts.sum(1, keepdims=True)
    # A class with no training image has no row to estimate: it keeps its labels.
    matrix = np.where(rows > 0, counts / np.maximum(rows, 1), np.eye(len(counts)))
    return found[0], {"plain": fit_temperature(logits, noisy), "forward": fit_temperature(logits, noisy, matrix),
                      "oracle": fit_temperature(logits, clean)}


def temperature_frame(aggregation: Aggregation) -> pd.DataFrame:
    """Per cell with a detecting validation run: each variant's T and the full runs' test ECE, signed gap and NLL
    before and after it, at the protocol epoch."""
    rows = []
    for key, group in _full_runs(aggregation.runs_table).groupby(CELL_KEYS, sort=True):
        cell = _cell(aggregation.cells, key)
        if pd.isna(cell.get("best_epoch")) or not isinstance(cell.get("val_run_dir"), str):
            continue
        try:
            fitted = temperatures(RunDir(cell["val_run_dir"]), int(cell["best_epoch"]))
            found = test_predictions(group, int(cell["best_epoch"]))
        except CorruptRun:
            continue
        if fitted is None or found is None or found[0] != fitted[0]:
            continue
        at, log_probs, labels = found
        pooled_labels = np.tile(labels, len(log_probs))
        before = signed_calibration(np.concatenate(log_probs), pooled_labels)
        for variant, t in {"none": 1.0, **fitted[1]}.items():
            after = signed_calibration(np.concatenate([scaled(z, t) for z in log_probs]), pooled_labels)
            rows.append({**dict(zip(CELL_KEYS, key, strict=True)), "label": _label(group), "epoch": at,
                         "runs": len(group),
                         "variant": variant, "temperature": t, "ece_before": before["ece"], "ece": after["ece"],
                         "signed_gap": after["signed_gap"], "nll_before": before["nll"], "nll": after["nll"],
                         "accuracy": after["accuracy"]})
    return pd.DataFrame(rows)


def _label(group: pd.DataFrame) -> str:
    return setting_label(setting_of(group.iloc[0].to_dict()))


def _full_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[(runs["status"] == COMPLETE) & (runs["holdout"] == 0)].fillna({"noise_variant": ""})


def _cell(cells: pd.DataFrame, key: tuple) -> dict:
    cells = cells.fillna({"noise_variant": ""})
    match = cells[(cells[CELL_KEYS] == pd.Series(key, index=CELL_KEYS)).all(axis=1)]
    return match.iloc[0].to_dict() if not match.empty else {}


def _noise(r) -> str:
    return noise_text(r.noise_type, r.noise_variant, r.noise)


def display_tables(frame: pd.DataFrame, scaling: pd.DataFrame) -> list[tuple[str, list[str], list[list[str]]]]:
    """(caption, header, rows) of the signed calibration table, and of temperature scaling where it was fitted."""
    rows = []
    for r in frame.itertuples():
        known = "ece_lo" in frame and pd.notna(r.ece_lo)
        interval = f"[{r.ece_lo:.1f}, {r.ece_hi:.1f}]" if known else "—"
        nll, brier = (f"{r.nll:.3f}", f"{r.brier:.3f}") if known else ("—", "—")
        rows.append([r.dataset, _noise(r), r.label, f"{r.at} ({r.epoch})", str(r.runs), f"{r.accuracy:.1f}",
                     f"{r.confidence:.1f}", f"{r.ece:.1f}", interval, f"{r.over:.1f}", f"{r.under:.1f}",
                     f"{r.signed_gap:+.1f}", nll, brier])
    tables = [("Test calibration (%), the full runs' predictions pooled; signed gap = confidence - accuracy (> 0: "
               "over-confident) = over - under; ECE = over + under:",
               ["dataset", "noise", "loss", "at (epoch)", "runs", "accuracy", "confidence", "ECE", "ECE 95% CI",
                "over", "under", "signed gap", "NLL", "Brier"], rows)]
    if scaling.empty:
        return tables
    rows = [[r.dataset, _noise(r), r.label, str(r.epoch), r.variant, f"{r.temperature:.3f}",
             f"{r.ece_before:.1f} → {r.ece:.1f}", f"{r.signed_gap:+.1f}", f"{r.nll_before:.3f} → {r.nll:.3f}"]
            for r in scaling.itertuples()]
    return tables + [("Temperature scaling fitted on the validation run's holdout (T > 1: over-confident before), "
                      "applied to the full runs' test predictions:",
                      ["dataset", "noise", "loss", "epoch", "variant", "T", "ECE before → after", "signed gap after",
                       "NLL before → after"], rows)]


def markdown(frame: pd.DataFrame, scaling: pd.DataFrame) -> str:
    return "\n".join(f"{caption}\n\n{markdown_table(header, rows)}"
                     for caption, header, rows in display_tables(frame, scaling))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding run directories")
    parser.add_argument("--out", type=Path, help="folder for its CSV files and calibration.md")
    args = parser.parse_args(argv)
    aggregation = aggregate(args.runs)
    frame = calibration_frame(aggregation)
    if frame.empty:
        print(f"no complete full run under {args.runs} has calibration bins")
        return
    scaling = temperature_frame(aggregation)
    text = markdown(frame, scaling)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out / "calibration_signed.csv", index=False)
        scaling.to_csv(args.out / "temperature.csv", index=False)
        (args.out / "calibration.md").write_text(text)
        print(f"wrote calibration_signed.csv, temperature.csv and calibration.md to {args.out}")


if __name__ == "__main__":
    main()
