"""The registry of published numbers (results/claims.csv, scripts/claims.py) and how the tables set a claim beside
the cell of its recipe: with a recipe preset written for the test into a copy of configs/."""

import base64
import csv
import html
import io
import math
import re
import shutil

import matplotlib.image
import pandas as pd
import pytest

from rundirs import write_run
from scripts.aggregate import aggregate
from scripts.claims import (
    CLAIM_COLUMNS,
    CLAIMS,
    OUT_OF_SCOPE,
    OUT_OF_SCOPE_COLUMNS,
    PINNED,
    ClaimsError,
    load_claims,
    load_out_of_scope,
    out_of_scope_beside,
)
from scripts.claims import main as claims_main
from scripts.figures import plot_claimed_vs_ours
from scripts.report import main as report_main
from scripts.table_formats import MARKDOWN, render
from scripts.tables import DEFAULT_REFERENCE, build_tables, load_reference, main

# A recipe preset as configs/recipe/ will hold them: CIFAR-N's ResNet-34 recipe, shortened to 3 epochs.
PRESET = """\
# @package _global_
defaults:
  - override /model: resnet34
epochs: 3
optim:
  nesterov: false
  weight_decay: 5.0e-4
  lr_milestones: [0.6]
"""
# The same recipe as write_run's overrides of the engine's defaults.
RECIPE = {"model": {"name": "resnet34", "depth": None},
          "optim": {"nesterov": False, "weight_decay": 5e-4, "lr_milestones": [0.6]}}
CLAIM = {
    "source": "Wei et al., ICLR 2022", "repository": "UCSC-REAL/cifar-10-100n",
    "read_in": "github.com/UCSC-REAL/cifar-10-100n/issues/5", "verified": "false", "dataset": "cifar10",
    "model": "resnet34", "recipe": "r34_test", "noise_type": "human", "noise": "0", "noise_set": "worst",
    "loss": "ce", "params": "", "top1": "77.69", "selection": "best_test_epoch", "differs": "", "note": "",
}


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """configs/ with the preset recipe=r34_test, the config tree that train.py and the claims compose."""
    root = tmp_path / "configs"
    shutil.copytree("configs", root)
    (root / "recipe").mkdir(exist_ok=True)
    (root / "recipe" / "r34_test.yaml").write_text(PRESET)
    monkeypatch.setattr("experiments.resolve.CONFIGS", root)
    monkeypatch.setattr("scripts.claims.CONFIGS", root)
    return root


