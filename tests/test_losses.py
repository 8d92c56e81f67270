"""Tests of the `tce` library: the TCE loss of Martinez & Stiefelhagen (GCPR 2018) and its baselines."""

import ast
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import tce
from tce.functional import tamed_nll

ALPHAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.7, 1.0 - 1e-7, 1.0 + 1e-7)
# The paper's losses; the robust and regularised losses that tce also has are tested in test_loss_zoo.py.
FUNCTIONS = {
    "ce": tce.cross_entropy,
    "mse": tce.mse_loss,
    "mae": tce.mae_loss,
    "tce": tce.tamed_cross_entropy,
}
# Log-likelihoods of the target from q_y = 1 down to the -1e4 the losses must stay finite at.
LOG_PROBS = torch.cat([-torch.logspace(4, -6, 41, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])

property_settings = settings(max_examples=60, deadline=None)
finite_alphas = st.floats(min_value=0.0, max_value=5.0)
log_probs = st.floats(min_value=-1e4, max_value=0.0)


def random_batch(n=7, c=5, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, c, generator=generator, dtype=dtype)
    target = torch.randint(c, (n,), generator=generator)
    return logits.requires_grad_(), target


def value_and_grad(loss_fn, logits, target, **kwargs):
    loss = loss_fn(logits, target, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    return loss.detach(), grad


# --- TCE: definition and the gradient the paper designs -------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_alpha_zero_is_torch_cross_entropy_in_value_and_gradient(reduction):
    logits, target = random_batch()
    loss, grad = value_and_grad(tce.tamed_cross_entropy, logits, target, alpha=0.0, reduction=reduction)
    expected_loss, expected_grad = value_and_grad(F.cross_entropy, logits, target, reduction=reduction)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_gradient_wrt_log_prob_is_eq8(alpha):
    expected = -((1 - LOG_PROBS) ** -alpha)
    for dtype, rtol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        log_prob = LOG_PROBS.to(dtype).requires_grad_()
        (grad,) = torch.autograd.grad(tamed_nll(log_prob, alpha).sum(), log_prob)
        torch.testing.assert_close(grad.double(), expected, rtol=rtol, atol=0)


@property_settings
@given(alpha=finite_alphas, log_prob=log_probs)
def test_gradient_wrt_log_prob_is_eq8_for_any_alpha(alpha, log_prob):
    leaf = torch.tensor(log_prob, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(tamed_nll(leaf, alpha), leaf)
    assert grad.item() == pytest.approx(-((1 - log_prob) ** -alpha), rel=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_gradient_wrt_logits_is_eq8_times_the_softmax_jacobian(alpha):
    logits, target = random_batch()
    _, grad = value_and_grad(tce.tamed_cross_entropy, logits, target, alpha=alpha)
    log_q = F.log_softmax(logits.detach(), dim=1)
    log_q_target = log_q[torch.arange(len(target)), target]
    dloss_dlog_q = -((1 - log_q_target) ** -alpha)
    one_hot = F.one_hot(target, logits.shape[1]).double()
    expected = dloss_dlog_q[:, None] * (one_hot - log_q.exp()) / len(target)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.5, 2.0, 3.7])
def test_value_matches_closed_form(alpha):
    expected = ((1 - LOG_PROBS) ** (1 - alpha) - 1) / (1 - alpha)
    torch.testing.assert_close(tamed_nll(LOG_PROBS, alpha), expected, rtol=1e-12, atol=1e-15)


def test_alpha_one_is_the_limit_log_of_one_minus_log_prob():
    torch.testing.assert_close(tamed_nll(LOG_PROBS, 1.0), torch.log1p(-LOG_PROBS), rtol=1e-15, atol=0)


@pytest.mark.parametrize("offset", [-1e-5, -1e-6, -1e-7, 1e-7, 1e-6, 1e-5])
def test_near_alpha_one_matches_closed_form_in_float64_and_float32(offset):
    # In float64 the closed form expm1(b z) / b is accurate for these b = 1 - alpha, so it is a reference.
    b = -offset
    reference = torch.expm1(b * torch.log1p(-LOG_PROBS)) / b
    torch.testing.assert_close(tamed_nll(LOG_PROBS, 1.0 + offset), reference, rtol=1e-12, atol=0)
    float32_value = tamed_nll(LOG_PROBS.float(), 1.0 + offset)
    torch.testing.assert_close(float32_value.double(), reference, rtol=1e-6, atol=1e-7)


def test_continuous_in_alpha_across_one():
    # |d loss / d alpha| is about z^2 / 2 near alpha = 1, with z = log(1 - log q_y). A jump where the
    # implementation switches between closed form and series would exceed that bound between grid points.
    log_prob = LOG_PROBS[:-1]
    z = torch.log1p(-log_prob)
    alphas = torch.linspace(1 - 3e-6, 1 + 3e-6, 241, dtype=torch.float64).tolist()
    values = torch.stack([tamed_nll(log_prob, alpha) for alpha in alphas])
    steps = (values[1:] - values[:-1]).abs()
    bound = (alphas[1] - alphas[0]) * z.square() / 2 * 1.05 + 1e-13 * z
    assert (steps <= bound).all()
    for offset in (-1e-5, -1e-7, 1e-7, 1e-5):
        change = (tamed_nll(log_prob, 1.0 + offset) - tamed_nll(log_prob, 1.0)).abs()
        assert (change <= abs(offset) * z.square() / 2 * 1.05).all()


@pytest.mark.parametrize("alpha", ALPHAS)
def test_loss_is_zero_at_certainty_and_tends_to_zero_as_q_target_tends_to_one(alpha):
    assert tamed_nll(torch.zeros(1, dtype=torch.float64), alpha).item() == 0.0
    margins = torch.tensor([2.0, 5.0, 10.0, 20.0, 40.0], dtype=torch.float64)
    logits = torch.stack([margins, torch.zeros_like(margins)], dim=1)
    losses = tce.tamed_cross_entropy(logits, torch.zeros(5, dtype=torch.long), alpha, reduction="none")
    assert (losses[1:] < losses[:-1]).all()
    assert 0 <= losses[-1] < 1e-16


@pytest.mark.parametrize("alpha", ALPHAS)
def test_loss_decreases_as_q_target_increases(alpha):
    losses = tamed_nll(LOG_PROBS, alpha)  # LOG_PROBS increases towards 0
    assert (losses[1:] < losses[:-1]).all()


@property_settings
@given(alpha=finite_alphas, first=log_probs, second=log_probs)
def test_loss_is_monotone_in_log_prob(alpha, first, second):
    low, high = sorted((first, second))
    values = tamed_nll(torch.tensor([low, high], dtype=torch.float64), alpha)
    assert values[0] >= values[1]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 1.0 + 1e-7, 2.0, 10.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_value_and_gradient_at_log_prob_minus_1e4(alpha, dtype):
    logits = torch.tensor([[0.0, -1e4]], dtype=dtype, requires_grad=True)
    loss, grad = value_and_grad(tce.tamed_cross_entropy, logits, torch.tensor([1]), alpha=alpha)
    expected = tamed_nll(torch.tensor(-1e4, dtype=torch.float64), alpha)
    assert torch.isfinite(grad).all()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # abs: at alpha = 10 the exact gradient, 1e-40, is below float32's smallest normal number.
    assert grad[0, 1].item() == pytest.approx(-((1 + 1e4) ** -alpha), rel=1e-5, abs=1e-38)


# --- MSE and MAE baselines ------------------------------------------------------------------------------


def reference_softmax_error_loss(logits, target, power):
    """sum_j |softmax(x)_j - onehot_j|^power, averaged over samples, written out with loops."""
    total = 0
    for row, label in zip(logits, target.tolist(), strict=True):
        exps = [math.exp(v) for v in row.tolist()]
        probs = [e / sum(exps) for e in exps]
        total += sum(abs(p - (1.0 if j == label else 0.0)) ** power for j, p in enumerate(probs))
    return total / len(target)


@pytest.mark.parametrize(("loss_fn", "power"), [(tce.mse_loss, 2), (tce.mae_loss, 1)])
def test_mse_and_mae_match_hand_written_reference_in_value_and_gradient(loss_fn, power):
    logits, target = random_batch()
    loss, grad = value_and_grad(loss_fn, logits, target)
    expected_loss = reference_softmax_error_loss(logits.detach(), target, power)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-12)

    # Gradient of the reference by central differences, one logit at a time.
    step = 1e-6
    expected_grad = torch.zeros_like(grad)
    for i, j in torch.cartesian_prod(torch.arange(logits.shape[0]), torch.arange(logits.shape[1])).tolist():
        shifted = [logits.detach().clone() for _ in range(2)]
        shifted[0][i, j] += step
        shifted[1][i, j] -= step
        up, down = (reference_softmax_error_loss(x, target, power) for x in shifted)
        expected_grad[i, j] = (up - down) / (2 * step)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-6, atol=1e-8)


