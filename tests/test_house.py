"""One fact in one place, checked: the run statuses are experiments/lifecycle.py's names and the run directory's
file names experiments/rundir.py's (no other module spells them), every loss has its config, its label and its
entry in the docs, a cell's keys agree, and no module or function outgrows what a reader takes in at once."""

import ast
from pathlib import Path

import pytest

import tce
from experiments import lifecycle, rundir
from experiments.identity import CELL, COLUMN
from scripts.loss_settings import LOSS_LABELS

REPO = Path(__file__).resolve().parents[1]
# The code (not the tests, which write run directories by hand).
CODE = sorted(p for folder in ("tce", "models", "data", "experiments", "scripts", "hydra_plugins")
              for p in (REPO / folder).rglob("*.py")) + [REPO / "train.py"]
STATUSES = {*lifecycle.STATUSES, lifecycle.SKIPPED, lifecycle.CORRUPT}
FILE_NAMES = (rundir.CONFIG, rundir.METRICS, rundir.CALIBRATION, rundir.SUMMARY, rundir.NOISY_LABELS,
              rundir.NOISE_MATRIX, rundir.CHECKPOINT)


def _strings(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant of a module but its docstrings (prose may name a status or a file)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_module_spells_a_run_status_but_the_lifecycle():
    found = [f"{path.relative_to(REPO)}:{line} {value!r}" for path in CODE if path.name != "lifecycle.py"
             for line, value in _strings(path) if value in STATUSES]
    assert found == []


def test_no_module_spells_a_run_directory_file_but_the_run_directory():
    found = [f"{path.relative_to(REPO)}:{line} {value!r}" for path in CODE if path != REPO / "experiments/rundir.py"
             for line, value in _strings(path) if any(name in value for name in FILE_NAMES)]
    assert found == []


def test_the_greps_above_see_a_planted_literal(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('"""A docstring may say complete and summary.json."""\nSTATUS = "complete"\n'
                       'PATH = f"{run}/summary.json"\n')
    assert [value for _, value in _strings(planted)] == ["complete", "/summary.json"]


@pytest.mark.parametrize("path", CODE, ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_over_450_lines_and_no_function_over_60(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 450
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60]
    assert long == []


@pytest.mark.parametrize("name", tce.LOSSES)
def test_every_loss_has_a_config_a_label_and_a_docs_entry(name):
    assert (REPO / "configs" / "loss" / f"{name}.yaml").is_file()
    assert name in LOSS_LABELS
    docs = (REPO / "docs" / "losses.md").read_text()
    assert f"`{name}`" in docs or f'`"{name}"`' in docs


def test_a_cell_is_a_table_column_and_a_setting():
    """CELL is spelled in cells.csv's order; its keys must be those of a column (GROUP and LEVEL) and the setting."""
    assert sorted(CELL) == sorted((*COLUMN, "setting")) and len(set(CELL)) == len(CELL)