def write_claims(path, *rows: dict, left_out: tuple[dict, ...] = ()):
    """A registry at `path`, and beside it the list of numbers it leaves out (claims_out_of_scope.csv)."""
    for target, columns, records in ((path, CLAIM_COLUMNS, rows),
                                     (out_of_scope_beside(path), OUT_OF_SCOPE_COLUMNS, left_out)):
        with open(target, "w", newline="") as f:
            writer = csv.DictWriter(f, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
    return path


APL = "HanxunH/Active-Passive-Losses"


def test_the_whole_registry_loads():
    """Every row composes to a cell of an existing preset, loss and model, one claim per cell: at least 500 claims,
    at least 450 verified, each of those pinned to a commit. APL's result log printed 496 numbers: each is a claim or
    is left out with a reason."""
    claims = load_claims(CLAIMS)
    with open(CLAIMS, newline="") as f:
        assert next(csv.reader(f)) == CLAIM_COLUMNS
    assert len(claims) >= 500 and claims["verified"].sum() >= 450
    assert all(PINNED.search(r) for r in claims.loc[claims["verified"], "read_in"])
    left_out = load_out_of_scope(OUT_OF_SCOPE)
    assert (claims["repository"] == APL).sum() + (left_out["repository"] == APL).sum() == 496
    # As printed by the result log (plot_results.ipynb @fdd52a2, table CIFAR-10-Sym and CIFAR-10-Asym).
    apl = claims[claims["recipe"] == "apl_cifar10"].set_index(["noise_type", "noise", "loss"])["top1"]
    assert apl[("symmetric_per_class", 0.0, "ce")] == 90.36 and apl[("symmetric_per_class", 0.4, "nce+rce")] == 86.02
    assert apl[("symmetric_per_class", 0.4, "apl_mae")] == 84.41 and apl[("asymmetric", 0.4, "ce")] == 75.00
    cifar_n = claims.set_index(["dataset", "noise_set", "loss"]).loc[("cifar10", "worst", "ce")]
    assert (cifar_n["top1"], cifar_n["selection"], cifar_n["setting"], cifar_n["noise_variant"]) == (
        77.69, "best_test_epoch", "ce", "worst")


def test_what_the_registry_leaves_out_has_a_reason():
    """APL's DMI and NLNL numbers are of training procedures; the SCE and D2L papers' CIFAR-100 numbers, of a
    Keras network and schedule our models cannot express."""
    left_out = load_out_of_scope(OUT_OF_SCOPE)
    by_loss = left_out.groupby("loss")["reason"].first()
    assert by_loss["dmi"].startswith("DMI is a training procedure, not a loss")
    assert by_loss["nlnl"].startswith("NLNL is a training procedure, not a loss")
    assert (left_out["loss"] == "dmi").sum() == 9 and (left_out["loss"] == "nlnl").sum() == 27
    keras = left_out[left_out["repository"] != APL]
    assert len(keras) == 52 and (keras["verified"] == "false").all()
    assert keras["reason"].str.contains("Keras ResNet-44").all()


def test_a_left_out_number_needs_a_reason(tmp_path):
    path = write_claims(tmp_path / "claims.csv", left_out=({**CLAIM, "reason": " "},))
    with pytest.raises(ClaimsError, match="claims_out_of_scope.csv row 2: reason: must not be empty"):
        load_out_of_scope(out_of_scope_beside(path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"selection": "best"},
         "row 2: selection: must be one of last_epoch, best_test_epoch, validation, unknown, got 'best'"),
        ({"verified": "true"}, "row 2: read_in: a verified claim names the commit it was read at in full"),
        ({"verified": "true", "read_in": "github.com/UCSC-REAL/cifar-10-100n/blob/main/README.md"},
         "row 2: read_in: a verified claim names the commit it was read at in full"),
        ({"recipe": "not_yet"}, "row 2: recipe: configs/recipe/not_yet.yaml does not exist"),
        ({"source": " "}, "row 2: source: must not be empty"),
        ({"read_in": ""}, "row 2: read_in: must not be empty"),
        ({"verified": "yes"}, "row 2: verified: must be true or false, got 'yes'"),
        ({"loss": "dividemix"}, "row 2: loss: unknown loss 'dividemix'"),
        ({"model": "vgg16"}, "row 2: model: unknown model 'vgg16'"),
        ({"model": "cnn8"}, "row 2: model: cnn8, but recipe=r34_test trains resnet34"),
        ({"params": "q=0.7"}, "row 2: params: ce has no parameter 'q'; it takes: none"),
        ({"loss": "gce", "params": "q"}, "row 2: params: expected key=value items separated by spaces, got 'q'"),
        ({"top1": "n/a"}, "row 2: top1: must be a number, got 'n/a'"),
        ({"top1": "177.7"}, "row 2: top1: must be a top-1 accuracy in (0, 100], got 177.7"),
        ({"noise_set": "best"}, "row 2: noise_set:"),
        ({"recipe": "../x"}, "row 2: recipe: must name a preset of configs/recipe/"),
    ],
)
def test_a_bad_row_is_refused_in_one_line_naming_it(configs, tmp_path, change, message):
    path = write_claims(tmp_path / "claims.csv", {**CLAIM, **change})
    with pytest.raises(ClaimsError, match=re.escape(f"{path} {message}")) as raised:
        load_claims(path)
    assert "\n" not in str(raised.value)


def test_one_claim_per_cell(configs, tmp_path):
    path = write_claims(tmp_path / "claims.csv", CLAIM, {**CLAIM, "source": "another paper", "top1": "70"})
    with pytest.raises(ClaimsError, match="rows 2, 3 claim the same cell"):
        load_claims(path)


