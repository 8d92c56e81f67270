"""Tests of the robust and regularised losses of `tce` (GCE, SCE, APL, focal, ... and those of 2021-2025: AGCE,
AUL, AEL, NNCE, epsilon-softmax, JS, LogitClip) against float64 references written from their formulas, at
ordinary and extreme logits. test_loss_zoo_2021.py has what is particular to the losses of 2021-2025."""

import math

import pytest
import torch
import torch.nn.functional as F
from test_apl_losses import APL_LOSSES

import tce

LN_1E_MINUS_4 = math.log(1e-4)
FUNCTIONS = {
    "gce": tce.generalized_cross_entropy,
    "rce": tce.reverse_cross_entropy,
    "sce": tce.symmetric_cross_entropy,
    "nce": tce.normalized_cross_entropy,
    "nce+rce": tce.nce_and_rce,
    "nce+mae": tce.nce_and_mae,
    "focal": tce.focal_loss,
    "taylor": tce.taylor_cross_entropy,
    "poly1": tce.poly1_cross_entropy,
    "label_smoothing": tce.label_smoothing_cross_entropy,
    "bootstrap_soft": tce.soft_bootstrapping,
    "bootstrap_hard": tce.hard_bootstrapping,
    "agce": tce.asymmetric_generalized_cross_entropy,
    "aul": tce.asymmetric_unhinged_loss,
    "ael": tce.asymmetric_exponential_loss,
    "nce+agce": tce.nce_and_agce,
    "nce+aul": tce.nce_and_aul,
    "nce+ael": tce.nce_and_ael,
    "nnce": tce.normalized_negative_cross_entropy,
    "eps_softmax": tce.epsilon_softmax_and_mae,
    "js": tce.jensen_shannon_loss,
    "logit_clip": tce.logit_clipping,
}
# The losses that need more than logits and labels, last in tce.LOSSES: tests/test_loss_needs.py tests them.
NEEDING = ("anl_ce", "jal_ce", "forward", "backward", "elr")
# The table of the losses' parameters and defaults (None: required), written out here rather than read from
# the library, so that the references below do not take their defaults from the code they test.
TABLE = {
    "gce": {"q": 0.7},
    "rce": {"A": LN_1E_MINUS_4},
    "sce": {"alpha": None, "beta": None, "A": LN_1E_MINUS_4},
    "nce": {},
    "nce+rce": {"alpha": None, "beta": None},
    "nce+mae": {"alpha": None, "beta": None},
    "focal": {"gamma": 0.5},
    "taylor": {"t": 2},
    "poly1": {"epsilon": 1.0},
    "label_smoothing": {"epsilon": 0.1},
    "bootstrap_soft": {"beta": 0.95},
    "bootstrap_hard": {"beta": 0.8},
    "agce": {"a": None, "q": None},
    "aul": {"a": None, "q": None},
    "ael": {"a": None},
    "nce+agce": {"alpha": None, "beta": None, "a": None, "q": None},
    "nce+aul": {"alpha": None, "beta": None, "a": None, "q": None},
    "nce+ael": {"alpha": None, "beta": None, "a": None},
    "nnce": {},
    "eps_softmax": {"alpha": None, "beta": None, "m": None},
    "js": {"pi": None},
    "logit_clip": {"tau": None, "p_norm": 2.0, "semantics": "code"},
}
# Parameters to test each loss with: the required ones (the published CIFAR values) or the defaults first,
# then values at or near the ends of the allowed ranges.
SETTINGS = {
    "gce": [{}, {"q": 1}, {"q": 0.1}],
    "rce": [{}, {"A": -4.0}],
    "sce": [{"alpha": 0.1, "beta": 1.0}, {"alpha": 6.0, "beta": 0.1, "A": -4.0}],
    "nce": [{}],
    "nce+rce": [{"alpha": 1.0, "beta": 1.0}, {"alpha": 10.0, "beta": 0.1}],
    "nce+mae": [{"alpha": 1.0, "beta": 1.0}, {"alpha": 10.0, "beta": 1.0}],
    "focal": [{}, {"gamma": 0.0}, {"gamma": 0.2}, {"gamma": 2.0}],
    "taylor": [{}, {"t": 1}, {"t": 6}],
    "poly1": [{}, {"epsilon": -1.0}, {"epsilon": 2.0}],
    "label_smoothing": [{}, {"epsilon": 0.0}, {"epsilon": 1.0}],
    "bootstrap_soft": [{}, {"beta": 0.5}, {"beta": 0.0}],
    "bootstrap_hard": [{}, {"beta": 0.5}],
    # The authors' values (CIFAR-10, CIFAR-100, MNIST, WebVision's a = 1e-5), then ends of the ranges: AUL's a
    # near 1 takes its far branch (with q = 10, (a - 1)^q expm1(s) would overflow); eps_softmax's m = 0 has no
    # argmax term.
    "agce": [{"a": 0.6, "q": 0.6}, {"a": 4.0, "q": 0.2}, {"a": 1e-5, "q": 0.5}, {"a": 6.0, "q": 1.5}],
    "aul": [{"a": 5.5, "q": 3.0}, {"a": 3.0, "q": 0.1}, {"a": 1.01, "q": 2.0}, {"a": 1 + 1e-6, "q": 10.0}],
    "ael": [{"a": 2.5}, {"a": 0.1}],
    "nce+agce": [{"alpha": 1.0, "beta": 4.0, "a": 6.0, "q": 1.5}, {"alpha": 10.0, "beta": 0.1, "a": 1.8, "q": 3.0}],
    "nce+aul": [{"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5}, {"alpha": 10.0, "beta": 0.015, "a": 6.0, "q": 3.0}],
    "nce+ael": [{"alpha": 1.0, "beta": 4.0, "a": 5.0}, {"alpha": 10.0, "beta": 0.1, "a": 1.5}],
    "nnce": [{}],
    "eps_softmax": [{"alpha": 0.01, "beta": 5.0, "m": 1e5}, {"alpha": 0.03, "beta": 1.0, "m": 1e4},
                    {"alpha": 1.0, "beta": 1.0, "m": 0.0}],
    "js": [{"pi": 0.7}, {"pi": 0.3}, {"pi": 0.01}, {"pi": 0.99}],
    "logit_clip": [{"tau": 1.0}, {"tau": 2.0}, {"tau": 0.5, "semantics": "paper"}, {"tau": 2.0, "p_norm": 1.0},
                   {"tau": 3.0, "p_norm": 3.5, "semantics": "paper"}],
}
CASES = [
    pytest.param(name, params, id=f"{name}-{params}") for name, settings in SETTINGS.items() for params in settings
]
DEFAULT_CASES = [pytest.param(name, settings[0], id=name) for name, settings in SETTINGS.items()]


def reference(name, logits, target, params):
    """The loss of each sample, in float64, straight from the formula.

    p is softmax(logits). log p is log_softmax(logits) rather than log(p), which is -inf where p underflows
    (at a margin of 1e4 even in float64) though the loss is finite.
    """
    params = {**TABLE[name], **params}
    logits = logits.double()
    if name == "logit_clip":
        tau, order = params["tau"], params["p_norm"]
        norm = logits.abs().pow(order).sum(dim=1, keepdim=True).pow(1 / order)
        radius = 1 / tau if params["semantics"] == "code" else tau
        logits = torch.where(norm > tau, logits * radius / norm, logits)
        return F.cross_entropy(logits, target, reduction="none")
    p, log_p = logits.softmax(dim=1), logits.log_softmax(dim=1)
    rows = torch.arange(len(target))
    p_y, log_p_y = p[rows, target], log_p[rows, target]
    one_hot = F.one_hot(target, logits.shape[1]).double()
    nce = log_p_y / log_p.sum(dim=1)
    if name == "gce":
        return (1 - p_y ** params["q"]) / params["q"]
    if name == "rce":
        return -params["A"] * (1 - p_y)
    if name == "sce":
        return params["alpha"] * -log_p_y + params["beta"] * -params["A"] * (1 - p_y)
    if name == "nce":
        return nce
    if name == "nce+rce":
        return params["alpha"] * nce + params["beta"] * -LN_1E_MINUS_4 * (1 - p_y)
    if name == "nce+mae":
        return params["alpha"] * nce + params["beta"] * (1 - p_y)
    if name == "focal":
        return -((1 - p_y) ** params["gamma"]) * log_p_y
    if name == "taylor":
        return sum((1 - p_y) ** k / k for k in range(1, params["t"] + 1))
    if name == "poly1":
        return -log_p_y + params["epsilon"] * (1 - p_y)
    if name == "label_smoothing":
        smoothed = (1 - params["epsilon"]) * one_hot + params["epsilon"] / logits.shape[1]
        return -(smoothed * log_p).sum(dim=1)
    if name == "bootstrap_soft":
        return -((params["beta"] * one_hot + (1 - params["beta"]) * p) * log_p).sum(dim=1)
    if name == "bootstrap_hard":
        z = p.argmax(dim=1)
        return -(params["beta"] * log_p_y + (1 - params["beta"]) * log_p[rows, z])
    a, q = params.get("a"), params.get("q")
    if name in ("agce", "nce+agce"):
        agce = ((a + 1) ** q - (a + p_y) ** q) / q
        return agce if name == "agce" else params["alpha"] * nce + params["beta"] * agce
    if name in ("aul", "nce+aul"):
        aul = ((a - p_y) ** q - (a - 1) ** q) / q
        return aul if name == "aul" else params["alpha"] * nce + params["beta"] * aul
    if name in ("ael", "nce+ael"):
        ael = torch.exp(-p_y / a)
        return ael if name == "ael" else params["alpha"] * nce + params["beta"] * ael
    if name == "nnce":  # as ANL's code: the log of the clamped softmax
        shifted = -math.log(1e-7) + p.clamp(1e-7, 1).log()
        return 1 - shifted[rows, target] / shifted.sum(dim=1)
    if name == "eps_softmax":  # as the authors' code: the argmax is an index, p' a tensor
        m = params["m"]
        p_eps = (p + m * F.one_hot(p.argmax(dim=1), logits.shape[1])) / (1 + m)
        return -params["alpha"] * p_eps[rows, target].clamp(min=1e-8).log() + params["beta"] * 2 * (1 - p_y)
    if name == "js":  # the two KL divergences over all C classes; log m from log p, finite where p underflows
        pi = params["pi"]
        log_m = torch.logaddexp(math.log(pi) + one_hot.log(), math.log(1 - pi) + log_p)
        divergence = pi * -log_m[rows, target] + (1 - pi) * (p * (log_p - log_m)).sum(dim=1)
        return divergence / (-(1 - pi) * math.log(1 - pi))
    raise AssertionError(name)


def value_and_grad(loss_fn, logits, target, **kwargs):
    """Per-sample values, and the gradient of their mean with respect to logits."""
    logits = logits.detach().requires_grad_()
    per_sample = loss_fn(logits, target, **kwargs)
    (grad,) = torch.autograd.grad(per_sample.mean(), logits)
    return per_sample.detach(), grad


def random_batch(n=32, c=10, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, c, generator=generator, dtype=dtype)
    return logits, torch.randint(c, (n,), generator=generator)


def extreme_batch(c):
    """Rows of C - 1 zeros and one logit of +-margin, the label once on that logit and once next to it: so
    for each margin the label is on the max twice (once tied) and on a min twice (once tied). Then eight
    ordinary rows, as a batch would have, which set the scale of the gradients."""
    rows, target = [], []
    for margin in (30.0, 100.0, 1e4):
        for sign in (1.0, -1.0):
            odd = len(rows) % c  # the odd entry's position varies
            row = torch.zeros(c)
            row[odd] = sign * margin
            rows += [row, row]
            target += [odd, (odd + 1) % c]
    ordinary_logits, ordinary_target = random_batch(n=8, c=c)
    return torch.cat([torch.stack(rows), ordinary_logits]), torch.cat([torch.tensor(target), ordinary_target])


def check_against_reference(name, params, logits, target, allow_singular_reference=False):
    loss, grad = value_and_grad(tce.build_loss(name, reduction="none", **params), logits, target)
    expected, expected_grad = value_and_grad(lambda x, y: reference(name, x, y, params), logits.double(), target)
    if allow_singular_reference:
        # x^a with a < 1 has derivative a x^(a - 1) = inf at x = 0, so the literal float64 formula's
        # gradient is 0 * inf = NaN where p_y rounds to 1 (focal) or to 0 (GCE). The exact gradient there
        # is below 1e-40: these rows' losses are flat to float64 precision.
        expected_grad = expected_grad.nan_to_num(nan=0.0)
    assert torch.isfinite(expected_grad).all()
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    # float32 log_softmax has an absolute error of about 1e-7 |log p|, so p = exp(log p) a relative one of
    # up to about 5e-6 where log p ~ -20 (C = 100 here), and the gradients inherit it. The smaller entries
    # of a gradient are sums that cancel, which leaves errors of that order of the largest entries.
    scale = expected_grad.abs().max().item()
    torch.testing.assert_close(grad.double(), expected_grad, rtol=1e-5, atol=1e-5 * scale)


# --- Value and gradient against the formula -------------------------------------------------------------


@pytest.mark.parametrize("c", [10, 100])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_matches_the_formula_in_value_and_gradient(name, params, c):
    for seed in range(3):
        check_against_reference(name, params, *random_batch(c=c, seed=seed))


@pytest.mark.parametrize("c", [10, 100])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_matches_the_formula_at_extreme_logits(name, params, c):
    logits, target = extreme_batch(c)
    # The batch does reach the corners: log p_y = -1e4 and, in float32, p_y = 1 exactly.
    log_p_y = logits.log_softmax(dim=1)[torch.arange(len(target)), target]
    assert (log_p_y == -1e4).any() and (log_p_y == 0).sum() >= 2
    check_against_reference(name, params, logits, target, allow_singular_reference=True)


def test_extreme_batch_covers_label_on_max_and_on_min():
    logits, target = extreme_batch(10)
    logits, target = logits[:12], target[:12]
    label_logit = logits[torch.arange(len(target)), target]
    assert (label_logit == logits.max(dim=1).values).sum() == 6
    assert (label_logit == logits.min(dim=1).values).sum() == 6
    assert set(logits.abs().max(dim=1).values.tolist()) == {30.0, 100.0, 1e4}


# One case per loss whose value is worked out by hand. Logits log([1, 1, 2]) give p = (1/4, 1/4, 1/2).
QUARTERS = torch.log(torch.tensor([[1.0, 1.0, 2.0]], dtype=torch.float64))
LN2 = math.log(2)


HAND_COMPUTED = [
    # p_y = 1/4, q = 1/2: (1 - (1/4)^(1/2)) / (1/2) = (1 - 1/2) * 2 = 1.
    ("gce", {"q": 0.5}, 0, 1.0),
    # p_y = 1/2: -ln(1e-4) * 1/2 = ln(1e4) / 2 = ln(100).
    ("rce", {}, 2, math.log(100)),
    # p_y = 1/2, A = -4: 0.1 * ln 2 + 1 * 4 * 1/2 = 0.1 ln 2 + 2.
    ("sce", {"alpha": 0.1, "beta": 1.0, "A": -4.0}, 2, 0.1 * LN2 + 2),
    # ln(1/2) / (ln(1/4) + ln(1/4) + ln(1/2)) = -ln 2 / (-5 ln 2) = 1/5.
    ("nce", {}, 2, 0.2),
    # 2 * 1/5 + 3 * ln(1e4) * 1/2 = 0.4 + 3 ln(100).
    ("nce+rce", {"alpha": 2.0, "beta": 3.0}, 2, 0.4 + 3 * math.log(100)),
    # y = 0: ln(1/4) / (-5 ln 2) = 2/5; 2 * 2/5 + 3 * (1 - 1/4) = 0.8 + 2.25.
    ("nce+mae", {"alpha": 2.0, "beta": 3.0}, 0, 3.05),
    # p_y = 1/4, gamma = 2: (3/4)^2 * ln 4 = 9/16 * 2 ln 2.
    ("focal", {"gamma": 2.0}, 0, 9 / 8 * LN2),
    # p_y = 1/2, t = 3: 1/2 + (1/2)^2 / 2 + (1/2)^3 / 3 = 1/2 + 1/8 + 1/24 = 2/3.
    ("taylor", {"t": 3}, 2, 2 / 3),
    # p_y = 1/4: ln 4 + 2 * 3/4.
    ("poly1", {"epsilon": 2.0}, 0, 2 * LN2 + 1.5),
    # epsilon = 0.3: target (0.1, 0.1, 0.8); 0.1 * ln 4 * 2 + 0.8 * ln 2 = 1.2 ln 2.
    ("label_smoothing", {"epsilon": 0.3}, 2, 1.2 * LN2),
    # beta = 1/2: target (1/8, 1/8, 3/4); 1/8 * ln 4 * 2 + 3/4 * ln 2 = 5/4 ln 2.
    ("bootstrap_soft", {"beta": 0.5}, 2, 1.25 * LN2),
    # y = 0, argmax z = 2: 0.8 * ln 4 + 0.2 * ln 2 = 1.8 ln 2.
    ("bootstrap_hard", {"beta": 0.8}, 0, 1.8 * LN2),
    # p_y = 1/2, a = 1, q = 2: (2^2 - 1.5^2) / 2 = 1.75 / 2.
    ("agce", {"a": 1.0, "q": 2.0}, 2, 0.875),
    # p_y = 1/4, a = 2, q = 2: (1.75^2 - 1^2) / 2 = 2.0625 / 2.
    ("aul", {"a": 2.0, "q": 2.0}, 0, 1.03125),
    # p_y = 1/2, a = 1/2: exp(-1).
    ("ael", {"a": 0.5}, 2, math.exp(-1)),
    # NCE 1/5 as above: 2 * 1/5 + 3 * 0.875.
    ("nce+agce", {"alpha": 2.0, "beta": 3.0, "a": 1.0, "q": 2.0}, 2, 3.025),
    # y = 0, NCE 2/5: 2 * 2/5 + 3 * 1.03125.
    ("nce+aul", {"alpha": 2.0, "beta": 3.0, "a": 2.0, "q": 2.0}, 0, 3.89375),
    ("nce+ael", {"alpha": 2.0, "beta": 3.0, "a": 0.5}, 2, 0.4 + 3 * math.exp(-1)),
    # No p at the 1e-7 floor; with L = ln 1e7: 1 - (L - ln 2) / ((L - 2 ln 2) * 2 + L - ln 2).
    ("nnce", {}, 2, 1 - (math.log(1e7) - LN2) / (3 * math.log(1e7) - 5 * LN2)),
    # y = 2 is the argmax, m = 1: p'_y = (1/2 + 1) / 2 = 3/4; 2 * ln(4/3) + 3 * 2 * (1 - 1/2).
    ("eps_softmax", {"alpha": 2.0, "beta": 3.0, "m": 1.0}, 2, 2 * math.log(4 / 3) + 3),
    # y = 0 is not: p'_y = (1/4) / 2 = 1/8; 2 * ln 8 + 3 * 2 * 3/4.
    ("eps_softmax", {"alpha": 2.0, "beta": 3.0, "m": 1.0}, 0, 6 * LN2 + 4.5),
    # p'_y = (1/4) / (1e8 + 1) < 1e-8, the floor: -ln 1e-8.
    ("eps_softmax", {"alpha": 1.0, "beta": 0.0, "m": 1e8}, 0, math.log(1e8)),
    # pi = 1/2: m = (1/8, 1/8, 3/4); KL(e_y || m) = ln(4/3), KL(p || m) = 2 * 1/4 ln 2 + 1/2 ln(2/3) = 1/2 ln(4/3);
    # JS = 1/2 ln(4/3) + 1/4 ln(4/3), times -1 / (1/2 ln(1/2)) = 2 / ln 2.
    ("js", {"pi": 0.5}, 2, 1.5 * math.log(4 / 3) / LN2),
    # z = (0, 0, ln 2), ||z|| = ln 2 > 1/2, so z' = z * 2 / ln 2 = (0, 0, 2) ("code"): -log(e^2 / (2 + e^2)).
    ("logit_clip", {"tau": 0.5}, 2, math.log(2 + math.exp(2)) - 2),
    # "paper": z' = z * (1/2) / ln 2 = (0, 0, 1/2).
    ("logit_clip", {"tau": 0.5, "semantics": "paper"}, 2, math.log(2 + math.exp(0.5)) - 0.5),
]


@pytest.mark.parametrize(("name", "params", "label", "expected"), HAND_COMPUTED)
def test_hand_computed_value(name, params, label, expected):
    target = torch.tensor([label])
    assert FUNCTIONS[name](QUARTERS, target, **params).item() == pytest.approx(expected, rel=1e-12)
    assert FUNCTIONS[name](QUARTERS.float(), target, **params).item() == pytest.approx(expected, rel=1e-6)


def test_every_loss_has_a_hand_computed_value():
    assert {case[0] for case in HAND_COMPUTED} == set(FUNCTIONS)


# --- Corners ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_finite_value_and_gradient_at_log_prob_minus_1e4_and_at_certainty(name, params, dtype):
    logits = torch.tensor([[1e4, 0.0, 0.0], [100.0, 0.0, 0.0]], dtype=dtype)
    target = torch.tensor([1, 0])
    log_p_y = logits.log_softmax(dim=1)[torch.arange(2), target]
    assert log_p_y[0] == -1e4 and log_p_y[1] == 0  # p_y = 1 exactly, in float64 too
    loss, grad = value_and_grad(FUNCTIONS[name], logits, target, reduction="none", **params)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()


def test_focal_gradient_is_zero_at_certainty_for_every_gamma():
    logits = torch.tensor([[100.0, 0.0, 0.0]], requires_grad=True)
    for gamma in (0.2, 0.5, 1.0, 2.0):
        (grad,) = torch.autograd.grad(tce.focal_loss(logits, torch.tensor([0]), gamma=gamma), logits)
        assert torch.equal(grad, torch.zeros_like(grad)), gamma
    # gamma = 0 is the cross entropy, whose gradient p - onehot is (0, 3.8e-44, 3.8e-44) here.
    (grad,) = torch.autograd.grad(tce.focal_loss(logits, torch.tensor([0]), gamma=0), logits)
    assert torch.equal(grad, torch.autograd.grad(F.cross_entropy(logits, torch.tensor([0])), logits)[0])


# --- Relations between the losses ---------------------------------------------------------------------


def one_minus_p_y(logits, target):
    return 1 - logits.double().softmax(dim=1)[torch.arange(len(target)), target]


def test_focal_gradient_flows_through_the_modulating_factor():
    # Regression test for the focal loss widely copied from clcarwin/focal_loss_pytorch, which detaches p_y
    # in (1 - p_y)^gamma: same value, different gradient.
    logits, target = random_batch(dtype=torch.float64)

    def detached_focal(x, y, gamma):
        log_p_y = x.log_softmax(dim=1)[torch.arange(len(y)), y]
        return -((1 - log_p_y.detach().exp()) ** gamma) * log_p_y

    loss, grad = value_and_grad(tce.focal_loss, logits, target, gamma=2.0, reduction="none")
    detached_loss, detached_grad = value_and_grad(detached_focal, logits, target, gamma=2.0)
    torch.testing.assert_close(loss, detached_loss)
    assert (grad - detached_grad).abs().max() > 0.1 * grad.abs().max()


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.37, 1.0])
def test_label_smoothing_is_torch_cross_entropy_with_label_smoothing(epsilon):
    logits, target = random_batch(dtype=torch.float64)
    loss, grad = value_and_grad(tce.label_smoothing_cross_entropy, logits, target, epsilon=epsilon, reduction="none")
    expected, expected_grad = value_and_grad(F.cross_entropy, logits, target, label_smoothing=epsilon, reduction="none")
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("name", "params"), [("gce", {"q": 1}), ("taylor", {"t": 1})])
def test_gce_at_q_one_and_taylor_at_t_one_are_one_minus_p_y(name, params):
    logits, target = random_batch(dtype=torch.float64)
    loss = FUNCTIONS[name](logits, target, reduction="none", **params)
    torch.testing.assert_close(loss, one_minus_p_y(logits, target), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("name", "params", "rtol"),
    [
        ("gce", {"q": 1e-9}, 1e-7),  # the limit q -> 0
        ("focal", {"gamma": 0}, 1e-14),
        ("poly1", {"epsilon": 0}, 1e-14),
        ("label_smoothing", {"epsilon": 0}, 1e-14),
        ("bootstrap_soft", {"beta": 1}, 1e-14),
        ("bootstrap_hard", {"beta": 1}, 1e-14),
    ],
)
def test_settings_that_give_the_cross_entropy(name, params, rtol):
    logits, target = random_batch(dtype=torch.float64)
    expected = F.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(FUNCTIONS[name](logits, target, reduction="none", **params), expected, rtol=rtol, atol=0)


