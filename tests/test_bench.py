"""make bench: every measurement runs at a tiny size and lands in its JSON; what the timings say, against numbers
computed by hand."""

import json

import pytest
import torch

from experiments import cost, precision, provenance
from scripts import bench


def test_bench_runs_every_measurement_and_writes_its_json(tmp_path):
    # Sized for seconds: that every measurement runs and lands in the JSON, not the speeds.
    result = bench.measure("cpu", steps=1, repeats=1, pack=2, warmup=0, train_images=512, test_images=64)
    path = bench.write(result, tmp_path, "python -m scripts.bench --steps 1")
    assert path == tmp_path / f"{provenance.slug(result['device'])}.json"
    out = json.loads(path.read_text())
    # The default precision is strict fp32; every precision the CPU computes natively is measured too.
    assert out["precision"] == "fp32" and out["pack"] == 2
    assert set(out["ratio_by_precision"]) == set(precision.supported(torch.device("cpu")))
    naives = {"naive", "naive_tf32"} if "tf32" in out["ratio_by_precision"] else {"naive"}
    assert set(out["seconds"]["train"]) == {*naives, *out["ratio_by_precision"], "tce", "detect", "packed"}
    assert set(out["seconds"]["eval"]) == {"single", "packed"}
    for times in (*out["seconds"]["train"].values(), *out["seconds"]["eval"].values()):
        assert len(times) == 1 and times[0] > 0
    assert set(out["grids"]) == {"paper", *bench.PRESETS} and out["grids"]["paper"]["runs"] == 840
    options = out["options"]
    expected = {"precision": "fp32", "channels_last": False, "compile": False, "compiled": False,
                "eval_batch_size": 256, "eval_train_size": 5000}  # the CPU's defaults
    assert options["engine"] == expected
    assert (options["steps"], options["repeats"], options["batch_size"], options["train_images"]) == (1, 1, 128, 512)
    assert set(out["versions"]) >= {"python", "torch", "torchvision"}
    assert out["command"] == "python -m scripts.bench --steps 1" and out["date"]
    assert out["device"].startswith("cpu")


def test_rates_from_timings_against_hand_computed_numbers():
    """Timings chosen for round speeds, 10 steps of 128 images: naive 4 s (320 img/s), fp32 1.28 s (1000 img/s),
    TCE 1.408 s, CE recording its dynamics 1.536 s, a pack of 2 in 1.6 s (1600 img/s); 2000 test images evaluated
    in 0.5 s (4000 img/s) and by the pack in 0.8 s (5000 img/s). Medians of the repetitions: the odd ones out do
    not count."""
    train_s = {"naive": [4.0, 2.0, 9.0], "fp32": [1.28, 1.0, 2.0], "tce": [1.408], "detect": [1.536],
               "packed": [1.6]}
    eval_s = {"single": [0.5], "packed": [0.8, 0.7, 0.9]}
    out = bench.rates(train_s, eval_s, steps=10, batch_size=128, pack=2, test_images=2000, precision="fp32",
                      precisions=("fp32",))
    assert out["naive_img_s"] == pytest.approx(320) and out["engine_img_s"] == pytest.approx(1000)
    assert out["ratio"] == pytest.approx(3.125) and out["ratio_by_precision"] == {"fp32": pytest.approx(3.125)}
    assert out["ce_step_s"] == pytest.approx(0.128) and out["tce_over_ce_step"] == pytest.approx(1.1)
    assert out["detect_over_ce_step"] == pytest.approx(1.2)
    assert out["packed_img_s"] == pytest.approx(1600) and out["pack_speedup"] == pytest.approx(1.6)
    assert out["eval_img_s"] == pytest.approx(4000) and out["packed_eval_img_s"] == pytest.approx(5000)
    # CIFAR-10's validation run: 45,000 training images (45 s) and 5,000 + 5,000 + 10,000 evaluated (5 s); its full
    # runs: 50,000 (50 s) and 5,000 + 10,000 (3.75 s).
    assert out["eval_overhead_by_run"]["cifar10"] == {"validation": pytest.approx(5 / 45),
                                                      "full": pytest.approx(3.75 / 50)}
    assert out["eval_overhead"]["cifar10"] == pytest.approx(5 / 45)
    # The paper's grid: 12,360,696,320 training and 4,266,680,320 evaluated images (test_grid_images_follow_the_
    # presets), 3,729.8 h one run at a time, 2,383.0 h in packs: packs it is.
    paper = out["grids"]["paper"]
    assert paper["hours"] == {"single": pytest.approx(3729.824), "packed": pytest.approx(2382.9920178)}
    assert paper["mode"] == "packed" and out["grid_hours_estimate"] == pytest.approx(2382.9920178)
    # The zoo's: 18,124,800,000 and 5,836,800,000 images, 5,440 h or 3,470.9 h.
    zoo = out["grids"]["zoo"]
    assert zoo["hours"] == {"single": pytest.approx(5440.0), "packed": pytest.approx(3470.9333333)}
    assert out["zoo_grid_hours_estimate"] == pytest.approx(3470.9333333)