def test_mse_is_torch_size_averaged_mse_times_the_number_of_classes():
    logits, target = random_batch(c=10)
    one_hot = F.one_hot(target, 10).double()
    expected = F.mse_loss(logits.softmax(dim=1), one_hot) * 10
    torch.testing.assert_close(tce.mse_loss(logits, target), expected, rtol=1e-12, atol=0)


# --- Reductions, modules, build_loss -------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
def test_reductions_and_module_agree_with_function(name):
    logits, target = random_batch()
    kwargs = {"alpha": 1.5} if name == "tce" else {}
    per_sample = FUNCTIONS[name](logits, target, reduction="none", **kwargs)
    assert per_sample.shape == (len(target),)
    assert (per_sample >= 0).all()
    torch.testing.assert_close(FUNCTIONS[name](logits, target, reduction="sum", **kwargs), per_sample.sum())
    torch.testing.assert_close(FUNCTIONS[name](logits, target, **kwargs), per_sample.mean())
    for reduction in ("mean", "sum", "none"):
        module = tce.build_loss(name, reduction=reduction, **kwargs)
        expected = FUNCTIONS[name](logits, target, reduction=reduction, **kwargs)
        torch.testing.assert_close(module(logits, target), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_unknown_reduction_is_rejected_by_function_and_module(name):
    logits, target = random_batch()
    with pytest.raises(ValueError, match="reduction"):
        FUNCTIONS[name](logits, target, reduction="average")
    with pytest.raises(ValueError, match="reduction"):
        tce.build_loss(name, reduction="average")


def test_build_loss_returns_the_named_module():
    assert tce.LOSSES[:4] == ("ce", "mse", "mae", "tce")
    classes = {"ce": tce.CrossEntropy, "mse": tce.MSELoss, "mae": tce.MAELoss, "tce": tce.TamedCrossEntropy}
    for name, cls in classes.items():
        assert type(tce.build_loss(name)) is cls
    assert tce.build_loss("tce").alpha == 1.0
    assert tce.build_loss("tce", alpha=2).alpha == 2.0


def test_build_loss_rejects_unknown_name_listing_the_valid_ones():
    with pytest.raises(ValueError, match="'ce', 'mse', 'mae', 'tce'"):
        tce.build_loss("huber")


@pytest.mark.parametrize("name", ["ce", "mse", "mae"])
def test_build_loss_accepts_alpha_only_for_tce(name):
    with pytest.raises(TypeError, match="alpha"):
        tce.build_loss(name, alpha=1.0)


def test_extra_repr_shows_alpha_and_reduction():
    assert repr(tce.TamedCrossEntropy(1.5, "sum")) == "TamedCrossEntropy(alpha=1.5, reduction='sum')"
    assert repr(tce.MSELoss()) == "MSELoss(reduction='mean')"


@pytest.mark.parametrize("alpha", [-0.1, -1, math.nan, math.inf, -math.inf, True, torch.tensor(1.0)])
def test_invalid_alpha_is_rejected(alpha):
    logits, target = random_batch()
    with pytest.raises(ValueError, match="alpha"):
        tce.tamed_cross_entropy(logits, target, alpha)
    with pytest.raises(ValueError, match="alpha"):
        tce.TamedCrossEntropy(alpha)
    with pytest.raises(ValueError, match="alpha"):
        tce.build_loss("tce", alpha=alpha)


# --- Input checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize(
    ("logits", "target", "message"),
    [
        (torch.zeros(5), torch.zeros(5, dtype=torch.long), r"logits must have shape \(N, C\)"),
        (torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long), r"logits must have shape \(N, C\)"),
        (torch.zeros(2, 3), torch.zeros(2, 1, dtype=torch.long), r"target must have shape \(N,\)"),
        (torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), "batch size"),
        (torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long), "floating point"),
        (torch.zeros(2, 3), torch.zeros(2), "integer class indices"),
        (torch.zeros(2, 3), torch.zeros(2, dtype=torch.bool), "integer class indices"),
        (torch.zeros(2, 3), torch.tensor([0, 3]), r"\[0, 3\), got \[3\]"),
        (torch.zeros(2, 3), torch.tensor([-1, 2]), r"\[0, 3\), got \[-1\]"),
    ],
)
def test_bad_inputs_raise_value_error(name, logits, target, message):
    with pytest.raises(ValueError, match=message):
        FUNCTIONS[name](logits, target)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_int32_targets_give_the_same_loss_as_int64(name):
    logits, target = random_batch()
    torch.testing.assert_close(FUNCTIONS[name](logits, target.int()), FUNCTIONS[name](logits, target))