@pytest.mark.parametrize("A", [LN_1E_MINUS_4, -4.0])
def test_sce_is_alpha_ce_plus_beta_minus_a_times_one_minus_p_y(A):
    logits, target = random_batch(dtype=torch.float64)
    alpha, beta = 0.1, 1.0
    expected = alpha * F.cross_entropy(logits, target, reduction="none") + beta * -A * one_minus_p_y(logits, target)
    actual = tce.symmetric_cross_entropy(logits, target, alpha=alpha, beta=beta, A=A, reduction="none")
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=0)
    rce = tce.reverse_cross_entropy(logits, target, A=A, reduction="none")
    torch.testing.assert_close(rce, -A * one_minus_p_y(logits, target), rtol=1e-12, atol=0)


def test_sce_default_a_is_ln_of_1e_minus_4_not_the_papers_minus_4():
    logits, target = random_batch(dtype=torch.float64)
    default = tce.symmetric_cross_entropy(logits, target, alpha=0.0, beta=1.0)
    papers = tce.symmetric_cross_entropy(logits, target, alpha=0.0, beta=1.0, A=-4.0)
    torch.testing.assert_close(default, papers * 9.210340371976182 / 4, rtol=1e-14, atol=0)
    torch.testing.assert_close(tce.reverse_cross_entropy(logits, target), default, rtol=0, atol=0)


