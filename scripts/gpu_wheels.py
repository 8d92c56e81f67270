"""The wheels the device check needs beyond torch, for a GPU machine without network (docs/performance.md).

    python -m scripts.gpu_wheels DIR        # on a machine with network access: `make gpu-wheels`
    python scripts/gpu_check.py --wheels DIR --out OUT    # on the GPU machine: installs them, then checks

`build` fills DIR with a wheel of every distribution the check imports beyond torch and torch's own dependencies,
at constraints.txt's versions: pure-Python ones once (antlr4-python3-runtime 4.9.3, which OmegaConf needs, exists
only as a source distribution and is built here), compiled ones for each of PYTHONS on x86-64 Linux; and
DIR/requirements.txt naming them. `install` puts them into a throwaway directory with pip, no index and no
dependencies (so torch and what it brought are never touched), and puts that directory first on the import path.
Standard library only: it runs before anything it installs can be imported.
"""

import argparse
import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What scripts/gpu_check.py --dry-run imports beyond torch and torchvision (a matching pair, installed together) and
# what torch brings (filelock, fsspec, jinja2, networkx, sympy, typing-extensions), by distribution: Hydra and
# OmegaConf with the presets' launchers (the projection stage composes every preset), tqdm, torch.utils.tensorboard's
# writer, pandas (run directories), scipy (the datasets' readers), pillow (the naive recipe).
PURE = ("hydra-core", "omegaconf", "antlr4-python3-runtime", "hydra-joblib-launcher", "joblib",
        "hydra-submitit-launcher", "submitit", "cloudpickle", "tqdm", "packaging", "tensorboard", "absl-py",
        "python-dateutil", "tzdata", "threadpoolctl")
COMPILED = ("numpy", "PyYAML", "protobuf", "pillow", "pandas", "scipy")
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
PLATFORM = "manylinux_2_28_x86_64"  # pip takes this platform's wheels and those of the older manylinux tags


def pins(names: tuple[str, ...]) -> list[str]:
    """name==version for each of `names`, the version constraints.txt pins (a name it lacks: any version)."""
    pinned = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[_canonical(name)] = version.strip()
    return [f"{name}=={pinned[_canonical(name)]}" if _canonical(name) in pinned else name for name in names]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build(out: Path, pythons: tuple[str, ...] = PYTHONS) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(out), *pins(PURE)], check=True)
    for python in pythons:
        subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", python,
                        "--platform", PLATFORM, "--dest", str(out), *pins(COMPILED)], check=True)
    (out / "requirements.txt").write_text("".join(f"{pin}\n" for pin in pins(PURE + COMPILED)))


def install(wheels: Path) -> Path:
    """Installs DIR's wheels into a directory removed when the process ends, first on sys.path and PYTHONPATH."""
    target = Path(tempfile.mkdtemp(prefix="gpu-check-wheels-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--no-index",
                    "--no-deps", "--find-links", str(wheels), "--target", str(target),
                    "-r", str(wheels / "requirements.txt")], check=True)
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(target), os.environ.get("PYTHONPATH"))))
    return target


def install_if_asked(argv: list[str]) -> None:
    """install(DIR) if `argv` (the check's arguments) says --wheels DIR; before the check imports what it needs."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--wheels", type=Path)
    wheels = parser.parse_known_args(argv)[0].wheels
    if wheels is not None:
        install(wheels)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder of wheels to fill")
    parser.add_argument("--pythons", nargs="+", default=PYTHONS, help="the compiled wheels' Python versions")
    args = parser.parse_args()
    build(args.out, tuple(args.pythons))
