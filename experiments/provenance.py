"""What a run records about where it ran: library versions, git commit, device."""

import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("torch", "torchvision", "numpy", "hydra-core", "omegaconf", "tce")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_commit() -> str | None:
    """HEAD's hash, suffixed with '-dirty' when tracked files differ from it; None outside a checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def device_name(device: torch.device) -> str:
    """E.g. "NVIDIA H100 80GB HBM3", "cpu (x86_64 AVX2, 2 threads)": the vector unit tells CPUs of one kind apart
    whose speed (and whether they compute bf16 natively) differs."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    capability = torch.backends.cpu.get_cpu_capability()
    return f"cpu ({platform.machine()} {capability}, {torch.get_num_threads()} threads)"


def slug(name: str) -> str:
    """A file name for a device: 'cpu (x86_64 AVX2, 2 threads)' -> 'cpu-x86_64-avx2-2-threads' (the bench's
    records, results/bench/<slug>.json)."""
    return re.sub(r"[^a-z0-9_]+", "-", name.lower()).strip("-")