def test_apl_losses_are_nce_plus_rce_and_nce_plus_mae():
    logits, target = random_batch(dtype=torch.float64)
    nce = tce.normalized_cross_entropy(logits, target, reduction="none")
    rce = -LN_1E_MINUS_4 * one_minus_p_y(logits, target)
    mae = one_minus_p_y(logits, target)
    actual_rce = tce.nce_and_rce(logits, target, alpha=10.0, beta=0.1, reduction="none")
    actual_mae = tce.nce_and_mae(logits, target, alpha=10.0, beta=1.0, reduction="none")
    torch.testing.assert_close(actual_rce, 10 * nce + 0.1 * rce, rtol=1e-12, atol=0)
    torch.testing.assert_close(actual_mae, 10 * nce + 1.0 * mae, rtol=1e-12, atol=0)
    log_p = logits.log_softmax(dim=1)
    torch.testing.assert_close(nce, log_p[torch.arange(len(target)), target] / log_p.sum(dim=1), rtol=1e-12, atol=0)


def test_hard_bootstrapping_uses_the_argmax_and_is_the_cross_entropy_where_it_is_the_label():
    logits, target = random_batch(dtype=torch.float64)
    loss = tce.hard_bootstrapping(logits, target, beta=0.3, reduction="none")
    ce = F.cross_entropy(logits, target, reduction="none")
    correct = logits.argmax(dim=1) == target
    assert correct.any() and (~correct).any()
    torch.testing.assert_close(loss[correct], ce[correct], rtol=1e-12, atol=0)
    assert (loss[~correct] < ce[~correct]).all()


