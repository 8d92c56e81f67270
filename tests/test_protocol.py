"""The protocol's cells are recipes: runs that differ in what they train or measure are never averaged, compared
or tabled together, and what the protocol leaves out is named."""

import math
import shutil

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from compose import compose_train
from experiments.identity import recipe
from experiments.resolve import with_defaults
from experiments.schema import TrainConfig, flatten
from rundirs import write_run
from scripts import tables
from scripts.aggregate import aggregate, paper_recipe_tag, status_report

# The keys the issue lists as not part of a recipe: the run's own, and where and how fast it runs (and what it
# records besides), whether the data may be fetched, where a noise file is; and the cell's.
NOT_RECIPE = {"seed", "noise_seed", "holdout", "device", "threads", "compile", "compile_mode", "channels_last", "pack",
              "eval_batch_size", "progress", "runs_dir", "lock_timeout", "force", "checkpoint_every", "dataset.root",
              "dataset.download", "noise_file", "detect", "detect_snapshots", "deterministic"}
CELL = {"dataset.name", "noise", "noise_type", "noise_set", "instance_std", "noise_sha256"}


def test_the_recipe_is_every_key_but_the_cell_the_run_and_the_execution():
    keys = set(flatten(OmegaConf.to_container(OmegaConf.structured(TrainConfig))))
    loss = {k for k in keys if k.startswith("loss.")}
    # SGD's recipe lacks Adam's keys, and optim.name and warmup_epochs at their default (the older tags stand);
    # AdamW's lacks SGD's.
    sgd = {"optim.betas", "optim.eps", "optim.name", "optim.warmup_epochs"}
    assert set(recipe({})) == keys - NOT_RECIPE - CELL - loss - sgd
    adamw = recipe({"optim": {"name": "adamw", "warmup_epochs": 2}})
    assert set(adamw) == keys - NOT_RECIPE - CELL - loss - {"optim.momentum", "optim.nesterov"}


def test_execution_keys_and_keys_an_older_config_lacks_keep_the_paper_recipe(tmp_path):
    fast = {"device": "cuda:0", "threads": 4, "pack": 8, "compile": True, "channels_last": False,
            "eval_batch_size": 1000, "runs_dir": "/elsewhere", "progress": False, "dataset": {"root": "/data"}}
    write_run(tmp_path, seed=0, test_acc=[50], recipe=fast)
    older = write_run(tmp_path, seed=1, test_acc=[52])
    config = yaml.safe_load((older / "config.yaml").read_text())
    del config["precision"], config["eval_train_size"], config["optim"]["lr_gamma"]  # keys added since
    (older / "config.yaml").write_text(yaml.safe_dump(config))
    write_run(tmp_path, seed=2, test_acc=[54], recipe={"optim": {"lr": 0.05}})
    cells = aggregate(tmp_path).cells
    paper = cells[cells["recipe"] == paper_recipe_tag()]
    assert len(cells) == 2 and paper["n_full"].tolist() == [2] and paper["last_epoch_mean"].tolist() == [51]


def _table_cell(out, name, row, column=1):
    line = next(line for line in (out / f"{name}.md").read_text().splitlines() if line.startswith(f"| {row} |"))
    return line.split("|")[column + 1].strip()


def test_two_recipes_of_the_same_cells_give_two_cells_and_two_tables(tmp_path):
    """The demo's mistake: short runs next to a real sweep's, in one runs folder (3, 4 and the paper's 256 epochs)."""
    for epochs, accuracy in ((3, 50), (4, 60), (256, 70)):
        sweep = tmp_path / f"sweep{epochs}"
        for loss in ("ce", "mse"):
            write_run(sweep, loss=loss, holdout=5000, seed=100, test_acc=[1, 2], val_acc=[5, 9], epochs=epochs)
            for seed in (0, 1):
                write_run(sweep, loss=loss, seed=seed, test_acc=[10, accuracy + seed], epochs=epochs)
    aggregation = aggregate(tmp_path)
    cells = aggregation.cells.set_index(["setting", "recipe"])
    tags = {epochs: next(t for t, r in aggregation.recipes.items() if r["epochs"] == epochs) for epochs in (3, 4, 256)}
    assert tags[256] == paper_recipe_tag() and len(set(tags.values())) == 3
    for epochs, accuracy in ((3, 50), (4, 60), (256, 70)):
        cell = cells.loc[("ce", tags[epochs])]
        assert (cell["n"], cell["best_epoch"], cell["protocol_mean"]) == (2, 2, accuracy + 0.5)

    report = status_report(aggregation)
    assert "3 recipes" in report and f"recipe {tags[256]} (6 runs): the paper's" in report
    assert f"recipe {tags[3]} (6 runs): differs from the paper's in epochs=3 (not 256)" in report
    assert f"recipe {tags[4]} (6 runs): differs from the paper's in epochs=4 (not 256)" in report

    out = tmp_path / "tables"
    tables.main(["--runs", str(tmp_path), "--out", str(out)])
    # CIFAR-10+ at η = 0 in Table 2: the paper's runs only.
    assert _table_cell(out, "table2", "CE", 4) == "**70.50** ± 0.71 (n=2); paper 92.10 (Δ −21.60)"
    for epochs, accuracy in ((3, 50), (4, 60)):
        name = f"cifar10-{tags[epochs]}"
        assert _table_cell(out, name, "CE") == f"**{accuracy + 0.5:.2f}** ± 0.71 (n=2)"  # ties MSE: both bold
        assert f"epochs={epochs} (not 256)" in (out / f"{name}.md").read_text()
    paired = pd.read_csv(out / "paired.csv")
    assert sorted(paired["recipe"]) == sorted(tags.values())  # MSE against the CE of its own recipe, each time
    assert paired["mean_diff"].tolist() == [0.0, 0.0, 0.0]


