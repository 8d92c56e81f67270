import math

import pandas as pd
import pytest

from data import FINGERPRINT_KEYS
from experiments.schema import LOSS_KEYS
from rundirs import write_run
from scripts.aggregate import aggregate, main, status_report


def _by_dir(frame: pd.DataFrame, run_dir) -> pd.Series:
    return frame.set_index("run_dir").loc[str(run_dir)]


@pytest.fixture
def mixed_runs(tmp_path):
    """One run directory of each kind the aggregator must recognise."""
    root = tmp_path / "runs"
    runs = {
        "complete": write_run(root, test_acc=[10, 20, 30]),
        "running": write_run(root, test_acc=[10], seed=1, epochs=3, status="running"),
        "interrupted": write_run(root, test_acc=[10, 12], seed=8, epochs=3, status="interrupted"),
        "no_summary": write_run(root, test_acc=[10, 11], seed=2, epochs=3, status=None),
        "diverged": write_run(
            root,
            test_acc=[10, 10],
            seed=3,
            epochs=3,
            train_loss=[2.0, math.nan],
            status="diverged",
            error="loss is nan at epoch 2",
        ),
        "failed": write_run(root, test_acc=[10], seed=4, epochs=3, status="failed", error="CUDA out of memory"),
        "bad_json": write_run(root, test_acc=[10, 20, 30], seed=5),
        "truncated_csv": write_run(root, test_acc=[10, 20, 30], seed=6),
        "missing_rows": write_run(root, test_acc=[10, 20, 30], seed=7),
    }
    (runs["bad_json"] / "summary.json").write_text('{"status": "complete", "config": {')
    metrics = runs["truncated_csv"] / "metrics.csv"
    metrics.write_text(metrics.read_text()[:-6])
    metrics = runs["missing_rows"] / "metrics.csv"
    metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:-1]))
    only_metrics = root / "stray"
    only_metrics.mkdir()
    (only_metrics / "metrics.csv").write_text("epoch,lr\n")
    runs["only_metrics"] = only_metrics
    # Hydra's own config.yaml inside a run directory is not a run.
    (runs["complete"] / ".hydra").mkdir()
    (runs["complete"] / ".hydra" / "config.yaml").write_text("noise: 0.0\n")
    return root, runs


def test_every_run_dir_gets_a_status_and_a_reason(mixed_runs):
    root, runs = mixed_runs
    table = aggregate(root).runs_table
    assert len(table) == len(runs)
    expected = {
        "complete": ("complete", ""),
        "running": ("running", "running after epoch 1 of 3"),
        "interrupted": ("interrupted", "interrupted after epoch 2 of 3"),
        "no_summary": ("running", "no summary.json"),
        "diverged": ("diverged", "loss is nan at epoch 2"),
        "failed": ("failed", "CUDA out of memory"),
        "bad_json": ("corrupt", "summary.json unreadable"),
        "truncated_csv": ("corrupt", "metrics.csv is truncated"),
        "missing_rows": ("corrupt", "metrics.csv has 255 epochs but summary.json says 256"),
        "only_metrics": ("corrupt", "cannot be identified"),
    }
    for name, (status, reason) in expected.items():
        row = _by_dir(table, runs[name])
        assert row["status"] == status, name
        assert reason in row["reason"], name
    complete = _by_dir(table, runs["complete"])
    assert (complete["final_epoch"], complete["final_test_acc"], complete["epochs_completed"]) == (256, 30, 256)
    assert (complete["best_test_epoch"], complete["best_test_acc"]) == (3, 30)
    assert complete["noise_realized"] == 0.0
    # A corrupt run whose config.yaml is readable still says which cell it belongs to.
    assert _by_dir(table, runs["bad_json"])["seed"] == 5


def test_status_report_counts_and_lists_incomplete_runs(mixed_runs):
    root, runs = mixed_runs
    report = status_report(aggregate(root))
    assert "10 run directories" in report
    assert "1 complete, 2 running, 1 interrupted, 1 diverged, 1 failed, 4 corrupt" in report
    for name in ("running", "interrupted", "no_summary", "diverged", "failed", "bad_json", "truncated_csv"):
        assert str(runs[name]) in report
    assert str(runs["complete"]) + ":" not in report


