"""make gpu-wheels' folder (gpu-wheels/, or $WHEELS) runs the device check where only torch is installed and
nothing can be downloaded: a fresh virtual environment (no system site-packages) holding torch and torchvision
alone, the check's other dependencies installed from the folder with no index, and its dry run exits 0 with its
record only in --out. Building the folder needs the network, which no test touches: `make gpu-wheels` first."""

import importlib.metadata as metadata
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _with_dependencies(names: list[str]) -> set[str]:
    """The installed distributions `names` need, with theirs, as installed here (markers evaluated)."""
    from packaging.requirements import Requirement

    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name.lower() in found:
            continue
        found.add(name.lower())
        for line in metadata.distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def _torch_only(where: Path) -> Path:
    """A folder of links to torch and torchvision and what they need, as this environment installed them (so that
    the test downloads no torch): the fresh environment's only packages."""
    where.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in _with_dependencies(["torch", "torchvision"]):
        for entry in {Path(str(f)).parts[0] for f in metadata.distribution(name).files or []}:
            if entry != ".." and not (where / entry).exists() and (site / entry).exists():
                (where / entry).symlink_to(site / entry)
    return where


def test_the_check_runs_offline_in_a_fresh_environment_with_only_torch(tmp_path):
    wheels, out = Path(os.environ.get("WHEELS", REPO / "gpu-wheels")), tmp_path / "out"
    if not (wheels / "requirements.txt").exists():  # tests never touch the network, which building the folder needs
        pytest.skip(f"no wheel folder at {wheels}: build it with `make gpu-wheels` (WHEELS=DIR for another)")
    names = {re.sub(r"[-_.]+", "-", pin.split("==")[0]).lower()
             for pin in (wheels / "requirements.txt").read_text().split()}
    assert not {"torch", "torchvision"} & names
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    fresh = tmp_path / "venv" / "bin" / "python"
    fresh_site = subprocess.run([str(fresh), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                check=True, capture_output=True, text=True).stdout.strip()
    (Path(fresh_site) / "torch_only.pth").write_text(f"{_torch_only(tmp_path / 'torch')}\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    no_hydra = subprocess.run([str(fresh), "-c", "import omegaconf"], env=env, capture_output=True)
    assert no_hydra.returncode != 0  # the fresh environment lacks what the check needs, until it installs it
    proc = subprocess.run([str(fresh), "scripts/gpu_check.py", "--wheels", str(wheels), "--dry-run", "--out", str(out),
                           "--deadline", "3600"],
                          cwd=REPO, env={**env, "PIP_NO_INDEX": "1"}, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == ["gpu_check.json"]
    stages = json.loads((out / "gpu_check.json").read_text())["stages"]
    assert all(entry["status"] == "ok" for entry in stages.values())
