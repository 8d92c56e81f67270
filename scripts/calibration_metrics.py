"""Calibration of saved per-sample predictions: signed ECE, NLL, Brier, a bootstrap interval and temperature scaling.

The evaluation pass (experiments/evaluation.py) keeps only per-bin sums, which give the ECE and its sign but no
confidence interval, NLL after rescaling or Brier score. From the per-sample log-probabilities this module computes:
- signed_calibration: accuracy, mean confidence, the ECE with the project's binning (15 equal-width bins (lo, hi],
  L1, in %), split into over-confidence sum_b n_b/N max(conf_b - acc_b, 0) and under-confidence (their sum is the
  ECE), the signed gap confidence - accuracy, the NLL (nats) and the multiclass Brier score;
- bootstrap_ece: a percentile interval of the ECE over resamples of the samples, since at a thousand test images the
  ECE of a perfectly calibrated model is already about 3 % (the estimator's floor);
- fit_temperature: temperature scaling (Guo et al. 2017), plain or forward-corrected with a noise transition matrix
  M (Patrini et al. 2017). Fitted on noisy validation labels, plain scaling calibrates to the noisy posterior and
  inflates T (under-confidence against clean labels); fitting softmax(z / T) @ M to the noisy labels instead
  targets the clean posterior when M is right (../shared/notes/detection-and-calibration.md, B3).
Everything is float64 numpy/scipy: the inputs may be float16 read from disk.
"""

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp

from experiments.evaluation import ECE_BINS

# The edges experiments.evaluation.calibration_bins bins against: torch.linspace(0, 1, ECE_BINS + 1) in float32,
# whose step is rounded to float32 first, counted up from 0 for the first half and down from 1 for the second, each
# edge rounded once. They lie within a float32 ulp of k / ECE_BINS, not always on the nearest float32, and only these
# put a confidence that sits exactly on an edge in the same bin as the evaluation pass.
_STEP = np.float64(np.float32(1) / np.float32(ECE_BINS))
_K = np.arange(1, ECE_BINS)
_EDGES32 = np.where(_K < (ECE_BINS + 1) // 2, _STEP * _K, 1 - _STEP * (ECE_BINS - _K)).astype(np.float32)
INNER_EDGES = _EDGES32.astype(np.float64)
LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))
TINY = np.finfo(np.float64).tiny
# Resamples per chunk of the bootstrap are sized so that the (chunk, N) counts matrix stays near 4 M entries.
BOOTSTRAP_ENTRIES = 1 << 22


def normalized(log_probs) -> np.ndarray:
    """(N, C) float64 log-probabilities renormalized per row: float16 rounding leaves rows that do not sum to 1."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must be (N, C), got shape {log_probs.shape}")
    return log_probs - logsumexp(log_probs, axis=1, keepdims=True)


def bin_index(confidence) -> np.ndarray:
    """The calibration bin of each confidence: (lo, hi], a confidence on an edge in the bin it closes, 0 in bin 0."""
    return np.searchsorted(INNER_EDGES, np.asarray(confidence, dtype=np.float64), side="left")


def bin_sums(confidence, correct) -> np.ndarray:
    """(ECE_BINS, 3) float64 per bin: count, confidence sum and correct sum, as calibration_bins gives them."""
    bins = bin_index(confidence)
    return np.stack([np.bincount(bins, weights=w, minlength=ECE_BINS)
                     for w in (np.ones(len(bins)), np.asarray(confidence, dtype=np.float64),
                               np.asarray(correct, dtype=np.float64))], axis=-1)


def _top(log_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 confidence and correctness of each row."""
    return np.exp(log_probs.max(1)), log_probs.argmax(1) == labels


def signed_calibration(log_probs, labels) -> dict[str, float]:
    """Accuracy, confidence, ECE, over, under and signed_gap in %, nll in nats and brier (the mean over samples of
    sum_k (p_k - onehot_k)^2, in [0, 2]) of (N, C) log-softmax outputs against integer labels."""
    log_probs, labels = normalized(log_probs), np.asarray(labels)
    rows = np.arange(len(labels))
    probs = np.exp(log_probs)
    # sum_k (p_k - onehot_k)^2 = sum_k p_k^2 - 2 p_y + 1, without building the one-hot matrix.
    brier = (probs**2).sum(1) - 2 * probs[rows, labels] + 1
    return {**signed_from_bins(bin_sums(*_top(log_probs, labels))), "nll": -log_probs[rows, labels].mean(),
            "brier": brier.mean()}


