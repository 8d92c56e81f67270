"""The report's figures of label-error detection: per noise condition, the ROC curve of each loss's self-confidence
against the known flips, and the histograms of the self-confidence of right and of wrong labels, from each loss's
first full run (lowest seed) at the protocol epoch's snapshot, else from its training dynamics.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments.lifecycle import COMPLETE
from experiments.rundir import RunDir
from scripts.detect import ema_probabilities, protocol_epochs, snapshot_at
from scripts.detection_scores import auroc, probability_scores
from scripts.loss_settings import CELL_KEYS, noise_text, setting_label, setting_of


def self_confidences(run_dir: RunDir, protocol: int | None) -> tuple[str, np.ndarray, np.ndarray]:
    """(where from, each training label's self-confidence, whether it is wrong) of a detecting full run."""
    samples = run_dir.read_samples()
    found = snapshot_at(run_dir, protocol, "portion")
    where, p = ("dynamics", ema_probabilities(samples)) if found is None else (f"epoch {found[0]}", found[1])
    return where, probability_scores(p, samples["given"])["self_confidence"], samples["given"] != samples["clean"]


def roc_points(score: np.ndarray, wrong: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) of flagging the lowest scores first, one point per distinct score."""
    order = np.argsort(score, kind="stable")
    s, hits = score[order], wrong[order]
    last = np.r_[s[1:] != s[:-1], True]
    tp, fp = np.cumsum(hits)[last], np.cumsum(~hits)[last]
    return np.r_[0.0, fp / max((~wrong).sum(), 1)], np.r_[0.0, tp / max(wrong.sum(), 1)]


def detection_runs(runs: pd.DataFrame, cells: pd.DataFrame) -> dict[tuple, list[tuple[str, RunDir, int | None]]]:
    """Per (recipe, dataset, noise type, noise variant, noise): each setting's first detecting full run, by its label,
    with the cell's protocol epoch."""
    protocol = protocol_epochs(cells)
    full = runs[(runs["status"] == COMPLETE) & (runs["holdout"] == 0)].fillna({"noise_variant": ""})
    found: dict[tuple, list] = {}
    for run in full.sort_values(["setting", "seed"]).to_dict("records"):
        run_dir = RunDir(run["run_dir"])
        key = tuple(run[k] for k in ("recipe", "dataset", "noise_type", "noise_variant", "noise"))
        label = setting_label(setting_of(run))
        if run_dir.samples.exists() and label not in [s for s, _, _ in found.get(key, [])]:
            found.setdefault(key, []).append((label, run_dir, protocol.get(tuple(run[k] for k in CELL_KEYS))))
    return found


def plot_detection(condition: tuple, members: list[tuple[str, RunDir, int | None]]) -> plt.Figure:
    """ROC curves of every setting in one panel, then one histogram panel per setting."""
    fig, axes = plt.subplots(1, 1 + len(members), figsize=(3.6 * (1 + len(members)), 3.6), squeeze=False,
                             layout="constrained")
    roc, bins = axes[0, 0], np.linspace(0, 1, 26)
    for k, (label, run_dir, protocol) in enumerate(members):
        where, score, wrong = self_confidences(run_dir, protocol)
        x, y = roc_points(score, wrong)
        roc.plot(x, y, color=f"C{k}", label=f"{label} ({auroc(score, wrong):.3f})")
        ax = axes[0, 1 + k]
        ax.hist(score[~wrong], bins=bins, alpha=0.6, color="C2", label=f"right ({(~wrong).sum()})")
        ax.hist(score[wrong], bins=bins, alpha=0.6, color="C3", label=f"wrong ({wrong.sum()})")
        ax.set(xlabel="self-confidence p[given]", ylabel="training labels", title=f"{label}, {where}")
        ax.legend(fontsize="small")
    roc.plot([0, 1], [0, 1], "k--", lw=1)
    roc.set(xlabel="right labels flagged", ylabel="wrong labels flagged", title="ROC of self-confidence (AUROC)")
    roc.legend(fontsize="small", loc="lower right")
    _, dataset, noise_type, variant, noise = condition
    fig.suptitle(f"{dataset}, {noise_text(noise_type, variant, noise)}: label-error detection "
                 f"(in-sample, first full run of each loss)")
    return fig
