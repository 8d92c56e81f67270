"""Bad inputs of issue 34, each refused by train.py in one line naming its key (or file) with exit code 2, before
Hydra or the engine writes anything under runs_dir; and what a researcher meets on a first day: a parameter of
another loss, a last batch of one image, the state of a run directory on disk."""

import pytest
from processes import cli, finish

import tce
from compose import compose_train, tiny, train_tiny
from experiments.limits import SEED_KEYS, SEED_LIMIT, check_sweep_parameters
from experiments.resolve import resolve
from experiments.run import run_pack
from experiments.schema import ConfigError
from experiments.validation import validate

SWEEP = "hydra.mode=MULTIRUN"  # composed as one run of a sweep (with hydra=True)


def refused(runs_root, *overrides: str) -> str:
    """train.py's one line for a tiny run with `overrides` under `runs_root`; asserts exit 2, no traceback, and that
    nothing is left under runs_root."""
    proc = cli(*tiny(runs_root, *overrides))
    out = finish(proc)
    assert proc.returncode == 2, out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    assert not runs_root.is_dir() or not any(runs_root.iterdir()), sorted(runs_root.rglob("*"))
    return out.strip()


@pytest.mark.parametrize(("overrides", "key"), [
    (["loss=anl_ce", "optim.weight_decay='5e-4'"], "optim.weight_decay"),  # a quoted number is that number
    (["seed=18446744073709551616"], "seed"),
    (["dataset.seed=18446744073709551616"], "dataset.seed"),
    (["optim.lr_milestones=[0.8,0.5]"], "optim.lr_milestones"),
    (["loss=ce", "loss.alpha=2"], "loss.alpha"),
    (["model=cnn8", "model.depth=null", "dataset.image_size=32", "dataset.train_size=200", "holdout=0",
      "batch_size=199"], "batch_size"),
])
def test_cli_refuses_in_one_line_and_leaves_nothing(tmp_path, overrides, key):
    assert refused(tmp_path / "runs", *overrides).startswith(f"error: {key}: ")


