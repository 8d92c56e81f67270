"""Which training labels are wrong: scores, flags and their metrics from the runs that recorded their training
dynamics (detect=true: samples.npz, experiments/sample_dynamics.py), against the flips their noise made.

    python -m scripts.detect --runs RUNS_DIR [--out OUT_DIR]

For every complete full run (holdout 0) with a samples.npz, each training image gets these scores, lower meaning
more likely wrong. All are in-sample: the network trained on the very labels it scores.
- self_confidence: p[given] of the softmax average over the minibatches, its bias divided out (cleanlab's
  self-confidence of those probabilities);
- normalized_margin: (p[given] - max_{k != given} p[k] + 1) / 2 of the same average (cleanlab's);
- aum: the mean logit margin z_given - max_{k != given} z_k over the minibatches from epoch 2 (AUM);
- forgetting: minus the number of forgetting events, a sample never predicted as its label at minus its
  presentations (Toneva et al.: never learned counts as most forgotten).
Each score's AUROC and average precision (AP) against the flips, and P@K, the precision of the K lowest with K the
true number of wrong labels (ties in the order of the training portion). Two rules flag samples without clean
labels: argmax != given of the average, and cleanlab's find_label_issues (its confident joint,
prune_by_noise_rate) on the average; each with the number flagged, precision, recall and F1, beside the F1 of
flagging every sample, 2 eta / (1 + eta) at the run's realized rate eta. A cell's numbers are the mean ± std over
its full runs (each seed has noisy labels of its own, so the runs are not ensembled); OUT_DIR gets detection.csv,
one row per run and score or rule.
"""

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from scipy.stats import rankdata

from experiments.lifecycle import COMPLETE
from experiments.rundir import CorruptRun, RunDir
from experiments.sample_dynamics import EMA_DECAY
from scripts.aggregate import aggregate

SCORES = ("self_confidence", "normalized_margin", "aum", "forgetting")
RULES = ("argmax_not_given", "cleanlab")
CELL_KEYS = ["recipe", "dataset", "noise_type", "noise", "noise_variant", "setting"]


def probabilities(samples: dict[str, np.ndarray]) -> np.ndarray:
    """The softmax average of each sample (N, C), its bias 1 - EMA_DECAY^seen divided out."""
    seen = samples["seen"].astype(np.float64)[:, None]
    return samples["ema"].astype(np.float64) / np.maximum(1 - EMA_DECAY ** seen, 1e-12)


