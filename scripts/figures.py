"""Figures 1-3 of the paper, from the tce library and from run directories, as PNG and PDF.

    python -m scripts.figures --runs RUNS_DIR --out OUT_DIR [--losses ce,tce,gce]

- fig1_tce: the TCE loss and its gradient with respect to log q against log q, for alpha 0 (the CE) to 2,
  computed by the tce library itself (its values, and autograd for the gradient).
- fig2_cifar100_curves: CIFAR-100+ test error against epoch, one panel per noise level plus a detail of
  the lowest noise after the first learning-rate drop (the paper's Fig. 2b); curves_<dataset> is the same
  figure for every other dataset present.
- fig3_accuracy_vs_speed: Top-1 accuracy (the protocol of scripts/aggregate.py) against the epochs to the
  first plateau (`epochs_to_first_plateau`) on CIFAR-10+ and CIFAR-100+ at 40% uniform noise.
- reliability_<dataset>_<condition>: reliability diagrams of every loss setting present (or of the losses that
  `--losses ce,tce,gce` names) at the protocol's epoch, the full runs' test predictions pooled: accuracy per
  confidence bin against the diagonal, the ECE and the signed gap (scripts/reliability.py).
- claimed_vs_ours (in the report only, scripts/report.py): for a recipe with published numbers (results/claims.csv),
  each claim (x) against our value that selects its epoch the same way (y), a point per cell coloured by loss,
  hollow where the claim differs from our cell in a way no setting expresses, and the y = x line.
- memorization_<dataset>: per noisy condition (noise level, type and set), test accuracy and noisy_fit (the % of
  relabelled training samples predicted as their noisy label) against epoch, one line per loss, the protocol's
  epoch marked: CE's peak and its fall as it memorizes the noise, against a robust loss's plateau.

Curves and plateaus use complete full runs only (holdout 0): the mean over their seeds, with a ±1 std band
or error bar (sample std). Figures 2 and 3 show runs of the paper's recipe only; runs of any other recipe get
their own curves, memorization and reliability figures, the recipe's tag ending the file's stem (never merged with
the paper's). A figure without data is skipped with one line saying so; Fig. 1 is always drawn.
"""

import argparse
import functools
import itertools
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator

import tce
from experiments.identity import loss_tag
from experiments.lifecycle import COMPLETE
from scripts.aggregate import Aggregation, aggregate, paper_recipe_tag
from scripts.loss_settings import (
    PAPER_SETTINGS,
    condition_label,
    dataset_label,
    format_level,
    protocol_epoch,
    setting_label,
    settings_in,
)
from scripts.reliability import reliability_figures
from scripts.runs import mean_std

matplotlib.use("Agg")  # files only, also on machines without a display

FIG1_ALPHAS = (0.0, 0.5, 1.0, 1.5, 2.0)
PLATEAU_FRACTION = 0.95
SPEED_DATASETS = ("cifar10", "cifar100")
SPEED_NOISE, SPEED_NOISE_TYPE = 0.4, "uniform"
ZOOM_SPAN = 10.0  # percentage points of test error that the detail panel shows above the lowest mean


