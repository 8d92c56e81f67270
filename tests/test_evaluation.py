"""What an epoch's evaluation pass measures (experiments/evaluation.py), on hand-made cases with known answers."""

import math

import pytest
import torch

from compose import compose_train, tiny
from data import load_dataset
from experiments.evaluation import (
    ECE_BINS,
    add,
    batch_sums,
    calibration_bins,
    epoch_metrics,
    expected_calibration_error,
)
from experiments.resolve import resolve
from experiments.run import run_data_for
from experiments.trainer import Member, PackTrainer, initial_model_state


def _logits_predicting(predictions: list[int], num_classes: int = 4) -> torch.Tensor:
    """(N, 1, C) logits whose argmax is `predictions` (one member)."""
    logits = torch.zeros(len(predictions), num_classes)
    logits[torch.arange(len(predictions)), torch.tensor(predictions)] = 5.0
    return logits[:, None, :]


def test_noisy_fit_and_noisy_true_on_a_hand_made_case():
    clean = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    noisy = torch.tensor([0, 2, 3, 0, 1, 1, 0, 3, 0, 3])  # relabelled: samples 1, 2, 3, 4, 6, 9 (6 of them)
    predicted = [0, 2, 2, 1, 0, 1, 0, 3, 1, 1]
    # Of the 6 relabelled: 1 and 6 predicted as their noisy label (2 -> 33.3%), 2, 4 and 9 as their true label
    # (3 -> 50%), 3 as neither. Clean accuracy over all 10: samples 0, 2, 4, 5, 7, 9 are right (60%).
    totals = batch_sums(_logits_predicting(predicted), clean[:, None], noisy[:, None])
    (row,) = epoch_metrics("train", totals, 10)
    assert row == {"train_clean_acc": pytest.approx(60.0), "noisy_fit": pytest.approx(100 / 3),
                   "noisy_true": pytest.approx(50.0)}


def test_noisy_columns_are_empty_without_relabelled_samples():
    labels = torch.tensor([0, 1, 2])
    (row,) = epoch_metrics("train", batch_sums(_logits_predicting([0, 1, 0]), labels[:, None], labels[:, None]), 3)
    assert row["noisy_fit"] is None and row["noisy_true"] is None and row["train_clean_acc"] == pytest.approx(200 / 3)


def test_sums_add_up_over_batches_and_members():
    clean, noisy = torch.tensor([[0, 0], [1, 1], [2, 2]]), torch.tensor([[0, 1], [2, 1], [2, 0]])
    logits = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(0))
    whole = batch_sums(logits, clean, noisy)
    split = add(batch_sums(logits[:1], clean[:1], noisy[:1]), batch_sums(logits[1:], clean[1:], noisy[1:]))
    for key in whole:
        assert torch.allclose(whole[key], split[key]), key
    # Member k sees only its own columns.
    alone = batch_sums(logits[:, 1:], clean[:, 1:], noisy[:, 1:])
    assert all(torch.allclose(whole[key][1], alone[key][0]) for key in whole)


def test_ece_on_a_hand_computed_case():
    # Confidences in 15 bins (lo, hi]: 0.95 and 1.0 share the last bin (14/15, 1] (torchmetrics would put 1.0 in a
    # 16th); 0.25 is in (3/15, 4/15]; 2/15 is on an edge and belongs to the bin it closes, (1/15, 2/15].
    confidence = torch.tensor([0.95, 1.0, 0.25, 0.25, 2 / 15])
    correct = torch.tensor([True, False, True, False, False])
    bins = calibration_bins(confidence, correct)[0]
    assert bins[14].tolist() == [2, pytest.approx(1.95), 1]
    assert bins[3].tolist() == [2, pytest.approx(0.5), 1]
    assert bins[1].tolist() == [1, pytest.approx(2 / 15), 0]
    assert bins.sum(0)[0] == 5 and bins[[0, 2, *range(4, 14)]].abs().sum() == 0
    # ECE = sum over bins of |correct - confidence| / n: (|1 - 1.95| + |1 - 0.5| + |0 - 2/15|) / 5.
    expected = 100 * (0.95 + 0.5 + 2 / 15) / 5
    assert expected_calibration_error(bins).item() == pytest.approx(expected)


def test_ece_and_nll_from_logits():
    # Two classes; p = softmax: confident and right, unsure and wrong.
    logits = torch.tensor([[[math.log(9.0), 0.0]], [[0.0, math.log(1.5)]]])  # p = (0.9, 0.1) and (0.4, 0.6)
    labels = torch.tensor([[0], [0]])
    (row,) = epoch_metrics("test", batch_sums(logits, labels), 2)
    assert row["test_acc"] == pytest.approx(50.0)
    assert row["test_nll"] == pytest.approx(-(math.log(0.9) + math.log(0.4)) / 2)
    # Bins (13/15, 14/15] holds 0.9 (right), (8/15, 9/15] holds 0.6 (wrong): (0.1 + 0.6) / 2.
    assert row["test_ece"] == pytest.approx(100 * (0.1 + 0.6) / 2)
    assert len(row["test_bins"]) == ECE_BINS and sum(b[0] for b in row["test_bins"]) == 2


def test_the_engine_measures_in_one_pass_what_the_predictions_say(tmp_path):
    """PackTrainer.evaluate against the same numbers computed directly from the model's predictions."""
    cfg = resolve(compose_train(*tiny(tmp_path, "noise=0.5", "eval_batch_size=48")))
    dataset = load_dataset("synthetic", "", train_size=160, test_size=64, num_classes=10, seed=0, image_size=32)
    data = run_data_for(cfg, dataset, torch.device("cpu"))
    trainer = PackTrainer([Member(cfg, data, initial_model_state(cfg, 3, 10))], torch.device("cpu"))
    for x, y in trainer.batches:
        trainer.step(x, y)
    (train,), (test,) = trainer.evaluate("train"), trainer.evaluate("test")
    trainer.model.eval()
    with torch.no_grad():
        train_set = data.eval_sets["train"]
        x = torch.cat([b[0] for b in train_set.batches(1000)])
        predicted = trainer.model(x.contiguous(memory_format=torch.channels_last)).argmax(1)
        relabelled = train_set.noisy_labels != train_set.labels
        assert relabelled.sum() > 10
        assert train["train_clean_acc"] == pytest.approx(100 * (predicted == train_set.labels).double().mean().item())
        assert train["noisy_fit"] == pytest.approx(
            100 * (predicted == train_set.noisy_labels)[relabelled].double().mean().item())
        assert train["noisy_true"] == pytest.approx(
            100 * (predicted == train_set.labels)[relabelled].double().mean().item())
        test_set = data.eval_sets["test"]
        log_p = trainer.model(torch.cat([b[0] for b in test_set.batches(1000)])).log_softmax(1)
        assert test["test_nll"] == pytest.approx(-log_p.gather(1, test_set.labels[:, None]).mean().item(), rel=1e-5)
