"""A run's last-epoch metrics recomputed from its checkpoint with a plain loop: float64, one image at a time, the
normalization, softmax, NLL and the 15 ECE bins (lo, hi] written out by hand, none of the engine's evaluation code.
An independent expectation for what the engine wrote in metrics.csv."""

import math
from pathlib import Path

import numpy as np
import torch

from models import ResNet


def _normalized(images: torch.Tensor, train_images: torch.Tensor) -> np.ndarray:
    """(x / 255 - mean) / std per channel, with the mean and population std of the whole training split."""
    train = train_images.numpy().astype(np.float64) / 255.0
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = np.sqrt(((train - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True))
    return (images.numpy().astype(np.float64) / 255.0 - mean) / std


def _probabilities(run_dir: Path, depth: int, images: torch.Tensor, train_images: torch.Tensor) -> list[np.ndarray]:
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    model = ResNet(depth, images.shape[1], len(state["fc.bias"])).double()
    model.load_state_dict(state)
    model.eval()
    found = []
    with torch.no_grad():
        for x in _normalized(images, train_images):
            logits = model(torch.from_numpy(x)[None])[0].numpy()
            exp = np.exp(logits - logits.max())
            found.append(exp / exp.sum())
    return found


def evaluate_test_split(run_dir: Path, depth: int, dataset) -> dict[str, float]:
    """test_acc, test_nll and test_ece (%) of the checkpoint's model on `dataset`'s test split."""
    probs = _probabilities(run_dir, depth, dataset.test_images, dataset.train_images)
    labels = dataset.test_labels.tolist()
    n = len(labels)
    correct = [int(np.argmax(p)) == y for p, y in zip(probs, labels, strict=True)]
    nll = sum(-math.log(p[y]) for p, y in zip(probs, labels, strict=True)) / n
    confidence = [float(np.max(p)) for p in probs]
    ece = 0.0
    for b in range(15):  # a bin's |accuracy - confidence|, weighted by its share of the images
        members = [i for i in range(n) if b / 15 < confidence[i] <= (b + 1) / 15]
        ece += abs(sum(correct[i] for i in members) - sum(confidence[i] for i in members)) / n
    return {"test_acc": 100.0 * sum(correct) / n, "test_nll": nll, "test_ece": 100.0 * ece}


def evaluate_training_images(run_dir: Path, depth: int, dataset, train_portion: torch.Tensor) -> dict:
    """train_clean_acc, noisy_fit and noisy_true (%) of the checkpoint's model on the training images
    `train_portion` (indices into the training split), with the run's noisy labels from noisy_labels.npy."""
    probs = _probabilities(run_dir, depth, dataset.train_images[train_portion], dataset.train_images)
    predicted = [int(np.argmax(p)) for p in probs]
    clean = dataset.train_labels[train_portion].tolist()
    noisy = np.load(run_dir / "noisy_labels.npy")[train_portion.numpy()].tolist()
    relabelled = [i for i in range(len(clean)) if noisy[i] != clean[i]]

    def among_relabelled(labels: list[int]) -> float | None:
        return 100.0 * sum(predicted[i] == labels[i] for i in relabelled) / len(relabelled) if relabelled else None

    return {
        "train_clean_acc": 100.0 * sum(p == c for p, c in zip(predicted, clean, strict=True)) / len(clean),
        "noisy_fit": among_relabelled(noisy),
        "noisy_true": among_relabelled(clean),
    }