def signed_from_bins(bins: np.ndarray) -> dict[str, float]:
    """Accuracy, confidence, ECE, over- and under-confidence and the signed gap (%) of (count, confidence sum,
    correct sum) bins: what the evaluation pass's calibration.csv keeps, or bin_sums of per-sample predictions."""
    count, confidence, correct = np.asarray(bins, dtype=np.float64).T
    n = count.sum()
    gap = (confidence - correct) / n  # each bin's n_b / N (conf_b - acc_b)
    return {"accuracy": 100 * correct.sum() / n, "confidence": 100 * confidence.sum() / n,
            "ece": 100 * np.abs(gap).sum(), "over": 100 * gap.clip(min=0).sum(),
            "under": 100 * (-gap).clip(min=0).sum(), "signed_gap": 100 * gap.sum()}


def bootstrap_ece(log_probs, labels, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval (lo, hi) of the ECE (%) over n_boot resamples of the samples with replacement.

    A resample is a row of multinomial counts over the N samples; its per-bin confidence and correct sums are those
    counts times each sample's confidence and correctness in its bin's one-hot column, so no resample loops over
    samples (every resample has N samples, so the bin counts are not needed for the ECE).
    """
    log_probs, labels = normalized(log_probs), np.asarray(labels)
    n = len(labels)
    confidence, correct = _top(log_probs, labels)
    one_hot = np.zeros((n, ECE_BINS))
    one_hot[np.arange(n), bin_index(confidence)] = 1.0
    # (N, 2 ECE_BINS): each sample's confidence and correctness in its bin's column.
    spread = np.concatenate([one_hot * confidence[:, None], one_hot * correct[:, None]], axis=1)
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_ENTRIES // n)
    eces = []
    for start in range(0, n_boot, chunk):
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, n_boot - start)).astype(np.float64)
        sums = counts @ spread
        eces.append(100 * np.abs(sums[:, :ECE_BINS] - sums[:, ECE_BINS:]).sum(1) / n)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(np.concatenate(eces), [tail, 100 - tail])
    return float(lo), float(hi)


def scaled(logits, temperature: float) -> np.ndarray:
    """log_softmax(logits / T) in float64."""
    return log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def _transition_columns(transition, labels: np.ndarray, classes: int) -> np.ndarray:
    """(N, C): M[k, label_n] for each sample n and true class k, after checking M is C x C and row-stochastic."""
    transition = np.asarray(transition, dtype=np.float64)
    if transition.shape != (classes, classes):
        raise ValueError(f"transition must be ({classes}, {classes}), got {transition.shape}")
    if (transition < 0).any() or not np.allclose(transition.sum(1), 1.0):
        raise ValueError("transition must be row-stochastic: rows are true classes, columns noisy labels")
    return transition[:, labels].T


def fit_temperature(logits, labels, transition=None) -> float:
    """The T > 0 that minimizes the mean NLL of labels under softmax(logits / T), or with a row-stochastic C x C
    transition M (row: true class, column: noisy label) under the forward-corrected softmax(logits / T) @ M.

    logits may be log-probabilities (a per-row shift changes nothing). T is searched over log T in
    [log 0.05, log 20], where the NLL is unimodal for the plain fit.
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    rows = np.arange(len(labels))
    columns = None if transition is None else _transition_columns(transition, labels, logits.shape[1])

    def nll(log_t: float) -> float:
        log_probs = scaled(logits, np.exp(log_t))
        if columns is None:
            return -log_probs[rows, labels].mean()
        # (p @ M)[n, label_n]; clipped because a class the model rules out can leave a noisy label 0 probability.
        noisy = (np.exp(log_probs) * columns).sum(1)
        return -np.log(np.maximum(noisy, TINY)).mean()

    result = minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))