def test_duplicate_runs_are_named_and_not_averaged(tmp_path):
    write_run(tmp_path, holdout=5000, seed=100, test_acc=[1, 1], val_acc=[5, 9])
    # Two runs of seed 0 that differ: a conflict, both left out.
    conflicting = [write_run(tmp_path, seed=0, test_acc=[10, accuracy], subdir=f"{where}/cifar10-ce-seed0")
                   for where, accuracy in (("a", 40), ("b", 41))]
    write_run(tmp_path, seed=1, test_acc=[10, 50])
    # Another cell with two validation runs: which epoch to pick is ambiguous.
    first = write_run(tmp_path, noise=0.4, holdout=5000, seed=100, test_acc=[1, 1], val_acc=[5, 9])
    second = write_run(tmp_path, noise=0.4, holdout=5000, seed=0, test_acc=[1, 1], val_acc=[9, 5])
    write_run(tmp_path, noise=0.4, seed=0, test_acc=[30, 35])
    aggregation = aggregate(tmp_path)
    cells = aggregation.cells.set_index("noise")
    assert (cells.at[0.0, "n"], cells.at[0.0, "n_duplicate"], cells.at[0.0, "protocol_mean"]) == (1, 2, 50)
    assert cells.at[0.4, "n_val"] == 2 and pd.isna(cells.at[0.4, "protocol_mean"])
    report = status_report(aggregation)
    assert (f"2 distinct complete full runs of seed 0 (noise seed 0), all left out: {conflicting[0]}, "
            f"{conflicting[1]}") in report
    assert f"2 distinct complete validation runs, so no protocol epoch: {second}, {first}" in report


def _sweep(root, diverged_tce: bool = False):
    """CE and TCE alpha=1 on CIFAR-10 at noise 0.4: a validation run each and full runs of seeds 0-2."""
    for loss, alpha, base in (("ce", None, 60), ("tce", 1.0, 70)):
        write_run(root, loss=loss, alpha=alpha, noise=0.4, holdout=5000, test_acc=[1, 1], val_acc=[5, 9])
        for seed in range(3):
            if diverged_tce and loss == "tce" and seed == 2:
                write_run(root, loss=loss, alpha=alpha, noise=0.4, seed=seed, test_acc=[9], train_loss=[math.nan],
                          status="diverged")
            else:
                write_run(root, loss=loss, alpha=alpha, noise=0.4, seed=seed, test_acc=[1, base + seed])


def test_identical_copies_of_a_sweep_count_once_and_give_the_tables_of_the_sweep_alone(tmp_path):
    """A sweep rsynced from another machine next to itself: the same tables as the sweep alone, the copies named."""
    _sweep(tmp_path / "alone" / "sweep")
    shutil.copytree(tmp_path / "alone", tmp_path / "both")
    shutil.copytree(tmp_path / "alone" / "sweep", tmp_path / "both" / "machine2")
    for name in ("alone", "both"):
        tables.main(["--runs", str(tmp_path / name), "--out", str(tmp_path / f"{name}-tables")])
    written = sorted(p.name for p in (tmp_path / "alone-tables").iterdir())
    for name in written:
        if name not in ("runs.csv", "curves.csv", "cells.csv", "noise.csv"):  # those list or count the directories
            assert (tmp_path / "alone-tables" / name).read_text() == (tmp_path / "both-tables" / name).read_text(), name
    cells = aggregate(tmp_path / "both").cells.set_index("setting")
    assert (cells.at["tce-a1", "n"], cells.at["tce-a1", "n_duplicate"], cells.at["tce-a1", "protocol_mean"]) == (
        3, 0, 71.0)
    report = status_report(aggregate(tmp_path / "both"))
    copy, original = (tmp_path / "both" / d / "cifar10/tce-a1/noise0.4-uniform-holdout0-seed1" for d in
                      ("sweep", "machine2"))  # the first directory in order is kept
    assert "Identical copies of a run, counted once:" in report
    assert f"{copy} is a copy of {original}, counted once" in report
    assert report.count("is a copy of") == 8  # 2 validation runs and 6 full runs


