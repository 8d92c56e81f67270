"""The engine gives each loss what it needs (tce.LOSS_NEEDS): a packed member's L1 penalty covers its own weights
only, ELR's memory and transition matrices are each member's own, the memory survives a SIGKILL exactly, weight
decay is 0 where the penalty replaces it, and a transition matrix that cannot train is refused in one line."""

import csv
import hashlib
import signal
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from processes import REPO, cli, finish
from test_packing import assert_states_equal_in_float64, members_of

from compose import compose_train, tiny, train_tiny
from data import load_dataset, shared_images
from experiments.identity import recipe, recipe_tag, run_name
from experiments.needs import make_needs
from experiments.resolve import resolve
from experiments.schema import ConfigError
from experiments.sweep import pack_key
from experiments.trainer import PackTrainer

# A pack of every kind of need next to the paper's losses: ANL (parameters), ELR (index, memory), forward and
# backward (T, T^-1), CE, TCE and MSE, each its own seed and noise; weight decay 0 for all, as a pack with ANL trains.
MEMBERS = [("loss=anl_ce", "seed=0", "noise=0.4"), ("loss=ce", "seed=1", "noise=0.4"),
           ("loss=elr", "seed=2", "noise=0.2"), ("loss=forward", "seed=3", "noise=0.4"),
           ("loss=backward", "seed=4", "noise=0.2", "noise_type=symmetric"), ("loss=elr", "loss.beta=0.9", "seed=5"),
           ("loss=tce", "loss.alpha=1.5", "seed=6", "noise=0.4"), ("loss=mse", "seed=7", "noise=0.2")]
STEPS = 3


def training_positions(cfg) -> torch.Tensor:
    """The training portion's positions in the training set (the images a run trains on), as its pack's are."""
    ds = cfg.dataset
    dataset = load_dataset(ds.name, ds.root, train_size=ds.train_size, test_size=ds.test_size,
                           num_classes=ds.num_classes, seed=ds.seed, image_size=ds.image_size)
    return shared_images(dataset, holdout=cfg.holdout, split_seed=ds.split_seed, eval_train_size=cfg.eval_train_size,
                         device="cpu").train_idx


def steps_in_float64(cfgs: list, groups: list[list[int]]) -> list[dict[str, torch.Tensor]]:
    """Each member's weights, momentum buffers and loss state after STEPS float64 SGD steps, trained in `groups`."""
    members = members_of(cfgs, "cpu")
    for member in members:
        member.needs = make_needs(member.cfg, member.data, training_positions(member.cfg))
    found: list[dict | None] = [None] * len(members)
    for group in groups:
        packed = PackTrainer([members[k] for k in group], torch.device("cpu"), torch.float64)
        for batch in islice(packed.batches, STEPS):
            packed.step(*batch)
        states = packed.host_states()
        for k, (model, momentum), loss_state in zip(group, states.members(), states.loss_states(), strict=True):
            found[k] = {**model, **{f"momentum.{n}": t for n, t in momentum.items()},
                        **{f"loss.{n}": t for n, t in loss_state.items()}}
    return found


