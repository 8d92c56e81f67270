"""The reference pages in docs/ cannot drift from the code: every config key is documented with its default, and
every page is linked from the README."""

import json
import re
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from compose import compose_train
from experiments.schema import flatten

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| `(?P<default>[^`]*)` \|", re.M)


def _documented() -> dict[str, str]:
    return {m["key"]: m["default"] for m in ROW.finditer((REPO / "docs" / "configuration.md").read_text())}


def _shown(value) -> str:
    """A default as the page writes it: YAML's spelling (true, null, [0.5, 0.75]), strings as they are."""
    return value if isinstance(value, str) else json.dumps(value)


def test_every_config_key_is_documented_with_its_default(monkeypatch):
    monkeypatch.delenv("TCE_DEVICE", raising=False)
    monkeypatch.delenv("TCE_DATA_ROOT", raising=False)
    composed = flatten(OmegaConf.to_container(compose_train(), resolve=True))
    documented = _documented()
    assert sorted(documented) == sorted(composed)
    wrong = {key: (documented[key], _shown(value)) for key, value in composed.items()
             if documented[key] != _shown(value)}
    assert wrong == {}


def test_every_docs_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    pages = sorted(path.name for path in (REPO / "docs").glob("*.md"))
    assert pages and [page for page in pages if f"(docs/{page})" not in readme] == []


def test_the_readme_is_short_and_names_no_path_outside_the_repository():
    readme = (REPO / "README.md").read_text()
    assert len(readme) <= 12_000
    for text in [readme, *(path.read_text() for path in (REPO / "docs").glob("*.md"))]:
        assert "../shared" not in text and "/work/" not in text


def test_license_and_citation_exist():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    assert citation["title"] and citation["authors"] and citation["preferred-citation"]["doi"]
