"""Packing: K runs trained at once in one grouped model compute what each computes trained alone, from one copy of
the images."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from compose import compose_train, tiny
from data import load_dataset, shared_images
from experiments.identity import run_name
from experiments.resolve import resolve
from experiments.run import run_data_for, run_pack
from experiments.trainer import Member, PackTrainer, initial_model_state

# A mixed pack: CE, TCE at two alphas (one loss family, its alphas as a tensor), MSE and GCE, with their own seeds
# and noise.
MEMBERS = [("loss=ce", "seed=0", "noise=0.4"), ("loss=tce", "loss.alpha=1.5", "seed=1", "noise=0.0"),
           ("loss=mse", "seed=2", "noise=0.4", "noise_type=symmetric"), ("loss=tce", "loss.alpha=0.5", "seed=3"),
           ("loss=gce", "loss.q=0.7", "seed=4", "noise=0.2")]


def configs(root: Path, *overrides: str) -> list:
    return [resolve(compose_train(*tiny(root, *overrides, *m))) for m in MEMBERS]


def members_of(cfgs: list, device: str) -> list[Member]:
    """The runs of `cfgs` as a pack's members: one dataset, the images shared."""
    ds, cfg = cfgs[0].dataset, cfgs[0]
    dataset = load_dataset(ds.name, ds.root, train_size=ds.train_size, test_size=ds.test_size,
                           num_classes=ds.num_classes, seed=ds.seed, image_size=ds.image_size)
    images = shared_images(dataset, holdout=cfg.holdout, split_seed=ds.split_seed,
                           eval_train_size=cfg.eval_train_size, device=torch.device(device))
    members = []
    for cfg in cfgs:
        data = run_data_for(cfg, dataset, torch.device(device), images)
        members.append(Member(cfg, data, initial_model_state(cfg, data.in_channels, data.num_classes)))
    return members


def one_step_in_float64(cfgs: list, device: str, pack: bool) -> list[dict[str, torch.Tensor]]:
    """Every weight, BatchNorm statistic and momentum buffer of each member after one SGD step on its first batch,
    in float64: trained as one pack, or each alone."""
    members = members_of(cfgs, device)
    found = []
    for group in [list(range(len(members)))] if pack else [[k] for k in range(len(members))]:
        packed = PackTrainer([members[k] for k in group], torch.device(device), torch.float64)
        packed.step(*next(iter(packed.batches)))
        for model_state, momentum in packed.member_states():
            found.append({**model_state, **{f"momentum.{n}": b for n, b in momentum.items()}})
    return found


# Small batches of small images: float64 convolutions are slow on the CPU, and one step says it all.
FLOAT64_STEP = ("batch_size=8", "dataset.image_size=16")


def assert_states_equal_in_float64(packed: list[dict], alone: list[dict]) -> None:
    """Each member's every tensor packed as alone: within 1e-10 of the run alone's, relatively (the norm of the
    difference over the norm of the tensor), where only the order of float64 sums differs; a leak between members
    shows at 1e-3 or more. Integer tensors (num_batches_tracked) equal."""
    for k, (p, a) in enumerate(zip(packed, alone, strict=True)):
        assert p.keys() == a.keys(), k
        for name, expected in a.items():
            if not expected.is_floating_point():
                assert torch.equal(p[name], expected), f"member {k}: {name}"
                continue
            assert p[name].dtype == expected.dtype == torch.float64, f"member {k}: {name}"
            scale = expected.norm().item() or 1.0
            assert (p[name] - expected).norm().item() <= 1e-10 * scale, f"member {k}: {name}"


def assert_pack_equals_alone(cfgs: list, device: str) -> None:
    """One float64 SGD step of the pack against each run alone, in every weight, statistic and momentum buffer
    (assert_states_equal_in_float64), and the members moved, each its own way."""
    packed, alone = one_step_in_float64(cfgs, device, True), one_step_in_float64(cfgs, device, False)
    assert_states_equal_in_float64(packed, alone)
    start = [initial_model_state(cfg, 3, 10)["conv1.weight"].double() for cfg in cfgs]
    moved = [p["conv1.weight"].cpu() - w for p, w in zip(packed, start, strict=True)]
    assert all(m.abs().max() > 1e-4 for m in moved)
    assert all(not torch.allclose(moved[i], moved[j]) for i in range(len(moved)) for j in range(i))


def test_one_sgd_step_of_a_mixed_pack_equals_each_run_alone_in_float64(fresh_models):
    assert_pack_equals_alone(configs(Path("runs"), *FLOAT64_STEP), "cpu")


