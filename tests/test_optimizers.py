"""Adam, AdamW and the lr's warm-up (optim.name, optim.betas, optim.eps, optim.warmup_epochs) against torch's own
optimizers and schedulers: the lr of every epoch, the trainer's steps in float64, a pack against its runs alone, a
run killed and resumed, and the paper's recipe untouched."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from test_packing import FLOAT64_STEP, assert_states_equal_in_float64, configs, members_of, one_step_in_float64
from test_recipes import _schedule, _torch_lrs

import models
from compose import compose_train, tiny, train_tiny
from experiments.identity import recipe, recipe_tag
from experiments.interrupt import RunInterrupted
from experiments.killpoints import ENV as KILL_AT
from experiments.optimizer import lr_at
from experiments.resolve import resolve
from experiments.schema import ConfigError
from experiments.trainer import PackTrainer
from scripts.aggregate import paper_recipe, paper_recipe_tag

SCHEDULER = torch.optim.lr_scheduler


def _warmed(warmup: int, then):
    """torch's warm-up: LinearLR from lr / (warmup + 1) over `warmup` epochs, then `then`'s scheduler."""
    return lambda o: SCHEDULER.SequentialLR(o, [SCHEDULER.LinearLR(o, 1 / (warmup + 1), 1.0, total_iters=warmup),
                                                then(o)], milestones=[warmup])


@pytest.mark.parametrize("epochs, warmup, milestones, torch_milestones", [
    (256, 5, [0.5, 0.75], [125, 188]), (10, 2, [0.5, 0.75], [4, 6]), (6, 2, [0.5, 0.75], [2, 3]), (3, 1, [0.5], [1])])
def test_warmup_then_the_step_schedule_is_torchs_linear_lr_then_multistep(epochs, warmup, milestones,
                                                                          torch_milestones):
    """The step schedule after the warm-up is the one a run of epochs - warmup epochs has (floor(0.5 251) = 125)."""
    cfg = _schedule(epochs, lr_milestones=milestones, warmup_epochs=warmup)
    expected = _torch_lrs(_warmed(warmup, lambda o: SCHEDULER.MultiStepLR(o, torch_milestones, gamma=0.1)), 0.1,
                          epochs)
    found = [lr_at(e, cfg) for e in range(1, epochs + 1)]
    assert found == pytest.approx(expected, rel=1e-9)
    assert found[0] == pytest.approx(0.1 / (warmup + 1), rel=1e-12) and found[warmup] == 0.1


@pytest.mark.parametrize("schedule, then", [
    ("cosine", lambda o: SCHEDULER.CosineAnnealingLR(o, T_max=40 - 3, eta_min=1e-4)),
    ("cosine_restarts", lambda o: SCHEDULER.CosineAnnealingWarmRestarts(o, T_0=7, eta_min=1e-4)),
    ("exponential", lambda o: SCHEDULER.StepLR(o, 1, gamma=0.9))])
def test_warmup_then_each_schedule_is_torchs_sequential_lr(schedule, then):
    cfg = _schedule(40, lr=0.3, schedule=schedule, lr_min=1e-4, restart_epochs=7, lr_gamma=0.9, warmup_epochs=3)
    expected = _torch_lrs(_warmed(3, then), 0.3, 40)
    assert [lr_at(e, cfg) for e in range(1, 41)] == pytest.approx(expected, rel=1e-9)


ADAM = ("optim.lr=0.003", "optim.weight_decay=0.05", "optim.betas=[0.8,0.99]", "optim.eps=1e-6")


@pytest.mark.parametrize("name, reference", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_three_trainer_steps_are_torchs_optimizer_on_the_same_model_and_batches_in_float64(name, reference,
                                                                                           fresh_models):
    """torch's single-tensor implementation, on a ResNet of its own, from the same weights and batches: Adam's weight
    decay added to the gradient, AdamW's decoupled; weights and both moments equal, one step count."""
    (cfg,) = [resolve(compose_train(*tiny(Path("runs"), *FLOAT64_STEP, f"optim.name={name}", *ADAM)))]
    (member,) = members_of([cfg], "cpu")
    trainer = PackTrainer([member], torch.device("cpu"), torch.float64)
    model = models.build("resnet", 8, 3, 10).double()
    model.load_state_dict(member.model_state)
    optimizer = reference(model.parameters(), lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05,
                          foreach=False)
    for (x, y), _ in zip(trainer.batches, range(3), strict=False):
        trainer.step(x, y)
        optimizer.zero_grad()
        F.cross_entropy(model(x.double()), y[:, 0]).backward()
        optimizer.step()
    ((weights, state),) = trainer.member_states()
    expected = {**model.state_dict(), **{f"{entry}:{n}": optimizer.state[p][entry]
                                         for n, p in model.named_parameters() for entry in ("exp_avg", "exp_avg_sq")}}
    steps = {n: t for n, t in state.items() if n.startswith("step:")}
    assert_states_equal_in_float64([{**weights, **{n: t for n, t in state.items() if n not in steps}}], [expected])
    assert len(steps) == len(list(model.parameters())) and all(t.item() == 3 for t in steps.values())
    assert (weights["conv1.weight"] - member.model_state["conv1.weight"].double()).abs().max() > 1e-4


