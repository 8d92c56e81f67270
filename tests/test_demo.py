"""The demo's story, not its digits: `make demo`'s recipe (experiment=demo) on any CPU shows CE memorizing the noisy
labels at η = 0.6 while TCE α = 2 does not, and both learning the clean set at η = 0. Another CPU computes other
digits (its convolution kernels round differently, and 60 epochs amplify a last bit): the test asks for the gaps,
with margins below what two CPUs gave (README), never for one machine's numbers.

Slow (about 4 minutes on 2 CPU cores): the full runs of seed 0 of the demo's four cells, two at a time as the demo
trains them. .ci/run runs it on the CI machine's kernels and again on an AVX2-only CPU's.
"""

import csv

import pytest
from processes import cli, finish

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def last_epochs(tmp_path_factory) -> dict[tuple[str, float], dict[str, float]]:
    """The last epoch's row of each (loss, noise) full run of seed 0 in the demo's recipe."""
    runs = tmp_path_factory.mktemp("demo")
    out = finish(cli("-m", "experiment=demo", "protocol=full0", f"runs_dir={runs}"), timeout=1200)
    found = {}
    for loss in ("ce", "tce-a2"):
        for noise in (0.0, 0.6):
            metrics = runs / "synthetic" / loss / f"noise{noise:g}-uniform-holdout0-seed0" / "metrics.csv"
            assert metrics.is_file(), out
            with open(metrics) as f:
                rows = list(csv.DictReader(f))
            assert len(rows) == 60, out
            found[loss, noise] = {k: float(v) for k, v in rows[-1].items() if v}
    return found


def test_at_noise_0_6_ce_memorizes_the_wrong_labels_and_tce_does_not(last_epochs):
    ce, tce = last_epochs["ce", 0.6], last_epochs["tce-a2", 0.6]
    print(f"demo, seed 0, noise 0.6, last epoch: CE {ce['test_acc']:.2f} (noisy_fit {ce['noisy_fit']:.1f}), "
          f"TCE alpha=2 {tce['test_acc']:.2f} (noisy_fit {tce['noisy_fit']:.1f})")
    # Measured: TCE - CE +18 to +22 points, noisy_fit 23-28 % against 4-6 % (two CPUs, two layouts).
    assert tce["test_acc"] >= ce["test_acc"] + 10.0
    assert ce["noisy_fit"] >= tce["noisy_fit"] + 10.0


def test_at_noise_0_both_learn_the_clean_set(last_epochs):
    accuracies = {loss: last_epochs[loss, 0.0]["test_acc"] for loss in ("ce", "tce-a2")}
    print(f"demo, seed 0, noise 0, last epoch: {accuracies}")
    assert all(accuracy >= 97.0 for accuracy in accuracies.values())