# --- Dtypes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_precision_logits_keep_their_dtype(name, dtype):
    logits, target = random_batch(dtype=dtype)
    assert FUNCTIONS[name](logits, target).dtype == dtype


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_are_computed_in_float32(name, dtype):
    logits, target = random_batch(dtype=dtype)
    loss, grad = value_and_grad(FUNCTIONS[name], logits, target)
    rounded = logits.detach().float().requires_grad_()
    expected_loss, expected_grad = value_and_grad(FUNCTIONS[name], rounded, target)
    assert loss.dtype == torch.float32
    assert torch.equal(loss, expected_loss)
    assert grad.dtype == dtype
    assert torch.equal(grad, expected_grad.to(dtype))


def test_loss_under_cpu_autocast_is_float32():
    layer = torch.nn.Linear(4, 3)
    features, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(features)
        loss = tce.tamed_cross_entropy(logits, target, alpha=1.5)
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    assert torch.equal(loss, tce.tamed_cross_entropy(logits.float(), target, alpha=1.5))


# --- torch.compile and dependencies ---------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
def test_compiles_to_a_single_graph_with_the_same_value_and_gradient(name):
    compiled = torch.compile(FUNCTIONS[name], fullgraph=True, backend="aot_eager")
    logits, target = random_batch(dtype=torch.float32)
    # A second alpha makes dynamo retrace with alpha as a symbolic float.
    for kwargs in ({"alpha": 1.0}, {"alpha": 1.5}) if name == "tce" else ({},):
        loss, grad = value_and_grad(compiled, logits, target, **kwargs)
        expected_loss, expected_grad = value_and_grad(FUNCTIONS[name], logits, target, **kwargs)
        torch.testing.assert_close(loss, expected_loss)
        torch.testing.assert_close(grad, expected_grad)


def test_package_imports_only_torch_and_the_standard_library():
    package = Path(tce.__file__).parent
    imported = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"torch", "tce"}

    harness_modules = ("hydra", "omegaconf", "pandas", "torchvision", "scipy", "matplotlib")
    probe = f"import sys, tce; print([m for m in {harness_modules!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
