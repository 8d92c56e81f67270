"""The engine's arithmetic contexts change the process's TF32 settings only within them: inside, every setting of
both of torch's APIs says the context's arithmetic and none raises when read; after, every setting reads back as it
did before, whatever the two APIs were set to, and in whichever order."""

import random

import pytest
import torch

from experiments import precision

NEW_API = hasattr(torch.backends.cuda.matmul, "fp32_precision")
new_api = pytest.mark.skipif(not NEW_API, reason="torch < 2.9 has only the old TF32 flags")
B = torch.backends
MATMUL, CONV = B.cuda.matmul, B.cudnn.conv
# The new API's settings by name, with the values each takes (oneDNN's matrix products also bf16), for random
# histories of setter calls; torch.backends before its backends, backends before their operators.
STRICT_OR_TF32 = ("none", "ieee", "tf32")
NEW = {"backends": (B, STRICT_OR_TF32), "cudnn": (B.cudnn, STRICT_OR_TF32), "mkldnn": (B.mkldnn, STRICT_OR_TF32),
       "cuda.matmul": (MATMUL, STRICT_OR_TF32), "cudnn.conv": (CONV, STRICT_OR_TF32),
       "cudnn.rnn": (B.cudnn.rnn, STRICT_OR_TF32), "mkldnn.matmul": (B.mkldnn.matmul, (*STRICT_OR_TF32, "bf16")),
       "mkldnn.conv": (B.mkldnn.conv, STRICT_OR_TF32), "mkldnn.rnn": (B.mkldnn.rnn, STRICT_OR_TF32)} if NEW_API else {}


def readings() -> dict:
    """Every setting as it reads, or the error's type where reading it raises; written without precision.py."""
    def read(get):
        try:
            return get()
        except RuntimeError as error:
            return type(error).__name__

    found = {"matmul.allow_tf32": read(lambda: MATMUL.allow_tf32), "cudnn.allow_tf32": read(lambda: B.cudnn.allow_tf32),
             "matmul_precision": read(torch.get_float32_matmul_precision)}
    return {**found, **{name: module.fp32_precision for name, (module, _) in NEW.items()}}


@pytest.fixture
def settings():
    """torch's settings put back after the test: the old API's defaults, then each of the new API's as it was."""
    before = {name: module.fp32_precision for name, (module, _) in NEW.items()}
    yield
    B.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("highest")
    for name, value in before.items():
        NEW[name][0].fp32_precision = value


@new_api
@pytest.mark.parametrize("before", [("none", "tf32"), ("tf32", "ieee"), ("ieee", "none"), ("tf32", "tf32")])
@pytest.mark.parametrize(("name", "inside"), [("fp32", ("ieee", "ieee")), ("tf32", ("tf32", "tf32")),
                                              ("bf16", ("ieee", "ieee"))])
def test_each_setting_before_inside_and_after(settings, before, name, inside):
    """("none", "tf32") is torch 2.14's default: matrix products defer to torch.backends.fp32_precision, and
    convolutions run in TF32. The matrix products' setting must not come back as the convolutions'."""
    MATMUL.fp32_precision, CONV.fp32_precision = before
    with precision.arithmetic(name):
        assert (MATMUL.fp32_precision, CONV.fp32_precision) == inside
        with precision.arithmetic("fp32"):  # nested, as a step inside an epoch would be
            assert (MATMUL.fp32_precision, CONV.fp32_precision) == ("ieee", "ieee")
        assert (MATMUL.fp32_precision, CONV.fp32_precision) == inside
    assert (MATMUL.fp32_precision, CONV.fp32_precision) == before


@pytest.mark.parametrize("name", precision.PRECISIONS)
def test_inside_every_setting_of_both_apis_reads_and_says_the_contexts_arithmetic(settings, name):
    """What torch 2.14 raised inside the old contexts: cudnn.allow_tf32 in fp32, matmul.allow_tf32 and
    get_float32_matmul_precision in tf32. oneDNN stays strict in every precision: tf32 is CUDA's."""
    MATMUL.allow_tf32 = True  # the old API set the other way, then the new one
    if NEW_API:
        CONV.fp32_precision = "ieee"
    tf32 = name == "tf32"
    with precision.arithmetic(name):
        found = readings()
        assert (found["matmul.allow_tf32"], found["cudnn.allow_tf32"]) == (tf32, tf32)
        assert found["matmul_precision"] == ("high" if tf32 else "highest")
        if NEW_API:
            assert [CONV.fp32_precision, B.cudnn.rnn.fp32_precision] == ["tf32" if tf32 else "ieee"] * 2
            assert [B.mkldnn.matmul.fp32_precision, B.mkldnn.conv.fp32_precision] == ["ieee"] * 2


@new_api
def test_after_any_history_of_both_apis_every_setting_reads_back_as_before(settings):
    """Random histories of the old and the new setters, some leaving a reading that raises (which must raise
    again after the context, and no other)."""
    rng = random.Random(0)
    raised = 0
    for _ in range(150):
        for _ in range(4):
            roll = rng.random()
            if roll < 0.2:
                B.cudnn.allow_tf32 = rng.random() < 0.5
            elif roll < 0.4:
                torch.set_float32_matmul_precision(rng.choice(("highest", "high", "medium")))
            else:
                module, values = NEW[rng.choice(list(NEW))]
                module.fp32_precision = rng.choice(values)
        before = readings()
        raised += "RuntimeError" in before.values()
        for name in precision.PRECISIONS:
            with precision.arithmetic(name):
                assert "RuntimeError" not in readings().values()
            assert readings() == before
    assert raised > 10  # the histories did reach the states that raise


def test_settings_are_restored_when_the_block_raises(settings):
    MATMUL.allow_tf32 = True
    before = readings()
    with pytest.raises(RuntimeError), precision.arithmetic("fp32"):
        raise RuntimeError("a failed step")
    assert readings() == before
