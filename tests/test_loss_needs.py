"""The losses that need more than logits and labels (tce.LOSS_NEEDS): ANL-CE and JAL-CE (the model's parameters),
forward and backward correction (a transition matrix), ELR (each sample's index and a memory), against float64
references written from their formulas, in value and gradient, on random and extreme logits, one hand-computed
number each; the transition matrix's checks; and the same through tce.batched with one setting per row."""

import math

import pytest
import torch
import torch.nn.functional as F
from test_loss_zoo import QUARTERS, extreme_batch, random_batch

import tce
from tce import batched

NEEDING = ("anl_ce", "jal_ce", "forward", "backward", "elr")
LN2 = math.log(2)
L7 = math.log(1e7)


def test_the_needing_losses_follow_the_others_and_declare_their_needs():
    start = tce.LOSSES.index(NEEDING[0])
    assert tce.LOSSES[start:start + len(NEEDING)] == NEEDING
    assert {name: tce.LOSS_NEEDS[name] for name in NEEDING} == {
        "anl_ce": ("parameters",), "jal_ce": ("parameters",), "forward": ("transition",),
        "backward": ("transition_inverse",), "elr": ("index", "memory"),
    }
    assert all(tce.LOSS_NEEDS[name] == () for name in tce.LOSSES if name not in NEEDING)
    assert {name: tce.LOSS_PARAMS[name] for name in NEEDING} == {
        "anl_ce": {"alpha": None, "beta": None, "delta": None},
        "jal_ce": {"alpha": None, "beta": None, "a": None, "delta": None},
        "forward": {}, "backward": {}, "elr": {"beta": None, "lambda_": None},
    }
    assert {name: batched.PENALTY[name] for name in NEEDING} == {
        "anl_ce": "delta", "jal_ce": "delta", "forward": None, "backward": None, "elr": None}


# --- References, in float64, from the formulas ----------------------------------------------------------


def nce_and_p(logits, target):
    logits = logits.double()
    log_p = logits.log_softmax(dim=1)
    rows = torch.arange(len(target))
    return log_p[rows, target] / log_p.sum(dim=1), logits.softmax(dim=1), log_p, rows


def ref_anl(logits, target, alpha, beta):
    nce, p, _, rows = nce_and_p(logits, target)
    shifted = -math.log(1e-7) + p.clamp(1e-7, 1).log()  # A + log p~, A = -log 1e-7
    return alpha * nce + beta * (1 - shifted[rows, target] / shifted.sum(dim=1))


def ref_jal(logits, target, alpha, beta, a):
    nce, p, _, _ = nce_and_p(logits, target)
    c = logits.shape[1]
    amse = sum((p[:, k] - a * (target == k).double()) ** 2 for k in range(c)) / c
    return alpha * nce + beta * amse


def ref_forward(logits, target, transition):
    p = logits.double().softmax(dim=1).clamp(1e-7, 1 - 1e-7)
    noisy = p @ transition.double()  # (p^T T)_j for every j
    return -torch.log(noisy[torch.arange(len(target)), target])


def ref_backward(logits, target, transition):
    p = logits.double().softmax(dim=1).clamp(1e-7, 1 - 1e-7)
    inverse = torch.linalg.inv(transition.double())
    return -(inverse[target] * p.log()).sum(dim=1)


def ref_elr(logits, target, index, memory, beta, lambda_):
    """Sample by sample, as a loop: t_i <- beta t_i + (1 - beta) p^_i / sum p^_i (p^ detached), then the loss."""
    losses = []
    for i in range(len(target)):
        z = logits[i].double()
        p_hat = z.softmax(dim=0).clamp(1e-4, 1 - 1e-4)
        seen = p_hat.detach()
        t = beta * memory[index[i]] + (1 - beta) * seen / seen.sum()
        memory[index[i]] = t
        losses.append(-z.log_softmax(dim=0)[target[i]] + lambda_ * torch.log(1 - (t * p_hat).sum()))
    return torch.stack(losses)


def stochastic(c, seed=0, noise=0.4):
    """A random row-stochastic T, (1 - noise) on the diagonal, the rest spread at random over the other classes."""
    g = torch.Generator().manual_seed(seed)
    off = torch.rand(c, c, generator=g, dtype=torch.float64) * (1 - torch.eye(c, dtype=torch.float64))
    return (1 - noise) * torch.eye(c, dtype=torch.float64) + noise * off / off.sum(dim=1, keepdim=True)


