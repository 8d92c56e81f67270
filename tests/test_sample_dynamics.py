"""Per-sample dynamics for label-error detection (experiments/sample_dynamics.py): against a per-sample Python loop
that follows the definitions (AUM from epoch 2, forgetting events, first-learned epoch, the softmax's moving
average, prediction changes), on random minibatch logits of two members with orders of their own; and in a run."""

import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from processes import cli, finish
from test_fault_tolerance import one_thread  # noqa: F401 - a fixture
from test_packing import FLOAT64_STEP, configs, members_of

from compose import tiny, train_tiny
from experiments.rundir import RunDir
from experiments.sample_dynamics import EMA_DECAY, SampleDynamics, fresh_state
from experiments.trainer import PackTrainer


def _loop(presentations, n: int, c: int, epochs: int) -> dict:
    """The definitions, one sample at a time: presentations are (epoch, sample, label, logits as a list)."""
    aum_sum, aum_count = [0.0] * n, [0] * n
    correct, forgotten, first, seen = [False] * n, [0] * n, [0] * n, [0] * n
    ema, prediction, changed = [[0.0] * c for _ in range(n)], [-1] * n, [0] * epochs
    for epoch, i, label, z in presentations:
        if epoch >= 2:
            aum_sum[i] += z[label] - max(v for k, v in enumerate(z) if k != label)
            aum_count[i] += 1
        top = max(range(c), key=lambda k: (z[k], -k))  # argmax: the first of ties
        now = top == label
        forgotten[i] += correct[i] and not now
        if first[i] == 0 and now:
            first[i] = epoch
        correct[i] = now
        total = sum(math.exp(v - max(z)) for v in z)
        ema[i] = [EMA_DECAY * e + (1 - EMA_DECAY) * math.exp(v - max(z)) / total
                  for e, v in zip(ema[i], z, strict=True)]
        seen[i] += 1
        changed[epoch - 1] += prediction[i] >= 0 and prediction[i] != top
        prediction[i] = top
    return {"aum_sum": aum_sum, "aum_count": aum_count, "correct": correct, "forgotten": forgotten,
            "first_learned": first, "ema": ema, "seen": seen, "prediction": prediction, "changed": changed}


def test_the_dynamics_of_two_members_equal_a_per_sample_loop():
    n, c, k, epochs, batch = 10, 3, 2, 4, 4
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, c, (k, n), generator=g)
    dynamics = SampleDynamics([fresh_state(n, c, epochs, torch.float64) for _ in range(k)], torch.device("cpu"),
                              torch.float64)
    presented = [[] for _ in range(k)]
    for epoch in range(1, epochs + 1):
        orders = [torch.randperm(n, generator=g) for _ in range(k)]
        for start in range(0, n, batch):  # the last batch is partial
            index = torch.stack([order[start:start + batch] for order in orders], dim=1)  # (B, K)
            y = torch.gather(labels.T, 0, index)
            logits = torch.randn(index.shape[0], k, c, generator=g, dtype=torch.float64)
            dynamics.update(logits, y, index, epoch)
            for j in range(k):
                for b in range(index.shape[0]):
                    presented[j].append((epoch, int(index[b, j]), int(y[b, j]), logits[b, j].tolist()))
    for j in range(k):
        expected = _loop(presented[j], n, c, epochs)
        for name, values in expected.items():
            got = dynamics.states()[name][j]
            torch.testing.assert_close(got.double(), torch.tensor(values, dtype=torch.float64), rtol=1e-12, atol=1e-12,
                                       msg=name)
    assert dynamics.states()["seen"].eq(epochs).all()  # every sample once an epoch


