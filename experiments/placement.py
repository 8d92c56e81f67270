"""The process-wide CUDA settings that a pack's config decides, made before it trains (PackTrainer): the current
device, and how cuDNN and cuBLAS choose their algorithms.

- The current device is the pack's own GPU (cuda:N of a sweep's job N), so that the streams, events, pinned host
  memory and CUDA graphs of its work are that GPU's, not cuda:0's.
- deterministic=false (the default): cudnn.benchmark, cuDNN timing its algorithms once per shape and taking the
  fastest (a pack's grouped convolutions would otherwise get a heuristic's choice, often a slow direct kernel). The
  shapes are static (the full training batch, the partial last one, the evaluation batch), so it times a few.
  Another process may pick other algorithms: a resumed run then differs from an uninterrupted one in last bits.
- deterministic=true: cuDNN's deterministic algorithms without benchmark, torch.use_deterministic_algorithms (with
  a warning naming an op that has no deterministic implementation, rather than failing the run) and cuBLAS's fixed
  workspace (CUBLAS_WORKSPACE_CONFIG), so that a resumed run computes what an uninterrupted one does, bit for bit.
  cuBLAS reads its workspace setting once, at its first use in the process: a process that used cuBLAS before
  (the device check's earlier stages) must set it at its start.

On the CPU nothing is set: its kernels compute the same in every process.
"""

import os

import torch

CUBLAS_WORKSPACE = ":4096:8"  # one of the two settings with which cuBLAS is deterministic (NVIDIA's docs)


def prepare(device: torch.device, deterministic: bool) -> dict | None:
    """Makes the settings for a pack on `device`; returns what summary.json records of them (None on the CPU)."""
    if device.type != "cuda":
        return None
    if device.index is not None:  # "cuda" alone is the current device already
        torch.cuda.set_device(device)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    return {"benchmark": not deterministic, "deterministic": deterministic,
            "cublas_workspace": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
