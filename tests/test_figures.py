import struct
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from rundirs import write_run
from scripts.aggregate import aggregate
from scripts.figures import (
    epochs_to_first_plateau,
    first_lr_drop_epoch,
    main,
    plot_accuracy_vs_speed,
    plot_memorization,
    plot_test_error_curves,
    tce_loss_and_gradient,
)
from scripts.reliability import plot_reliability

REPO = Path(__file__).resolve().parents[1]
LR = [0.1] * 4 + [0.01] * 2 + [0.001] * 2  # 8 epochs logged, first drop at epoch 5; the runs plan 256
PADDED = 256 - 8  # the fixture repeats each complete run's last values up to its 256 epochs


def test_first_plateau_on_a_hand_made_curve():
    epoch = np.arange(1, 11)
    acc = [10, 40, 58, 55, 60, 50, 90, 95, 96, 97]
    dropping = [0.1] * 6 + [0.01] * 4
    assert first_lr_drop_epoch(epoch, dropping) == 7
    # Best before the drop (epochs 1-6) is 60; 95% of it is 57, first reached at epoch 3.
    assert epochs_to_first_plateau(epoch, dropping, acc) == 3
    # Without a drop the whole run counts: 95% of 97 is 92.15, first reached at epoch 8.
    assert first_lr_drop_epoch(epoch, [0.1] * 10) is None
    assert epochs_to_first_plateau(epoch, [0.1] * 10, acc) == 8


def test_fig1_values_come_from_the_library():
    log_q = np.array([-3.0, 0.0])
    for alpha, loss, gradient in (
        (0.0, [3, 0], [-1, -1]),
        (1.0, [np.log(4), 0], [-0.25, -1]),
        (2.0, [0.75, 0], [-1 / 16, -1]),
    ):
        got_loss, got_gradient = tce_loss_and_gradient(log_q, alpha)
        np.testing.assert_allclose(got_loss, loss, atol=1e-12)
        np.testing.assert_allclose(got_gradient, gradient, atol=1e-12)


def _write_cell(root, dataset, loss, alpha, noise, full_curves):
    cell = {"dataset": dataset, "loss": loss, "alpha": alpha, "noise": noise}
    write_run(root, holdout=5000, test_acc=[1] * 8, val_acc=[1, 2, 3, 4, 9, 8, 7, 6], lr=LR, **cell)
    for seed, test_acc in enumerate(full_curves):
        # Memorization grows with the epochs (and is measured only where labels are noisy).
        fit = [seed + e * (10 if loss == "ce" else 2) for e in range(8)] if noise else None
        write_run(root, seed=seed, test_acc=test_acc, lr=LR, noisy_fit=fit, **cell)


@pytest.fixture
def figure_runs(tmp_path):
    root = tmp_path / "runs"
    rising = [20, 30, 40, 40, 60, 62, 61, 60]  # plateau (38 = 95% of 40) at epoch 3
    slower = [10, 20, 30, 40, 55, 58, 57, 56]  # plateau at epoch 4
    for dataset in ("cifar100", "cifar10"):
        for noise in (0.0, 0.4):
            _write_cell(root, dataset, "ce", None, noise, [rising, slower])
            _write_cell(root, dataset, "tce", 1.0, noise, [slower, slower])
    _write_cell(root, "synthetic", "ce", None, 0.2, [rising])
    return root


def test_fig2_draws_mean_curves_and_the_detail_panel(figure_runs):
    aggregation = aggregate(figure_runs)
    fig = plot_test_error_curves(aggregation.curves, "cifar100")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["η = 0.0", "η = 0.4", "η = 0.0, from epoch 5 (detail)"]
    ce, tce1 = panels[0].get_lines()
    assert (ce.get_label(), tce1.get_label()) == ("CE", "TCE α=1.0")
    np.testing.assert_allclose(
        ce.get_ydata(), 100 - (np.array([20, 30, 40, 40, 60, 62, 61, 60] + [60] * PADDED)
                               + np.array([10, 20, 30, 40, 55, 58, 57, 56] + [56] * PADDED)) / 2
    )
    detail = panels[2].get_lines()[0]
    assert list(detail.get_xdata()) == list(range(5, 257))
    # Lowest mean error: CE at epoch 6, 100 - (62 + 58) / 2 = 40; the detail shows 10 points from 1 below it.
    assert panels[2].get_ylim() == pytest.approx((39, 49))
    assert plot_test_error_curves(aggregation.curves, "svhn") is None