def grads(compute, logits, *args):
    x = logits.detach().double().requires_grad_()
    values = compute(x, *args)
    (g,) = torch.autograd.grad(values.sum(), x)
    return values.detach(), g


BATCHES = {"random": lambda c: random_batch(n=24, c=c, dtype=torch.float64), "extreme": extreme_batch}


@pytest.mark.parametrize("c", [3, 10])
@pytest.mark.parametrize("kind", BATCHES)
def test_anl_and_jal_without_penalty_match_the_formula(kind, c):
    logits, target = BATCHES[kind](c)
    cases = [("anl_ce", {"alpha": 5.0, "beta": 5.0}, ref_anl), ("anl_ce", {"alpha": 10.0, "beta": 1.0}, ref_anl),
             ("jal_ce", {"alpha": 1.0, "beta": 1.0, "a": 30.0}, ref_jal),
             ("jal_ce", {"alpha": 5.0, "beta": 1.0, "a": 1.0}, ref_jal)]
    for name, params, ref in cases:
        loss = tce.build_loss(name, reduction="none", delta=0.0, **params)
        found = grads(lambda x, f=loss, p=params: f(x, target, parameters=[]), logits)
        expected = grads(lambda x, p=params, r=ref: r(x, target, **p), logits)
        torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("c", [3, 10])
@pytest.mark.parametrize("kind", BATCHES)
@pytest.mark.parametrize("name", ["forward", "backward"])
def test_corrections_match_the_formula(name, kind, c):
    logits, target = BATCHES[kind](c)
    transition = stochastic(c, seed=c)
    if name == "forward":
        found = grads(lambda x: tce.forward_correction(x, target, transition=transition, reduction="none"), logits)
        expected = grads(lambda x: ref_forward(x, target, transition), logits)
    else:
        inverse = tce.inverse_transition(transition)
        found = grads(lambda x: tce.backward_correction(x, target, transition_inverse=inverse, reduction="none"),
                      logits)
        expected = grads(lambda x: ref_backward(x, target, transition), logits)
    torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-12)
    assert torch.isfinite(found[0]).all() and torch.isfinite(found[1]).all()


@pytest.mark.parametrize("c", [3, 10])
@pytest.mark.parametrize("kind", BATCHES)
def test_elr_value_gradient_and_memory_match_a_loop_over_two_steps(kind, c):
    logits, target = BATCHES[kind](c)
    n = len(target)
    g = torch.Generator().manual_seed(1)
    memory = torch.zeros(3 * n, c, dtype=torch.float64)
    expected_memory = memory.clone()
    for step in range(2):  # the second step starts from the memory the first left
        index = torch.randperm(3 * n, generator=g)[:n]
        x = logits.roll(step, dims=0)
        found = grads(lambda z, i=index: tce.early_learning_regularization(
            z, target, index=i, memory=memory, beta=0.7, lambda_=3.0, reduction="none"), x)
        expected = grads(lambda z, i=index: ref_elr(z, target, i, expected_memory, 0.7, 3.0), x)
        torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(memory, expected_memory, rtol=1e-12, atol=1e-15)
    assert (memory.abs().sum(dim=1) > 0).sum() > n  # both steps wrote their rows


# --- Hand-computed values: logits log(1, 1, 2), p = (1/4, 1/4, 1/2) --------------------------------------------

PARAMS = [torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([[0.5]], dtype=torch.float64)]  # sum |.| 3.5
# T = 0.4 I + 0.2 J: its inverse is 2.5 I - 0.5 J (2 on the diagonal, -0.5 off it).
T_SYM = 0.4 * torch.eye(3, dtype=torch.float64) + 0.2
T_FWD = torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.0, 0.0, 1.0]], dtype=torch.float64)
HAND = [
    # NCE (y = 2) = ln 2 / 5 ln 2 = 1/5; NNCE = 1 - (L - ln 2) / (3 L - 5 ln 2), L = ln 1e7; penalty 0.5 * 3.5.
    ("anl_ce", {"alpha": 2.0, "beta": 3.0, "delta": 0.5, "parameters": PARAMS}, 2,
     0.4 + 3 * (1 - (L7 - LN2) / (3 * L7 - 5 * LN2)) + 1.75),
    # AMSE, a = 2: ((1/4)^2 + (1/4)^2 + (1/2 - 2)^2) / 3 = 2.375 / 3 (the sum would be 2.375); 0.4 + 3 * that + 1.75.
    ("jal_ce", {"alpha": 2.0, "beta": 3.0, "a": 2.0, "delta": 0.5, "parameters": PARAMS}, 2, 0.4 + 2.375 + 1.75),
    # (p^T T)_2 = 1/4 * 1/4 + 1/4 * 1/4 + 1/2 * 1 = 5/8: -ln(5/8).
    ("forward", {"transition": T_FWD}, 2, math.log(1.6)),
    # y = 0: -(2 ln(1/4) - 0.5 ln(1/4) - 0.5 ln(1/2)) = 2.5 ln 2.
    ("backward", {"transition_inverse": tce.inverse_transition(T_SYM)}, 0, 2.5 * LN2),
    # t = 0.5 * 0 + 0.5 * p; <t, p> = 0.5 * (1/16 + 1/16 + 1/4) = 0.1875: ln 2 + 2 ln(0.8125).
    ("elr", {"beta": 0.5, "lambda_": 2.0}, 2, LN2 + 2 * math.log(0.8125)),
]


