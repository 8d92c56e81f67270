"""Packing: K runs trained at once in one grouped model compute what each computes trained alone."""

import json
from pathlib import Path

import torch

from compose import compose_train, tiny
from data import load_dataset
from experiments.config import resolve, run_name
from experiments.run import run_data_for, run_pack
from experiments.trainer import Member, PackTrainer, initial_model_state

MEMBERS = [("loss=ce", "seed=0", "noise=0.4"), ("loss=tce", "loss.alpha=1.5", "seed=1", "noise=0.0"),
           ("loss=mse", "seed=2", "noise=0.4", "noise_type=symmetric")]


def configs(root: Path, *overrides: str) -> list:
    return [resolve(compose_train(*tiny(root, *overrides, *m))) for m in MEMBERS]


def one_step_in_float64(cfgs: list, device: str, pack: bool) -> list[dict[str, torch.Tensor]]:
    """Every weight, BatchNorm statistic and momentum buffer of each member after one SGD step on its first batch,
    in float64: trained as one pack, or each alone."""
    ds = cfgs[0].dataset
    dataset = load_dataset(ds.name, ds.root, train_size=ds.train_size, test_size=ds.test_size,
                           num_classes=ds.num_classes, seed=ds.seed, image_size=ds.image_size)
    members = []
    for cfg in cfgs:
        data = run_data_for(cfg, dataset, torch.device(device))
        members.append(Member(cfg, data, initial_model_state(cfg, data.in_channels, data.num_classes)))
    batches = [next(iter(m.data.loader)) for m in members]
    found = []
    for group in [list(range(len(members)))] if pack else [[k] for k in range(len(members))]:
        packed = PackTrainer([members[k] for k in group], torch.device(device))
        packed.model.double()  # the optimizer keeps the same parameters, now float64
        packed.step(tuple((batches[k][0].double(), batches[k][1]) for k in group))
        for model_state, momentum in packed.member_states():
            found.append({**model_state, **{f"momentum.{n}": b for n, b in momentum.items()}})
    return found


# Small batches of small images: float64 convolutions are slow on the CPU, and one step says it all.
FLOAT64_STEP = ("batch_size=8", "dataset.image_size=16")


def assert_pack_equals_alone(cfgs: list, device: str) -> None:
    """One float64 SGD step of the pack against each run alone: equal to 1e-10 in every weight, statistic and
    momentum buffer, where only the order of the sums differs (a leak between members would show at 1e-3 or more),
    and the members moved, each its own way."""
    packed, alone = one_step_in_float64(cfgs, device, True), one_step_in_float64(cfgs, device, False)
    for k, (p, a) in enumerate(zip(packed, alone, strict=True)):
        assert p.keys() == a.keys()
        for name in a:
            assert a[name].dtype == (torch.int64 if name.endswith("num_batches_tracked") else torch.float64), name
            assert torch.allclose(p[name], a[name], rtol=0, atol=1e-10), f"member {k}: {name}"
    start = [initial_model_state(cfg, 3, 10)["conv1.weight"].double() for cfg in cfgs]
    moved = [p["conv1.weight"].cpu() - w for p, w in zip(packed, start, strict=True)]
    assert all(m.abs().max() > 1e-4 for m in moved) and not torch.allclose(moved[0], moved[1])


def test_one_sgd_step_of_a_pack_equals_each_run_alone_in_float64(fresh_models):
    assert_pack_equals_alone(configs(Path("runs"), *FLOAT64_STEP), "cpu")


def test_packed_runs_keep_their_own_directories_and_noise(tmp_path):
    alone = [(cfg, tmp_path / "alone" / run_name(cfg)) for cfg in configs(tmp_path / "alone", "epochs=1")]
    packed = [(cfg, tmp_path / "packed" / run_name(cfg)) for cfg in configs(tmp_path / "packed", "epochs=1")]
    for entry in alone:
        assert run_pack([entry]) == ["complete"]
    assert run_pack(packed) == ["complete"] * len(MEMBERS)
    for (_, a), (_, p) in zip(alone, packed, strict=True):
        sa, sp = (json.loads((d / "summary.json").read_text()) for d in (a, p))
        assert sa["noise"] == sp["noise"] and sa["train_eval"] == sp["train_eval"] and sp["status"] == "complete"
        assert (a / "noisy_labels.npy").read_bytes() == (p / "noisy_labels.npy").read_bytes()


def test_a_pack_trains_a_run_listed_twice_once(tmp_path, caplog):
    """`loss=ce,tce loss.alpha=1,2 pack=4` lists CE twice (its alpha is null): one run, one directory, one trainer."""
    (cfg, *_) = configs(tmp_path, "epochs=1")
    entry = (cfg, tmp_path / run_name(cfg))
    caplog.set_level("INFO", logger="tce")
    assert run_pack([entry, entry]) == ["complete", "skipped"]
    assert "listed twice in this pack, trained once" in caplog.text
    assert caplog.text.count(f"{run_name(cfg)} epoch 1/1") == 1
    assert not (entry[1] / ".lock").exists()
