"""The CUDA path's defects that a CPU can show: fused SGD resumed with momentum buffers in their parameters'
strides, and every piece of a job's CUDA work (its current device, the event its host copies wait for) on the job's
own GPU. No GPU needed: the fused optimizer runs on the CPU, and torch.cuda's functions are recorded."""

import csv
import json
import signal
from pathlib import Path

import pytest
import torch
from test_packing import members_of
from torch._subclasses.fake_tensor import FakeTensorMode

from compose import compose_train, tiny, train_tiny
from experiments import optimizer, placement, trainer, validation
from experiments.interrupt import RunInterrupted
from experiments.killpoints import ENV as KILL_AT
from experiments.resolve import resolve

RUN = "synthetic/ce/noise0.4-uniform-holdout32-seed0"


def _fused_channels_last_run(root: Path, monkeypatch, stop_after: int | None = None) -> Path:
    """A 4-epoch run with CUDA's optimizer (fused SGD) and layout (channels-last weights), on the CPU; stopped by
    SIGUSR1 once epoch `stop_after` is trained, then resumed in this process."""
    monkeypatch.setattr(optimizer, "implementation", lambda device: {"fused": True})
    args = (root, "epochs=4", "noise=0.4", "channels_last=true")
    if stop_after is not None:
        monkeypatch.setenv(KILL_AT, f"trained:{stop_after}:SIGUSR1")
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
        with pytest.raises(RunInterrupted):
            train_tiny(*args)
        monkeypatch.delenv(KILL_AT)
        assert json.loads((root / RUN / "summary.json").read_text())["epochs_completed"] == stop_after
    status, run_dir = train_tiny(*args)
    assert status == "complete"
    return run_dir


def test_fused_sgd_resumed_on_channels_last_weights_trains_what_an_uninterrupted_run_does(tmp_path, monkeypatch,
                                                                                          fresh_models):
    """Fused SGD reads a momentum buffer in its parameter's strides: one restored NCHW-contiguous for a
    channels-last weight mixes its elements on the CPU (and raises on CUDA), off by far more than rounding."""
    built = []
    sgd = torch.optim.SGD
    monkeypatch.setattr(torch.optim, "SGD", lambda params, **options: built.append(options) or sgd(params, **options))
    resumed = _fused_channels_last_run(tmp_path / "resumed", monkeypatch, stop_after=2)
    reference = _fused_channels_last_run(tmp_path / "reference", monkeypatch)
    assert built and all(options.get("fused") is True for options in built)
    found, expected = (torch.load(path / "checkpoint.pt", weights_only=True) for path in (resumed, reference))
    assert found["epoch"] == expected["epoch"] == 4
    for part in ("model", "momentum"):  # bit for bit: the CPU computes the same steps the same way
        assert found[part].keys() == expected[part].keys()
        assert all(torch.equal(found[part][n], expected[part][n]) for n in expected[part]), part

    def rows(run_dir: Path) -> list[dict]:
        with open(run_dir / "metrics.csv") as f:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]

    assert rows(resumed) == rows(reference)


def test_restored_momentum_buffers_have_their_parameters_strides(tmp_path, monkeypatch, fresh_models):
    """The trainer's restore itself, on a model whose convolution weights are channels-last."""
    [member] = members_of([resolve(compose_train(*tiny(tmp_path, "channels_last=true")))], "cpu")
    member.momentum = {n: torch.randn_like(t) for n, t in member.model_state.items() if t.is_floating_point()
                       and "running" not in n}
    pack = trainer.PackTrainer([member], torch.device("cpu"))
    conv = [p for p in pack.params if p.dim() == 4]
    assert any(not p.is_contiguous() for p in conv)  # channels-last: NCHW strides would differ
    for name, p in pack.model.named_parameters():
        buffer = pack.optimizer.state[p]["momentum_buffer"]
        assert buffer.stride() == p.stride() and torch.equal(buffer, member.momentum[name]), name


class Recorded:
    """torch.cuda's functions that a job calls, recording their arguments instead of touching a GPU."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple] = []
        recorded = self

        class Event:
            def record(self, stream=None):
                recorded.calls.append(("record", stream))

        monkeypatch.setattr(torch.cuda, "Event", Event)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: ("stream of", device))
        monkeypatch.setattr(torch.cuda, "set_device", lambda device: self.calls.append(("set_device", device)))
        monkeypatch.setattr(torch, "use_deterministic_algorithms",
                            lambda on, warn_only=False: self.calls.append(("deterministic", on, warn_only)))


def test_a_sweeps_job_sets_its_own_gpu_current_and_its_cuda_settings(tmp_path, monkeypatch):
    """Job 3 of a sweep on 2 GPUs trains on cuda:1 (resolve), and makes cuda:1 current before its work."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(validation, "_cuda_unusable", lambda device: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    cfg = resolve(compose_train("dataset=synthetic", "device=auto", f"runs_dir={tmp_path}"), job_num=3)
    assert cfg.device == "cuda:1" and cfg.deterministic is False
    calls = Recorded(monkeypatch).calls
    for attribute in ("benchmark", "deterministic"):  # put back after the test, as they were
        monkeypatch.setattr(torch.backends.cudnn, attribute, getattr(torch.backends.cudnn, attribute))
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    record = placement.prepare(torch.device(cfg.device), cfg.deterministic)
    assert calls == [("set_device", torch.device("cuda", 1)), ("deterministic", False, True)]
    assert record == {"benchmark": True, "deterministic": False, "cublas_workspace": None}
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    calls.clear()
    record = placement.prepare(torch.device("cuda:1"), True)
    assert calls == [("set_device", torch.device("cuda", 1)), ("deterministic", True, True)]
    assert record == {"benchmark": False, "deterministic": True, "cublas_workspace": ":4096:8"}
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert placement.prepare(torch.device("cpu"), True) is None and len(calls) == 2  # the CPU: nothing set


def test_the_host_copys_event_is_recorded_on_the_stream_of_the_states_device(monkeypatch):
    """HostStates of a pack on cuda:1 (fake tensors: shapes and devices without a GPU) waits for its copies on
    cuda:1's current stream, the stream that made them, not on the current device's (cuda:0 without set_device)."""
    calls = Recorded(monkeypatch).calls
    with FakeTensorMode():
        weights = {"w": torch.empty(2, 3, device="cuda:1")}
        momentum = {"w": torch.empty(2, 3, device="cuda:1")}
        trainer.HostStates(weights, momentum, k=1)
    assert calls == [("record", ("stream of", torch.device("cuda", 1)))]