def test_a_claim_takes_its_presets_recipe_and_the_loss_defaults(configs, tmp_path):
    """The claim's cell is what its row composes to: the preset's recipe tag (the one of runs of that recipe), the
    loss setting with the dataset's defaults (GCE: q = 0.7) or the row's parameters."""
    path = write_claims(tmp_path / "claims.csv", CLAIM, {**CLAIM, "loss": "gce"},
                        {**CLAIM, "loss": "gce", "params": "q=0.5", "noise_set": "aggre"})
    claims = load_claims(path)
    write_run(tmp_path / "runs", noise_type="human", noise_set="worst", epochs=3, test_acc=[50], recipe=RECIPE)
    (tag,) = aggregate(tmp_path / "runs").cells["recipe"].unique()
    assert claims["recipe_tag"].tolist() == [tag] * 3
    assert claims["setting"].tolist() == ["ce", "gce-q0.7", "gce-q0.5"]


@pytest.fixture
def runs(configs, tmp_path):
    """CE on CIFAR-10N worst under the preset's recipe (a validation run and two full runs), GCE beside it, and
    CE under the paper's recipe."""
    root = tmp_path / "runs"
    worst = {"noise_type": "human", "noise_set": "worst"}
    ours = {**worst, "epochs": 3, "recipe": RECIPE}
    write_run(root, subdir="r34/ce/val", holdout=5000, test_acc=[1, 1, 1], val_acc=[50, 60, 55], **ours)
    write_run(root, subdir="r34/ce/0", seed=0, test_acc=[70, 78, 73], **ours)
    write_run(root, subdir="r34/ce/1", seed=1, test_acc=[72, 76, 79], **ours)
    write_run(root, subdir="r34/gce/0", loss="gce", test_acc=[60, 65, 70], **ours)
    write_run(root, subdir="paper/ce/val", holdout=5000, test_acc=[1, 1, 1], val_acc=[50, 60, 55], **worst)
    write_run(root, subdir="paper/ce/0", test_acc=[80, 81, 82], **worst)
    return root


def test_the_table_of_the_claims_recipe_sets_it_beside_ours(runs, tmp_path):
    claims = load_claims(write_claims(tmp_path / "claims.csv", CLAIM))
    aggregation = aggregate(runs)
    tables = {t.name: t for t in build_tables(aggregation, load_reference(DEFAULT_REFERENCE), claims=claims)}
    (tag,) = claims["recipe_tag"]
    ours, paper = tables[f"cifar10_human-{tag}"], tables["cifar10_human"]
    # Our protocol: epoch 2 (best validation accuracy), (78 + 76) / 2 = 77.00; last epoch (73 + 79) / 2 = 76.00;
    # oracle (78 + 79) / 2 = 78.50. Claimed 77.69: Δ −0.69, −1.69, +0.81.
    markdown = render(ours, MARKDOWN)
    assert ("| CE | **77.00** ± 1.41 (n=2); last 76.00, oracle 78.50; claimed 77.69 (Δ protocol −0.69, last −1.69, "
            "oracle +0.81) |") in markdown
    assert "| GCE q=0.7 | — |" in markdown  # no validation run, and no claim
    assert ("Claimed by Wei et al., ICLR 2022 for recipe=r34_test at the best test epoch, selected on the test set: "
            "compare it with our oracle (not verified against the source: quoted in "
            "github.com/UCSC-REAL/cifar-10-100n/issues/5).") in markdown
    cell = ours.cells.set_index("setting").loc["ce"]
    assert (cell["claimed_top1"], cell["claim_selection"], cell["claim_verified"]) == (77.69, "best_test_epoch", False)
    assert [cell[f"diff_{v}_vs_claimed"] for v in ("protocol", "last", "oracle")] == pytest.approx([-0.69, -1.69, 0.81])
    assert pd.isna(ours.cells.set_index("setting").loc["gce-q0.7", "claimed_top1"])
    # The paper's recipe is another recipe: its table has no claim.
    assert paper.claims is None and "claimed" not in render(paper, MARKDOWN) and "claimed_top1" not in paper.cells


