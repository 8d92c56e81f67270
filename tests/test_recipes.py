"""The peers' recipes (configs/recipe/): the cosine schedule and the gradient clipping against torch's own, the new
keys' validation, each preset's keys as its source states them, and miniatures of every recipe: one epoch on tiny
synthetic data, and a kill and relaunch with cosine, clipping and rotation on that ends as an uninterrupted run."""

import json
import signal
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from processes import cli, finish
from test_fault_tolerance import one_thread, rows, summary, without_seconds  # noqa: F401 - a fixture
from test_packing import FLOAT64_STEP, assert_pack_equals_alone, configs

from compose import compose_train, train_run
from experiments.identity import recipe, recipe_tag
from experiments.optimizer import lr_at, milestone_epochs
from experiments.resolve import resolve
from experiments.schema import ConfigError
from experiments.sweep import plan
from experiments.trainer import clip_grad_norms
from models import ResNet, pack_state_dicts, unpack_state_dict

RECIPES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs" / "recipe").glob("*.yaml"))


def _schedule(epochs: int, **optim) -> OmegaConf:
    return OmegaConf.create({"epochs": epochs, "optim": {"lr": 0.1, "lr_milestones": [0.5, 0.75], "lr_gamma": 0.1,
                                                         "schedule": "step", "lr_min": 0.0, "restart_epochs": None,
                                                         "warmup_epochs": 0, **optim}})


def _torch_lrs(scheduler_of, lr: float, epochs: int) -> list[float]:
    """The lr of each epoch as torch's scheduler gives it, stepped once after every epoch."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = scheduler_of(optimizer)
    found = []
    for _ in range(epochs):
        found.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return found


@pytest.mark.parametrize("epochs, lr", [(120, 0.01), (200, 0.1), (50, 0.01), (7, 0.3)])
def test_cosine_is_torchs_cosine_annealing_to_zero_stepped_per_epoch(epochs, lr):
    cfg = _schedule(epochs, lr=lr, schedule="cosine")
    expected = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs, eta_min=0), lr, epochs)
    assert [lr_at(e, cfg) for e in range(1, epochs + 1)] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert lr_at(1, cfg) == lr and 0 < lr_at(epochs, cfg) < lr / epochs  # from lr, down to just above 0


def test_cosine_to_a_floor_is_torchs_with_eta_min():
    """APL's MNIST recipe: cosine from 0.01 to 0.001 over 50 epochs."""
    cfg = _schedule(50, lr=0.01, schedule="cosine", lr_min=0.001)
    expected = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=0.001), 0.01, 50)
    assert [lr_at(e, cfg) for e in range(1, 51)] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("epochs, period", [(150, 10), (23, 7), (5, 1)])
def test_cosine_restarts_is_torchs_warm_restarts_stepped_per_epoch(epochs, period):
    """ELR's CIFAR-10 schedule: CosineAnnealingWarmRestarts(T_0=10, eta_min=0.001) of lr 0.02 over 150 epochs."""
    cfg = _schedule(epochs, lr=0.02, schedule="cosine_restarts", restart_epochs=period, lr_min=0.001)
    expected = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=period,
                                                                                          eta_min=0.001), 0.02, epochs)
    assert [lr_at(e, cfg) for e in range(1, epochs + 1)] == pytest.approx(expected, rel=1e-9)


def test_the_exponential_schedule_is_torchs_step_lr_of_one_epoch():
    """SCELoss-Reproduce's: StepLR(step_size=1, gamma=0.97) of lr 0.01 over 150 epochs."""
    cfg = _schedule(150, lr=0.01, schedule="exponential", lr_gamma=0.97)
    expected = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 1, gamma=0.97), 0.01, 150)
    assert [lr_at(e, cfg) for e in range(1, 151)] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("epochs, milestones, torch_milestones", [
    (256, [0.5, 0.75], [128, 192]), (100, [0.6], [60]), (300, [0.5], [150]), (150, [80 / 150, 0.8], [80, 120]),
    (120, [1 / 3, 2 / 3], [40, 80])])