def test_identity_is_read_from_the_files_not_the_folder_name(tmp_path):
    write_run(
        tmp_path,
        test_acc=[1.0],
        dataset="svhn",
        loss="tce",
        alpha=1.5,
        noise=0.4,
        seed=3,
        subdir="cifar100/ce/noise0-uniform-holdout0-seed0",
    )
    row = aggregate(tmp_path).runs_table.iloc[0]
    assert (row["dataset"], row["setting"], row["alpha"], row["noise"], row["seed"]) == (
        "svhn",
        "tce-a1.5",
        1.5,
        0.4,
        3,
    )


def _cell_runs(root, **cell):
    """A cell with a tie in validation accuracy and full runs of every status."""
    write_run(root, holdout=5000, seed=100, test_acc=[1, 2, 3, 4], val_acc=[50, 70, 70, 60], **cell)
    write_run(root, seed=0, test_acc=[10, 20, 30, 25], **cell)
    write_run(root, seed=1, test_acc=[12, 24, 28, 26], **cell)
    write_run(root, seed=2, test_acc=[99, 99], train_loss=[1.0, math.inf], status="diverged", error="inf", **cell)
    write_run(root, seed=3, test_acc=[99], status="running", **cell)


def test_protocol_takes_test_acc_at_the_earliest_best_validation_epoch(tmp_path):
    _cell_runs(tmp_path, dataset="cifar100", loss="tce", alpha=1.0, noise=0.4)
    cells = aggregate(tmp_path).cells
    assert len(cells) == 1
    cell = cells.iloc[0]
    assert (cell["dataset"], cell["setting"], cell["noise"], cell["noise_type"]) == (
        "cifar100",
        "tce-a1",
        0.4,
        "uniform",
    )
    assert cell["val_run_dir"].endswith("holdout5000-seed100")
    assert (cell["best_epoch"], cell["best_val_acc"]) == (2, 70)  # val_acc 70 at epochs 2 and 3: the earliest wins
    assert (cell["n"], cell["n_full"], cell["n_diverged"], cell["n_incomplete"]) == (2, 2, 1, 1)
    assert cell["protocol_mean"] == pytest.approx(22.0)  # 20 and 24
    assert cell["protocol_std"] == pytest.approx(math.sqrt(8))
    assert cell["protocol_mean_with_diverged"] == pytest.approx((20 + 24 + 1) / 3)  # CIFAR-100's chance: 1 %
    assert cell["last_epoch_mean"] == pytest.approx(25.5)  # 25 and 26
    assert cell["last_epoch_std"] == pytest.approx(math.sqrt(0.5))
    assert cell["oracle_best_test_mean"] == pytest.approx(29.0)  # 30 and 28
    assert cell["oracle_best_test_std"] == pytest.approx(math.sqrt(2))


def test_single_run_has_no_std_and_a_cell_without_validation_run_has_no_protocol_value(tmp_path):
    write_run(tmp_path, loss="mse", holdout=5000, test_acc=[1, 2], val_acc=[80, 70])
    write_run(tmp_path, loss="mse", test_acc=[40, 45])
    write_run(tmp_path, loss="mae", test_acc=[10, 11])
    cells = aggregate(tmp_path).cells.set_index("setting")
    assert (cells.at["mse", "best_epoch"], cells.at["mse", "protocol_mean"], cells.at["mse", "n"]) == (
        1,
        40,
        1,
    )
    assert pd.isna(cells.at["mse", "protocol_std"])
    assert pd.isna(cells.at["mae", "protocol_mean"]) and pd.isna(cells.at["mae", "best_epoch"])
    assert (cells.at["mae", "n"], cells.at["mae", "last_epoch_mean"]) == (0, 11)


