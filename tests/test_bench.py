"""make bench at a tiny size: every measurement runs and the JSON it writes is complete and self-consistent."""

import json

import pytest
import torch

from experiments.config import native_bf16
from scripts import bench


def test_bench_writes_consistent_json(tmp_path):
    # Sized for seconds: only the bookkeeping is checked here, not the speeds.
    result = bench.measure("cpu", steps=1, repeats=1, pack=2, warmup=0, train_images=512, test_images=64)
    path = bench.write(result, tmp_path, "python -m scripts.bench --steps 1")
    assert path == tmp_path / f"{bench.slug(result['device'])}.json"
    out = json.loads(path.read_text())

    for key in ("naive_img_s", "engine_img_s", "ratio", "tce_over_ce_step", "packed_img_s", "pack_speedup",
                "eval_img_s", "packed_eval_img_s", "grid_hours_estimate"):
        assert out[key] > 0, key
    assert out["pack"] == 2
    assert out["ratio"] == pytest.approx(out["engine_img_s"] / out["naive_img_s"])
    assert out["tce_over_ce_step"] == pytest.approx(out["tce_step_s"] / out["ce_step_s"])
    assert out["pack_speedup"] == pytest.approx(out["packed_img_s"] / out["engine_img_s"])
    assert out["engine_img_s"] == pytest.approx(128 / out["ce_step_s"])
    assert out["grid_hours_estimate"] == min(out["grid"]["hours"].values())
    assert out["grid_hours_estimate"] == out["grid"]["hours"][out["grid"]["mode"]]
    assert out["grid"]["runs"] == 840
    grid = out["grid"]
    single = (grid["train_images"] / out["engine_img_s"] + grid["eval_images"] / out["eval_img_s"]) / 3600
    assert grid["hours"]["single"] == pytest.approx(single)
    for times in (*out["seconds"]["train"].values(), *out["seconds"]["eval"].values()):
        assert len(times) == 1 and times[0] > 0
    options = out["options"]
    precision = "bf16" if native_bf16(torch.device("cpu")) else "fp32"
    expected = {"precision": precision, "channels_last": True, "compile": False, "eval_batch_size": 1000}
    assert options["engine"] == expected
    assert (options["steps"], options["repeats"], options["batch_size"], options["train_images"]) == (1, 1, 128, 512)
    assert out["eval_img_s"] == pytest.approx(64 / out["seconds"]["eval"]["single"][0])
    assert set(out["versions"]) >= {"python", "torch", "torchvision"}
    assert out["command"] == "python -m scripts.bench --steps 1" and out["date"]
    assert out["device"].startswith("cpu")


def test_grid_images_follow_the_protocol():
    train, evaluate = bench.grid_images()
    # Per dataset and cell: a validation run on N - 5000 images and 5 full runs on N, each evaluating N + T.
    sizes = [(50_000, 10_000), (60_000, 10_000), (50_000, 10_000), (73_257, 26_032)]
    assert train == 35 * 256 * sum(6 * n - 5000 for n, _ in sizes)
    assert evaluate == 35 * 256 * sum(6 * (n + t) for n, t in sizes)


def test_slug():
    assert bench.slug("cpu (x86_64, 2 threads)") == "cpu-x86_64-2-threads"
    assert bench.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