# --- Reductions, dtypes, inputs -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), DEFAULT_CASES)
def test_reductions_and_module_agree_with_function(name, params):
    logits, target = random_batch(n=7, dtype=torch.float64)
    per_sample = FUNCTIONS[name](logits, target, reduction="none", **params)
    assert per_sample.shape == (7,)
    assert (per_sample >= 0).all()
    total = FUNCTIONS[name](logits, target, reduction="sum", **params)
    mean = FUNCTIONS[name](logits, target, **params)
    torch.testing.assert_close(total, per_sample.sum(), rtol=1e-14, atol=0)
    torch.testing.assert_close(mean, per_sample.mean(), rtol=1e-14, atol=0)
    torch.testing.assert_close(mean, total / 7, rtol=1e-14, atol=0)
    for reduction in ("mean", "sum", "none"):
        module = tce.build_loss(name, reduction=reduction, **params)
        expected = FUNCTIONS[name](logits, target, reduction=reduction, **params)
        torch.testing.assert_close(module(logits, target), expected, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "params"), DEFAULT_CASES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_are_computed_in_float32(name, params, dtype):
    logits, target = random_batch(dtype=dtype)
    loss, grad = value_and_grad(FUNCTIONS[name], logits, target, reduction="none", **params)
    expected_loss, expected_grad = value_and_grad(FUNCTIONS[name], logits.float(), target, reduction="none", **params)
    assert loss.dtype == torch.float32
    assert torch.equal(loss, expected_loss)
    assert grad.dtype == dtype
    assert torch.equal(grad, expected_grad.to(dtype))