def test_the_step_schedule_is_torchs_multistep(epochs, milestones, torch_milestones):
    """The paper's schedule and those of CIFAR-N (after epoch 60), DivideMix (after 150) and ELR (after 80 and 120
    of 150, 40 and 80 of 120: 80 / 150 is 0.5333..., whose product with 150 is 79.99999999999999 in floats)."""
    cfg = _schedule(epochs, lr_milestones=milestones)
    expected = _torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, torch_milestones, gamma=0.1), 0.1, epochs)
    assert [lr_at(e, cfg) for e in range(1, epochs + 1)] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("epochs, lrs", [
    (1, [0.1]),  # floor(0.5) = floor(0.75) = 0, raised to 1: the only epoch trains at lr
    (3, [0.1, 0.01, 0.001]),  # after floor(1.5) = 1 and floor(2.25) = 2
    (256, [0.1] * 128 + [0.01] * 64 + [0.001] * 64),  # the paper's: after 128 and 192
])
def test_milestones_are_the_floor_of_their_fraction_of_the_epochs_and_at_least_1(epochs, lrs):
    assert [lr_at(e, _schedule(epochs)) for e in range(1, epochs + 1)] == pytest.approx(lrs, rel=1e-12)


@pytest.mark.parametrize("name, published", [
    ("elr_cifar10", [40, 80]), ("elr_cifar100", [80, 120]), ("cifarn_resnet34", [60]), ("dividemix_ce", [150])])
def test_the_step_recipes_drop_the_lr_after_their_authors_epochs(name, published):
    assert milestone_epochs(compose_train(f"recipe={name}")) == published


def test_each_member_of_a_pack_is_clipped_as_torchs_clip_grad_norm_clips_it_alone():
    """Three ResNet-8s with their own weights, batches and loss scales (gradient norms about 0.05, 1 and 20 times
    one another's): the pack's clipped gradient of each is what clip_grad_norm_ makes of its gradient trained alone,
    and the one below the threshold keeps its gradient untouched."""
    torch.manual_seed(0)
    states = [ResNet(8, 3, 10).double().state_dict() for _ in range(3)]
    x = torch.randn(6, 3, 3, 12, 12, dtype=torch.float64)  # (B, member, C, H, W)
    y = torch.randint(0, 10, (6, 3))
    scales = [0.05, 1.0, 20.0]
    alone, unclipped, norms = [], [], []
    for k in range(3):
        model = ResNet(8, 3, 10).double()
        model.load_state_dict(states[k])
        (scales[k] * F.cross_entropy(model(x[:, k]), y[:, k])).backward()
        unclipped.append({n: p.grad.clone() for n, p in model.named_parameters()})
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)))
        alone.append({n: p.grad for n, p in model.named_parameters()})
    assert norms[0] < 1.0 < norms[1] < norms[2]  # one untouched, two clipped by different factors

    packed = ResNet(8, 3, 10, members=3).double()
    packed.load_state_dict(pack_state_dicts(states))
    logits = packed(x.flatten(1, 2)).unflatten(1, (3, 10))
    sum(scales[k] * F.cross_entropy(logits[:, k], y[:, k]) for k in range(3)).backward()
    clip_grad_norms(list(packed.parameters()), 3, 1.0)
    grads = unpack_state_dict({n: p.grad for n, p in packed.named_parameters()}, 3)
    for k in range(3):
        assert grads[k].keys() == alone[k].keys()
        for name in alone[k]:
            assert torch.allclose(grads[k][name], alone[k][name], rtol=0, atol=1e-12), (k, name)
    assert all(torch.equal(alone[0][n], unclipped[0][n]) for n in alone[0])


def test_a_pack_with_clipping_steps_as_each_run_alone(fresh_models):
    """The mixed pack of tests/test_packing.py with every gradient clipped to 2-norm 1: CE's and TCE alpha=0.5's first
    gradients (norms 3.0 and 1.4) are scaled down, the other three's (0.5 to 0.7) not. One float64 step of the pack
    equals each run's alone."""
    assert_pack_equals_alone(configs(Path("runs"), *FLOAT64_STEP, "optim.clip_grad_norm=1"), "cpu")


