"""The engine's arithmetic contexts change the process's TF32 settings only within them: each setting is saved and
restored through its own API, whatever the two were before."""

import pytest
import torch

from experiments import precision

pytestmark = pytest.mark.skipif(not hasattr(torch.backends.cuda.matmul, "fp32_precision"),
                                reason="torch < 2.9 has only the old TF32 flags")
MATMUL, CONV = torch.backends.cuda.matmul, torch.backends.cudnn.conv


@pytest.fixture
def settings():
    """The two settings put back after the test, as they were."""
    before = MATMUL.fp32_precision, CONV.fp32_precision
    yield
    MATMUL.fp32_precision, CONV.fp32_precision = before


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


def test_settings_are_restored_when_the_block_raises(settings):
    MATMUL.fp32_precision, CONV.fp32_precision = "tf32", "ieee"
    with pytest.raises(RuntimeError), precision.arithmetic("fp32"):
        raise RuntimeError("a failed step")
    assert (MATMUL.fp32_precision, CONV.fp32_precision) == ("tf32", "ieee")