@pytest.mark.parametrize(("name", "params", "label", "expected"), HAND, ids=[case[0] for case in HAND])
def test_hand_computed_value(name, params, label, expected):
    for dtype, rel in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        extra = {"index": torch.tensor([1]), "memory": torch.zeros(2, 3, dtype=dtype)} if name == "elr" else {}
        loss = tce.build_loss(name, **{k: v for k, v in params.items() if not isinstance(v, torch.Tensor | list)})
        needs = {k: v for k, v in params.items() if isinstance(v, torch.Tensor | list)}
        assert loss(QUARTERS.to(dtype), torch.tensor([label]), **needs, **extra).item() == pytest.approx(expected,
                                                                                                           rel=rel)
        if name == "elr":
            torch.testing.assert_close(extra["memory"][1], torch.tensor([0.125, 0.125, 0.25], dtype=dtype))
            assert extra["memory"][0].abs().sum() == 0


def test_every_needing_loss_has_a_hand_computed_value():
    assert {case[0] for case in HAND} == set(NEEDING)


# --- The L1 penalty ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["anl_ce", "jal_ce"])
def test_penalty_is_delta_times_the_l1_norm_of_every_parameter_batchnorm_included(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Linear(6, 3)).double()
    with torch.no_grad():
        model[1].bias.fill_(-0.25)  # BatchNorm's weight starts at 1 and its bias at 0: both count
    x, target = torch.randn(8, 4, dtype=torch.float64), torch.randint(3, (8,))
    params = {"alpha": 1.0, "beta": 2.0, **({"a": 3.0} if name == "jal_ce" else {})}
    delta = 1e-2
    logits = model(x)
    with_penalty = tce.build_loss(name, delta=delta, **params)(logits, target, parameters=model.parameters())
    without = tce.build_loss(name, delta=0.0, **params)(logits, target, parameters=model.parameters())
    l1 = sum(float(p.detach().abs().sum()) for _, p in model.named_parameters())  # weights, biases, BatchNorm's two
    assert l1 > float(model[0].weight.detach().abs().sum()) + 6 + 1.5  # BatchNorm's weight (6 ones) and bias (6 x 0.25)
    assert with_penalty.item() == pytest.approx(without.item() + delta * l1, rel=1e-12)
    model.zero_grad()
    (with_penalty - without).backward()
    for _, p in model.named_parameters():  # the penalty's gradient: delta sign(theta), BatchNorm's included
        torch.testing.assert_close(p.grad, delta * p.detach().sign(), rtol=1e-12, atol=1e-12)
    # "none": each sample's loss carries the whole penalty, so their mean is the "mean" loss.
    none = tce.build_loss(name, delta=delta, reduction="none", **params)(logits, target,
                                                                         parameters=model.parameters())
    assert none.mean().item() == pytest.approx(with_penalty.item(), rel=1e-12)
    summed = tce.build_loss(name, delta=delta, reduction="sum", **params)(logits, target,
                                                                          parameters=model.parameters())
    assert summed.item() == pytest.approx(without.item() * 8 + delta * l1, rel=1e-12)


def test_jal_amse_is_the_mean_over_classes_not_the_sum():
    # alpha 0, beta 1, a 1, y = 2: ((1/4)^2 + (1/4)^2 + (1/2)^2) / 3 = 0.125; a .sum(1) port would give 0.375.
    loss = tce.joint_asymmetric_loss(QUARTERS, torch.tensor([2]), parameters=[], alpha=0.0, beta=1.0, a=1.0,
                                     delta=0.0)
    assert loss.item() == pytest.approx(0.125, rel=1e-12)