BAD = [
    (["optim.schedule=linear"], "optim.schedule"),
    (["optim.schedule=cosine_restarts"], "optim.restart_epochs"), (["optim.restart_epochs=5"], "optim.restart_epochs"),
    (["optim.schedule=cosine_restarts", "optim.restart_epochs=0"], "optim.restart_epochs"),
    (["optim.lr_min=0.5"], "optim.lr_min"), (["optim.lr_min=-1e-3"], "optim.lr_min"),
    (["optim.clip_grad_norm=0"], "optim.clip_grad_norm"),
    (["optim.clip_grad_norm=-5"], "optim.clip_grad_norm"),
    (["optim.clip_grad_norm=inf"], "optim.clip_grad_norm"),
    (["augment.rotate=-1"], "augment.rotate"),
    (["augment.rotate=181"], "augment.rotate"),
    (["augment.rotate=nan"], "augment.rotate"),
    (["augment.fill=white"], "augment.fill"),
]


@pytest.mark.parametrize("overrides, key", BAD)
def test_validation_names_the_new_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        resolve(compose_train(*overrides))
    assert str(error.value).startswith(f"{key}:") and "\n" not in str(error.value)


@pytest.mark.parametrize("overrides, key", [BAD[0], BAD[1], BAD[5], BAD[7]])
def test_cli_rejects_the_new_keys_bad_values_with_one_line(tmp_path, overrides, key):
    proc = cli(*overrides, f"hydra.run.dir={tmp_path}/run")
    out = finish(proc)
    assert proc.returncode == 2 and out.strip() == out.strip().splitlines()[-1], out
    assert out.startswith(f"error: {key}:") and "Traceback" not in out


# Each preset as its comment (and its source) states it: model, data, epochs, batch, the optimizer, the schedule,
# the clipping and the augmentation. The engine's defaults are the TCE paper's (test_config.py).
EXPECTED = {
    "apl_cifar10": dict(dataset="cifar10", model="cnn8", epochs=120, batch=128, lr=0.01, nesterov=False, wd=1e-4,
                        schedule="cosine", milestones=None, clip=5.0, crop=True, rotate=0.0, fill="black"),
    "apl_cifar100": dict(dataset="cifar100", model="resnet34", epochs=200, batch=128, lr=0.1, nesterov=False,
                         wd=1e-5, schedule="cosine", milestones=None, clip=5.0, crop=True, rotate=20.0, fill="black"),
    "apl_mnist": dict(dataset="mnist", model="cnn4", epochs=50, batch=128, lr=0.01, nesterov=False, wd=1e-3,
                      schedule="cosine", milestones=None, clip=5.0, crop=False, rotate=0.0, fill="black"),
    # APL's result log's code (train.py @fdd52a2): the cosine ends at 0.001.
    "apl_mnist_icml2020": dict(dataset="mnist", model="cnn4", epochs=50, batch=128, lr=0.01, nesterov=False, wd=1e-3,
                               schedule="cosine", milestones=None, lr_min=0.001, clip=5.0, crop=False, rotate=0.0,
                               fill="black"),
    "cifarn_resnet34": dict(dataset="cifar10", model="resnet34", epochs=100, batch=128, lr=0.1, nesterov=False,
                            wd=5e-4, schedule="step", milestones=[0.6], clip=None, crop=True, rotate=0.0,
                            fill="black"),
    "dividemix_ce": dict(dataset="cifar10", model="preact_resnet18", epochs=300, batch=128, lr=0.02, nesterov=False,
                         wd=5e-4, schedule="step", milestones=[0.5], clip=None, crop=True, rotate=0.0, fill="black"),
    # ELR's MultiStepLR([80, 120], gamma=0.01) of 150 epochs (CIFAR-100), its CIFAR-10 MultiStepLR([40, 80]) of 120,
    # and its CosineAnnealingWarmRestarts(T_0=10, eta_min=1e-3) of 150 on the dataset given.
    "elr_cifar10": dict(dataset="cifar10", model="resnet34", epochs=120, batch=128, lr=0.02, nesterov=False,
                        wd=1e-3, schedule="step", milestones=[1 / 3, 2 / 3], gamma=0.01, clip=None, crop=True,
                        rotate=0.0, fill="black"),
    "elr_cifar100": dict(dataset="cifar100", model="resnet34", epochs=150, batch=128, lr=0.02, nesterov=False,
                         wd=1e-3, schedule="step", milestones=[80 / 150, 0.8], gamma=0.01, clip=None, crop=True,
                         rotate=0.0, fill="black"),
    "elr_cosine": dict(dataset="cifar10", model="resnet34", epochs=150, batch=128, lr=0.02, nesterov=False,
                       wd=1e-3, schedule="cosine_restarts", milestones=None, restart=10, lr_min=0.001,
                       clip=None, crop=True, rotate=0.0, fill="black"),
    # SCELoss-Reproduce's StepLR(1, gamma=0.97), Nesterov, weight decay 1e-2.
    "scereproduce_cifar10": dict(dataset="cifar10", model="cnn8", epochs=120, batch=128, lr=0.01, nesterov=True,
                                 wd=1e-2, schedule="exponential", milestones=None, gamma=0.97, clip=5.0, crop=True,
                                 rotate=0.0, fill="black"),
    "scereproduce_cifar100": dict(dataset="cifar100", model="resnet34", epochs=150, batch=128, lr=0.01, nesterov=True,
                                  wd=1e-2, schedule="exponential", milestones=None, gamma=0.97, clip=5.0, crop=True,
                                  rotate=20.0, fill="black"),
}


