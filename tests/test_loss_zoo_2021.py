"""What is particular to the losses of 2021-2025 (their value and gradient against the formulas, dtypes, reductions
and parameter checks are tested with the others in test_loss_zoo.py): epsilon-softmax's argmax, LogitClip's two
semantics, and their configs with the authors' per-dataset values."""

import math

import pytest
import torch
import torch.nn.functional as F
from test_apl_losses import APL_LOSSES
from test_loss_zoo import NEEDING, random_batch, value_and_grad

import tce
from compose import compose_train
from experiments.identity import run_name
from experiments.resolve import resolve
from experiments.schema import LOSS_KEYS, ConfigError

NEW_LOSSES = ("agce", "aul", "ael", "nce+agce", "nce+aul", "nce+ael", "nnce", "eps_softmax", "js", "logit_clip")


def test_the_new_losses_follow_the_zoo_before_those_that_need_more_and_the_apl_family():
    end = len(tce.LOSSES) - len(APL_LOSSES)
    assert tce.LOSSES[end - len(NEW_LOSSES) - len(NEEDING):end] == NEW_LOSSES + NEEDING


# --- epsilon-softmax -------------------------------------------------------------------------------------------


def test_eps_softmax_argmax_carries_no_gradient():
    """Where y is not the argmax, p'_y = p_y / (1 + m): the term is the cross entropy plus ln(1 + m), with the
    cross entropy's gradient, nothing more on the argmax class. Where it is, the term is -ln((p_y + m) / (1 + m)),
    m a constant added to p_y."""
    logits, target = random_batch(n=64, c=4, dtype=torch.float64)
    logits = logits / 3  # no p'_y below the 1e-8 floor
    alpha, beta, m = 0.5, 2.0, 1e3
    rows = torch.arange(len(target))
    is_argmax = logits.argmax(dim=1) == target
    assert is_argmax.sum() >= 5 and (~is_argmax).sum() >= 5
    assert (logits.softmax(dim=1)[rows, target] / (1 + m) > 1e-8).all()

    def expected_loss(x, y):
        p_y = x.softmax(dim=1)[rows, y]
        elsewhere = F.cross_entropy(x, y, reduction="none") + math.log1p(m)
        at_argmax = -torch.log((p_y + m) / (1 + m))
        return alpha * torch.where(is_argmax, at_argmax, elsewhere) + beta * 2 * (1 - p_y)

    loss, grad = value_and_grad(tce.epsilon_softmax_and_mae, logits, target, alpha=alpha, beta=beta, m=m,
                                reduction="none")
    expected, expected_grad = value_and_grad(expected_loss, logits, target)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-14)


def test_eps_softmax_below_the_floor_is_flat_in_its_ce_term():
    # p_y = e^-30 / (1 + 2 e^-30), so p'_y = p_y / (1 + 1e5) < 1e-8: -ln 1e-8, a constant, in float32 as in float64.
    for dtype in (torch.float32, torch.float64):
        logits = torch.tensor([[30.0, 0.0, 0.0]], dtype=dtype)
        loss, grad = value_and_grad(tce.epsilon_softmax_and_mae, logits, torch.tensor([1]), alpha=1.0, beta=0.0,
                                    m=1e5, reduction="none")
        assert loss.item() == pytest.approx(math.log(1e8), rel=1e-6)
        assert torch.equal(grad, torch.zeros_like(grad))


# --- LogitClip ---------------------------------------------------------------------------------------------------

DIRECTION = torch.tensor([[0.6, 0.0, -0.8]])  # unit 2-norm
LABEL = torch.tensor([0])