def test_cli_refuses_a_runs_dir_that_is_a_file_or_lies_below_one(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("")
    assert refused(file).startswith(f"error: runs_dir: {file} exists and is not a directory")
    assert refused(file / "runs").startswith(f"error: runs_dir: {file / 'runs'} cannot be created: {file} is a file")


def test_an_empty_transition_file_is_refused_in_its_line_without_numpys_warning(tmp_path):
    empty = tmp_path / "T.csv"
    empty.write_text("")
    line = refused(tmp_path / "runs", "loss=forward", f"loss.transition={empty}")
    assert line.startswith("error: loss.transition: ") and str(empty) in line and "no data" in line


def test_a_run_directory_of_another_config_or_a_live_lock_refuses_with_exit_2_and_is_left_as_it_was(tmp_path):
    status, run_dir = train_tiny(tmp_path, "epochs=1")
    assert status == "complete"
    before = {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    proc = cli(*tiny(tmp_path, "epochs=1", "optim.lr=0.05"))
    out = finish(proc)
    assert proc.returncode == 2
    assert out.startswith(f"error: optim.lr: {run_dir} holds a run with another config (optim.lr: 0.1 there, 0.05 now")
    assert out.strip().endswith("choose another runs_dir, or replace that run with force=true")
    (run_dir / ".lock").write_text("another-host 4242 - 0")  # live: refreshed just now, on a host we cannot ask
    proc = cli(*tiny(tmp_path, "epochs=1", "force=true"))
    out = finish(proc)
    assert proc.returncode == 2 and out.startswith(f"error: {run_dir} is being trained by 'another-host 4242")
    assert len(out.strip().splitlines()) == 1
    (run_dir / ".lock").unlink()
    assert {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()} == before  # .hydra/ untouched


@pytest.mark.parametrize("key", SEED_KEYS)
def test_every_seed_lies_in_what_the_generators_take(key):
    synthetic = ["dataset=synthetic"] if key.startswith("dataset.") else []
    validate(compose_train(*synthetic, f"{key}={SEED_LIMIT - 1}"))
    for bad in (SEED_LIMIT, -1):
        with pytest.raises(ConfigError, match=rf"^{key}: a seed must be in \[0, 2\^63\)"):
            validate(compose_train(*synthetic, f"{key}={bad}"))


@pytest.mark.parametrize("milestones", ["[0.8,0.5]", "[0.5,0.5]", "[0.5,1.0]", "[0.0]", "[1.5]"])
def test_milestones_are_strictly_increasing_fractions_below_1(milestones):
    with pytest.raises(ConfigError, match=r"^optim.lr_milestones: strictly increasing fractions"):
        validate(compose_train(f"optim.lr_milestones={milestones}"))


def test_a_weight_decay_of_0_typed_for_a_penalized_loss_is_accepted_quoted_or_not():
    for value in ("0", "'0'", "0.0"):
        assert resolve(compose_train("loss=anl_ce", f"optim.weight_decay={value}", hydra=True)).optim.weight_decay == 0


def test_a_parameter_the_loss_does_not_take_is_refused_naming_the_losss_parameters(monkeypatch):
    with pytest.raises(ConfigError, match=r"^loss.alpha: focal does not take it \(its parameters: gamma\)$"):
        validate(compose_train("loss=focal", "loss.alpha=3"))
    # A loss a user adds (to tce's registry) with a schema key it does not take.
    monkeypatch.setattr(tce, "LOSSES", (*tce.LOSSES, "clipped_ce"))
    monkeypatch.setitem(tce.LOSS_PARAMS, "clipped_ce", {"epsilon": 0.1})
    with pytest.raises(ConfigError, match=r"^loss.tau: clipped_ce does not take it \(its parameters: epsilon\)$"):
        validate(compose_train("loss.name=clipped_ce", "loss.tau=3"))


def test_a_sweep_records_a_parameter_as_null_for_its_losses_without_it_and_refuses_one_that_none_takes():
    ce, tce1 = (compose_train(f"loss={name}", "loss.alpha=2", SWEEP, hydra=True) for name in ("ce", "tce1"))
    assert resolve(ce).loss.alpha is None and resolve(tce1).loss.alpha == 2
    assert check_sweep_parameters([ce, tce1]) == "loss.alpha is recorded as null for ce, which do not take it"
    assert check_sweep_parameters([tce1]) is None
    with pytest.raises(ConfigError, match=r"^loss.alpha: no loss of this sweep takes it \(ce, focal\)$"):
        check_sweep_parameters([ce, compose_train("loss=focal", "loss.alpha=2", SWEEP, hydra=True)])


def test_a_network_that_cannot_train_on_one_image_refuses_every_batch_of_one_before_any_data():
    cnn8 = ["model=cnn8", "dataset=synthetic", "dataset.image_size=32", "dataset.train_size=200", "holdout=0"]
    for batch in ("batch_size=199", "batch_size=1", "batch_size=1 drop_last=true"):
        with pytest.raises(ConfigError, match=r"^batch_size: .* of the 200-image training portion a single image"):
            validate(compose_train(*cnn8, *batch.split()))
    for fine in ("batch_size=199 drop_last=true", "batch_size=100", "batch_size=198"):
        validate(compose_train(*cnn8, *fine.split()))


def test_a_pack_of_resnets_sharing_a_portion_of_257_images_trains_its_last_batch_of_one(tmp_path):
    """257 = 2 x 128 + 1: ResNet's BatchNorm normalizes over the image's pixels too, so the last batch trains."""
    entries = []
    for loss in ("ce", "tce1"):
        cfg = resolve(compose_train(*tiny(tmp_path, f"loss={loss}", "dataset.train_size=289", "batch_size=128",
                                          "epochs=1")))
        entries.append((cfg, tmp_path / loss))
    assert run_pack(entries) == ["complete", "complete"]
