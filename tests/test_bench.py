"""make bench at a tiny size: every measurement runs and the JSON it writes is complete and self-consistent."""

import json

import pytest
import torch

from experiments import precision
from scripts import bench


def test_bench_writes_consistent_json(tmp_path):
    # Sized for seconds: only the bookkeeping is checked here, not the speeds.
    result = bench.measure("cpu", steps=1, repeats=1, pack=2, warmup=0, train_images=512, test_images=64)
    path = bench.write(result, tmp_path, "python -m scripts.bench --steps 1")
    assert path == tmp_path / f"{bench.slug(result['device'])}.json"
    out = json.loads(path.read_text())

    for key in ("naive_img_s", "engine_img_s", "ratio", "tce_over_ce_step", "packed_img_s", "pack_speedup",
                "eval_img_s", "packed_eval_img_s", "grid_hours_estimate", "zoo_grid_hours_estimate"):
        assert out[key] > 0, key
    # The default precision is strict fp32; every precision the CPU computes natively is measured too.
    assert out["precision"] == "fp32"
    assert set(out["ratio_by_precision"]) == set(precision.supported(torch.device("cpu")))
    assert out["ratio"] == pytest.approx(out["engine_img_s"] / out["naive_img_s"]) == out["ratio_by_precision"]["fp32"]
    assert out["pack"] == 2
    assert out["tce_over_ce_step"] == pytest.approx(out["tce_step_s"] / out["ce_step_s"])
    assert out["pack_speedup"] == pytest.approx(out["packed_img_s"] / out["engine_img_s"])
    assert out["engine_img_s"] == pytest.approx(128 / out["ce_step_s"])

    # Evaluation overhead of an epoch of the paper's recipe, from the measured speeds: CIFAR-10's validation run
    # trains on 45,000 images and evaluates 5,000 of them, the 5,000 held out and the 10,000 test images.
    overhead = out["eval_overhead_by_run"]["cifar10"]["validation"]
    assert overhead == pytest.approx((20_000 / out["eval_img_s"]) / (45_000 / out["engine_img_s"]))
    assert out["eval_overhead"]["cifar10"] == max(out["eval_overhead_by_run"]["cifar10"].values())

    for grid, runs in (("paper", 840), ("zoo", 720)):
        g = out["grids"][grid]
        assert g["runs"] == runs
        assert g["estimate"] == min(g["hours"].values()) == g["hours"][g["mode"]]
        single = (g["train_images"] / out["engine_img_s"] + g["eval_images"] / out["eval_img_s"]) / 3600
        assert g["hours"]["single"] == pytest.approx(single)
    assert out["grid_hours_estimate"] == out["grids"]["paper"]["estimate"]
    for times in (*out["seconds"]["train"].values(), *out["seconds"]["eval"].values()):
        assert len(times) == 1 and times[0] > 0
    options = out["options"]
    expected = {"precision": "fp32", "channels_last": True, "compile": False, "compiled": False,
                "eval_batch_size": 256, "eval_train_size": 5000}  # the CPU's defaults
    assert options["engine"] == expected
    assert (options["steps"], options["repeats"], options["batch_size"], options["train_images"]) == (1, 1, 128, 512)
    assert out["eval_img_s"] == pytest.approx(64 / out["seconds"]["eval"]["single"][0])
    assert set(out["versions"]) >= {"python", "torch", "torchvision"}
    assert out["command"] == "python -m scripts.bench --steps 1" and out["date"]
    assert out["device"].startswith("cpu")


def test_grid_images_follow_the_protocol():
    # Per dataset and cell: a validation run on N - 5000 images evaluating min(5000, N - 5000) + 5000 + T, and 5
    # full runs on N evaluating min(5000, N) + T.
    sizes = [(50_000, 10_000), (60_000, 10_000), (50_000, 10_000), (73_257, 26_032)]
    train, evaluate = bench.grid_images("paper", 5000)
    assert train == 35 * 256 * sum(6 * n - 5000 for n, _ in sizes)
    assert evaluate == 35 * 256 * sum(6 * (5000 + t) + 5000 for _, t in sizes)
    # Without a subset, every training image is evaluated every epoch.
    assert bench.grid_images("paper", None)[1] == 35 * 256 * sum(6 * (n + t) for n, t in sizes)
    assert bench.grid_images("zoo", 5000)[0] == 60 * 256 * 2 * (6 * 50_000 - 5000)


def test_slug():
    assert bench.slug("cpu (x86_64 AVX2, 2 threads)") == "cpu-x86_64-avx2-2-threads"
    assert bench.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