def cross_entropy(logits):
    return F.cross_entropy(logits.double(), LABEL).item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_logit_clip_semantics_just_below_and_above_tau(tau, dtype):
    below, above = (DIRECTION.to(dtype) * tau * (1 + sign * 1e-5) for sign in (-1, 1))

    def clipped(logits, semantics):
        return tce.logit_clipping(logits, LABEL, tau=tau, semantics=semantics).item()

    for semantics in ("code", "paper"):  # at most tau: the logits as they are
        assert clipped(below, semantics) == pytest.approx(cross_entropy(below), rel=1e-6)
    # Above tau, "code" rescales them to norm 1/tau, the authors' code; "paper" to norm tau.
    assert clipped(above, "code") == pytest.approx(cross_entropy(DIRECTION / tau), rel=1e-6)
    assert clipped(above, "paper") == pytest.approx(cross_entropy(DIRECTION * tau), rel=1e-6)
    # So "paper" is continuous at tau, and "code" jumps there from CE(tau u) to CE(u / tau).
    assert clipped(above, "paper") == pytest.approx(clipped(below, "paper"), rel=1e-4)
    assert abs(clipped(above, "code") - clipped(below, "code")) > 0.3


def test_logit_clip_semantics_agree_at_tau_one():
    logits, target = random_batch(dtype=torch.float64)
    code = tce.logit_clipping(logits, target, tau=1.0, reduction="none")
    torch.testing.assert_close(tce.logit_clipping(logits, target, tau=1.0, semantics="paper", reduction="none"), code,
                               rtol=0, atol=0)


def test_logit_clip_hand_computed_l1_and_zero_logits():
    # ||(3, 0, 4)||_1 = 7 > 2: z' = z (1/2) / 7 = (3/14, 0, 4/14).
    expected = math.log(math.exp(3 / 14) + 1 + math.exp(4 / 14)) - 3 / 14
    loss = tce.logit_clipping(torch.tensor([[3.0, 0.0, 4.0]]), LABEL, tau=2.0, p_norm=1.0)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # Zero logits are not clipped, and their gradient is the cross entropy's (p - e_y), not NaN.
    zeros = torch.zeros(1, 4)
    loss, grad = value_and_grad(tce.logit_clipping, zeros, LABEL, tau=0.5, reduction="none")
    assert loss.item() == pytest.approx(math.log(4), rel=1e-6)
    torch.testing.assert_close(grad, torch.tensor([[-0.75, 0.25, 0.25, 0.25]]))


def test_logit_clip_norm_does_not_overflow_in_float32():
    # |z|^20 overflows float32 from |z| = 85; the norm itself is 3.00e4 here.
    logits = torch.tensor([[3e4, 1e4, -2e4]])
    norm = (logits.double().abs() ** 20).sum() ** (1 / 20)
    expected = cross_entropy(logits.double() * 0.5 / norm)
    assert tce.logit_clipping(logits, LABEL, tau=2.0, p_norm=20.0).item() == pytest.approx(expected, rel=1e-6)


# --- NNCE --------------------------------------------------------------------------------------------------------


def test_nnce_clamps_at_1e_minus_7():
    # p = (1/2, 1/2, e^-100 / 2): the third is at the floor and adds 0 to the sum; 1 - (L - ln 2) / (2 (L - ln 2)).
    loss = tce.normalized_negative_cross_entropy(torch.tensor([[0.0, 0.0, -100.0]]), LABEL)
    assert loss.item() == pytest.approx(0.5, rel=1e-6)


# --- Configs -----------------------------------------------------------------------------------------------------