def test_members_share_one_copy_of_the_images_and_keep_their_own_labels():
    members = members_of(configs(Path("runs")), "cpu")
    datas = [m.data for m in members]
    storage = {d.loader.padded.untyped_storage().data_ptr() for d in datas}
    assert len(storage) == 1
    for name in datas[0].eval_sets:
        assert len({d.eval_sets[name].images.untyped_storage().data_ptr() for d in datas}) == 1, name
    # All of the training portion is evaluated here (160 - 32 images, below eval_train_size): the padded copy's
    # inside, not a copy of its own.
    assert datas[0].eval_sets["train"].images.untyped_storage().data_ptr() in storage
    noisy = [d.loader.labels for d in datas]
    assert not torch.equal(noisy[0], noisy[1])  # noise 0.4 against none


def test_a_pack_batch_is_each_members_own_batch_side_by_side():
    members = members_of(configs(Path("runs")), "cpu")
    trainer = PackTrainer(members, torch.device("cpu"))
    alone = [list(m.data.loader) for m in members_of(configs(Path("runs")), "cpu")]
    for b, (x, y) in enumerate(trainer.batches):
        assert x.is_contiguous()  # NCHW, the CPU's default layout (channels_last=null)
        for k, batches in enumerate(alone):
            assert torch.equal(x[:, 3 * k : 3 * (k + 1)], batches[b][0]) and torch.equal(y[:, k], batches[b][1])


def test_packed_runs_keep_their_own_directories_and_noise(tmp_path):
    alone = [(cfg, tmp_path / "alone" / run_name(cfg)) for cfg in configs(tmp_path / "alone", "epochs=1")]
    packed = [(cfg, tmp_path / "packed" / run_name(cfg)) for cfg in configs(tmp_path / "packed", "epochs=1")]
    for entry in alone:
        assert run_pack([entry]) == ["complete"]
    assert run_pack(packed) == ["complete"] * len(MEMBERS)
    members = sorted(run_name(cfg) for cfg, _ in packed)
    for (_, a), (_, p) in zip(alone, packed, strict=True):
        sa, sp = (json.loads((d / "summary.json").read_text()) for d in (a, p))
        assert sa["noise"] == sp["noise"] and sa["train_eval"] == sp["train_eval"] and sp["status"] == "complete"
        assert (a / "noisy_labels.npy").read_bytes() == (p / "noisy_labels.npy").read_bytes()
        assert sa["pack"] == {"size": 1, "members": [str(a.relative_to(tmp_path / "alone"))]}
        assert sp["pack"]["size"] == len(MEMBERS) and sorted(sp["pack"]["members"]) == members


def test_a_pack_trains_a_run_listed_twice_once(tmp_path, caplog):
    """`loss=ce,tce loss.alpha=1,2 pack=4` lists CE twice (its alpha is null): one run, one directory, one trainer."""
    (cfg, *_) = configs(tmp_path, "epochs=1")
    entry = (cfg, tmp_path / run_name(cfg))
    caplog.set_level("INFO", logger="tce")
    assert run_pack([entry, entry]) == ["complete", "skipped"]
    assert "listed twice in this pack, trained once" in caplog.text
    assert caplog.text.count(f"{run_name(cfg)} epoch 1/1") == 1
    assert not (entry[1] / ".lock").exists()


def peak_memory(*args: str) -> int:
    script = Path(__file__).with_name("peak_memory.py")
    env = {**os.environ, "MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300, check=True,
                         env=env)
    return int(out.stdout.strip().splitlines()[-1])


def test_a_pack_of_8_holds_the_images_once(tmp_path):
    """On 20,000 synthetic images, a pack of 8 at batch 8 peaks at the memory of one run at batch 64, the same
    activations (peak resident memory above the loaded dataset: tests/peak_memory.py says how it is measured): the
    images are held once, and what a pack adds is its members' activations and weights. 8 runs each holding their
    own images take several times as much, so the measurement can tell.

    Against one run at batch 8 the pack peaks at about 1.5 times (measured 1.51-1.58: 8 x 8 images of activations,
    some 100 MiB, about one copy of the padded images); the 1.5 that issue 19 asked for was met before only because
    malloc's reused pages hid part of both peaks."""
    alone, alone64 = peak_memory("1", "8"), peak_memory("1", "64")
    pack, separate = peak_memory("8", "8"), peak_memory("8", "8", "separate")
    print(f"peak memory above the dataset: alone {alone / 2**20:.0f} MiB (batch 64: {alone64 / 2**20:.0f} MiB), "
          f"pack of 8 {pack / 2**20:.0f} MiB, 8 runs with their own images {separate / 2**20:.0f} MiB")
    assert pack < 1.25 * alone64
    assert separate > 4 * alone
