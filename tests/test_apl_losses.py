"""The APL family's losses (tce.apl_losses) equal the authors' code, ported to float64 (tests/apl_reference.py), in
value and gradient, at C = 10 and 100, on random and extreme logits; and a few values by hand."""

import math

import pytest
import torch
from apl_reference import APL

import tce

# Each loss with two settings of its parameters: the signature's defaults, and values APL's CIFAR-100 runs use.
SETTINGS = {
    "apl_mae": [{}, {"alpha": 2.0}],
    "nfl": [{}, {"alpha": 10.0, "gamma": 2.0}],
    "ngce": [{}, {"alpha": 10.0, "q": 0.3}],
    "nmae": [{}, {"alpha": 10.0}],
    "nrce": [{}, {"alpha": 0.1}],
    "nfl+nce": [{}, {"alpha": 10.0, "beta": 1.0, "gamma": 0.5}],
    "nfl+mae": [{}, {"alpha": 10.0, "beta": 1.0, "gamma": 0.5}],
    "nfl+rce": [{}, {"alpha": 10.0, "beta": 0.1, "gamma": 0.5}],
    "ngce+nce": [{}, {"alpha": 10.0, "beta": 1.0, "q": 0.2}],
    "ngce+mae": [{}, {"alpha": 10.0, "beta": 1.0, "q": 0.2}],
    "ngce+rce": [{}, {"alpha": 10.0, "beta": 0.1, "q": 0.2}],
    "gce+mae": [{}, {"beta": 10.0, "q": 0.5}],
    "gce+rce": [{}, {"beta": 0.1, "q": 0.7}],
    "gce+nce": [{}, {"q": 0.2}],
    "mae+rce": [{}, {"alpha": 10.0, "beta": 0.1}],
}
APL_LOSSES = tuple(SETTINGS)


def logits_and_labels(classes: int, extreme: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """64 rows of float64 logits (random, or of +-1e4 with a saturated row and rows where p_k underflow) and labels."""
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(64, classes, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (64,), generator=g)
    if extreme:
        logits = logits.sign() * 1e4
        logits[0] = 0.0
        logits[1, labels[1]] = 1e4  # p_y = 1, the other p_k = 0: every clamp active
        logits[2, labels[2]] = -1e4  # p_y = 0
    return logits, labels


def test_the_family_is_in_the_library_after_the_others():
    assert tce.LOSSES[-len(APL_LOSSES):] == APL_LOSSES


@pytest.mark.parametrize("classes", [10, 100])
@pytest.mark.parametrize("extreme", [False, True], ids=["random", "extreme"])
@pytest.mark.parametrize("name", APL_LOSSES)
def test_equals_the_authors_code_in_value_and_gradient(name, classes, extreme):
    for params in SETTINGS[name]:
        logits, labels = logits_and_labels(classes, extreme)
        ours_in, theirs_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        ours = tce.build_loss(name, **params)(ours_in, labels)
        theirs = APL(name, classes, **params)(theirs_in, labels)
        ours.backward()
        theirs.backward()
        assert ours.dtype == torch.float64 and torch.isfinite(ours)
        assert abs(ours.item() - theirs.item()) <= 1e-6 * max(abs(theirs.item()), 1e-12), (name, params)
        scale = theirs_in.grad.abs().max().item()
        assert (ours_in.grad - theirs_in.grad).abs().max().item() <= 1e-6 * max(scale, 1e-12), (name, params)


def test_values_by_hand_at_uniform_logits():
    """All logits 0 and C = 10: p_k = 0.1, log p_k = -ln 10. NMAE = 0.9 / 18 = 0.05; NRCE = 9/4 ln(1e4) 0.9;
    NGCE(q = 0.5) = (1 - 0.1^0.5) / (10 - 10 0.1^0.5); NFL = 1/10 (every class's focal term alike); APL's MAE 0.9;
    GCE+NCE(q = 1) = 0.9 + 1/10."""
    logits, labels = torch.zeros(3, 10, dtype=torch.float64), torch.tensor([0, 4, 9])
    root = math.sqrt(0.1)
    expected = {("nmae", ()): 0.05, ("nrce", ()): 9 / 4 * math.log(1e4) * 0.9,
                ("ngce", (("q", 0.5),)): (1 - root) / (10 - 10 * root), ("nfl", (("gamma", 2.0),)): 0.1,
                ("apl_mae", ()): 0.9, ("gce+nce", (("q", 1.0),)): 0.9 + 0.1}
    for (name, params), value in expected.items():
        assert tce.build_loss(name, **dict(params))(logits, labels).item() == pytest.approx(value, rel=1e-12), name


def test_nfl_at_gamma_0_is_nce_in_value_and_gradient():
    """With gamma = 0 every focal weight is 1, so NFL is NCE: the weights' detaching changes nothing there."""
    logits, labels = logits_and_labels(10, extreme=False)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    nfl, nce = tce.build_loss("nfl", gamma=0.0)(a, labels), tce.build_loss("nce")(b, labels)
    nfl.backward()
    nce.backward()
    assert nfl.item() == pytest.approx(nce.item(), rel=1e-12)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=0)