@pytest.mark.parametrize(("name", "params"), DEFAULT_CASES)
def test_loss_under_cpu_autocast_is_float32(name, params):
    layer = torch.nn.Linear(4, 3)
    features, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    criterion = tce.build_loss(name, **params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(features)
        loss = criterion(logits, target)
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    assert torch.equal(loss, criterion(logits.float(), target))


@pytest.mark.parametrize(("name", "params"), DEFAULT_CASES)
def test_full_precision_logits_keep_their_dtype_and_int32_targets_work(name, params):
    for dtype in (torch.float32, torch.float64):
        logits, target = random_batch(dtype=dtype)
        loss = FUNCTIONS[name](logits, target, **params)
        assert loss.dtype == dtype
        assert torch.equal(FUNCTIONS[name](logits, target.int(), **params), loss)


@pytest.mark.parametrize(("name", "params"), DEFAULT_CASES)
@pytest.mark.parametrize(
    ("logits", "target", "message"),
    [
        (torch.zeros(5), torch.zeros(5, dtype=torch.long), r"logits must have shape \(N, C\)"),
        (torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), "batch size"),
        (torch.zeros(2, 3), torch.zeros(2), "integer class indices"),
        (torch.zeros(2, 3), torch.tensor([0, 3]), r"\[0, 3\), got \[3\]"),
    ],
)
def test_bad_inputs_raise_value_error(name, params, logits, target, message):
    with pytest.raises(ValueError, match=message):
        FUNCTIONS[name](logits, target, **params)