def tce_loss_and_gradient(log_q: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The per-sample TCE at each log q and its derivative with respect to log q, both from the library."""
    leaf = torch.tensor(log_q, dtype=torch.float64, requires_grad=True)
    loss = tce.tamed_nll(leaf, alpha)
    (gradient,) = torch.autograd.grad(loss.sum(), leaf)
    return loss.detach().numpy(), gradient.numpy()


def plot_tce() -> plt.Figure:
    log_q = np.linspace(-10.0, 0.0, 501)
    fig, (ax_loss, ax_gradient) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for alpha in FIG1_ALPHAS:
        loss, gradient = tce_loss_and_gradient(log_q, alpha)
        label = rf"$\alpha$ = {format_level(alpha)}" + (" (CE)" if alpha == 0 else "")
        ax_loss.plot(log_q, loss, label=label)
        ax_gradient.plot(log_q, gradient, label=label)
    ax_loss.set(xlabel=r"$\log q_i$", ylabel=r"$\hat{H}_\alpha$", title="(a) TCE loss")
    ax_gradient.set(
        xlabel=r"$\log q_i$", ylabel=r"$\partial \hat{H}_\alpha / \partial \log q_i$", title="(b) its gradient"
    )
    for ax in (ax_loss, ax_gradient):
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def first_lr_drop_epoch(epoch: np.ndarray, lr: np.ndarray) -> int | None:
    """The first epoch whose learning rate is lower than epoch 1's; None when it never drops."""
    lower = np.asarray(lr) < np.asarray(lr)[0]
    return int(np.asarray(epoch)[lower.argmax()]) if lower.any() else None


def epochs_to_first_plateau(epoch: np.ndarray, lr: np.ndarray, test_acc: np.ndarray) -> int:
    """A run's epochs to its first plateau, the convergence speed of the paper's Fig. 3.

    The paper counts "how many epochs are necessary for the network to achieve an accuracy threshold"
    without giving the threshold. Here: let the first learning-rate drop be the first epoch whose lr is
    lower than epoch 1's lr (if the lr never drops, the whole run counts as before it), and let A be the
    highest test accuracy the run attains in the epochs before that drop. The result is the first epoch at
    which test accuracy >= 0.95 * A. The arrays hold one value per epoch, in epoch order.
    """
    epoch, test_acc = np.asarray(epoch), np.asarray(test_acc, dtype=float)
    drop = first_lr_drop_epoch(epoch, lr)
    before_drop = epoch < drop if drop is not None else np.ones(len(epoch), dtype=bool)
    threshold = PLATEAU_FRACTION * test_acc[before_drop].max()
    return int(epoch[(test_acc >= threshold).argmax()])


def complete_full_runs(curves: pd.DataFrame, dataset: str) -> pd.DataFrame:
    mask = (curves["dataset"] == dataset) & (curves["status"] == COMPLETE) & (curves["holdout"] == 0)
    return curves[mask]


def setting_colors(settings: list[str]) -> dict[str, str]:
    """A colour per setting key: the paper's settings keep theirs in every figure, others share the rest."""
    paper = [loss_tag(loss) for loss in PAPER_SETTINGS]
    spare = (f"C{i}" for i in itertools.cycle(range(len(paper), 10)))
    return {s: f"C{paper.index(s)}" if s in paper else next(spare) for s in settings}


def plot_test_error_curves(curves: pd.DataFrame, dataset: str) -> plt.Figure | None:
    """Test error (100 - test_acc) against epoch per noise level, plus the detail panel; None without data.

    The detail panel shows the lowest noise level from the first learning-rate drop on (the whole run when
    the lr never drops), in a y range ZOOM_SPAN points high starting just below the lowest mean error; a run
    with fewer than 2 epochs from there on has no detail panel (it would be empty).
    """
    runs = complete_full_runs(curves, dataset).assign(test_error=lambda f: 100.0 - f["test_acc"])
    if runs.empty:
        return None
    settings = settings_in(runs)
    colors = setting_colors([loss_tag(loss) for loss in settings])
    levels = sorted(set(zip(runs["noise"], runs["noise_type"], strict=True)))
    drop, detail = _detail(runs[(runs["noise"] == levels[0][0]) & (runs["noise_type"] == levels[0][1])])
    n_panels = len(levels) + (detail is not None)
    ncols = min(3, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.6 * nrows), squeeze=False, layout="constrained")
    panels = list(axes.flat)
    for ax, (noise, noise_type) in zip(panels, levels, strict=False):
        level = runs[(runs["noise"] == noise) & (runs["noise_type"] == noise_type)]
        _mean_and_band(ax, level, settings, colors)
        ax.set_title(f"η = {format_level(noise)}" + ("" if noise_type == "uniform" else f" ({noise_type})"))
    if detail is not None:
        ax = panels[len(levels)]
        bottom = max(0.0, _mean_and_band(ax, detail, settings, colors) - 1.0)
        ax.set_ylim(bottom, bottom + ZOOM_SPAN)
        ax.set_title(f"η = {format_level(levels[0][0])}, from epoch {drop} (detail)")

    for ax in panels[:n_panels]:
        ax.set(xlabel="epoch", ylabel="test error (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in panels[n_panels:]:
        ax.set_visible(False)
    fig.legend(*panels[0].get_legend_handles_labels(), loc="outside right upper")
    fig.suptitle(f"{dataset_label(dataset)}: test error of the full runs (mean ± std over seeds)")
    return fig


def _detail(level: pd.DataFrame) -> tuple[int, pd.DataFrame | None]:
    """The detail panel's first epoch and rows: the lowest noise level after the first lr drop, where the paper's
    Fig. 2b shows the CE's error creeping up even without label noise; None for a run too short to show a curve
    there (fewer than 2 epochs from the drop on)."""
    one_run = level[level["run_dir"] == level["run_dir"].iloc[0]]
    drop = first_lr_drop_epoch(one_run["epoch"], one_run["lr"]) or 1
    after = level[level["epoch"] >= drop]
    return drop, after if after["epoch"].nunique() >= 2 else None


def _mean_and_band(
    ax: plt.Axes, runs: pd.DataFrame, settings: list[dict], colors: dict, column: str = "test_error"
) -> float:
    """Draws each setting's mean curve of `column` with a ±std band; returns the lowest mean drawn. Epochs that
    were not evaluated are gaps."""
    lowest = math.inf
    for loss in settings:
        key = loss_tag(loss)
        stats = runs[runs["setting"] == key].groupby("epoch")[column].agg(["mean", "std"])
        if stats["mean"].isna().all():
            continue
        # A run of one epoch is a point, which a line alone would not show.
        ax.plot(stats.index, stats["mean"], color=colors[key], label=setting_label(loss), lw=1.2,
                marker="o" if len(stats) == 1 else None)
        band = stats["std"].fillna(0.0)
        ax.fill_between(stats.index, stats["mean"] - band, stats["mean"] + band, color=colors[key], alpha=0.2)
        lowest = min(lowest, stats["mean"].min())
    return lowest


def plot_accuracy_vs_speed(curves: pd.DataFrame, cells: pd.DataFrame) -> plt.Figure | None:
    """One panel per dataset of SPEED_DATASETS with data: one point per loss setting, named in the legend."""
    panels = [(d, points) for d in SPEED_DATASETS if (points := _speed_points(curves, cells, d))]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False, layout="constrained")
    for ax, (dataset, points) in zip(axes[0], panels, strict=True):
        colors = setting_colors([point[0] for point in points])
        for setting, label, x, x_std, y, y_std in points:
            ax.errorbar(x, y, xerr=x_std, yerr=y_std, fmt="o", color=colors[setting], capsize=3, label=label)
        ax.legend(fontsize="small")
        ax.set(
            xlabel="epochs to the first plateau",
            ylabel="Top-1 accuracy (%)",
            title=f"{dataset_label(dataset)}, η = {format_level(SPEED_NOISE)}",
        )
        ax.grid(alpha=0.3)
    return fig


