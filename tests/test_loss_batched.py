"""tce.batched: rows of several settings of one loss in one call equal each setting's own loss, in value and gradient,
in float64; the per-call parameters group settings; TCE's alpha as a tensor keeps its series near 1."""

import pytest
import torch
from test_apl_losses import SETTINGS as APL_SETTINGS
from test_loss_zoo import NEEDING

import tce
from tce import batched

# Two or three settings of every loss, mixing the values that take different branches: TCE at 0, 1 (its series), a
# hair off 1 and above 1; focal below and above gamma 1; AUL's a close to 1 (its far branch); LogitClip's thresholds
# on either side of the rows' norms; JS near both ends.
SETTINGS = {
    "ce": [{}],
    "mse": [{}],
    "mae": [{}],
    "tce": [{"alpha": 0.0}, {"alpha": 1.0}, {"alpha": 1.0 + 1e-7}, {"alpha": 1.5}, {"alpha": 3.7}],
    "gce": [{"q": 0.3}, {"q": 0.7}, {"q": 1.0}],
    "rce": [{"A": -4.0}, {"A": -9.21}],
    "sce": [{"alpha": 0.1, "beta": 1.0}, {"alpha": 6.0, "beta": 0.1, "A": -4.0}],
    "nce": [{}],
    "nce+rce": [{"alpha": 1.0, "beta": 1.0}, {"alpha": 10.0, "beta": 0.1}],
    "nce+mae": [{"alpha": 1.0, "beta": 10.0}, {"alpha": 10.0, "beta": 1.0}],
    "focal": [{"gamma": 0.0}, {"gamma": 0.5}, {"gamma": 2.0}],
    "taylor": [{"t": 2}, {"t": 4}],
    "poly1": [{"epsilon": -1.0}, {"epsilon": 2.0}],
    "label_smoothing": [{"epsilon": 0.1}, {"epsilon": 0.4}],
    "bootstrap_soft": [{"beta": 0.8}, {"beta": 0.95}],
    "bootstrap_hard": [{"beta": 0.6}, {"beta": 0.9}],
    "agce": [{"a": 4.0, "q": 0.2}, {"a": 0.6, "q": 0.6}],
    "aul": [{"a": 3.0, "q": 0.1}, {"a": 1.01, "q": 3.0}],
    "ael": [{"a": 2.5}, {"a": 3.5}],
    "nce+agce": [{"alpha": 0.0, "beta": 1.0, "a": 4.0, "q": 0.2}, {"alpha": 10.0, "beta": 0.1, "a": 1.8, "q": 3.0}],
    "nce+aul": [{"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5}, {"alpha": 10.0, "beta": 0.015, "a": 6.0, "q": 3.0}],
    "nce+ael": [{"alpha": 1.0, "beta": 4.0, "a": 5.0}, {"alpha": 10.0, "beta": 0.1, "a": 1.5}],
    "nnce": [{}],
    "eps_softmax": [{"alpha": 0.01, "beta": 5.0, "m": 1e5}, {"alpha": 0.03, "beta": 1.0, "m": 0.0}],
    "js": [{"pi": 0.01}, {"pi": 0.5}, {"pi": 0.99}],
    "logit_clip": [{"tau": 0.5}, {"tau": 2.0}, {"tau": 30.0}, {"tau": 1.0, "semantics": "paper"},
                   {"tau": 1.0, "p_norm": 1.0}],
    **APL_SETTINGS,
}


def test_every_loss_has_settings_here():
    """Those that need more than logits and labels are tested with their needs in test_loss_needs.py."""
    assert set(SETTINGS) == set(tce.LOSSES) - set(NEEDING)


def batch(rows: int, seed: int = 0):
    """Logits of every size, a saturated row (p_y = 1 in float64), a zero row, and targets; float64."""
    g = torch.Generator().manual_seed(seed)
    logits = 4 * torch.randn(rows, 10, generator=g, dtype=torch.float64)
    logits[0] = 0.0
    logits[1, 3] = 60.0
    target = torch.randint(0, 10, (rows,), generator=g)
    target[1] = 3
    target[2] = logits[2].argmax()  # eps_softmax's argmax branch
    return logits, target


def value_and_grad(compute, logits, target):
    logits = logits.clone().requires_grad_()
    losses = compute(logits, target)
    (grad,) = torch.autograd.grad(losses.sum(), logits)
    return losses.detach(), grad


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_rows_of_mixed_settings_equal_each_setting_alone(name):
    """Row i has setting i mod S; each family (equal per-call parameters) is one call with the other parameters as
    tensors, against build_loss of each setting on its own rows."""
    settings = [batched.check_params(name, s) for s in SETTINGS[name]]
    logits, target = batch(6 * len(settings))
    rows = torch.arange(len(target))
    expected_loss, expected_grad = torch.zeros(len(target), dtype=torch.float64), torch.zeros_like(logits)
    for i, params in enumerate(settings):
        mine = rows % len(settings) == i
        loss, grad = value_and_grad(tce.build_loss(name, reduction="none", **params), logits[mine], target[mine])
        expected_loss[mine], expected_grad[mine] = loss, grad
    found_loss, found_grad = torch.zeros_like(expected_loss), torch.zeros_like(expected_grad)
    families = sorted({batched.family(name, p) for p in settings})
    for fam in families:
        members = [i for i, p in enumerate(settings) if batched.family(name, p) == fam]
        mine = torch.isin(rows % len(settings), torch.tensor(members))
        setting_of_row = (rows % len(settings))[mine]
        fixed = {key: settings[members[0]][key] for key in batched.PER_CALL[name]}
        per_row = {key: torch.tensor([settings[s][key] for s in setting_of_row.tolist()], dtype=torch.float64)
                   for key in settings[0] if key not in fixed}
        loss, grad = value_and_grad(lambda x, y, f=fixed, p=per_row: batched.per_sample_loss(name, x, y, **f, **p),
                                    logits[mine], target[mine])
        found_loss[mine], found_grad[mine] = loss, grad
    assert len(families) == len({tuple(sorted((k, p[k]) for k in batched.PER_CALL[name])) for p in settings})
    torch.testing.assert_close(found_loss, expected_loss, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(found_grad, expected_grad, rtol=1e-12, atol=1e-14)
    assert torch.isfinite(found_grad).all()


def test_tce_alpha_as_a_tensor_takes_the_series_near_one_and_passes_no_nan():
    """At alpha = 1 the closed form is 0 / 0; a tensor alpha of 1 must give log(1 - log q) and a finite gradient."""
    log_prob = torch.tensor([-1e-3, -2.0, -50.0, 0.0], dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor([1.0, 1.0, 1.0 - 1e-8, 1.0], dtype=torch.float64)
    loss = tce.tamed_nll(log_prob, alpha)
    (grad,) = torch.autograd.grad(loss.sum(), log_prob)
    expected = torch.log1p(-log_prob.detach())
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-7, atol=1e-15)
    # d/d(log q) log(1 - log q) = -1 / (1 - log q): Eq. 8 at alpha = 1.
    torch.testing.assert_close(grad, -1 / (1 - log_prob.detach()), rtol=1e-7, atol=0)


def test_check_params_refuses_what_build_loss_refuses():
    with pytest.raises(ValueError, match="alpha"):
        batched.check_params("tce", {"alpha": -1.0})
    with pytest.raises(TypeError):
        batched.check_params("ce", {"alpha": 1.0})
    with pytest.raises(ValueError, match="q"):
        batched.check_params("gce", {"q": 0.0})
    assert batched.check_params("sce", {"alpha": 0.1, "beta": 1.0}) == tce.build_loss("sce", alpha=0.1, beta=1.0).params