def test_one_adamw_step_of_a_mixed_pack_equals_each_run_alone_in_float64(fresh_models):
    cfgs = configs(Path("runs"), *FLOAT64_STEP, "optim.name=adamw", *ADAM)
    packed, alone = one_step_in_float64(cfgs, "cpu", True), one_step_in_float64(cfgs, "cpu", False)
    counts = [{n: t for n, t in s.items() if ".step:" in n} for s in packed]
    assert all(t.item() == 1 for c in counts for t in c.values()) and all(len(c) > 0 for c in counts)
    assert_states_equal_in_float64(*([{n: t for n, t in s.items() if ".step:" not in n} for s in states]
                                     for states in (packed, alone)))


def _adamw_run(root: Path, monkeypatch, stop_after: int | None = None) -> Path:
    """A 6-epoch AdamW run with 2 epochs of warm-up; stopped by SIGUSR1 once epoch `stop_after` is trained, then
    resumed in this process."""
    args = (root, "epochs=6", "noise=0.4", "optim.name=adamw", "optim.warmup_epochs=2", *ADAM)
    if stop_after is not None:
        monkeypatch.setenv(KILL_AT, f"trained:{stop_after}:SIGUSR1")
        with pytest.raises(RunInterrupted):
            train_tiny(*args)
        monkeypatch.delenv(KILL_AT)
    status, run_dir = train_tiny(*args)
    assert status == "complete"
    return run_dir


def test_an_adamw_run_with_warmup_trains_torchs_lrs_and_resumes_as_it_would_have_gone_on(tmp_path, monkeypatch,
                                                                                       fresh_models):
    """metrics.csv's lr is torch's LinearLR then MultiStepLR of every epoch; killed after epoch 3 (the first of the
    schedule) and resumed, its weights and AdamW state (moments, step count) equal an uninterrupted run's bit for
    bit, which they would not with the moments or the step count lost."""
    resumed = _adamw_run(tmp_path / "resumed", monkeypatch, stop_after=3)
    reference = _adamw_run(tmp_path / "reference", monkeypatch)
    with open(reference / "metrics.csv") as f:
        lrs = [float(row["lr"]) for row in csv.DictReader(f)]
    assert lrs == pytest.approx(_torch_lrs(_warmed(2, lambda o: SCHEDULER.MultiStepLR(o, [2, 3])), 0.003, 6), rel=1e-9)
    assert json.loads((reference / "summary.json").read_text())["epochs_completed"] == 6
    found, expected = (torch.load(path / "checkpoint.pt", weights_only=True) for path in (resumed, reference))
    assert any(n.startswith("exp_avg_sq:") for n in expected["momentum"])
    for part in ("model", "momentum"):
        assert found[part].keys() == expected[part].keys()
        assert all(torch.equal(found[part][n], expected[part][n]) for n in expected[part]), part
    steps = [t.item() for n, t in expected["momentum"].items() if n.startswith("step:")]
    assert steps and len(set(steps)) == 1 and steps[0] == 6 * math.ceil((160 - 32) / 32)


def test_the_paper_recipe_and_its_tag_hold_no_key_it_does_not_read():
    """The paper's tag as it was before optim.name existed; an AdamW recipe holds betas and eps, not momentum."""
    assert paper_recipe_tag() == "re2d072ec"
    assert not {"optim.name", "optim.warmup_epochs", "optim.betas", "optim.eps"} & paper_recipe().keys()
    adamw = recipe(OmegaConf.to_container(resolve(compose_train("experiment=table1", "optim.name=adamw"))))
    assert {"optim.name", "optim.betas", "optim.eps"} <= adamw.keys()
    assert not {"optim.momentum", "optim.nesterov", "optim.warmup_epochs"} & adamw.keys()
    assert recipe_tag(adamw) != paper_recipe_tag()


@pytest.mark.parametrize("overrides, message", [
    (("optim.name=adamw", "optim.momentum=0.5"), "optim.momentum: read by optim.name=sgd only, not by adamw; remove"),
    (("optim.name=adam", "optim.nesterov=false"), "optim.nesterov: read by optim.name=sgd only, not by adam"),
    (("optim.eps=1e-6",), "optim.eps: read by optim.name=adam or adamw only, not by sgd"),
    (("optim.name=rmsprop",), "optim.name: must be one of sgd, adam, adamw, got 'rmsprop'"),
    (("optim.name=adam", "optim.betas=[0.9,1.0]"), "optim.betas: two numbers in [0, 1), got [0.9, 1.0]"),
    (("optim.name=adam", "optim.betas=[0.9]"), "optim.betas: two numbers in [0, 1), got [0.9]"),
    (("optim.name=adam", "optim.eps=0"), "optim.eps: must be a finite number > 0, got 0.0"),
    (("optim.warmup_epochs=3",), "optim.warmup_epochs: must be in [0, epochs=3), got 3"),
    (("optim.warmup_epochs=-1",), "optim.warmup_epochs: must be in [0, epochs=3), got -1")])
def test_an_optimizer_key_that_cannot_run_or_would_be_ignored_is_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        resolve(compose_train(*tiny(Path("runs"), *overrides), hydra=True))  # Hydra's record of the hand-set keys
