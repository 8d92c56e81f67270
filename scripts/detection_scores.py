"""Which training labels are wrong, from per-sample probabilities or training dynamics: the scores (lower: more
likely wrong), the rules that flag samples without reading a clean label, and their metrics against the known flips.
scripts/detect.py applies them to the runs; docs/analysis.md says what each means.

Scores of probabilities p (N, C) and the given labels:
- self_confidence: p[given] (cleanlab's self-confidence). The loss -log p[given] orders the samples the same way, so
  the small-loss criterion has this score's AUROC and differs only by its threshold (small_loss_gmm below);
- normalized_margin: (p[given] - max_{k != given} p[k] + 1) / 2 (cleanlab's).
Scores of the training dynamics (experiments/sample_dynamics.py, through the last epoch):
- aum: the mean logit margin z_given - max_{k != given} z_k over the minibatches from epoch 2 (Pleiss et al. 2020);
- forgetting: minus the number of forgetting events, a sample never predicted as its label at minus its
  presentations (Toneva et al. 2019: never learned counts as most forgotten).
Rules, each the same for every loss:
- argmax_not_given: the most probable class is not the given label;
- cleanlab: cleanlab's find_label_issues (its confident joint, prune_by_noise_rate), which flags as many samples as
  the confident joint estimates wrong;
- small_loss_gmm: a two-component Gaussian mixture on the per-sample loss -log p[given], min-max normalized, a
  sample flagged where the component of the larger mean is more probable (DivideMix's rule, Li et al. 2020).
Metrics: each score's AUROC and average precision (AP), and P@K, the precision of the K lowest with K the true number
of wrong labels (ties in the samples' order); each rule's number flagged, precision, recall and F1, beside the F1 of
flagging every sample, 2 eta / (1 + eta) at the realized rate eta (F1 grows with the noise rate: a rule is only worth
its margin over that).
"""

import math

import numpy as np
from cleanlab.filter import find_label_issues
from scipy.stats import rankdata
from sklearn.mixture import GaussianMixture

PROBABILITY_SCORES = ("self_confidence", "normalized_margin")
DYNAMICS_SCORES = ("aum", "forgetting")
SCORES = (*PROBABILITY_SCORES, *DYNAMICS_SCORES)
RULES = ("argmax_not_given", "cleanlab", "small_loss_gmm")


def probability_scores(p: np.ndarray, given: np.ndarray) -> dict[str, np.ndarray]:
    """PROBABILITY_SCORES of probabilities p (N, C) against the given labels."""
    rows = np.arange(len(given))
    own = p[rows, given]
    others = p.copy()
    others[rows, given] = -np.inf
    return {"self_confidence": own, "normalized_margin": (own - others.max(axis=1) + 1) / 2}


def dynamics_scores(samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """DYNAMICS_SCORES of a run's samples.npz."""
    never = samples["first_learned"] == 0
    return {"aum": samples["aum_sum"] / np.maximum(samples["aum_count"], 1),
            "forgetting": -np.where(never, samples["seen"], samples["forgotten"]).astype(np.float64)}


def small_loss_flags(loss: np.ndarray) -> np.ndarray:
    """small_loss_gmm's flags: DivideMix's mixture (its reg_covar, tol and max_iter) on the min-max normalized loss,
    seeded, so that the same losses give the same flags."""
    spread = np.ptp(loss)
    if spread == 0:
        return np.zeros(len(loss), bool)
    x = ((loss - loss.min()) / spread).reshape(-1, 1)
    mixture = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=0).fit(x)
    return mixture.predict_proba(x)[:, int(np.argmax(mixture.means_[:, 0]))] > 0.5


def flags(p: np.ndarray, given: np.ndarray) -> dict[str, np.ndarray]:
    """RULES' flags (True: flagged as wrong) of probabilities p (N, C), none of them reading the clean labels."""
    p = p / p.sum(axis=1, keepdims=True)
    loss = -np.log(np.maximum(p[np.arange(len(given)), given], np.finfo(np.float64).tiny))
    return {"argmax_not_given": p.argmax(axis=1) != given, "cleanlab": find_label_issues(given, p),
            "small_loss_gmm": small_loss_flags(loss)}


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


def metric_rows(scores: dict[str, np.ndarray], flagged: dict[str, np.ndarray], given: np.ndarray,
                clean: np.ndarray) -> list[dict]:
    """One row per score (AUROC, AP, P@K) and per rule (flag_metrics), each with the true count and the F1 of
    flagging everything."""
    wrong = given != clean
    eta = float(wrong.mean())
    common = {"true_count": int(wrong.sum()), "flag_all_f1": 2 * eta / (1 + eta)}
    rows = [{"what": name, **common, "auroc": auroc(s, wrong), "ap": average_precision(s, wrong),
             "p_at_k": precision_at_true_count(s, wrong)} for name, s in scores.items()]
    return rows + [{"what": name, **common, **flag_metrics(f, wrong)} for name, f in flagged.items()]