@pytest.mark.parametrize(("name", "params"), DEFAULT_CASES)
def test_unknown_reduction_is_rejected_by_function_and_module(name, params):
    logits, target = random_batch()
    with pytest.raises(ValueError, match="^reduction must be one of"):
        FUNCTIONS[name](logits, target, reduction="average", **params)
    with pytest.raises(ValueError, match="^reduction must be one of"):
        tce.build_loss(name, reduction="average", **params)


# --- Parameters ----------------------------------------------------------------------------------------

NOT_NUMBERS = [True, "0.5", None, torch.tensor(0.5), torch.ones(3, 3)]
NOT_FINITE = [math.nan, math.inf, -math.inf]
BAD_PARAMS = [
    ("gce", "q", [0, 0.0, -0.5, 1.5, 1 + 1e-9, *NOT_FINITE, *NOT_NUMBERS]),
    ("rce", "A", [0.0, 1.0, *NOT_FINITE, *NOT_NUMBERS]),
    ("sce", "A", [0.0, 4.0, -math.inf, math.nan]),
    ("sce", "alpha", [-0.1, *NOT_FINITE, *NOT_NUMBERS]),
    ("sce", "beta", [-1, math.inf, math.nan, True]),
    ("nce+rce", "alpha", [-1.0, math.inf, math.nan, True]),
    ("nce+rce", "beta", [-1.0, math.inf, math.nan, "1"]),
    ("nce+mae", "alpha", [-1.0, math.inf, math.nan, None]),
    ("nce+mae", "beta", [-1e-9, math.inf, math.nan, torch.tensor(1.0)]),
    ("focal", "gamma", [-0.5, *NOT_FINITE, *NOT_NUMBERS]),
    ("taylor", "t", [0, -1, 2.0, 1.5, True, math.nan, math.inf, "2", torch.tensor(2)]),
    ("poly1", "epsilon", [-1.5, -1 - 1e-9, *NOT_FINITE, *NOT_NUMBERS]),
    ("label_smoothing", "epsilon", [-0.1, 1.1, *NOT_FINITE, *NOT_NUMBERS]),
    ("bootstrap_soft", "beta", [-0.1, 1.1, *NOT_FINITE, *NOT_NUMBERS]),
    ("bootstrap_hard", "beta", [-0.1, 1.1, *NOT_FINITE, *NOT_NUMBERS]),
    ("agce", "a", [0, -1.0, *NOT_FINITE, *NOT_NUMBERS]),
    ("agce", "q", [0.0, -0.5, math.nan, True]),
    ("aul", "a", [1, 1.0, 0.5, *NOT_FINITE, *NOT_NUMBERS]),
    ("aul", "q", [0, -1.0, math.inf]),
    ("ael", "a", [0.0, -2.0, *NOT_FINITE, *NOT_NUMBERS]),
    ("nce+agce", "alpha", [-1.0, math.nan, None]),
    ("nce+agce", "a", [0.0, math.inf]),
    ("nce+aul", "a", [1.0, 0.0]),
    ("nce+aul", "beta", [-0.1, "1"]),
    ("nce+ael", "beta", [-0.1, math.nan]),
    ("eps_softmax", "m", [-1.0, *NOT_FINITE, *NOT_NUMBERS]),
    ("eps_softmax", "alpha", [-0.01, math.inf]),
    ("js", "pi", [0, 1, 0.0, 1.0, -0.1, 1.5, *NOT_FINITE, *NOT_NUMBERS]),
    ("logit_clip", "tau", [0, -1.0, *NOT_FINITE, *NOT_NUMBERS]),
    ("logit_clip", "p_norm", [0.5, 0, math.inf, math.nan, True]),
    ("logit_clip", "semantics", ["Code", "", "paper ", 1, None, True]),
]
GOOD_PARAMS = [
    ("gce", {"q": 1}),
    ("gce", {"q": 1e-9}),
    ("rce", {"A": -1e-9}),
    ("sce", {"alpha": 0, "beta": 0, "A": -1e6}),
    ("nce+rce", {"alpha": 0.0, "beta": 1e6}),
    ("nce+mae", {"alpha": 1e6, "beta": 0}),
    ("focal", {"gamma": 0}),
    ("focal", {"gamma": 1e6}),
    ("taylor", {"t": 1}),
    ("poly1", {"epsilon": -1}),
    ("poly1", {"epsilon": 1e6}),
    ("label_smoothing", {"epsilon": 0}),
    ("label_smoothing", {"epsilon": 1}),
    ("bootstrap_soft", {"beta": 0}),
    ("bootstrap_hard", {"beta": 1.0}),
    ("agce", {"a": 1e-9, "q": 1e-9}),
    ("aul", {"a": 1 + 1e-9, "q": 1e-9}),
    ("ael", {"a": 1e-9}),
    ("nce+agce", {"alpha": 0, "beta": 0, "a": 1e6, "q": 3}),
    ("nce+aul", {"alpha": 0, "beta": 1e6, "a": 1e6, "q": 1e-3}),
    ("nce+ael", {"alpha": 1e6, "beta": 0, "a": 1e6}),
    ("eps_softmax", {"alpha": 0, "beta": 0, "m": 0}),
    ("eps_softmax", {"alpha": 1e6, "beta": 1e6, "m": 1e30}),
    ("js", {"pi": 1e-9}),
    ("js", {"pi": 1 - 1e-9}),
    ("logit_clip", {"tau": 1e-9, "p_norm": 1}),
    ("logit_clip", {"tau": 1e9, "p_norm": 1e3, "semantics": "paper"}),
]


