"""What each epoch's evaluation pass measures, summed on the device batch by batch and read once per epoch.

One pass per evaluation set, with no augmentation and the model in eval mode:
- "train", the training images (or a fixed subset of them): accuracy against their clean labels, and, among the
  relabelled samples (noisy label != true label), the % the model predicts as their noisy label (`noisy_fit`,
  memorization) and as their true label (`noisy_true`); both are empty when no sample is relabelled.
- "val" and "test": accuracy, the mean negative log-likelihood of the label (nats), and the expected calibration
  error (%) of Guo et al. (ICML 2017): top-1 confidences in 15 equal-width bins (lo, hi], the |accuracy −
  confidence| of each bin weighted by its share of the samples. Our own binning: torchmetrics puts a confidence of
  exactly 1.0 into a 16th bin of its own (its issue #3510), which saturated softmax outputs hit.
The per-bin sums are kept too (`<set>_bins`: count, confidence sum, correct sum per bin), for reliability diagrams.
"""

import torch

ECE_BINS = 15
COLUMNS = {
    "train": ("train_clean_acc", "noisy_fit", "noisy_true"),
    "val": ("val_acc", "val_nll", "val_ece"),
    "test": ("test_acc", "test_nll", "test_ece"),
}
# metrics.csv, in order; older run directories lack noisy_fit, noisy_true and the nll and ece columns.
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", *(c for cs in COLUMNS.values() for c in cs), "seconds")
CALIBRATED = ("val", "test")


def batch_sums(logits: torch.Tensor, labels: torch.Tensor, noisy_labels: torch.Tensor | None = None) -> dict:
    """The sums one batch adds, per member: logits (B, K, C), labels (B, K) and noisy labels (B, K) or None.

    Each value is a float64 tensor with the K members first: correct, nll, relabelled, fit, true (K,) and
    bins (K, ECE_BINS, 3) = (count, confidence sum, correct sum).
    """
    batch, members, _ = logits.shape
    log_probs = logits.float().log_softmax(-1)
    top, predicted = log_probs.max(-1)
    correct = predicted == labels
    confidence = top.exp()
    sums = {
        "correct": correct.sum(0).double(),
        "nll": -log_probs.gather(-1, labels[..., None]).squeeze(-1).double().sum(0),
        "bins": calibration_bins(confidence, correct, members),
    }
    if noisy_labels is not None:
        relabelled = noisy_labels != labels
        sums["relabelled"] = relabelled.sum(0).double()
        sums["fit"] = (relabelled & (predicted == noisy_labels)).sum(0).double()
        sums["true"] = (relabelled & correct).sum(0).double()
    return sums


def calibration_bins(confidence: torch.Tensor, correct: torch.Tensor, members: int = 1) -> torch.Tensor:
    """(members, ECE_BINS, 3) float64: per bin (lo, hi] of [0, 1], the count, confidence sum and correct sum.

    confidence and correct are (B, members) (or (B,) for one member).
    """
    confidence, correct = confidence.reshape(-1, members), correct.reshape(-1, members)
    inner_edges = torch.linspace(0, 1, ECE_BINS + 1, device=confidence.device)[1:-1]
    # bucketize(right=False) gives the first edge >= x, so x on an edge lands in the bin it closes: (lo, hi].
    bins = torch.bucketize(confidence, inner_edges) + ECE_BINS * torch.arange(members, device=confidence.device)
    values = torch.stack([torch.ones_like(confidence), confidence, correct.to(confidence.dtype)], -1).double()
    totals = torch.zeros(members * ECE_BINS, 3, dtype=torch.float64, device=confidence.device)
    return totals.index_add_(0, bins.flatten(), values.reshape(-1, 3)).view(members, ECE_BINS, 3)


def expected_calibration_error(bins: torch.Tensor) -> torch.Tensor:
    """ECE in % from calibration_bins' sums (..., ECE_BINS, 3): Σ_b |correct_b − confidence_b| / n · 100."""
    count, confidence, correct = bins.unbind(-1)
    return 100.0 * (correct - confidence).abs().sum(-1) / count.sum(-1)


def add(totals: dict | None, sums: dict) -> dict:
    return sums if totals is None else {key: totals[key] + value for key, value in sums.items()}


def epoch_metrics(split: str, totals: dict, count: int) -> list[dict]:
    """One dict per member: the split's COLUMNS (None where undefined), and `<split>_bins` for val and test."""
    totals = {key: value.cpu() for key, value in totals.items()}  # the one host read of the pass
    rows = []
    for k in range(len(totals["correct"])):
        accuracy = 100.0 * totals["correct"][k].item() / count
        if split == "train":
            relabelled = totals["relabelled"][k].item()
            fit, true = (100.0 * totals[n][k].item() / relabelled if relabelled else None for n in ("fit", "true"))
            values = (accuracy, fit, true)
        else:
            values = (accuracy, totals["nll"][k].item() / count, expected_calibration_error(totals["bins"][k]).item())
        row = dict(zip(COLUMNS[split], values, strict=True))
        if split in CALIBRATED:
            row[f"{split}_bins"] = totals["bins"][k].tolist()
        rows.append(row)
    return rows
