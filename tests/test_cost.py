"""What a run costs, said before it trains (experiments/cost.py)."""

import json
import logging
import platform

import pytest
import torch

from compose import compose_train, train_tiny
from experiments import cost, provenance
from experiments import resolve as resolution
from experiments.resolve import resolve


def _cfg(*overrides: str):
    return resolve(compose_train("dataset=synthetic", "device=cpu", *overrides))


def test_the_estimate_comes_from_the_bench_record_of_the_device(tmp_path):
    name = provenance.device_name(torch.device("cpu"))
    record = {"engine_img_s_by_precision": {"fp32": 100.0}, "eval_img_s": 1000.0}
    (tmp_path / f"{provenance.slug(name)}.json").write_text(json.dumps(record))
    cfg = _cfg("dataset.train_size=1000", "dataset.test_size=500", "holdout=200", "eval_train_size=300", "epochs=10")
    # 800 training images at 100/s and 300 + 200 + 500 evaluated at 1000/s, for 10 epochs, 4 of them done.
    assert cost.seconds([(cfg, 4)], torch.device("cpu"), tmp_path) == (
        pytest.approx(6 * (8 + 1)), f"the bench record {provenance.slug(name)}.json")


def test_without_a_record_a_rough_rate_is_used_and_named(tmp_path):
    cfg = _cfg("dataset.train_size=1000", "dataset.test_size=2000", "holdout=0", "epochs=1000")
    total, source = cost.seconds([(cfg, 0)], torch.device("cpu"), tmp_path)
    # 1000 / 300 s of training and (1000 + 2000) / 1500 s of evaluation per epoch.
    assert total == pytest.approx(1000 * (1000 / 300 + 3000 / 1500))
    assert source.startswith("a rough cpu rate of 300 training and 1,500 evaluated images/s (no bench record of cpu")


def test_a_long_run_says_so_before_it_trains(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(cost, "LONG", 0.0)  # every run is long
    with caplog.at_level(logging.INFO, logger="tce"):
        status, _ = train_tiny(tmp_path, "epochs=1")
    assert status == "complete"
    said = [r for r in caplog.records if "will take about" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING and " h on cpu (" in said[0].getMessage()
    first_epoch = next(i for i, r in enumerate(caplog.records) if "epoch 1/1" in r.getMessage())
    assert caplog.records.index(said[0]) < first_epoch


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_device_auto_on_a_real_dataset_says_it_trains_on_the_cpu(caplog, monkeypatch):
    monkeypatch.setattr(resolution, "_said", set())  # said once per process: this test's process may have said it
    with caplog.at_level(logging.WARNING, logger="tce"):
        resolve(compose_train("dataset=mnist", "device=auto"))
    assert "device=auto: no usable GPU here, so mnist trains on the CPU" in caplog.text


def test_another_network_costs_its_forward_flops_and_the_source_says_so(tmp_path):
    name = provenance.device_name(torch.device("cpu"))
    (tmp_path / f"{provenance.slug(name)}.json").write_text(json.dumps({"engine_img_s_by_precision": {"fp32": 100.0},
                                                                     "eval_img_s": 1000.0}))
    cfg = _cfg("model=cnn8", "dataset.train_size=1000", "dataset.test_size=500", "holdout=200", "eval_train_size=300",
               "epochs=10")
    # As the ResNet-20 run of test_the_estimate_comes_from_the_bench_record_of_the_device, times the 8-layer CNN's
    # 267,049,984 forward FLOPs over ResNet-20's 81,102,080 (tests/test_bench.py counts both by hand).
    total, source = cost.seconds([(cfg, 4)], torch.device("cpu"), tmp_path)
    assert total == pytest.approx(6 * 9 * 267_049_984 / 81_102_080)
    assert source.endswith("scaled by forward FLOPs from ResNet-20 to cnn8")


def test_a_cpu_benched_at_another_thread_count_scales_its_record_by_the_threads_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    capability = torch.backends.cpu.get_cpu_capability().lower()
    cpu = f"cpu-{platform.machine().lower()}-{capability}"
    for threads, rate in ((2, 100.0), (8, 1.0)):  # 2 is nearer 3 than 8 is
        (tmp_path / f"{cpu}-{threads}-threads.json").write_text(json.dumps(
            {"engine_img_s_by_precision": {"fp32": rate}, "eval_img_s": 10 * rate}))
    cfg = _cfg("dataset.train_size=1000", "dataset.test_size=500", "holdout=200", "eval_train_size=300", "epochs=10")
    # The test above's run at 3 / 2 of its rates: 800 / 150 + 1000 / 1500 s an epoch, for 6 epochs.
    total, source = cost.seconds([(cfg, 4)], torch.device("cpu"), tmp_path)
    assert total == pytest.approx(6 * (800 / 150 + 1000 / 1500))
    assert source == f"the bench record {cpu}-2-threads.json, scaled linearly from its 2 threads to 3"