def test_tables_cli_reads_the_claims_and_prints_the_registrys_status(runs, tmp_path, capsys):
    left_out = {**CLAIM, "loss": "nlnl", "recipe": "apl_cifar10", "reason": "a procedure"}
    claims = write_claims(tmp_path / "claims.csv", CLAIM, left_out=(left_out, left_out))
    main(["--runs", str(runs), "--out", str(tmp_path / "out"), "--claims", str(claims)])
    printed = capsys.readouterr().out
    assert ("claims.csv: 1 claims, 0 verified, 0 of unknown selection (compared with none of ours); by recipe: "
            "r34_test 1") in printed
    assert "claims_out_of_scope.csv: 2 claims left out (nlnl 2): a procedure" in printed
    tag = load_claims(claims)["recipe_tag"][0]
    assert "claimed 77.69" in (tmp_path / "out" / f"cifar10_human-{tag}.md").read_text()
    frame = pd.read_csv(tmp_path / "out" / f"cifar10_human-{tag}.csv")
    assert frame.loc[frame["setting"] == "ce", "claimed_top1"].item() == 77.69


def test_tables_cli_refuses_a_bad_registry_in_one_line(tmp_path, capsys):
    claims = write_claims(tmp_path / "claims.csv", {**CLAIM, "selection": "best"})
    with pytest.raises(SystemExit) as exited:
        main(["--runs", str(tmp_path), "--out", str(tmp_path / "out"), "--claims", str(claims)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


# The recipe=apl_cifar10 preset as write_run's overrides of the engine's defaults (configs/recipe/apl_cifar10.yaml).
APL_CIFAR10 = {"model": {"name": "cnn8", "depth": None}, "runs_dir": "runs/apl_cifar10",
               "optim": {"lr": 0.01, "nesterov": False, "schedule": "cosine", "clip_grad_norm": 5.0},
               "augment": {"fill": "black"}}


@pytest.fixture(scope="module")
def apl_cifar10_runs(tmp_path_factory):
    """A miniature runs folder of recipe=apl_cifar10 on CIFAR-10: per cell a validation run (best at epoch 2) and
    two full runs, of CE, NCE+RCE (symmetric_per_class 0.4) and CE (asymmetric 0.4), and one full run of APL's MAE
    without a validation run (symmetric_per_class 0.4)."""
    root = tmp_path_factory.mktemp("apl") / "runs"
    cells = {("ce", "symmetric_per_class"): ([55, 62, 58], [57, 60, 60]),
             ("nce+rce", "symmetric_per_class"): ([80, 86, 85], [82, 88, 87]),
             ("ce", "asymmetric"): ([70, 76, 74], [72, 74, 76])}
    for (loss, noise_type), full in cells.items():
        cell = {"loss": loss, "noise": 0.4, "noise_type": noise_type, "epochs": 120, "recipe": APL_CIFAR10}
        write_run(root, subdir=f"{loss}/{noise_type}/val", holdout=5000, test_acc=[1, 1, 1], val_acc=[50, 60, 55],
                  **cell)
        for seed, test_acc in enumerate(full):
            write_run(root, subdir=f"{loss}/{noise_type}/{seed}", seed=seed, test_acc=test_acc, **cell)
    write_run(root, subdir="apl_mae/0", loss="apl_mae", noise=0.4, noise_type="symmetric_per_class", epochs=120,
              recipe=APL_CIFAR10, test_acc=[80, 83, 84])
    return root


ASYMMETRIC_CIFAR10 = ("noise: APL flips class after class on the current labels (some cats made dogs are flipped "
                      "back), ours chooses every flip from the clean labels")


def test_the_tables_of_apl_cifar10_runs_set_the_registrys_claims_beside_them(apl_cifar10_runs, tmp_path):
    """The registry's numbers of APL's result log (last epoch) beside the miniature's cells, with Δ, and how the
    asymmetric claims differ from our cells marked beside the claim and said in the caption."""
    out = tmp_path / "tables"
    main(["--runs", str(apl_cifar10_runs), "--out", str(out)])
    (tag,) = set(load_claims(CLAIMS).query("recipe == 'apl_cifar10'")["recipe_tag"])
    symmetric = (out / f"cifar10_symmetric_per_class-{tag}.md").read_text()
    # CE: protocol epoch 2, (62 + 60) / 2 = 61.00; last (58 + 60) / 2 = 59.00; oracle 61.00. Claimed 60.28.
    assert ("| CE | 61.00 ± 1.41 (n=2); last 59.00, oracle 61.00; claimed 60.28 (Δ protocol +0.72, last −1.28, "
            "oracle +0.72) |") in symmetric
    # NCE+RCE: protocol (86 + 88) / 2 = 87.00, last 86.00, oracle 87.00. Claimed 86.02.
    assert ("| NCE+RCE α=1 β=1 | **87.00** ± 1.41 (n=2); last 86.00, oracle 87.00; claimed 86.02 (Δ protocol +0.98, "
            "last −0.02, oracle +0.98) |") in symmetric
    # APL's MAE: no validation run, so no protocol value; its one run's last epoch is 84. Claimed 84.41.
    assert "| MAE (APL) α=1 | —; last 84.00, oracle 84.00; claimed 84.41 (Δ last −0.41, oracle −0.41) |" in symmetric
    assert "‡" not in symmetric  # like is compared with like
    asymmetric = (out / f"cifar10_asymmetric-{tag}.md").read_text()
    # Protocol (76 + 74) / 2 = 75.00, last (74 + 76) / 2 = 75.00, oracle 76.00. Claimed 75.00.
    assert ("| CE | **75.00** ± 1.41 (n=2); last 75.00, oracle 76.00; claimed 75.00 ‡1 (Δ protocol +0.00, last "
            "+0.00, oracle +1.00) |") in asymmetric
    assert f"How a claim differs from our cell, as far as no setting of ours expresses it: ‡1 {ASYMMETRIC_CIFAR10}." \
        in asymmetric.replace("\\", "")
    frame = pd.read_csv(out / f"cifar10_asymmetric-{tag}.csv").set_index("setting")
    assert frame.loc["ce", "claim_differs"] == ASYMMETRIC_CIFAR10 and frame.loc["ce", "claimed_top1"] == 75.00


def test_the_report_of_apl_cifar10_runs_draws_claimed_against_ours(apl_cifar10_runs, tmp_path):
    """The report's section of the recipe: the scatter of the 4 cells with both, and the 147 claims of recipe
    apl_cifar10 (151 in the registry) that have no value of ours yet; recipes without runs get one line each."""
    page = tmp_path / "report.html"
    report_main(["--runs", str(apl_cifar10_runs), "--out", str(page)])
    text = page.read_text()
    section = text[text.index("<h2>Published numbers beside ours</h2>"):text.index("<h2>Recipes</h2>")]
    assert "<h3>recipe=apl_cifar10</h3>" in section
    assert ("151 claims: 4 beside a value of ours that selects the same way, 0 with runs but no such value (selection "
            "unknown, or no run yet has it), 147 without runs") in section
    assert "<summary>147 claims without a value of ours</summary>" in section
    assert "recipe=apl_mnist_icml2020: 162 claims, no runs yet (python -m scripts.claims --missing" in section
    (png,) = re.findall(r"alt='claimed against ours, recipe=apl_cifar10' src='data:image/png;base64,([^']+)'", section)
    image = matplotlib.image.imread(io.BytesIO(base64.b64decode(png)), format="png")
    assert image.ndim == 3 and image.shape[0] > 100
    assert html.escape(ASYMMETRIC_CIFAR10) in text  # the table's caption, beside its mark


def test_the_scatter_puts_each_cell_at_claimed_and_ours():
    compared = pd.DataFrame({"loss": ["ce", "ce", "gce", "mae"], "top1": [60.0, 75.0, 80.0, 50.0],
                             "ours": [61.0, 70.0, 82.0, math.nan], "differs": ["", "noise: x", "", ""]})
    fig = plot_claimed_vs_ours(compared, "t")
    ax = fig.axes[0]
    filled = [tuple(p) for c in ax.collections if len(c.get_offsets()) and c.get_facecolors().any()
              for p in c.get_offsets()]
    hollow = [tuple(p) for c in ax.collections if len(c.get_offsets()) and not c.get_facecolors().any()
              for p in c.get_offsets()]
    assert sorted(filled) == [(60.0, 61.0), (80.0, 82.0)] and hollow == [(75.0, 70.0)]
    (line,) = ax.lines
    assert list(line.get_xdata()) == list(line.get_ydata())  # y = x
    assert ax.get_title() == "t: 3 cells (1 hollow: differ)"
    assert plot_claimed_vs_ours(compared.assign(ours=math.nan), "t") is None


def test_missing_prints_the_sweeps_that_fill_a_recipes_cells_and_their_cost(apl_cifar10_runs, capsys):
    """147 claims of recipe apl_cifar10 have no runs: each cell is a validation run and 5 full runs, 882 in all."""
    claims_main(["--missing", "apl_cifar10", "--runs", str(apl_cifar10_runs)])
    printed = capsys.readouterr().out.splitlines()
    assert "recipe apl_cifar10: 151 claims, 147 without runs" in printed
    sweeps = [line for line in printed if line.startswith("python train.py -m recipe=apl_cifar10 ")]
    ce = ("python train.py -m recipe=apl_cifar10 dataset=cifar10 loss=ce noise_type=symmetric_per_class "
          "noise=0,0.2,0.6,0.8 protocol=val,full0,full1,full2,full3,full4")
    assert ce in sweeps  # CE at 0.4 has runs
    assert ("python train.py -m recipe=apl_cifar10 dataset=cifar10 loss=sce loss.beta=5 noise_type=asymmetric "
            "noise=0.1,0.2,0.3,0.4 protocol=val,full0,full1,full2,full3,full4") in sweeps
    assert re.fullmatch(rf"{len(sweeps)} sweeps, 882 runs: about [0-9,.]+ h on cpu one after the other \(.+\)",
                        printed[-1])


def test_missing_refuses_a_recipe_without_claims_and_a_device_in_one_line(capsys):
    for argv in (["--missing", "apl_svhn"], ["--missing", "apl_cifar10", "--device", "tpu"]):
        with pytest.raises(SystemExit) as exited:
            claims_main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("claims: --")


def test_the_registrys_cifar_n_claim_meets_runs_of_the_cifarn_resnet34_preset(tmp_path):
    """results/claims.csv's CIFAR-10N worst CE number against runs with the keys of configs/recipe/cifarn_resnet34:
    its table shows it, compared with our oracle (the best test epoch)."""
    recipe = {"model": {"name": "resnet34", "depth": None}, "runs_dir": "runs/cifarn_resnet34",
              "optim": {"nesterov": False, "weight_decay": 5e-4, "lr_milestones": [0.6]}, "augment": {"fill": "black"}}
    root = tmp_path / "runs"
    cell = {"noise_type": "human", "noise_set": "worst", "epochs": 100, "recipe": recipe}
    write_run(root, subdir="val", holdout=5000, test_acc=[1, 1, 1], val_acc=[50, 60, 55], **cell)
    write_run(root, subdir="0", seed=0, test_acc=[70, 76, 78], **cell)
    claims = load_claims(CLAIMS)
    tables = {t.name: t for t in build_tables(aggregate(root), load_reference(DEFAULT_REFERENCE), claims=claims)}
    (tag,) = claims.loc[claims["recipe"] == "cifarn_resnet34", "recipe_tag"]
    markdown = render(tables[f"cifar10_human-{tag}"], MARKDOWN)
    assert "last 78.00, oracle 78.00; claimed 77.69 (Δ protocol −1.69, last +0.31, oracle +0.31)" in markdown