def test_a_mixed_pack_of_needing_losses_equals_each_run_alone_in_float64(fresh_models):
    cfgs = [resolve(compose_train(*tiny(Path("runs"), "batch_size=8", "dataset.image_size=16",
                                        "optim.weight_decay=0", *m))) for m in MEMBERS]
    assert [c.optim.weight_decay for c in cfgs] == [0.0] * len(cfgs)
    packed = steps_in_float64(cfgs, [list(range(len(cfgs)))])
    alone = steps_in_float64(cfgs, [[k] for k in range(len(cfgs))])
    assert_states_equal_in_float64(packed, alone)
    assert packed[2]["loss.memory"].shape == (128, 10) and packed[2]["loss.memory"].abs().sum() > 0
    assert not torch.equal(packed[2]["loss.memory"], packed[5]["loss.memory"])  # each ELR member its own
    # ANL's penalty moved ANL's weights only: CE trained next to it is CE trained alone (above), and ANL differs
    # from the same run without its penalty.
    unpenalized = resolve(compose_train(*tiny(Path("runs"), "batch_size=8", "dataset.image_size=16",
                                              "loss.delta=0", *MEMBERS[0])))
    without = steps_in_float64([unpenalized], [[0]])[0]
    assert not torch.allclose(without["conv1.weight"], packed[0]["conv1.weight"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["jal_ce", "forward", "backward"])
def test_each_needing_loss_trains_a_run_at_noise_0_4(tmp_path, name):
    """(ANL and ELR train below.) Complete, its epochs recorded, the checkpoint holding no loss state of theirs."""
    status, run_dir = train_tiny(tmp_path, f"loss={name}", "noise=0.4", "epochs=2")
    assert status == "complete" and [r["epoch"] for r in rows(run_dir)] == ["1", "2"]
    assert "loss_state" not in torch.load(run_dir / "checkpoint.pt", weights_only=True)


def test_an_anl_run_records_weight_decay_0_and_its_delta(tmp_path):
    status, run_dir = train_tiny(tmp_path, "loss=anl_ce", "noise=0.4", "epochs=1")
    assert status == "complete"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["optim"]["weight_decay"] == 0.0
    assert (config["loss"]["alpha"], config["loss"]["beta"], config["loss"]["delta"]) == (5.0, 5.0, 5e-5)
    assert run_dir.parent.name == "anl_ce-alpha5-beta5-delta5e-05"


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_an_elr_run_killed_and_relaunched_equals_an_uninterrupted_one(tmp_path):
    args = tiny(tmp_path / "killed", "loss=elr", "epochs=4", "noise=0.4", "threads=1")
    run_dir = tmp_path / "killed" / "synthetic/elr-beta0.7-lambda_3/noise0.4-uniform-holdout32-seed0"
    killed = cli(*args, kill_at="trained:3")
    out = finish(killed)
    assert killed.returncode == -signal.SIGKILL, out
    memory = torch.load(run_dir / "checkpoint.pt", weights_only=True)["loss_state"]["memory"]
    assert memory.shape == (128, 10) and memory.abs().sum() > 0  # epoch 2's memory, not zero
    resumed = cli(*args)
    out = finish(resumed)
    assert resumed.returncode == 0 and "resuming after epoch 2" in out, out
    reference = tmp_path / "reference"
    done = cli(*tiny(reference, "loss=elr", "epochs=4", "noise=0.4", "threads=1"))
    out = finish(done)
    assert done.returncode == 0, out
    expected = reference / run_dir.relative_to(tmp_path / "killed")
    assert rows(run_dir) == rows(expected) and len(rows(run_dir)) == 4
    torch.testing.assert_close(torch.load(run_dir / "checkpoint.pt", weights_only=True)["loss_state"],
                               torch.load(expected / "checkpoint.pt", weights_only=True)["loss_state"], rtol=0, atol=0)


def train_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("overrides", "message"), [
    (("loss=anl_ce", "loss.delta=-1"), "error: loss.delta: must be a finite number >= 0, got -1.0"),
    (("loss=jal_ce", "optim.weight_decay=5e-4"), "error: optim.weight_decay: jal_ce's L1 penalty (loss.delta) "
                                                 "replaces weight decay"),
    (("loss=elr", "loss.beta=2"), "error: loss.beta: must be in [0, 1], got 2.0"),
    (("loss=backward", "noise_type=symmetric", "noise=0.9"), "error: loss: backward's oracle transition matrix at "
                                                             "symmetric noise 0.9: transition is singular"),
    # Realized singular though its rate is not: pairflip at 1/2 over exactly 16 images per class, T = (I + P) / 2.
    (("loss=backward", "noise_type=pairflip", "noise=0.5", "holdout=0"),
     "error: loss: backward cannot train on the oracle transition matrix (the realized noise of the training "
     "portion): transition is singular"),
    (("loss=forward", "loss.transition=nowhere.csv"), "error: loss.transition: no such file"),
    (("loss=ce", "loss.transition=nowhere.csv"), "error: loss.transition: only a loss that needs a transition"),
])
def test_train_py_refuses_in_one_line_with_exit_2_before_any_epoch(tmp_path, overrides, message):
    done = train_py(*tiny(tmp_path, *overrides))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith(message) and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not list(tmp_path.rglob("metrics.csv")) or all(
        len(p.read_text().splitlines()) <= 1 for p in tmp_path.rglob("metrics.csv"))


def test_train_py_runs_forward_with_a_transition_file_named_by_its_hash(tmp_path):
    transition = 0.6 * torch.eye(10, dtype=torch.float64) + 0.04
    path = tmp_path / "T.csv"
    path.write_text("\n".join(",".join(f"{v:.17g}" for v in row) for row in transition.tolist()) + "\n")
    done = train_py(*tiny(tmp_path / "runs", "loss=forward", "noise=0.4", "epochs=1", f"loss.transition={path}"))
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs" / "synthetic").iterdir()
    assert run_dir.name == f"forward-T{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    config = yaml.safe_load(next(run_dir.rglob("config.yaml")).read_text())
    assert config["loss"]["transition"] == str(path.resolve())