@pytest.mark.usefixtures("one_thread")
def test_a_detecting_run_writes_its_samples_and_a_killed_one_resumes_them_exactly(tmp_path):
    """SIGKILLed after epoch 2's metrics, relaunched to the end: samples.npz and the snapshots (after epochs 2 and 3,
    the last) equal an uninterrupted run's, field by field, and its truth is the run's own labels."""
    args = tiny(tmp_path / "killed", "epochs=3", "noise=0.4", "threads=1", "detect=true", "detect_snapshots=2")
    killed = cli(*args, kill_at="metrics:2")
    finish(killed)
    assert killed.returncode == -signal.SIGKILL
    relaunched = cli(*args)
    out = finish(relaunched)
    assert relaunched.returncode == 0 and "resuming after epoch 2" in out, out
    status, reference = train_tiny(tmp_path / "reference", "epochs=3", "noise=0.4", "threads=1", "detect=true",
                                   "detect_snapshots=2")
    assert status == "complete"
    (run_dir,) = [p.parent for p in (tmp_path / "killed").rglob("samples.npz")]
    resumed, expected = RunDir(run_dir).read_samples(), RunDir(reference).read_samples()
    assert sorted(resumed) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)
    assert RunDir(run_dir).snapshot_epochs() == RunDir(reference).snapshot_epochs() == [2, 3]
    for epoch in (2, 3):
        got, want = RunDir(run_dir).read_snapshot(epoch), RunDir(reference).read_snapshot(epoch)
        assert sorted(got) == sorted(want) == ["portion", "test", "val"]  # a validation run
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{epoch} {name}")
    snapshot = RunDir(reference).read_snapshot(3)
    assert snapshot["portion"].shape == (128, 10) and snapshot["portion"].dtype == np.float16
    # Log-probabilities: each row's probabilities sum to 1 up to float16's rounding.
    np.testing.assert_allclose(np.exp(snapshot["test"].astype(np.float64)).sum(1), 1, atol=5e-3)
    # 160 synthetic images less the holdout of 32, each presented once an epoch; AUM from epoch 2 on.
    assert expected["epoch"] == 3 and expected["seen"].tolist() == [3] * 128 and expected["ema"].shape == (128, 10)
    assert expected["aum_count"].tolist() == [2] * 128 and expected["changed"][0] == 0
    np.testing.assert_array_equal(expected["given"], RunDir(reference).read_noisy_labels()[expected["index"]])
    # The holdout's 32 images: none of the training portion's, labelled as the validation run reads them.
    assert len(expected["val_index"]) == 32 and not set(expected["val_index"]) & set(expected["index"])
    np.testing.assert_array_equal(expected["val_given"], RunDir(reference).read_noisy_labels()[expected["val_index"]])
    assert snapshot["val"].shape == (32, 10)
    assert 0.25 < (expected["given"] != expected["clean"]).mean() < 0.5  # 0.4 x 9/10 of the labels, give or take


def test_resuming_with_another_detect_is_refused_in_one_line(tmp_path):
    """A run killed after its first epoch, relaunched without detect: its state cannot be the run's, so it fails
    saying why, and how to go on."""
    killed = cli(*tiny(tmp_path, "detect=true", "epochs=2"), kill_at="metrics:1")
    finish(killed)
    relaunched = cli(*tiny(tmp_path, "detect=false", "epochs=2"))
    out = finish(relaunched)
    assert relaunched.returncode != 0, out
    assert "detect: " in out and "was trained with detect=true; resume it with detect=true, or rerun it from " \
        "scratch with force=true" in out, out


@pytest.mark.parametrize("field", ["aum_sum", "ema"])
def test_float_fields_take_the_trainers_dtype(field):
    state = SampleDynamics([fresh_state(4, 3, 2)], torch.device("cpu"), torch.float64).states()
    assert state[field].dtype == torch.float64


def _dynamics_after_two_epochs(pack: bool) -> list[dict[str, torch.Tensor]]:
    """Each member's dynamics after 2 float64 epochs of test_packing's mixed pack, trained as one pack or each
    alone."""
    members = members_of(configs(Path("runs"), *FLOAT64_STEP, "detect=true", "epochs=2"), "cpu")
    for m in members:
        m.samples = fresh_state(len(m.data.loader.labels), m.data.num_classes, m.cfg.epochs)
    found = []
    for group in [members] if pack else [[m] for m in members]:
        trainer = PackTrainer(group, torch.device("cpu"), torch.float64)
        trainer.train_epoch(1)
        trainer.train_epoch(2)
        snapshots = trainer.snapshot()
        found += [{**state, **{f"snapshot.{n}": t for n, t in snapshot.items()}}
                  for state, snapshot in zip(trainer.host_states().sample_states(), snapshots, strict=True)]
    return found


def test_a_packs_dynamics_equal_each_members_alone_in_float64(fresh_models):
    """The dynamics in float64; the snapshots in float16, which rounds a log-probability to its 11 bits."""
    packed, alone = _dynamics_after_two_epochs(True), _dynamics_after_two_epochs(False)
    for k, (p, a) in enumerate(zip(packed, alone, strict=True)):
        assert {"snapshot.portion", "snapshot.val", "snapshot.test"} <= set(a)
        for name, expected in a.items():
            if expected.dtype == torch.float16:
                assert torch.equal(p[name], expected), (k, name)
            elif expected.is_floating_point():
                assert p[name].dtype == torch.float64
                assert (p[name] - expected).norm() <= 1e-10 * (expected.norm() or 1.0), (k, name)
            else:
                assert torch.equal(p[name], expected), (k, name)
    assert not torch.equal(packed[0]["aum_sum"], packed[1]["aum_sum"])  # each member's own run