def _tag(*overrides: str) -> str:
    return recipe_tag(recipe(OmegaConf.to_container(resolve(compose_train(*overrides)))))


def test_every_recipe_is_listed():
    assert sorted(EXPECTED) == RECIPES


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_composes_with_the_keys_its_comment_states(name):
    cfg, want = compose_train(f"recipe={name}"), EXPECTED[name]
    o, a = cfg.optim, cfg.augment
    assert (cfg.dataset.name, cfg.model.name, cfg.model.depth, cfg.epochs, cfg.batch_size) == (
        want["dataset"], want["model"], None, want["epochs"], want["batch"])
    assert (o.lr, o.momentum, o.nesterov, o.weight_decay, o.schedule, o.clip_grad_norm) == (
        want["lr"], 0.9, want["nesterov"], want["wd"], want["schedule"], want["clip"])
    if want["milestones"] is not None:
        assert list(o.lr_milestones) == want["milestones"]
    assert (o.lr_gamma, o.restart_epochs, o.lr_min) == (want.get("gamma", 0.1), want.get("restart"),
                                                        want.get("lr_min", 0.0))
    assert (a.crop, a.rotate, a.fill) == (want["crop"], want["rotate"], want["fill"])
    assert cfg.runs_dir == f"runs/{name}"  # a folder of its own: run names do not hold the recipe
    # Its recipe tag is its own: no two presets, and none of them with the paper's recipe, share one.
    assert _tag(f"recipe={name}") != _tag(f"dataset={want['dataset']}")


def test_no_two_recipes_share_a_tag_and_each_new_key_changes_it():
    tags = {_tag(f"recipe={name}", "dataset=cifar10") for name in RECIPES}
    assert len(tags) == len(RECIPES)
    base = _tag()
    for override in ("optim.schedule=cosine", "optim.clip_grad_norm=5", "augment.crop=false", "augment.rotate=20",
                     "augment.fill=black"):
        assert _tag(override) != base, override