def _speed_points(curves: pd.DataFrame, cells: pd.DataFrame, dataset: str) -> list[tuple]:
    """(setting, label, plateau mean, plateau std, accuracy mean, accuracy std) per setting with both."""
    runs = complete_full_runs(curves, dataset)
    runs = runs[(runs["noise"] == SPEED_NOISE) & (runs["noise_type"] == SPEED_NOISE_TYPE)]
    accuracy = cells[
        (cells["dataset"] == dataset) & (cells["noise"] == SPEED_NOISE) & (cells["noise_type"] == SPEED_NOISE_TYPE)
    ].set_index("setting")
    points = []
    for loss in settings_in(runs):
        setting = loss_tag(loss)
        if setting not in accuracy.index or pd.isna(accuracy.at[setting, "protocol_mean"]):
            continue
        plateaus = [
            epochs_to_first_plateau(run["epoch"], run["lr"], run["test_acc"])
            for _, run in runs[runs["setting"] == setting].sort_values("epoch").groupby("run_dir")
        ]
        x, x_std = mean_std(plateaus)
        y_std = accuracy.at[setting, "protocol_std"]
        points.append(
            (
                setting,
                setting_label(loss),
                x,
                np.nan_to_num(x_std),
                accuracy.at[setting, "protocol_mean"],
                0.0 if pd.isna(y_std) else y_std,
            )
        )
    return points