def test_grid_images_follow_the_presets():
    """Each preset's runs and images, by hand from its YAML and the datasets' sizes."""
    # Per dataset and cell: a validation run on N - 5000 images evaluating min(5000, N - 5000) + 5000 + T, and 5
    # full runs on N evaluating min(5000, N) + T; 35 cells of 256 epochs. By hand, per epoch of all 6 runs:
    # training CIFAR-100 295,000, MNIST 355,000, CIFAR-10 295,000, SVHN 434,542 (1,379,542 in all), evaluating
    # 95,000, 95,000, 95,000 and 36,032 + 155,160 (476,192 in all).
    assert bench.grid_images("paper") == (840, 1_379_542 * 35 * 256, 476_192 * 35 * 256)
    assert bench.grid_images("table1") == (210, 295_000 * 35 * 256, 95_000 * 35 * 256)
    # experiment=zoo: 30 losses x 4 noise levels on CIFAR-10 and CIFAR-100; zoo_tuned: 71 settings; idn: 7 x 3.
    assert bench.grid_images("zoo") == (1440, 2 * 295_000 * 120 * 256, 2 * 95_000 * 120 * 256)
    assert bench.grid_images("zoo_tuned") == (3408, 2 * 295_000 * 284 * 256, 2 * 95_000 * 284 * 256)
    assert bench.grid_images("idn") == (252, 2 * 295_000 * 21 * 256, 2 * 95_000 * 21 * 256)
    # cifarn: 5 CIFAR-10N sets and CIFAR-100N, 19 losses each; demo: 1,000 synthetic images of which 200 are held
    # out, 1,000 test images, a 500-image evaluation subset, 60 epochs, 2 losses x 2 noise levels x 3 runs.
    assert bench.grid_images("cifarn") == (684, 6 * 295_000 * 19 * 256, 6 * 95_000 * 19 * 256)
    val, full = (800, 500 + 200 + 1000), (1000, 500 + 1000)
    assert bench.grid_images("demo") == (12, 4 * (val[0] + 2 * full[0]) * 60, 4 * (val[1] + 2 * full[1]) * 60)
    assert tuple(sorted(p.stem for p in (bench.CONFIGS / "experiment").glob("*.yaml"))) == bench.PRESETS


def test_slug():
    assert provenance.slug("cpu (x86_64 AVX2, 2 threads)") == "cpu-x86_64-avx2-2-threads"
    assert provenance.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"


def test_a_recipes_network_costs_its_forward_flops_in_resnet20_images():
    """Forward FLOPs at 3 x 32 x 32 and 10 classes, by hand from the layer lists (2 per multiply-add). ResNet-20:
    conv 3->16 at 32 x 32 (442,368), 6 convs 16->16 at 32 x 32 (14,155,776), 16->32 and 5 x 32->32 at 16 x 16
    (12,976,128), 32->64 and 5 x 64->64 at 8 x 8 (12,976,128), fc 640: 40,551,040 multiply-adds. The 8-layer CNN:
    convs 3->64 and 64->64 at 32 x 32 (39,518,208), 64->128 and 128->128 at 16 x 16 (56,623,104), 128->196 and
    196->196 at 8 x 8 (36,578,304), Linear 3136->256 and 256->10 (805,376): 133,524,992."""
    assert cost.forward_flops("resnet", 20) == 2 * 40_551_040
    assert cost.forward_flops("cnn8", None) == 2 * 133_524_992


def test_apl_zoo_counts_each_recipes_images_at_its_networks_cost_and_never_packs():
    """experiment=apl_zoo: 17 losses x 4 noise levels x 6 runs under each of 2 recipes. Per cell and epoch, as the
    zoo's CIFAR cells: 295,000 training and 95,000 evaluated images; 120 epochs of the 8-layer CNN on CIFAR-10 and 200
    of ResNet-34 on CIFAR-100, each at its forward FLOPs over ResNet-20's."""
    cnn8 = cost.forward_flops("cnn8", None) / cost.forward_flops("resnet", 20)
    resnet34 = cost.forward_flops("resnet34", None) / cost.forward_flops("resnet", 20)
    weight = 68 * (120 * cnn8 + 200 * resnet34)
    runs, train, evaluate = bench.grid_images("apl_zoo")
    assert runs == 816
    assert (train, evaluate) == (pytest.approx(295_000 * weight), pytest.approx(95_000 * weight))
    assert not bench.grid_packs("apl_zoo") and bench.grid_packs("zoo")
    timings = {"naive": [4.0], "fp32": [1.28], "tce": [1.408], "detect": [1.28], "packed": [0.64]}
    out = bench.rates(timings, {"single": [0.5], "packed": [0.5]}, steps=10, batch_size=128, pack=2,
                      test_images=2000, precision="fp32", precisions=("fp32",))
    # 1000 training and 4000 evaluated images/s one run at a time; packs would be faster, but these networks do not.
    assert out["grids"]["apl_zoo"]["mode"] == "single"
    assert out["grids"]["apl_zoo"]["estimate"] == pytest.approx((295_000 / 1000 + 95_000 / 4000) * weight / 3600)