def required(name):
    """The required parameters of a loss, set to a valid value: the first setting's."""
    return {param: SETTINGS[name][0][param] for param, default in TABLE[name].items() if default is None}


@pytest.mark.parametrize(
    ("name", "param", "value"),
    [
        pytest.param(name, param, value, id=f"{name}-{param}-{value!r}")
        for name, param, values in BAD_PARAMS
        for value in values
    ],
)
def test_bad_parameter_raises_a_one_line_value_error_naming_it(name, param, value):
    logits, target = random_batch(n=2, c=3)
    params = {**required(name), param: value}
    for build in (
        lambda: FUNCTIONS[name](logits, target, **params),
        lambda: tce.build_loss(name, **params),
        lambda: tce.FunctionalLoss(FUNCTIONS[name], **params),
    ):
        with pytest.raises(ValueError, match=f"^{param} must ") as error:
            build()
        message = str(error.value)
        assert "\n" not in message
        assert message.endswith(f"got {' '.join(repr(value).split())}")


def test_parameter_messages():
    cases = [
        ("gce", {"q": 1.5}, "q must be in (0, 1], got 1.5"),
        ("taylor", {"t": 2.0}, "t must be an integer >= 1, got 2.0"),
        ("poly1", {"epsilon": -2}, "epsilon must be a finite number >= -1, got -2"),
        ("label_smoothing", {"epsilon": 2}, "epsilon must be in [0, 1], got 2"),
        ("focal", {"gamma": math.inf}, "gamma must be a finite number >= 0, got inf"),
        ("rce", {"A": 0}, "A must be a finite number < 0, got 0"),
        ("sce", {"alpha": math.nan, "beta": 1}, "alpha must be a finite number >= 0, got nan"),
        ("bootstrap_soft", {"beta": -0.5}, "beta must be in [0, 1], got -0.5"),
        ("aul", {"a": 1, "q": 3}, "a must be a finite number > 1, got 1"),
        ("agce", {"a": 0.6, "q": 0}, "q must be a finite number > 0, got 0"),
        ("js", {"pi": 1.0}, "pi must be in (0, 1), got 1.0"),
        ("logit_clip", {"tau": 1, "semantics": "Code"}, "semantics must be one of code, paper, got 'Code'"),
        ("logit_clip", {"tau": 1, "p_norm": 0.5}, "p_norm must be a finite number >= 1, got 0.5"),
    ]
    for name, params, message in cases:
        with pytest.raises(ValueError) as error:
            tce.build_loss(name, **params)
        assert str(error.value) == message


