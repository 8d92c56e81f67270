"""Reliability diagrams of the test predictions at the protocol's epoch, one figure per dataset and noise condition
(scripts/figures.py draws them with the others, reliability_<dataset>_<condition>).

Per loss setting, the full runs' test predictions pooled (their calibration.csv): accuracy per confidence bin
against the diagonal, the gap to the bin's mean confidence hatched, and in the title the ECE and the signed gap
(mean confidence - accuracy, scripts.calibration_metrics.signed_from_bins: > 0 over-confident, < 0 under-confident).
Every loss present is drawn, or only those named (`--losses ce,tce,gce` of scripts.figures).
"""

import functools
import math
from collections.abc import Callable, Iterator

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments.evaluation import ECE_BINS
from experiments.identity import loss_tag
from experiments.lifecycle import COMPLETE
from experiments.rundir import RunDir
from scripts.calibration_metrics import signed_from_bins
from scripts.loss_settings import (
    condition_label,
    dataset_label,
    format_level,
    protocol_epoch,
    setting_label,
    settings_in,
)

COLUMNS = 5  # panels per row: a zoo's thirty settings stay legible


def reliability_bins(runs: pd.DataFrame, epoch: int) -> np.ndarray | None:
    """The test predictions' bin sums (count, confidence sum, correct sum) per confidence bin at `epoch`, pooled
    over `runs` (rows of runs.csv); None when none of them recorded calibration."""
    pooled = None
    for run_dir in runs["run_dir"]:
        frame = RunDir(run_dir).read_calibration()
        if frame is None:
            continue
        rows = frame[(frame["epoch"] == epoch) & (frame["split"] == "test")].sort_values("bin")
        if len(rows) == ECE_BINS:
            sums = rows[["count", "confidence_sum", "correct_sum"]].to_numpy(dtype=float)
            pooled = sums if pooled is None else pooled + sums
    return pooled


def _panels(runs: pd.DataFrame, cells: pd.DataFrame, dataset: str, condition: tuple,
            losses: tuple[str, ...] | None) -> list[tuple[dict, int, np.ndarray]]:
    """(setting, protocol epoch, pooled bins) of each setting of `losses` (None: every loss) in the condition with
    complete full runs that recorded calibration at the protocol's epoch."""
    noise_type, noise_variant, noise = condition
    full = runs[(runs["dataset"] == dataset) & (runs["status"] == COMPLETE) & (runs["holdout"] == 0)
                & (runs["noise_type"] == noise_type) & (runs["noise_variant"].fillna("") == noise_variant)
                & (runs["noise"] == noise)]
    if losses is not None:
        full = full[full["loss"].isin(losses)]
    panels = []
    for loss in settings_in(full):
        epoch = protocol_epoch(cells, dataset, loss_tag(loss), condition)
        bins = None if epoch is None else reliability_bins(full[full["setting"] == loss_tag(loss)], epoch)
        if bins is not None:
            panels.append((loss, epoch, bins))
    return panels


def plot_reliability(runs: pd.DataFrame, cells: pd.DataFrame, dataset: str, condition: tuple,
                     losses: tuple[str, ...] | None = None) -> plt.Figure | None:
    """The reliability diagrams of one condition (noise_type, noise_variant, noise) of `dataset`, a panel per
    setting of `losses` (None: every loss present); None without calibration data."""
    panels = _panels(runs, cells, dataset, condition, losses)
    if not panels:
        return None
    ncols = min(COLUMNS, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(5.0, 3.6 * ncols), 3.8 * nrows), squeeze=False,
                             layout="constrained")
    width = 1.0 / ECE_BINS
    centres = (np.arange(ECE_BINS) + 0.5) * width
    for ax, (loss, epoch, bins) in zip(axes.flat, panels, strict=False):
        count, confidence, correct = bins.T
        seen = count > 0
        accuracy = np.divide(correct, count, out=np.zeros_like(count), where=seen)
        mean_confidence = np.divide(confidence, count, out=np.zeros_like(count), where=seen)
        ax.bar(centres[seen], accuracy[seen], width=width, edgecolor="black", color="C0", label="accuracy")
        ax.bar(centres[seen], (mean_confidence - accuracy)[seen], bottom=accuracy[seen], width=width,
               color="C3", alpha=0.3, edgecolor="C3", hatch="//", label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        measured = signed_from_bins(bins)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy",
               title=f"{setting_label(loss)}: ECE {measured['ece']:.2f}%, gap {measured['signed_gap']:+.2f}% "
                     f"(epoch {epoch})")
        ax.set_aspect("equal")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes[0, 0].legend(loc="lower right", fontsize="small")
    fig.suptitle(f"{dataset_label(dataset)}, {condition_label(condition)}: reliability of the test predictions "
                 "(full runs pooled; gap: confidence - accuracy, + over-confident)")
    return fig


def conditions(cells: pd.DataFrame) -> list[tuple[str, tuple]]:
    """(dataset, (noise_type, noise_variant, noise)) of every condition in cells.csv, sorted."""
    frame = cells.fillna({"noise_variant": ""})[["dataset", "noise_type", "noise_variant", "noise"]].drop_duplicates()
    return sorted((d, (t, s, n)) for d, t, s, n in frame.itertuples(index=False, name=None))


def reliability_figures(runs: pd.DataFrame, cells: pd.DataFrame, suffix: str, losses: tuple[str, ...] | None
                        ) -> Iterator[tuple[str, Callable[[], plt.Figure | None], str]]:
    """(stem, draw, why it may be missing) of each condition's figure, as scripts.figures.all_figures yields them."""
    of = f" of {', '.join(losses)}" if losses else ""
    for dataset, condition in conditions(cells):
        yield (f"reliability_{dataset}_{condition[0]}{condition[1] or format_level(condition[2])}{suffix}",
               functools.partial(plot_reliability, runs, cells, dataset, condition, losses),
               f"no full run{of} with calibration data at a protocol epoch")