def plot_memorization(curves: pd.DataFrame, cells: pd.DataFrame, dataset: str) -> plt.Figure | None:
    """Per noisy condition of `dataset` (a row), test accuracy and noisy_fit against epoch (two panels), one line
    per loss setting: the mean over the complete full runs with a ±1 std band, and a dot at the protocol's epoch
    (the validation run's best) on each mean test-accuracy curve. None without full runs that recorded noisy_fit."""
    runs = complete_full_runs(curves, dataset)
    runs = runs[runs["noisy_fit"].notna().groupby(runs["run_dir"]).transform("any")]
    if runs.empty:
        return None
    runs = runs.fillna({"noise_variant": ""})
    settings = settings_in(runs)
    colors = setting_colors([loss_tag(loss) for loss in settings])
    conditions = sorted(set(runs[["noise_type", "noise_variant", "noise"]].itertuples(index=False, name=None)))
    fig, axes = plt.subplots(
        len(conditions), 2, figsize=(10, 3.4 * len(conditions)), squeeze=False, layout="constrained"
    )
    for (ax_test, ax_fit), (noise_type, noise_variant, noise) in zip(axes, conditions, strict=True):
        level = runs[(runs["noise_type"] == noise_type) & (runs["noise_variant"] == noise_variant)
                     & (runs["noise"] == noise)]
        _mean_and_band(ax_test, level, settings, colors, "test_acc")
        _mean_and_band(ax_fit, level, settings, colors, "noisy_fit")
        for loss in settings:
            epoch = protocol_epoch(cells, dataset, loss_tag(loss), (noise_type, noise_variant, noise))
            curve = level[level["setting"] == loss_tag(loss)].groupby("epoch")["test_acc"].mean()
            if epoch in curve.index:
                ax_test.plot([epoch], [curve[epoch]], "o", color=colors[loss_tag(loss)], ms=5)
        condition = condition_label((noise_type, noise_variant, noise))
        ax_test.set(title=f"{condition}: test accuracy (dot: protocol epoch)", ylabel="test accuracy (%)")
        ax_fit.set(title=f"{condition}: noisy labels memorized", ylabel="noisy_fit (%)")
        for ax in (ax_test, ax_fit):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper")
    fig.suptitle(f"{dataset_label(dataset)}: memorization of the noisy labels (full runs, mean ± std over seeds)")
    return fig


