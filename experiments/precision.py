"""The arithmetic a run computes in: strict float32 by default, as the paper trained; TF32 and bf16 are opt-ins.

- fp32: float32 everywhere, TF32 off (cuDNN would otherwise run float32 convolutions in TF32 on Ampere and later).
- tf32: float32 tensors, with matrix products and convolutions in TensorFloat-32 (CUDA, compute capability >= 8).
- bf16: bf16 autocast of the model (CUDA with bf16, or CPUs with AVX512-BF16/AMX, where oneDNN computes it
  natively); BatchNorm statistics, weights and the losses stay float32.

A precision that the device cannot compute natively is refused rather than emulated, so that a preset computes
the same arithmetic on every machine that accepts it.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def supported(device: torch.device) -> tuple[str, ...]:
    """The precisions `device` computes natively, fp32 first."""
    if device.type == "cuda":
        ampere = torch.cuda.get_device_capability(device) >= (8, 0)
        return ("fp32", *(("tf32",) if ampere else ()), *(("bf16",) if torch.cuda.is_bf16_supported() else ()))
    return ("fp32", "bf16") if _cpu_bf16() else ("fp32",)


def _cpu_bf16() -> bool:
    """Whether the CPU has bf16 instructions (AVX512-BF16 or AMX) and oneDNN may use them: oneDNN alone says yes on
    any AVX-512 CPU, where it emulates bf16 (and no where ONEDNN_MAX_CPU_ISA caps it below)."""
    try:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return native and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        return False


@contextmanager
def arithmetic(precision: str) -> Iterator[None]:
    """Within the block, float32 matrix products and convolutions run in TF32 if `precision` is tf32, else in
    strict float32; after it, each of the two settings is what it was before, whatever they were (they are global:
    code outside the engine, and runs of several precisions, may share the process)."""
    before = _tf32_settings()
    value = "tf32" if precision == "tf32" else "ieee"
    _set_tf32_settings((value, value) if _NEW_API else (precision == "tf32",) * 2)
    try:
        yield
    finally:
        _set_tf32_settings(before)


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The context of the model's forward pass: bf16 autocast for bf16, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


_NEW_API = hasattr(torch.backends.cuda.matmul, "fp32_precision")  # torch >= 2.9; mixing in the old flags is an error


def _tf32_settings() -> tuple:
    """(matrix products', convolutions') TF32 setting, each read through its own API: the new one's strings
    ("ieee", "tf32", or "none", which defers to torch.backends.fp32_precision) where torch has it, else the old
    booleans (never both: reading an old flag after the new API set one raises)."""
    if _NEW_API:
        return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def _set_tf32_settings(settings: tuple) -> None:
    matmul, conv = settings
    if _NEW_API:
        torch.backends.cuda.matmul.fp32_precision = matmul
        torch.backends.cudnn.conv.fp32_precision = conv
    else:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = conv