# --- What needs.py makes, and the config of the needing losses ------------------------------------------------------


def test_the_oracle_is_the_training_portions_realized_noise_normalized_by_rows_counted_by_hand():
    cfg = resolve(compose_train(*tiny(Path("runs"), "loss=backward", "noise=0.4", "seed=3")))
    (member,) = members_of([cfg], "cpu")
    positions = training_positions(cfg)
    needs = make_needs(cfg, member.data, positions)
    counts = [[0] * 10 for _ in range(10)]
    for i in positions.tolist():  # the 128 images it trains on, not the 32 held out
        counts[int(member.data.clean_labels[i])][int(member.data.noisy_labels[i])] += 1
    expected = torch.tensor([[n / sum(row) for n in row] for row in counts], dtype=torch.float64)
    assert sum(map(sum, counts)) == 128 and len(positions) == 128
    torch.testing.assert_close(needs["transition_inverse"], torch.linalg.inv(expected), rtol=1e-12, atol=1e-12)
    assert set(needs) == {"transition_inverse"}
    assert set(make_needs(resolve(compose_train(*tiny(Path("runs"), "loss=forward"))), member.data, positions)) == {
        "transition"}
    elr = make_needs(resolve(compose_train(*tiny(Path("runs"), "loss=elr"))), member.data, positions)
    assert set(elr) == {"memory"} and torch.equal(elr["memory"], torch.zeros(128, 10))
    assert make_needs(resolve(compose_train(*tiny(Path("runs"), "loss=anl_ce"))), member.data, positions) == {}


AUTHORS = {  # MNIST / CIFAR-10 / CIFAR-100, from the issue; synthetic takes CIFAR-10's
    "anl_ce": ({"alpha": 1.0, "beta": 1.0, "delta": 1e-6}, {"alpha": 5.0, "beta": 5.0, "delta": 5e-5},
               {"alpha": 10.0, "beta": 1.0, "delta": 5e-7}),
    "jal_ce": ({"alpha": 1.0, "beta": 1.0, "a": 30.0, "delta": 5e-5}, {"alpha": 1.0, "beta": 1.0, "a": 30.0,
                                                                      "delta": 5e-5},
               {"alpha": 5.0, "beta": 1.0, "a": 20.0, "delta": 5e-6}),
    "elr": ({"beta": 0.7, "lambda_": 3.0}, {"beta": 0.7, "lambda_": 3.0}, {"beta": 0.9, "lambda_": 7.0}),
    "forward": ({}, {}, {}),
    "backward": ({}, {}, {}),
}


@pytest.mark.parametrize("name", AUTHORS)
def test_config_takes_the_authors_values_per_dataset_and_forces_weight_decay_0_with_a_penalty(name):
    mnist, cifar10, cifar100 = AUTHORS[name]
    for dataset, expected in (("mnist", mnist), ("cifar10", cifar10), ("cifar100", cifar100), ("synthetic", cifar10)):
        cfg = resolve(compose_train(f"loss={name}", f"dataset={dataset}"))
        params = {k: v for k, v in cfg.loss.items() if k not in ("name", "replaced_weight_decay") and v is not None}
        assert params == expected, dataset
        assert (cfg.optim.weight_decay, cfg.loss.replaced_weight_decay) == ((0.0, 1e-4) if "delta" in expected
                                                                            else (1e-4, None))


def write_matrix(path: Path, matrix: torch.Tensor) -> Path:
    path.write_text("\n".join(",".join(f"{v:.17g}" for v in row) for row in matrix.tolist()) + "\n")
    return path


def test_a_transition_file_is_made_absolute_with_its_sha256_and_named_by_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_matrix(tmp_path / "T.csv", 0.6 * torch.eye(10, dtype=torch.float64) + 0.04)
    cfg = resolve(compose_train(*tiny(tmp_path, "loss=backward", "loss.transition=T.csv")))
    sha = hashlib.sha256((tmp_path / "T.csv").read_bytes()).hexdigest()
    assert (cfg.loss.transition, cfg.loss.transition_sha256) == (str(tmp_path / "T.csv"), sha)
    same = resolve(compose_train(*tiny(tmp_path, "loss=backward", f"loss.transition={tmp_path}/T.csv",
                                       f"loss.transition_sha256={sha.upper()}")))
    assert same.loss.transition_sha256 == sha
    assert run_name(cfg).startswith(f"synthetic/backward-T{sha[:12]}/noise0-")


