"""make report: one self-contained HTML page from a runs directory, parsed back here."""

import base64
from html.parser import HTMLParser

from rundirs import write_run
from scripts import report


class Page(HTMLParser):
    """What the checks need of a page: tags, table cells, image sources, text and links out of it."""

    def __init__(self):
        super().__init__()
        self.tags, self.cells, self.images, self.text, self.external = [], [], [], [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag in ("td", "th"):
            self._cell = []
        if tag == "img":
            self.images.append(attrs["src"])
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith("data:"):
                self.external.append(attrs[key])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def test_report_is_one_static_page_with_tables_paired_comparison_figures_and_incomplete_runs(tmp_path):
    runs = tmp_path / "runs"
    cell = {"dataset": "synthetic", "noise": 0.6}
    for loss, alpha, full in (("ce", None, ([50, 70, 60], [52, 72, 61])), ("tce", 2.0, ([40, 80, 90], [45, 82, 88]))):
        write_run(runs, loss=loss, alpha=alpha, holdout=200, test_acc=[1, 1, 1], val_acc=[20, 30, 25], **cell)
        for seed, test_acc in enumerate(full):
            fit = [10, 20, 30] if loss == "ce" else [5, 5, 5]
            write_run(runs, loss=loss, alpha=alpha, seed=seed, test_acc=test_acc, noisy_fit=fit, **cell)
    write_run(runs, loss="ce", seed=2, test_acc=[10], epochs=3, status="interrupted", **cell)

    out = tmp_path / "report.html"
    report.main(["--runs", str(runs), "--out", str(out)])
    page = Page()
    page.feed(out.read_text())

    assert page.tags[:1] == ["html"] and "script" not in page.tags and page.external == []
    text = " ".join(page.text)
    # The synthetic table: CE and TCE at the protocol's epoch 2 (the validation runs' best).
    assert "synthetic, uniform noise" in text
    row = page.cells.index("CE")
    assert page.cells[row:row + 4] == ["CE", "71.00 ± 1.41 (n=2)", "TCE α=2.0", "81.00 ± 1.41 (n=2)"]
    # The paired comparison: TCE - CE at epoch 2 over seeds 0 and 1 is +10 for both. Zero spread: no interval
    # and no t-test (so no †); of the 4 sign assignments, 2 reach |+10|. TCE's only setting is exploratory.
    first = page.cells.index("synthetic", page.cells.index("95% interval")) - 1
    expected = ["synthetic", "uniform 0.6", "tce-a2", "2", "+10.00", "—", "—", f"synthetic-{page.cells[first]} "
                "exploratory", "—", "0.5"]
    assert page.cells[first + 1:first + 11] == expected
    # The recipe of these runs is the synthetic dataset's, whose own keys the paper does not fix: no difference.
    assert (f"recipe {page.cells[first]} (6 runs): the paper's as it runs on synthetic (the keys of its dataset "
            "config aside)") in text
    # Figures: embedded PNGs (the TCE figure, the curves, the memorization figure, reliability diagrams).
    assert len(page.images) >= 4
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # The runs that are not complete.
    assert "interrupted" in page.cells and any("noise0.6-uniform-holdout0-seed2" in c for c in page.cells)


def test_report_shows_what_each_noise_is(tmp_path):
    runs = tmp_path / "runs"
    uniform = {"class_rate_min": 0.5, "class_rate_max": 0.6, "top_target_share": 0.12, "top_class_share": 0.11}
    for seed, rate_max in ((0, 0.6), (1, 0.7)):  # two noise seeds: the table shows their mean
        write_run(runs, noise=0.6, seed=seed, test_acc=[50], fingerprint={**uniform, "class_rate_max": rate_max})
    human = {"class_rate_min": 0.2, "class_rate_max": 0.6, "top_target_share": 0.5, "top_class_share": 0.3}
    write_run(runs, noise_type="human", noise_set="worst", test_acc=[50], fingerprint=human)
    write_run(runs, noise=0.2, test_acc=[50])  # a run of an older version: no fingerprint
    page = Page()
    report.main(["--runs", str(runs), "--out", str(tmp_path / "report.html")])
    page.feed((tmp_path / "report.html").read_text())
    first = page.cells.index("same superclass share") + 1
    rows = [page.cells[i:i + 9] for i in range(first, first + 27, 9)]
    assert rows == [
        ["cifar10", "human worst 0", "1", "0.0 %", "20.0 %", "60.0 %", "50.0 %", "30.0 %", "—"],
        ["cifar10", "uniform 0.2", "1", "18.0 %", "—", "—", "—", "—", "—"],
        ["cifar10", "uniform 0.6", "2", "54.0 %", "50.0 %", "65.0 %", "12.0 %", "11.0 %", "—"],
    ]