def test_cli_writes_the_three_csvs_and_prints_the_report(mixed_runs, tmp_path, capsys):
    root, runs = mixed_runs
    _cell_runs(root / "cell", dataset="cifar100", loss="tce", alpha=1.0, noise=0.4)
    out = tmp_path / "out"
    main([str(root), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "4 corrupt" in printed and str(runs["truncated_csv"]) in printed

    runs_csv = pd.read_csv(out / "runs.csv")
    assert len(runs_csv) == len(runs) + 5
    cells_csv = (out / "cells.csv").read_text().splitlines()
    cell = dict(
        zip(
            cells_csv[0].split(","),
            next(r for r in cells_csv if ",cifar100," in r).split(","),
            strict=True,
        )
    )
    assert (cell["best_epoch"], cell["n"], cell["n_diverged"], cell["protocol_mean"]) == (
        "2",
        "2",
        "1",
        "22.0",
    )
    curves = pd.read_csv(out / "curves.csv")
    # Every logged epoch of every readable run: 256+1+2+2+2+1 in mixed_runs, 256*3+2+1 in the cell.
    assert len(curves) == 264 + 771
    assert curves["run_dir"].isin([str(runs[k]) for k in ("bad_json", "truncated_csv", "missing_rows")]).sum() == 0
    assert curves.loc[curves["run_dir"] == str(runs["complete"]), "test_acc"].tolist() == [10, 20] + [30] * 254


def test_missing_runs_folder_gives_empty_tables(tmp_path, capsys):
    main([str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert "does not exist" in capsys.readouterr().out
    header = (tmp_path / "out" / "cells.csv").read_text().strip()
    assert header.startswith(
        f"recipe,dataset,setting,loss,{','.join(LOSS_KEYS)},noise,noise_type,noise_variant,selected,note,"
        f"noise_realized,{','.join(FINGERPRINT_KEYS)},val_run_dir,val_diverged,n_val,best_epoch,best_val_acc,"
        "protocol_mean"
    )


def test_run_directories_of_older_versions_still_aggregate(tmp_path):
    """metrics.csv of the first version lacks noisy_fit, noisy_true and the nll and ece columns, and there is no
    calibration.csv: such runs count in the protocol next to new ones, their new columns empty."""
    write_run(tmp_path, loss="tce", alpha=1.0, holdout=5000, test_acc=[1, 1], val_acc=[50, 60], legacy=True)
    write_run(tmp_path, loss="tce", alpha=1.0, seed=0, test_acc=[40, 50], legacy=True)
    write_run(tmp_path, loss="tce", alpha=1.0, seed=1, test_acc=[42, 54], test_ece=[3.0, 5.0])
    header = (tmp_path / "cifar10/tce-a1/noise0-uniform-holdout0-seed0/metrics.csv").read_text().splitlines()[0]
    assert header == "epoch,lr,train_loss,train_acc,train_clean_acc,val_acc,test_acc,seconds"
    aggregation = aggregate(tmp_path)
    assert {r.status for r in aggregation.runs} == {"complete"}
    cell = aggregation.cells.iloc[0]
    assert (cell["best_epoch"], cell["n"], cell["protocol_mean"]) == (2, 2, 52.0)
    assert cell["protocol_test_ece_mean"] == 5.0  # from the one run that measured it
    curves = aggregation.curves.set_index(["seed", "holdout", "epoch"])
    assert pd.isna(curves.at[(0, 0, 2), "noisy_fit"]) and curves.at[(1, 0, 2), "test_ece"] == 5.0


def test_cells_report_the_realized_noise_rate_and_keep_noise_sets_apart(tmp_path):
    for noise_set in ("aggre", "worst"):
        write_run(tmp_path, noise_type="human", noise_set=noise_set, holdout=5000, test_acc=[1], val_acc=[1])
        write_run(tmp_path, noise_type="human", noise_set=noise_set, test_acc=[70 if noise_set == "aggre" else 60])
    write_run(tmp_path, noise=0.4, seed=0, test_acc=[50])
    write_run(tmp_path, noise=0.4, seed=1, test_acc=[51])
    cells = aggregate(tmp_path).cells.set_index(["noise_type", "noise_variant"])
    assert cells.at[("human", "worst"), "protocol_mean"] == 60 and cells.at[("human", "aggre"), "protocol_mean"] == 70
    assert cells.at[("uniform", ""), "noise_realized"] == pytest.approx(0.36)  # the fixture records 0.9 * 0.4