@pytest.mark.parametrize(("content", "message"), [
    (b"0.5,0.5\n0.5,0.5\n", r"holds a 2x2 matrix, not 10x10"),
    (b"clean,0,1\n0,1,0\n", r"cannot read .* as comma-separated numbers"),
    (b"\x80\x04\x95pickle", r"cannot read .* as comma-separated numbers"),
])
def test_a_bad_transition_file_is_refused_in_one_line(tmp_path, content, message):
    (tmp_path / "T.csv").write_bytes(content)
    with pytest.raises(ConfigError, match=f"^loss.transition: .*{message}") as error:
        resolve(compose_train(*tiny(tmp_path, "loss=forward", f"loss.transition={tmp_path}/T.csv")))
    assert "\n" not in str(error.value)


def test_a_transition_files_sha256_must_match_and_a_singular_file_is_refused(tmp_path):
    path = write_matrix(tmp_path / "T.csv", torch.full((10, 10), 0.1, dtype=torch.float64))
    with pytest.raises(ConfigError, match=r"^loss.transition: transition is singular"):
        resolve(compose_train(*tiny(tmp_path, "loss=backward", f"loss.transition={path}")))
    write_matrix(path, 0.6 * torch.eye(10, dtype=torch.float64) + 0.04)
    with pytest.raises(ConfigError, match=r"^loss.transition: .* has SHA-256 [0-9a-f]{64}, not the "
                                          r"loss.transition_sha256 given \(abc\)"):
        resolve(compose_train(*tiny(tmp_path, "loss=forward", f"loss.transition={path}", "loss.transition_sha256=abc")))
    with pytest.raises(ConfigError, match=r"^loss.transition_sha256: given without loss.transition"):
        resolve(compose_train(*tiny(tmp_path, "loss=forward", "loss.transition_sha256=abc")))


def test_weight_decay_is_refused_only_where_set_by_hand_to_other_than_0():
    def resolved(*overrides):
        return resolve(compose_train(*overrides, hydra=True))

    with pytest.raises(ConfigError, match=r"^optim.weight_decay: anl_ce's L1 penalty \(loss.delta\) replaces weight "
                                          r"decay, so it trains with weight decay 0; remove optim.weight_decay=1e-4"):
        resolved("loss=anl_ce", "optim.weight_decay=1e-4")
    assert resolved("loss=anl_ce", "optim.weight_decay=0").optim.weight_decay == 0.0
    assert resolved("loss=anl_ce", "optim=sgd").optim.weight_decay == 0.0  # a group's 1e-4 is not by hand
    assert resolved("loss=ce", "optim.weight_decay=1e-3").optim.weight_decay == 1e-3
    assert resolve(compose_train("loss=jal_ce", "optim.weight_decay=1e-4")).optim.weight_decay == 0.0  # no record


def test_a_penalized_run_keeps_its_recipe_though_it_trains_without_weight_decay():
    def tag(*overrides):
        return recipe_tag(recipe(OmegaConf.to_container(resolve(compose_train(*tiny(Path("runs"), *overrides))))))

    anl = resolve(compose_train(*tiny(Path("runs"), "loss=anl_ce")))
    assert (anl.optim.weight_decay, anl.loss.replaced_weight_decay) == (0.0, 1e-4)
    assert tag("loss=anl_ce") == tag("loss=ce") == tag("loss=jal_ce")
    assert tag("loss=anl_ce", "optim.lr=0.05") == tag("loss=ce", "optim.lr=0.05") != tag("loss=ce")
    assert tag("loss=ce", "optim.weight_decay=0") != tag("loss=ce")
    assert resolve(compose_train(*tiny(Path("runs"), "loss=ce"))).loss.replaced_weight_decay is None


def test_a_penalized_run_never_shares_a_pack_with_one_that_keeps_weight_decay():
    anl, ce = (compose_train(*tiny(Path("runs"), f"loss={name}")) for name in ("anl_ce", "ce"))
    assert pack_key(anl) != pack_key(ce)
    assert pack_key(anl) == pack_key(compose_train(*tiny(Path("runs"), "loss=ce", "optim.weight_decay=0")))