# --- The transition matrix --------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [2, 10, 100])
def test_inverse_transition_times_t_is_the_identity(c):
    t = stochastic(c, seed=c, noise=0.6)
    inverse = tce.inverse_transition(t)
    assert inverse.dtype == torch.float64
    torch.testing.assert_close(t @ inverse, torch.eye(c, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(inverse @ t, torch.eye(c, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("c", [2, 10, 100])
def test_uniform_noise_at_rate_c_minus_one_over_c_is_refused_as_singular(c):
    eta = (c - 1) / c
    t = (1 - eta) * torch.eye(c, dtype=torch.float64) + eta / (c - 1) * (1 - torch.eye(c, dtype=torch.float64))
    torch.testing.assert_close(t, torch.full((c, c), 1 / c, dtype=torch.float64))
    for refuse in (tce.inverse_transition, lambda m: tce.forward_correction(torch.zeros(1, c), torch.tensor([0]),
                                                                            transition=m)):
        with pytest.raises(ValueError, match=r"^transition is singular \(condition number") as error:
            refuse(t)
        assert "\n" not in str(error.value)
    tce.inverse_transition(stochastic(c, noise=eta * 0.9))  # short of it: accepted


F64 = torch.float64


@pytest.mark.parametrize(("matrix", "message"), [
    (torch.tensor([[0.9, 0.2], [0.1, 0.9]], dtype=F64),
     r"^transition must be row-stochastic \(each row sums to 1\), got row 0 summing to 1\.1"),
    (torch.tensor([[1.2, -0.2], [0.1, 0.9]], dtype=F64),
     r"^transition must have finite entries >= 0, got -0\.2.* at \(0, 1\)"),
    (torch.tensor([[math.nan, 1.0], [0.1, 0.9]]), r"^transition must have finite entries >= 0, got nan at \(0, 0\)"),
    (torch.ones(2, 3) / 3, r"^transition must be a C x C matrix with C >= 2, got shape \(2, 3\)"),
    (torch.ones(1, 1), r"^transition must be a C x C matrix"),
])
def test_a_bad_transition_matrix_is_refused_in_one_line(matrix, message):
    for refuse in (tce.inverse_transition,
                   lambda m: tce.forward_correction(torch.zeros(1, m.shape[-1]), torch.tensor([0]), transition=m)):
        with pytest.raises(ValueError, match=message) as error:
            refuse(matrix)
        assert "\n" not in str(error.value)


def test_backward_is_unbiased_for_the_clean_loss_and_can_go_negative():
    """E over y~ ~ T[y] of the backward loss is the clean cross entropy (Patrini et al., Theorem 1), p unclipped."""
    t = stochastic(4, noise=0.5)
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0]], dtype=torch.float64)
    inverse = tce.inverse_transition(t)
    for y in range(4):
        expectation = sum(t[y, j] * tce.backward_correction(logits, torch.tensor([j]), transition_inverse=inverse)
                          for j in range(4))
        assert expectation.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([y])).item(), rel=1e-12)
    confident = torch.tensor([[20.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    assert tce.backward_correction(confident, torch.tensor([0]), transition_inverse=inverse) < 0


# --- Parameters ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params", "message"), [
    ("anl_ce", {"alpha": 1, "beta": 1, "delta": -1e-6}, "delta must be a finite number >= 0, got -1e-06"),
    ("anl_ce", {"alpha": -1, "beta": 1, "delta": 0}, "alpha must be a finite number >= 0, got -1"),
    ("jal_ce", {"alpha": 1, "beta": 1, "a": 0.5, "delta": 0}, "a must be a finite number >= 1, got 0.5"),
    ("jal_ce", {"alpha": 1, "beta": 1, "a": 2, "delta": math.inf}, "delta must be a finite number >= 0, got inf"),
    ("elr", {"beta": 1.5, "lambda_": 3}, "beta must be in [0, 1], got 1.5"),
    ("elr", {"beta": 0.7, "lambda_": -3}, "lambda_ must be a finite number >= 0, got -3"),
])
def test_a_bad_parameter_is_a_one_line_value_error(name, params, message):
    with pytest.raises(ValueError) as error:
        tce.build_loss(name, **params)
    assert str(error.value) == message


def test_a_missing_need_is_a_type_error():
    logits, target = random_batch(n=2, c=3)
    with pytest.raises(TypeError, match="'parameters'"):
        tce.active_negative_loss(logits, target, alpha=1.0, beta=1.0, delta=0.0)
    with pytest.raises(TypeError, match="'memory'"):
        tce.early_learning_regularization(logits, target, index=torch.arange(2), beta=0.7, lambda_=3.0)


# --- tce.batched: one setting per row -----------------------------------------------------------------------------


def test_batched_rows_of_several_anl_and_jal_settings_equal_each_alone():
    logits, target = random_batch(n=12, c=10, dtype=torch.float64)
    jal = [{"alpha": 1.0, "beta": 1.0, "a": 30.0}, {"alpha": 5.0, "beta": 1.0, "a": 20.0}]
    for name, settings in (("anl_ce", [{"alpha": 1.0, "beta": 1.0}, {"alpha": 10.0, "beta": 1.0}]), ("jal_ce", jal)):
        of_row = torch.arange(12) % 2
        rows = {key: torch.tensor([settings[s][key] for s in of_row.tolist()], dtype=torch.float64)
                for key in settings[0]}
        found = grads(lambda x, n=name, r=rows: batched.per_sample_loss(n, x, target, **r), logits)
        expected = torch.zeros(12, dtype=torch.float64), torch.zeros_like(logits)
        for s, params in enumerate(settings):
            mine = of_row == s
            loss = tce.build_loss(name, reduction="none", delta=0.0, **params)
            value, grad = grads(lambda x, f=loss, m=mine: f(x, target[m], parameters=[]), logits[mine])
            expected[0][mine], expected[1][mine] = value, grad
        torch.testing.assert_close(found, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["forward", "backward"])
def test_batched_rows_with_a_transition_matrix_each_equal_each_alone(name):
    logits, target = random_batch(n=12, c=10, dtype=torch.float64)
    matrices = [stochastic(10, seed=s, noise=0.2 + 0.2 * s) for s in range(3)]
    need = "transition" if name == "forward" else "transition_inverse"
    given = matrices if name == "forward" else [tce.inverse_transition(t) for t in matrices]
    of_row = torch.arange(12) % 3
    per_row = torch.stack([given[s] for s in of_row.tolist()])  # (N, C, C)
    found = grads(lambda x: batched.per_sample_loss(name, x, target, **{need: per_row}), logits)
    expected = torch.zeros(12, dtype=torch.float64), torch.zeros_like(logits)
    for s in range(3):
        mine = of_row == s
        value, grad = grads(lambda x, m=mine, s=s: tce.build_loss(name, reduction="none")(
            x, target[m], **{need: given[s]}), logits[mine])
        expected[0][mine], expected[1][mine] = value, grad
    torch.testing.assert_close(found, expected, rtol=1e-12, atol=1e-14)


def test_batched_elr_rows_of_two_members_with_offset_indices_equal_each_alone():
    """Two members' memories as one (2 N, C) tensor, member k's rows at k N + its index; beta and lambda_ per row."""
    n, c = 8, 5
    logits, target = random_batch(n=2 * n, c=c, dtype=torch.float64)
    settings = [{"beta": 0.7, "lambda_": 3.0}, {"beta": 0.9, "lambda_": 7.0}]
    member = torch.arange(2 * n) % 2
    index = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(k)) for k in range(2)])
    index = index.view(2, n).t().reshape(-1)  # row 2 b + k: member k's b-th sample
    memory = torch.zeros(2 * n, c, dtype=torch.float64)
    rows = {key: torch.tensor([settings[k][key] for k in member.tolist()], dtype=torch.float64) for key in settings[0]}
    found = grads(lambda x: batched.per_sample_loss("elr", x, target, index=index + n * member, memory=memory,
                                                    **rows), logits)
    expected = torch.zeros(2 * n, dtype=torch.float64), torch.zeros_like(logits)
    for k in range(2):
        mine = member == k
        own = torch.zeros(n, c, dtype=torch.float64)
        value, grad = grads(lambda x, m=mine, o=own, k=k: tce.build_loss("elr", reduction="none", **settings[k])(
            x, target[m], index=index[m], memory=o), logits[mine])
        expected[0][mine], expected[1][mine] = value, grad
        torch.testing.assert_close(memory[k * n:(k + 1) * n], own, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(found, expected, rtol=1e-12, atol=1e-14)