@pytest.mark.parametrize(("name", "params"), GOOD_PARAMS)
def test_boundary_parameters_are_accepted(name, params):
    logits, target = random_batch(n=4, c=3)
    loss = tce.build_loss(name, **params)(logits, target)
    assert torch.isfinite(loss)
    assert loss == FUNCTIONS[name](logits, target, **params)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_unknown_or_missing_parameter_is_a_type_error(name):
    logits, target = random_batch(n=2, c=3)
    with pytest.raises(TypeError, match="'temperature'"):
        tce.build_loss(name, temperature=1.0, **required(name))
    with pytest.raises(TypeError, match="'temperature'"):
        FUNCTIONS[name](logits, target, temperature=1.0, **required(name))
    for missing in required(name):
        params = {param: value for param, value in required(name).items() if param != missing}
        with pytest.raises(TypeError, match=f"'{missing}'"):
            tce.build_loss(name, **params)
        with pytest.raises(TypeError, match=f"'{missing}'"):
            FUNCTIONS[name](logits, target, **params)


def test_module_checks_parameters_once_and_fills_in_defaults():
    module = tce.build_loss("sce", alpha=1, beta=2, reduction="sum")
    assert module.params == {"alpha": 1.0, "beta": 2.0, "A": LN_1E_MINUS_4}
    assert all(type(value) is float for value in module.params.values())
    assert tce.build_loss("taylor").params == {"t": 2}
    assert repr(tce.build_loss("gce", q=0.5)) == "FunctionalLoss(generalized_cross_entropy, q=0.5, reduction='mean')"


# --- Names, parameters, build_loss ----------------------------------------------------------------------


def test_losses_lists_the_papers_losses_then_the_others():
    assert ("ce", "mse", "mae", "tce", *FUNCTIONS, *NEEDING, *APL_LOSSES) == tce.LOSSES


def test_loss_params_is_the_table():
    assert {name: params for name, params in tce.LOSS_PARAMS.items() if name not in (*NEEDING, *APL_LOSSES)} == {
        "ce": {}, "mse": {}, "mae": {}, "tce": {"alpha": 1.0}, **TABLE}
    assert list(tce.LOSS_PARAMS) == list(tce.LOSSES)
    assert tce.LOSS_PARAMS["sce"]["A"] == math.log(1e-4)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_build_loss_wraps_the_named_function_with_its_defaults(name):
    module = tce.build_loss(name, **required(name))
    assert type(module) is tce.FunctionalLoss
    assert module.function is FUNCTIONS[name]
    assert module.params == {**TABLE[name], **required(name)}
    assert module.reduction == "mean"


def test_build_loss_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="unknown loss 'gce2'.*'gce'.*'bootstrap_hard'"):
        tce.build_loss("gce2")


# --- torch.compile ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
def test_compiles_to_a_single_graph_with_the_same_value_and_gradient(name):
    compiled = torch.compile(FUNCTIONS[name], fullgraph=True, backend="aot_eager")
    logits, target = random_batch(n=6, c=5)
    # A second setting makes dynamo retrace with the parameters as symbolic numbers.
    for params in SETTINGS[name][:2]:
        loss, grad = value_and_grad(compiled, logits, target, reduction="none", **params)
        expected_loss, expected_grad = value_and_grad(FUNCTIONS[name], logits, target, reduction="none", **params)
        torch.testing.assert_close(loss, expected_loss)
        torch.testing.assert_close(grad, expected_grad)