def _miniature(root: Path, *overrides: str) -> list[str]:
    """A run of seconds: a small synthetic set (32 x 32 for the CNNs, whose flatten size is fixed; 8 x 8 for the
    ResNets, which CPU tests cannot afford at 32 x 32)."""
    return ["dataset=synthetic", "dataset.train_size=160", "dataset.test_size=64", "holdout=32", "batch_size=32",
            "eval_batch_size=256", "device=cpu", "progress=false", f"runs_dir={root}", *overrides]


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_trains_an_epoch_with_its_own_model(tmp_path, name, fresh_models):
    """The recipe's own network: the CNNs at 32 x 32 (their flatten size is fixed), the ResNet-34 and PreAct-ResNet-18
    at 8 x 8 on one batch of 32 images (a step of either takes seconds on a CPU)."""
    cnn = EXPECTED[name]["model"].startswith("cnn")
    sizes = [] if cnn else ["dataset.train_size=48", "holdout=16", "dataset.test_size=16"]
    status, run_dir = train_run(*_miniature(tmp_path, f"recipe={name}", f"dataset.image_size={32 if cnn else 8}",
                                            "epochs=1", *sizes))
    assert status == "complete"
    (row,) = rows(run_dir)
    assert float(row["lr"]) == EXPECTED[name]["lr"]  # a milestone comes after epoch 1 at the earliest
    config = summary(run_dir)["config"]
    assert (config["model"]["name"], config["optim"]["schedule"]) == (EXPECTED[name]["model"],
                                                                    EXPECTED[name]["schedule"])


@pytest.mark.usefixtures("one_thread")
def test_a_recipe_run_killed_and_relaunched_equals_an_uninterrupted_one(tmp_path, fresh_models):
    """APL's CIFAR-10 recipe (the 8-layer CNN, cosine schedule, clipping) with RandomRotation(20) on: SIGKILLed right
    after epoch 2's checkpoint and relaunched, it ends with exactly the rows, summary and final weights of the run
    trained in one go. The recipe's clipping acts: this CNN's first gradients have 2-norms near 19, above its 5."""
    args = _miniature(tmp_path / "killed", "recipe=apl_cifar10", "epochs=3", "noise=0.4", "noise_type=symmetric",
                      "augment.rotate=20", "threads=1")
    proc = cli(*args, kill_at="checkpoint:2")
    out = finish(proc)
    assert proc.returncode == -signal.SIGKILL, out
    proc = cli(*args)
    out = finish(proc)
    assert proc.returncode == 0 and "resuming after epoch 2" in out, out
    run_dir = next((tmp_path / "killed").glob("synthetic/*/*"))

    status, reference = train_run(*[a.replace(str(tmp_path / "killed"), str(tmp_path / "reference")) for a in args])
    assert status == "complete"
    assert without_seconds(rows(run_dir)) == without_seconds(rows(reference))
    assert [float(r["lr"]) for r in rows(run_dir)] == pytest.approx([0.01, 0.0075, 0.0025])  # (1 + cos(pi e / 3)) / 2
    done, expected = summary(run_dir), summary(reference)
    assert done["status"] == "complete" and without_seconds([done["final"]]) == without_seconds([expected["final"]])
    weights = [torch.load(d / "checkpoint.pt", weights_only=True)["model"] for d in (run_dir, reference)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])
    assert json.loads((run_dir / "summary.json").read_text())["config"]["augment"]["rotate"] == 20.0


def test_a_sweep_with_pack_trains_the_networks_that_do_not_pack_one_per_model(tmp_path, caplog):
    """pack=3 over 3 losses: the ResNet-20 runs are one pack of 3; the 8-layer CNN's are 3 packs of one, their
    configs saying pack=1 (which they validate with), and the sweep says why."""
    def jobs(*overrides):
        return [(compose_train(*overrides, f"loss={loss}", "pack=3"), tmp_path / "/".join(overrides) / loss)
                for loss in ("ce", "gce", "sce")]

    caplog.set_level("INFO", logger="tce")
    packs = plan([*jobs("recipe=apl_cifar10"), *jobs("dataset=cifar10")])
    assert [len(p) for p in packs] == [1, 1, 1, 3]
    assert [cfg.pack for p in packs for cfg, _ in p] == [1, 1, 1, 3, 3, 3]
    assert all(cfg.model.name == "cnn8" for p in packs[:3] for cfg, _ in p)
    resolve(packs[0][0][0])  # valid as it stands
    assert "model cnn8 does not pack: its runs train one per model (pack=1)" in caplog.text
