import math

import pandas as pd
import pytest

from experiments.schema import LOSS_KEYS
from rundirs import write_run
from scripts.aggregate import aggregate
from scripts.loss_settings import setting
from scripts.table_formats import LATEX, MARKDOWN, Column, render
from scripts.tables import DEFAULT_REFERENCE, build_tables, load_reference, losses_by_noise, main

CE, TCE1 = setting("ce"), setting("tce", alpha=1.0)


@pytest.fixture
def tiny_table(tmp_path):
    """CIFAR-10+, CE and TCE alpha=1 at noise 0 and 0.4: a tie for best, a missing cell, a missing paper value."""
    ce0, tce0 = {"loss": "ce", "noise": 0.0}, {"loss": "tce", "alpha": 1.0, "noise": 0.0}
    write_run(tmp_path, holdout=5000, test_acc=[1, 1, 1], val_acc=[60, 80, 70], **ce0)
    write_run(tmp_path, seed=0, test_acc=[85, 90, 88], **ce0)
    write_run(tmp_path, seed=1, test_acc=[86, 92, 89], **ce0)
    write_run(tmp_path, holdout=5000, test_acc=[1, 1, 1], val_acc=[60, 80, 80], **tce0)
    write_run(tmp_path, seed=0, test_acc=[85, 91, 95], **tce0)
    ce4, tce4 = {"loss": "ce", "noise": 0.4}, {"loss": "tce", "alpha": 1.0, "noise": 0.4}
    write_run(tmp_path, seed=0, test_acc=[70, 75, 72], **ce4)  # no validation run: no protocol value
    write_run(tmp_path, holdout=5000, test_acc=[1, 1, 1], val_acc=[50, 60, 55], **tce4)
    write_run(tmp_path, seed=0, test_acc=[80, 84, 83], **tce4)
    write_run(tmp_path, seed=1, test_acc=[81, 86, 85], **tce4)
    write_run(tmp_path, seed=2, test_acc=[9], train_loss=[math.nan], status="diverged", **tce4)
    reference = pd.DataFrame(
        {
            "dataset": "cifar10",
            "setting": ["ce", "ce", "tce-a1", "tce-a1"],
            "noise": [0.0, 0.4, 0.0, 0.4],
            "top1": [92.10, 83.73, 91.99, math.nan],
        }
    )
    cells = aggregate(tmp_path).cells
    columns = [Column("cifar10", 0.0), Column("cifar10", 0.4)]
    return losses_by_noise("tiny", "Tiny", cells, columns, [CE, TCE1], "uniform", reference)


def test_markdown_layout(tiny_table):
    expected = """\
### Tiny

Top-1 test accuracy (%) at the epoch of lowest validation error: mean ± std over n full runs (std when n > 1). \
paper: the published value; Δ: ours − paper. Bold: our best per column among the rows chosen without the test set \
(a loss's only setting, a row of selection on validation; never one of several settings of a loss), diverged runs \
counted at chance accuracy. —: no value.

| noise (η) | CIFAR-10+ η=0.0 | CIFAR-10+ η=0.4 |
|---|---|---|
| CE | **91.00** ± 1.41 (n=2); paper 92.10 (Δ −1.10) | —; paper 83.73 |
| TCE α=1.0 | **91.00** (n=1); paper 91.99 (Δ −0.99) | **85.00** ± 1.41 (n=2, 1 diverged: 60.00 counting them at \
chance); paper — |

Missing cells (no protocol value): 1 of 4.
"""
    assert render(tiny_table, MARKDOWN) == expected


def test_latex_layout_and_escapes(tiny_table):
    tex = render(tiny_table, LATEX)
    assert r"\begin{tabular}{l|ll}" in tex
    assert r" & \multicolumn{2}{c}{CIFAR-10+} \\" in tex
    assert r"noise ($\eta$) & 0.0 & 0.4 \\" in tex
    assert (
        r"TCE $\alpha$=1.0 & \textbf{91.00} (n=1); paper 91.99 ($\Delta$ $-$0.99) & "
        r"\textbf{85.00} $\pm$ 1.41 (n=2, 1 diverged: 60.00 counting them at chance); paper --- \\"
    ) in tex
    assert r"CE & \textbf{91.00} $\pm$ 1.41 (n=2); paper 92.10 ($\Delta$ $-$1.10) & ---; paper 83.73 \\" in tex
    assert r"(\%)" in tex and "(std when n $>$ 1)" in tex


def test_tidy_csv_keeps_every_number(tiny_table):
    cells = tiny_table.cells.set_index(["setting", "noise"])
    assert len(cells) == 4
    ce4 = cells.loc[("ce", 0.4)]
    assert pd.isna(ce4["protocol_mean"]) and ce4["last_epoch_mean"] == 72 and ce4["paper_top1"] == 83.73
    tce0 = cells.loc[("tce-a1", 0.0)]
    assert (tce0["best_epoch"], tce0["protocol_mean"], tce0["oracle_best_test_mean"]) == (2, 91, 95)
    assert tce0["diff_vs_paper"] == pytest.approx(-0.99)
    assert cells["best"].to_dict() == {
        ("ce", 0.0): True,
        ("tce-a1", 0.0): True,
        ("ce", 0.4): False,
        ("tce-a1", 0.4): True,
    }