def scores(samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """SCORES of each training image (lower: more likely wrong)."""
    p, given = probabilities(samples), samples["given"]
    rows = np.arange(len(given))
    own = p[rows, given]
    others = p.copy()
    others[rows, given] = -np.inf
    never = samples["first_learned"] == 0
    return {
        "self_confidence": own,
        "normalized_margin": (own - others.max(axis=1) + 1) / 2,
        "aum": samples["aum_sum"] / np.maximum(samples["aum_count"], 1),
        "forgetting": -np.where(never, samples["seen"], samples["forgotten"]).astype(np.float64),
    }


def flags(samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """RULES' flags (True: flagged as wrong), none of them reading the clean labels."""
    p, given = probabilities(samples), samples["given"]
    return {"argmax_not_given": p.argmax(axis=1) != given,
            "cleanlab": find_label_issues(given, p / p.sum(axis=1, keepdims=True))}


def auroc(score: np.ndarray, wrong: np.ndarray) -> float:
    """P(a wrong label scores below a right one), ties counted half: Mann-Whitney's U over their counts."""
    positives, negatives = int(wrong.sum()), int((~wrong).sum())
    if not positives or not negatives:
        return math.nan
    ranks = rankdata(-score)  # average ranks of the ties
    return (ranks[wrong].sum() - positives * (positives + 1) / 2) / (positives * negatives)


def average_precision(score: np.ndarray, wrong: np.ndarray) -> float:
    """sum over thresholds (each distinct score, lowest first) of (recall step) x precision there."""
    if not wrong.any():
        return math.nan
    order = np.argsort(score, kind="stable")
    s, hits = score[order], wrong[order].astype(np.float64)
    last = np.r_[s[1:] != s[:-1], True]  # the last sample of each distinct score: a threshold
    tp, flagged = np.cumsum(hits)[last], (np.arange(len(s)) + 1)[last]
    recall_step = np.diff(np.r_[0.0, tp]) / wrong.sum()
    return float((recall_step * tp / flagged).sum())


def precision_at_true_count(score: np.ndarray, wrong: np.ndarray) -> float:
    k = int(wrong.sum())
    return float(wrong[np.argsort(score, kind="stable")[:k]].mean()) if k else math.nan


def flag_metrics(flagged: np.ndarray, wrong: np.ndarray) -> dict[str, float]:
    hits = int((flagged & wrong).sum())
    precision = hits / flagged.sum() if flagged.any() else math.nan
    recall = hits / wrong.sum() if wrong.any() else math.nan
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"flagged": int(flagged.sum()), "precision": precision, "recall": recall, "f1": f1}


def run_rows(samples: dict[str, np.ndarray]) -> list[dict]:
    """detection.csv's rows of one run: each score's threshold-free metrics, each rule's flag metrics."""
    wrong = samples["given"] != samples["clean"]
    eta = float(wrong.mean())
    common = {"true_count": int(wrong.sum()), "flag_all_f1": 2 * eta / (1 + eta), "in_sample": True}
    rows = [{"what": name, **common, "auroc": auroc(s, wrong), "ap": average_precision(s, wrong),
             "p_at_k": precision_at_true_count(s, wrong)} for name, s in scores(samples).items()]
    rows += [{"what": name, **common, **flag_metrics(f, wrong)} for name, f in flags(samples).items()]
    return rows


def detection_frame(runs_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """detection.csv of every complete full run below `runs_dir` with samples.npz, and the runs left out (why)."""
    table = aggregate(runs_dir).runs_table
    full = table[(table["status"] == COMPLETE) & (table["holdout"] == 0)]
    rows, left_out = [], []
    for run in full.to_dict("records"):
        run_dir = RunDir(run["run_dir"])
        if not run_dir.samples.exists():
            continue
        try:
            samples = run_dir.read_samples()
        except CorruptRun as error:
            left_out.append(str(error))
            continue
        keys = {key: run[key] for key in [*CELL_KEYS, "seed", "run_dir"]}
        rows += [{**keys, **row} for row in run_rows(samples)]
    return pd.DataFrame(rows), left_out


def markdown(frame: pd.DataFrame) -> str:
    """Per cell, each score's AUROC, AP and P@K and each rule's F1, precision and recall: mean ± std over seeds."""
    def spread(values: pd.Series) -> str:
        values = values.dropna()
        if values.empty:
            return "—"
        return f"{values.mean():.3f}" + (f" ± {values.std():.3f}" if len(values) > 1 else "")

    lines = ["| dataset | noise | loss | n | score or rule | AUROC | AP | P@K | flagged | precision | recall | F1 "
             "| F1 flag all |", "|" + "---|" * 13]
    for cell, group in frame.fillna({"noise_variant": ""}).groupby(CELL_KEYS, sort=True):
        _, dataset, noise_type, noise, variant, setting = cell
        noise_text = " ".join(filter(None, [noise_type, variant, f"{noise:g}"]))
        for what, mine in group.groupby("what", sort=False):
            columns = ["auroc", "ap", "p_at_k", "flagged", "precision", "recall", "f1", "flag_all_f1"]
            lines.append(f"| {dataset} | {noise_text} | {setting} | {len(mine)} | {what} | "
                         + " | ".join(spread(mine[c]) if c in mine else "—" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding run directories")
    parser.add_argument("--out", type=Path, help="folder for detection.csv and detection.md")
    args = parser.parse_args(argv)
    frame, left_out = detection_frame(args.runs)
    for line in left_out:
        print(f"left out: {line}")
    if frame.empty:
        print(f"no complete full run under {args.runs} recorded its dynamics (train with detect=true)")
        return
    text = markdown(frame)
    print(f"Label-error detection, in-sample scores (lower: more likely wrong), {frame['run_dir'].nunique()} runs:\n")
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out / "detection.csv", index=False)
        (args.out / "detection.md").write_text(text)
        print(f"wrote detection.csv and detection.md to {args.out}")


if __name__ == "__main__":
    main()
