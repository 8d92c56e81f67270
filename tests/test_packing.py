"""Packing: K runs trained at once in one grouped model give the metrics each gives trained alone."""

import csv
import json
from pathlib import Path

import pytest

from compose import compose_train, tiny
from experiments.config import resolve, run_name
from experiments.run import run_pack

MEMBERS = [("loss=ce", "seed=0", "noise=0.4"), ("loss=tce", "loss.alpha=1.5", "seed=1", "noise=0.0"),
           ("loss=mse", "seed=2", "noise=0.4", "noise_type=symmetric")]


def entries(root: Path) -> list:
    cfgs = [resolve(compose_train(*tiny(root, "epochs=3", *m))) for m in MEMBERS]
    return [(cfg, root / run_name(cfg)) for cfg in cfgs]


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_packed_runs_match_runs_trained_alone(tmp_path):
    alone = entries(tmp_path / "alone")
    for entry in alone:
        assert run_pack([entry]) == ["complete"]
    packed = entries(tmp_path / "packed")
    assert run_pack(packed) == ["complete"] * len(MEMBERS)
    for (_, a), (_, p) in zip(alone, packed, strict=True):
        ra, rp = rows(a), rows(p)
        assert len(ra) == len(rp) == 3
        for x, y in zip(ra, rp, strict=True):
            assert float(y["train_loss"]) == pytest.approx(float(x["train_loss"]), rel=1e-3)
            for key in ("train_acc", "train_clean_acc", "val_acc", "test_acc"):
                # float rounding may move a borderline prediction or two: one sample of 32 is 3.1 points
                assert float(y[key]) == pytest.approx(float(x[key]), abs=6.3)
        # Every member keeps its own run directory, with its own noise record.
        sa, sp = (json.loads((d / "summary.json").read_text()) for d in (a, p))
        assert sa["noise"] == sp["noise"] and sp["status"] == "complete"
