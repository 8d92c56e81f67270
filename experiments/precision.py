"""The arithmetic a run computes in: strict float32 by default, as the paper trained; TF32 and bf16 are opt-ins.

- fp32: float32 everywhere, TF32 off (cuDNN would otherwise run float32 convolutions in TF32 on Ampere and later).
- tf32: float32 tensors, with matrix products and convolutions in TensorFloat-32 (CUDA, compute capability >= 8).
- bf16: bf16 autocast of the model (CUDA with bf16, or CPUs with AVX512-BF16/AMX, where oneDNN computes it
  natively); BatchNorm statistics, weights and the losses stay float32.

A precision that the device cannot compute natively is refused rather than emulated, so that a preset computes
the same arithmetic on every machine that accepts it.
"""

import warnings
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
    """Within the block, float32 matrix products and convolutions run in TF32 on CUDA if `precision` is tf32, else
    in strict float32 (on the CPU always strict); after it, every TF32 setting reads back what it read before,
    whatever it was (they are global: code outside the engine, and runs of several precisions, share the process)."""
    before = tf32_settings()
    _apply(precision == "tf32")
    try:
        yield
    finally:
        _restore(before)


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The context of the model's forward pass: bf16 autocast for bf16, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


# torch has two APIs for TF32. The old one: torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
# and torch.get_float32_matmul_precision() ("highest", "high", "medium"). The new one (torch >= 2.9), a string per
# backend and operator ("ieee", "tf32", "bf16" for oneDNN, or "none": the backend's, else torch.backends'), of which
# the old one's readings are derived, each reading raising where the two disagree: cuDNN's where its convolutions'
# and RNNs' settings differ from each other or from the value the old setter last stored, the matrix products'
# where the CUDA setting disagrees with the stored float32 matmul precision. So the contexts set both, through the
# old setters first, and check that every reading comes back. Backends before their operators: setting a backend
# sets its operators.
_NEW = ("", "cudnn", "mkldnn", "cuda.matmul", "cudnn.conv", "cudnn.rnn", "mkldnn.matmul", "mkldnn.conv", "mkldnn.rnn")
_CUDA_OPERATORS = ("cuda.matmul", "cudnn.conv", "cudnn.rnn")
_CPU_OPERATORS = ("mkldnn.matmul", "mkldnn.conv", "mkldnn.rnn")  # oneDNN: strict in every precision of the engine
_OLD = {
    "cuda.matmul.allow_tf32": lambda: torch.backends.cuda.matmul.allow_tf32,
    "cudnn.allow_tf32": lambda: torch.backends.cudnn.allow_tf32,
    "float32_matmul_precision": torch.get_float32_matmul_precision,
}
UNREADABLE = "unreadable"  # a reading that raises


def _node(path: str):
    """torch.backends' module of `path` ("" for torch.backends itself), or None where this torch lacks it."""
    node = torch.backends
    for part in filter(None, path.split(".")):
        node = getattr(node, part, None)
    return node if hasattr(node, "fp32_precision") else None


_NEW_PRESENT = tuple(path for path in _NEW if _node(path) is not None)


def tf32_settings() -> dict[str, object]:
    """Every TF32 setting, by name, as it reads: the new API's by path (f"{path}.fp32_precision"), the old one's
    values, UNREADABLE for a reading that raises."""
    found = {f"{path}.fp32_precision".lstrip("."): _node(path).fp32_precision for path in _NEW_PRESENT}
    for name, read in _OLD.items():
        try:
            found[name] = read()
        except RuntimeError:
            found[name] = UNREADABLE
    return found


def _set_old(cudnn_tf32: bool, matmul_precision: str) -> None:
    with warnings.catch_warnings():  # deprecated from torch 2.9 on, and the only way to the values its readings check
        warnings.simplefilter("ignore")
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
        torch.set_float32_matmul_precision(matmul_precision)


def _apply(tf32: bool) -> None:
    """TF32 for CUDA's matrix products and cuDNN's convolutions if `tf32`, else strict float32; oneDNN strict."""
    _set_old(tf32, "high" if tf32 else "highest")
    for path in _NEW_PRESENT:
        if path in _CUDA_OPERATORS or path in _CPU_OPERATORS:
            _node(path).fp32_precision = "tf32" if tf32 and path in _CUDA_OPERATORS else "ieee"


def _restore(before: dict[str, object]) -> None:
    """The settings that read as `before`: the new API's as they were, and old values that its readings agree with
    (those read, or, where a reading raised, one that makes it raise again)."""
    cudnn = before["cudnn.allow_tf32"]
    matmul = before["float32_matmul_precision"]
    for cudnn_tf32 in (True, False) if cudnn == UNREADABLE else (cudnn,):
        for matmul_precision in ("highest", "high", "medium") if matmul == UNREADABLE else (matmul,):
            _set_old(cudnn_tf32, matmul_precision)
            for path in _NEW_PRESENT:
                _node(path).fp32_precision = before[f"{path}.fp32_precision".lstrip(".")]
            if tf32_settings() == before:
                return