# The authors' values from the issue's table (MNIST / CIFAR-10 / CIFAR-100), written out here; a dataset without
# them (SVHN, synthetic; MNIST for eps_softmax, js and logit_clip) takes CIFAR-10's.
C10_EPS, C10_JS, C10_CLIP = {"alpha": 0.01, "beta": 5.0, "m": 1e5}, {"pi": 0.7}, {"tau": 1.0}
AUTHORS = {
    "agce": ({"a": 4.0, "q": 0.2}, {"a": 0.6, "q": 0.6}, {"a": 0.6, "q": 0.6}),
    "aul": ({"a": 3.0, "q": 0.1}, {"a": 5.5, "q": 3.0}, {"a": 5.5, "q": 3.0}),
    "ael": ({"a": 3.5}, {"a": 2.5}, {"a": 2.5}),
    "nce+agce": ({"alpha": 0.0, "beta": 1.0, "a": 4.0, "q": 0.2}, {"alpha": 1.0, "beta": 4.0, "a": 6.0, "q": 1.5},
                 {"alpha": 10.0, "beta": 0.1, "a": 1.8, "q": 3.0}),
    "nce+aul": ({"alpha": 0.0, "beta": 1.0, "a": 3.0, "q": 0.1}, {"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5},
                {"alpha": 10.0, "beta": 0.015, "a": 6.0, "q": 3.0}),
    "nce+ael": ({"alpha": 0.0, "beta": 1.0, "a": 3.5}, {"alpha": 1.0, "beta": 4.0, "a": 5.0},
                {"alpha": 10.0, "beta": 0.1, "a": 1.5}),
    "nnce": ({}, {}, {}),
    # CIFAR-100: the authors' values at 40 % symmetric noise (they tune these per noise rate).
    "eps_softmax": (C10_EPS, C10_EPS, {"alpha": 0.03, "beta": 1.0, "m": 1e4}),
    "js": (C10_JS, C10_JS, {"pi": 0.3}),
    "logit_clip": (C10_CLIP, C10_CLIP, {"tau": 2.0}),
}
OWN_DEFAULTS = {"logit_clip": {"p_norm": 2.0, "semantics": "code"}}


@pytest.mark.parametrize("name", NEW_LOSSES)
def test_config_takes_the_authors_values_per_dataset(name):
    mnist, cifar10, cifar100 = AUTHORS[name]
    for dataset, expected in (("mnist", mnist), ("cifar10", cifar10), ("cifar100", cifar100), ("synthetic", cifar10)):
        loss = resolve(compose_train(f"loss={name}", f"dataset={dataset}")).loss
        given = {key: loss[key] for key in LOSS_KEYS if loss[key] is not None}
        assert given == {**expected, **OWN_DEFAULTS.get(name, {})}, dataset


def test_config_keeps_the_other_defaults_of_a_partly_given_setting_and_names_the_run():
    loss = resolve(compose_train("loss=nce+agce", "dataset=cifar100", "loss.a=2")).loss
    assert (loss.alpha, loss.beta, loss.a, loss.q) == (10.0, 0.1, 2.0, 3.0)
    name = run_name(resolve(compose_train("loss=logit_clip", "dataset=cifar100", "loss.semantics=paper")))
    assert name.startswith("cifar100/logit_clip-tau2-p_norm2-paper/")
    name = run_name(resolve(compose_train("loss=eps_softmax", "noise=0.4")))
    assert name.startswith("cifar10/eps_softmax-alpha0.01-beta5-m100000/noise0.4-")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss=aul loss.a=1", "loss.a: must be a finite number > 1, got 1.0"),
        ("loss=agce loss.q=0", "loss.q: must be a finite number > 0, got 0.0"),
        ("loss=nce+ael loss.beta=-1", "loss.beta: must be a finite number >= 0, got -1.0"),
        ("loss=eps_softmax loss.m=-1", "loss.m: must be a finite number >= 0, got -1.0"),
        ("loss=js loss.pi=1", "loss.pi: must be in (0, 1), got 1.0"),
        ("loss=logit_clip loss.tau=0", "loss.tau: must be a finite number > 0, got 0.0"),
        ("loss=logit_clip loss.p_norm=0.5", "loss.p_norm: must be a finite number >= 1, got 0.5"),
        ("loss=logit_clip loss.semantics=papers", "loss.semantics: must be one of code, paper, got 'papers'"),
    ],
)
def test_config_rejects_a_bad_parameter_in_one_line_naming_it(override, message):
    with pytest.raises(ConfigError) as error:
        resolve(compose_train(*override.split()))
    assert str(error.value) == message


def test_the_zoo_preset_has_every_loss_beyond_the_papers():
    params = compose_train("experiment=zoo", hydra=True).hydra.sweeper.params
    groups = params.loss.split(",")
    names = {resolve(compose_train(f"loss={group}")).loss.name for group in groups}
    # The APL family's normalized losses are for its claims under its own recipes (python -m scripts.claims
    # --missing apl_cifar10 prints their sweeps), not for the zoo of the paper's recipe.
    beyond = set(tce.LOSSES) - {"mse", "mae"} - set(APL_LOSSES)
    assert names == beyond and len(groups) == len(beyond) + 1  # tce1 and tce2