def test_a_validation_run_that_shares_a_seed_with_a_full_run_withholds_the_protocol_value(tmp_path):
    validation = write_run(tmp_path, holdout=5000, seed=0, test_acc=[1, 1], val_acc=[5, 9])
    full = write_run(tmp_path, seed=0, test_acc=[10, 40])
    write_run(tmp_path, seed=1, test_acc=[10, 50])
    aggregation = aggregate(tmp_path)
    cell = aggregation.cells.iloc[0]
    assert pd.isna(cell["protocol_mean"]) and pd.isna(cell["best_epoch"]) and cell["n_full"] == 2
    assert cell["note"] == "val run shares seed 0 (noise seed 0) with a full run"
    assert (f"the validation run {validation} shares seed 0 (noise seed 0) with the full run {full}: protocol value "
            "withheld") in status_report(aggregation)
    tables.main(["--runs", str(tmp_path), "--out", str(tmp_path / "tables")])
    assert _table_cell(tmp_path / "tables", "table2", "CE", 4).startswith(
        "— (val run shares seed 0 (noise seed 0) with a full run)")


def test_a_diverged_validation_run_is_said_and_val_chooses_among_the_other_settings(tmp_path):
    for alpha, val_diverged, accuracy in ((0.5, True, 90), (1.0, False, 70), (2.0, False, 60)):
        cell = {"loss": "tce", "alpha": alpha, "noise": 0.4}
        if val_diverged:
            write_run(tmp_path, holdout=5000, test_acc=[1], val_acc=[99], train_loss=[math.nan], status="diverged",
                      **cell)
        else:
            write_run(tmp_path, holdout=5000, test_acc=[1, 1], val_acc=[5, 9 + alpha], **cell)
        write_run(tmp_path, test_acc=[1, accuracy], **cell)
    aggregation = aggregate(tmp_path)
    assert len(aggregation.recipes) == 1
    cells = aggregation.cells.set_index("setting")
    assert cells.at["tce-a0.5", "note"] == "val run diverged" and pd.isna(cells.at["tce-a0.5", "protocol_mean"])
    # Among α = 1 and 2, α = 2's validation accuracy (11) beats α = 1's (10).
    for rule in ("tce@val", "tce@val-dataset"):
        assert cells.at[rule, "selected"] == "tce-a2" and cells.at[rule, "protocol_mean"] == 60
        assert cells.at[rule, "note"] == "not a candidate, its val run diverged: tce-a0.5"
    tables.main(["--runs", str(tmp_path), "--out", str(tmp_path / "tables")])
    assert _table_cell(tmp_path / "tables", "table2", "TCE α=0.5", 5).startswith("— (val run diverged); paper ")
    assert _table_cell(tmp_path / "tables", "table2", "TCE @val", 5).startswith(
        "**60.00** (n=1, α=2.0, not a candidate, its val run diverged: tce-a0.5)")


def test_the_status_report_counts_each_cell_and_diverged_run_once(tmp_path):
    _sweep(tmp_path, diverged_tce=True)
    write_run(tmp_path, loss="tce", alpha=2.0, noise=0.4, holdout=5000, test_acc=[1, 1], val_acc=[5, 8])
    aggregation = aggregate(tmp_path)
    assert len(aggregation.recipes) == 1
    report = status_report(aggregation)
    # CE, TCE α=1 and α=2: 3 cells; tce@val and tce@val-dataset: 2 rows of selection, which repeat α=1's cell and
    # its diverged run.
    assert ("3 cells, 2 with a protocol value, and 2 rows of selection on validation; 1 diverged full runs left out"
            in report)


def test_a_complete_run_short_of_its_epochs_is_corrupt(tmp_path):
    run = write_run(tmp_path, test_acc=[10, 20])
    summary = (run / "summary.json").read_text().replace('"epochs": 256', '"epochs": 300')
    (run / "summary.json").write_text(summary)
    (run / "config.yaml").unlink()  # the identity now comes from summary.json's config
    found = aggregate(tmp_path).runs[0]
    assert found.status == "corrupt" and found.reason == "summary.json says complete after 256 of 300 epochs"


PRESETS = ("table1", "table2", "fig2", "fig3", "zoo", "zoo_tuned", "asym", "cifarn", "idn", "demo", "demo_mnist")
PAPER_PRESETS = ("table1", "table2", "fig2", "fig3", "zoo", "zoo_tuned", "asym", "cifarn", "idn")


@pytest.mark.parametrize("preset", PRESETS)
def test_no_validation_run_shares_its_seed_with_a_full_run(preset):
    roles = str(compose_train(f"experiment={preset}", hydra=True).hydra.sweeper.params.protocol).split(",")
    seeds = {role: compose_train(f"experiment={preset}", f"protocol={role}").seed for role in roles}
    full = {seeds[role] for role in roles if role != "val"}
    assert seeds.get("val", 100) not in full and len(full) == len(roles) - ("val" in roles)


@pytest.mark.parametrize("preset", PAPER_PRESETS)
def test_every_preset_of_a_paper_artifact_has_the_paper_recipe(preset):
    cfg = with_defaults(compose_train(f"experiment={preset}"))
    assert recipe(OmegaConf.to_container(cfg)) == recipe(OmegaConf.to_container(with_defaults(
        compose_train("experiment=table1"))))