def test_fig3_places_one_point_per_setting(figure_runs):
    aggregation = aggregate(figure_runs)
    fig = plot_accuracy_vs_speed(aggregation.curves, aggregation.cells)
    assert [ax.get_title() for ax in fig.axes] == ["CIFAR-10+, η = 0.4", "CIFAR-100+, η = 0.4"]
    ax = fig.axes[1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CE", "TCE α=1.0"]
    # Best validation epoch is 5: CE's full runs score 60 and 55 there, at plateaus 3 and 4.
    ce_point = ax.lines[0].get_xydata()
    np.testing.assert_allclose(ce_point, [[3.5, 57.5]])


def test_memorization_draws_test_accuracy_and_noisy_fit_per_noisy_condition(figure_runs):
    aggregation = aggregate(figure_runs)
    fig = plot_memorization(aggregation.curves, aggregation.cells, "cifar100")
    # Only the noisy condition (0.4): noisy_fit is empty without noise.
    assert [ax.get_title() for ax in fig.axes] == [
        "η = 0.4: test accuracy (dot: protocol epoch)", "η = 0.4: noisy labels memorized"
    ]
    test_lines, fit_lines = fig.axes[0].get_lines(), fig.axes[1].get_lines()
    ce, tce1, ce_dot, tce1_dot = test_lines
    assert (ce.get_label(), tce1.get_label()) == ("CE", "TCE α=1.0")
    np.testing.assert_allclose(ce.get_ydata()[:8], (np.array([20, 30, 40, 40, 60, 62, 61, 60])
                                                     + [10, 20, 30, 40, 55, 58, 57, 56]) / 2)
    # The protocol epoch is the validation run's best, 5: CE's mean test accuracy there is (60 + 55) / 2.
    assert list(ce_dot.get_xydata()[0]) == [5, 57.5] and list(tce1_dot.get_xydata()[0]) == [5, 55]
    # noisy_fit per epoch: seed + 10 * (epoch - 1) for CE, seed + 2 * (epoch - 1) for TCE; mean over seeds 0 and 1.
    np.testing.assert_allclose(fit_lines[0].get_ydata(), 0.5 + 10 * np.minimum(np.arange(256), 7))
    np.testing.assert_allclose(fit_lines[1].get_ydata(), 0.5 + 2 * np.minimum(np.arange(256), 7))
    assert plot_memorization(aggregation.curves, aggregation.cells, "svhn") is None


def _calibration_runs(root):
    cell = {"dataset": "cifar10", "noise": 0.4}
    for loss, alpha in (("ce", None), ("tce", 1.0), ("mse", None)):
        write_run(root, loss=loss, alpha=alpha, holdout=5000, test_acc=[1, 1], val_acc=[9, 8], **cell)
    # CE at epoch 1 (the protocol's): seed 0 holds 100 predictions of confidence 0.95 with 60 right, seed 1 100 of
    # confidence 0.35 with 30 right; TCE is calibrated, MSE under-confident. The second epoch must not count.
    write_run(root, loss="ce", seed=0, test_acc=[60, 99], confidence=[0.95, 0.5], **cell)
    write_run(root, loss="ce", seed=1, test_acc=[30, 99], confidence=[0.35, 0.5], **cell)
    write_run(root, loss="tce", alpha=1.0, seed=0, test_acc=[70, 70], **cell)
    write_run(root, loss="mse", seed=0, test_acc=[70, 70], confidence=[0.55, 0.55], **cell)
    return root


def test_reliability_diagram_draws_every_loss_with_its_ece_and_signed_gap(tmp_path):
    aggregation = aggregate(_calibration_runs(tmp_path))
    fig = plot_reliability(aggregation.runs_table, aggregation.cells, "cifar10", ("uniform", "", 0.4))
    ce, mse, tce1 = fig.axes
    # ECE (|60 - 95| + |30 - 35|) / 200; the gap, confidence - accuracy: (95 + 35 - 60 - 30) / 200, over-confident.
    assert ce.get_title() == "CE: ECE 20.00%, gap +20.00% (epoch 1)"
    accuracy = sorted(round(bar.get_height(), 6) for bar in ce.containers[0])
    assert accuracy == [0.3, 0.6]  # the bins of 0.35 and 0.95 confidence
    assert mse.get_title() == "MSE: ECE 15.00%, gap -15.00% (epoch 1)"  # 55 % confident, 70 % right
    assert tce1.get_title() == "TCE α=1.0: ECE 0.00%, gap +0.00% (epoch 1)"
    named = plot_reliability(aggregation.runs_table, aggregation.cells, "cifar10", ("uniform", "", 0.4), ("tce",))
    assert [ax.get_title() for ax in named.axes] == ["TCE α=1.0: ECE 0.00%, gap +0.00% (epoch 1)"]
    assert plot_reliability(aggregation.runs_table, aggregation.cells, "cifar10", ("uniform", "", 0.8)) is None


def test_cli_draws_the_reliability_of_the_losses_it_names_and_refuses_an_unknown_one(tmp_path):
    runs = _calibration_runs(tmp_path / "runs")
    proc = subprocess.run([sys.executable, "-m", "scripts.figures", "--runs", str(runs), "--out", str(tmp_path / "a"),
                           "--losses", "ce,gce"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {tmp_path / 'a' / 'reliability_cifar10_uniform0.4.png'}" in proc.stdout
    pixels = matplotlib.image.imread(tmp_path / "a" / "reliability_cifar10_uniform0.4.png")
    # One panel (CE's; GCE has no runs): a figure of the single-panel width, where three panels would be wider.
    assert pixels.shape[1] < 1000
    proc = subprocess.run([sys.executable, "-m", "scripts.figures", "--runs", str(runs), "--out", str(tmp_path / "b"),
                           "--losses", "ce,tcee"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].endswith(
        "argument --losses: not a loss of tce.LOSSES: tcee")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("lr", [[0.1, 0.001], [0.1, 0.1, 0.001]])
def test_a_run_too_short_for_a_detail_panel_gets_none(tmp_path, lr):
    """2 epochs (both milestones 1, a drop after epoch 1), or 3 with both drops after epoch 2 (the rounding of
    before issue 34): the detail would hold one epoch, a point no line shows. The level panel is drawn."""
    test_acc = [40, 50, 55][:len(lr)]
    for seed in (0, 1):
        write_run(tmp_path, dataset="synthetic", seed=seed, test_acc=test_acc, lr=lr, epochs=len(lr))
    fig = plot_test_error_curves(aggregate(tmp_path).curves, "synthetic")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["η = 0.0"]
    np.testing.assert_allclose(panels[0].get_lines()[0].get_ydata(), [100 - a for a in test_acc])


def _png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_cli_writes_every_figure_as_png_and_pdf(figure_runs, tmp_path, capsys):
    out = tmp_path / "figures"
    main(["--runs", str(figure_runs), "--out", str(out)])
    # The synthetic runs are of another recipe than the paper's: their figures carry its tag.
    cells = aggregate(figure_runs).cells
    (tag,) = set(cells.loc[cells["dataset"] == "synthetic", "recipe"])
    stems = ["fig1_tce", "fig2_cifar100_curves", "fig3_accuracy_vs_speed", "curves_cifar10",
             "memorization_cifar10", "memorization_cifar100",
             *(f"reliability_{d}_uniform{n}" for d in ("cifar10", "cifar100") for n in ("0.0", "0.4")),
             f"curves_synthetic-{tag}", f"memorization_synthetic-{tag}", f"reliability_synthetic_uniform0.2-{tag}"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.{x}" for s in stems for x in ("png", "pdf"))
    for stem in stems:
        width, height = _png_size(out / f"{stem}.png")
        assert width > 600 and height > 400
        pixels = matplotlib.image.imread(out / f"{stem}.png")
        assert pixels[..., :3].std() > 0.05  # not a blank canvas
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
    assert "skipped" not in capsys.readouterr().out


def test_cli_without_runs_draws_fig1_and_says_what_it_skips(tmp_path, capsys):
    out = tmp_path / "figures"
    main(["--runs", str(tmp_path / "no_runs"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["fig1_tce.pdf", "fig1_tce.png"]
    assert "fig2_cifar100_curves: skipped" in printed and "fig3_accuracy_vs_speed: skipped" in printed