def test_other_datasets_and_noise_types_get_their_own_tables(tmp_path):
    for loss, alpha in (("tce", 2.0), ("ce", None)):
        for noise in (0.5, 0.0):
            write_run(tmp_path, dataset="synthetic", loss=loss, alpha=alpha, noise=noise, test_acc=[50],
                      recipe={"dataset": {"train_size": 1000}})
    write_run(tmp_path, dataset="cifar10", noise=0.4, noise_type="symmetric", test_acc=[50])
    aggregation = aggregate(tmp_path)
    tables = build_tables(aggregation, load_reference(DEFAULT_REFERENCE))
    (tag,) = set(aggregation.cells.loc[aggregation.cells["dataset"] == "synthetic", "recipe"])
    assert [t.name for t in tables] == ["table1", "table2", "cifar10_symmetric", f"synthetic-{tag}"]
    synthetic = tables[-1]
    assert synthetic.settings == [CE, setting("tce", alpha=2.0)]
    assert synthetic.columns == [Column("synthetic", 0.0), Column("synthetic", 0.5)]
    markdown = render(synthetic, MARKDOWN)
    assert "| noise (η) | synthetic η=0.0 | synthetic η=0.5 |" in markdown and "; paper" not in markdown
    # The synthetic dataset's own keys (configs/dataset/synthetic.yaml) make its recipe, but the paper fixes none of
    # them: the caption names only the key these runs changed, against the synthetic set's 10,000 images.
    assert f"Recipe {tag}: differs from the paper's in dataset.train_size=1000 (not 10000)." in markdown
    assert "(not null)" not in markdown
    assert r"dataset.train\_size" in render(synthetic, LATEX)
    # Paper tables keep the paper's seven rows even when no run exists.
    assert len(tables[0].settings) == 7 and len(tables[0].cells) == 35 and len(tables[1].cells) == 63


def test_cli_on_an_empty_runs_folder_writes_no_paper_table_and_says_why(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    out = tmp_path / "tables"
    main(["--runs", str(tmp_path / "runs"), "--out", str(out)])
    printed = capsys.readouterr().out
    for name, datasets in (("table1", "cifar100"), ("table2", "mnist, cifar10, svhn")):
        assert (f"{name}: not written, {tmp_path / 'runs'} holds no run of {datasets} with the paper's recipe and "
                "uniform noise") in printed.splitlines()
    assert (out / "cells.csv").read_text().startswith(f"recipe,dataset,setting,loss,{','.join(LOSS_KEYS)},noise,")
    assert {p.name for p in out.iterdir()} == {
        "paired.csv", "paired.md", "runs.csv", "curves.csv", "cells.csv", "noise.csv", ".tables-written"}


def test_cli_writes_a_paper_table_with_runs_and_removes_its_own_stale_tables(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "tables"
    write_run(runs, dataset="cifar10", noise=0.4, test_acc=[50])
    write_run(runs, dataset="synthetic", noise=0.0, test_acc=[50])
    main(["--runs", str(runs), "--out", str(out)])
    printed = capsys.readouterr().out
    assert (out / "table2.md").exists() and "table2: not written" not in printed  # one run of cifar10 is enough
    assert not (out / "table1.md").exists() and "table1: not written" in printed
    (synthetic,) = {p.stem for p in out.glob("synthetic*.md")}
    (out / "notes.md").write_text("mine")
    main(["--runs", str(runs), "--out", str(out), "--datasets", "synthetic"])
    assert not any(out.glob("table2.*"))  # written by the first call, left out by this one
    assert {p.name for p in out.glob("synthetic*")} == {f"{synthetic}{s}" for s in (".md", ".tex", ".csv")}
    assert (out / "notes.md").read_text() == "mine"


def test_paper_reference_transcription():
    reference = pd.read_csv(DEFAULT_REFERENCE)
    assert list(reference.columns) == ["dataset", "loss", "alpha", "noise", "top1"]
    assert reference.groupby("dataset").size().to_dict() == {"cifar100": 35, "cifar10": 21, "mnist": 21, "svhn": 21}
    assert sorted(reference.loc[reference["dataset"] == "cifar100", "noise"].unique()) == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert sorted(reference.loc[reference["dataset"] == "svhn", "noise"].unique()) == [0.0, 0.4, 0.8]
    assert sorted(reference["alpha"].dropna().unique()) == [0.5, 1.0, 1.5, 2.0]
    assert reference["alpha"].isna().sum() == 3 * (5 + 3 * 3)  # CE, MSE and MAE
    assert reference["top1"].isna().sum() == 5  # the paper's "-" (MAE on MNIST and SVHN)
    # The abstract: at 80% noise the best TCE beats CE by 9.36 (CIFAR10+), 9.80 (CIFAR100+), 4.94 (SVHN).
    at_08 = reference[reference["noise"] == 0.8]
    for dataset, gain in (("cifar10", 9.36), ("cifar100", 9.80), ("svhn", 4.94)):
        rows = at_08[at_08["dataset"] == dataset]
        best_tce = rows.loc[rows["loss"] == "tce", "top1"].max()
        assert round(best_tce - rows.loc[rows["loss"] == "ce", "top1"].item(), 2) == gain