def plot_claimed_vs_ours(compared: pd.DataFrame, title: str) -> plt.Figure | None:
    """Claimed (x) against ours (y) for every row of `compared` (scripts.claims.beside_ours) whose `ours` is known:
    a point per cell coloured by its loss, filled where like is compared with like (`differs` empty), hollow where
    not, and the y = x line; None when no row has both."""
    both = compared[compared["ours"].notna()]
    if both.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 6))
    losses = sorted(set(both["loss"]))
    colors = plt.get_cmap("tab20" if len(losses) > 10 else "tab10")
    for i, loss in enumerate(losses):
        mine = both[both["loss"] == loss]
        color = colors(i % colors.N)
        alike = mine["differs"] == ""
        ax.scatter(mine.loc[alike, "top1"], mine.loc[alike, "ours"], color=color, label=loss, s=28, zorder=3)
        ax.scatter(mine.loc[~alike, "top1"], mine.loc[~alike, "ours"], facecolors="none", edgecolors=color, s=28,
                   label=None if alike.any() else loss, zorder=3)
    low = min(both["top1"].min(), both["ours"].min())
    high = max(both["top1"].max(), both["ours"].max())
    pad = max(1.0, 0.05 * (high - low))
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.5", linestyle="--", linewidth=1, label="y = x")
    ax.set(xlim=(low - pad, high + pad), ylim=(low - pad, high + pad), aspect="equal",
           xlabel="claimed top-1 (%)", ylabel="ours, selected as the claim was (%)",
           title=f"{title}: {len(both)} cells ({int((both['differs'] != '').sum())} hollow: differ)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    paths = [out_dir / f"{stem}.{suffix}" for suffix in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths


def _save_or_skip(fig: plt.Figure | None, out_dir: Path, stem: str, missing: str) -> None:
    if fig is None:
        print(f"{stem}: skipped, {missing}")
    else:
        print("wrote " + ", ".join(str(p) for p in save(fig, out_dir, stem)))


def all_figures(aggregation: Aggregation, losses: tuple[str, ...] | None = None
                ) -> Iterator[tuple[str, Callable[[], plt.Figure | None], str]]:
    """(stem, draw, why it may be missing) of every figure the runs allow, in the order of the files and the
    report; draw() returns the figure, or None when its data is missing. Figures 2 and 3 show the paper's recipe;
    every recipe gets its own per-dataset figures, their stems ending in "-<recipe tag>" unless it is the paper's.
    The reliability figures draw `losses` (None: every loss present)."""
    yield "fig1_tce", plot_tce, ""
    paper = paper_recipe_tag()
    found = set(aggregation.curves["recipe"]) | set(aggregation.cells["recipe"])
    for recipe in [paper, *sorted(found - {paper})]:
        curves = aggregation.curves[aggregation.curves["recipe"] == recipe]
        cells = aggregation.cells[aggregation.cells["recipe"] == recipe]
        runs = aggregation.runs_table[aggregation.runs_table["recipe"] == recipe]
        suffix = "" if recipe == paper else f"-{recipe}"
        datasets = sorted(set(curves["dataset"]))
        if recipe == paper:
            yield ("fig2_cifar100_curves", functools.partial(plot_test_error_curves, curves, "cifar100"),
                   "no complete full run of cifar100")
            yield (
                "fig3_accuracy_vs_speed",
                functools.partial(plot_accuracy_vs_speed, curves, cells),
                f"no loss setting on {' or '.join(SPEED_DATASETS)} at noise {SPEED_NOISE} has both complete full "
                "runs and a protocol value",
            )
        for dataset in datasets:
            if recipe != paper or dataset != "cifar100":
                yield (f"curves_{dataset}{suffix}", functools.partial(plot_test_error_curves, curves, dataset),
                       f"no complete full run of {dataset}")
        for dataset in datasets:
            yield (f"memorization_{dataset}{suffix}", functools.partial(plot_memorization, curves, cells, dataset),
                   f"no complete full run of {dataset} with label noise")
        yield from reliability_figures(runs, cells, suffix, losses)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding run directories")
    parser.add_argument("--out", type=Path, default=Path("results/figures"), help="folder for the figures")
    parser.add_argument("--losses", type=_loss_names, default=None,
                        help="the losses the reliability figures draw, e.g. ce,tce,gce (default: every loss present)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, draw, missing in all_figures(aggregate(args.runs), args.losses):
        _save_or_skip(draw(), args.out, stem, f"{missing} under {args.runs}")


def _loss_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in tce.LOSSES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"not a loss of tce.LOSSES: {', '.join(unknown) or repr(text)}")
    return names

if __name__ == "__main__":
    main()
