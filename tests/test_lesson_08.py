"""Notebook 08 (why a deep net does not train): its exercises and its library module.

Exercises: the planted mistakes ("mutants", wrong versions a learner would plausibly write; MUTANTS,
run with every other exercise's by tests/test_exercises.py, which also passes each reference and
stub) and what is special to these checks. Library (mnist_course.diagnostics): init_std against torch.nn.init's
own draws, init_weights_, deep_mlp, LayerStats against values computed without hooks, and the
gradient- and update-to-data ratios.

MUTANTS has the format of tests/test_exercises.py's table (exercise id -> [(mutant, words its
failure message must contain)]).
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_course import diagnostics as D
from mnist_course import exercises as E
from mnist_course.exercises import solutions as S

# ------------------------------------------------------------------------------ 08.1 mutants

_GAIN = {"linear": 1.0, "tanh": 5 / 3, "relu": math.sqrt(2)}


def init_std_variance(fan_in, fan_out, scheme, nonlinearity):
    g = _GAIN[nonlinearity]
    return g**2 * 2 / (fan_in + fan_out) if scheme == "xavier" else g**2 / fan_in


def init_std_no_gain(fan_in, fan_out, scheme, nonlinearity):
    return math.sqrt(2 / (fan_in + fan_out)) if scheme == "xavier" else 1 / math.sqrt(fan_in)


def init_std_kaiming_fan_out(fan_in, fan_out, scheme, nonlinearity):
    g = _GAIN[nonlinearity]
    return g * math.sqrt(2 / (fan_in + fan_out)) if scheme == "xavier" else g / math.sqrt(fan_out)


def init_std_xavier_fan_in(fan_in, fan_out, scheme, nonlinearity):
    return _GAIN[nonlinearity] / math.sqrt(fan_in)


def init_std_gain_in_variance(fan_in, fan_out, scheme, nonlinearity):
    g = _GAIN[nonlinearity]
    return math.sqrt(g * 2 / (fan_in + fan_out)) if scheme == "xavier" else math.sqrt(g / fan_in)


def init_std_relu_factor_twice(fan_in, fan_out, scheme, nonlinearity):
    g = _GAIN[nonlinearity]
    return g * math.sqrt(2 / (fan_in + fan_out)) if scheme == "xavier" else g * math.sqrt(2 / fan_in)


# ------------------------------------------------------------------------------ 08.2 mutants


def _tanh_layers(model):
    return [m for m in model.modules() if isinstance(m, nn.Tanh)]


def _stats(outputs, threshold, two_sided=True):
    return [(A.mean().item(), A.std().item(),
             ((A.abs() if two_sided else A) > threshold).float().mean().item()) for A in outputs]


def stats_of_inputs(model, X, threshold=0.97):
    outputs = []
    handles = [m.register_forward_hook(lambda mod, inp, out: outputs.append(inp[0].detach())) for m in _tanh_layers(model)]
    with torch.no_grad():
        model(X)
    for h in handles:
        h.remove()
    return _stats(outputs, threshold)


def stats_one_sided(model, X, threshold=0.97):
    outputs = []
    handles = [m.register_forward_hook(lambda mod, inp, out: outputs.append(out.detach())) for m in _tanh_layers(model)]
    with torch.no_grad():
        model(X)
    for h in handles:
        h.remove()
    return _stats(outputs, threshold, two_sided=False)


def stats_hooks_left(model, X, threshold=0.97):
    outputs = []
    for m in _tanh_layers(model):
        m.register_forward_hook(lambda mod, inp, out: outputs.append(out.detach()))
    with torch.no_grad():
        model(X)
    return _stats(outputs, threshold)


def stats_every_module(model, X, threshold=0.97):
    outputs = []
    handles = [m.register_forward_hook(lambda mod, inp, out: outputs.append(out.detach()))
               for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(X)
    for h in handles:
        h.remove()
    return _stats(outputs, threshold)


# ------------------------------------------------------------------------------ 08.3 mutants


def _grad_hooks(model, X, y, which="output", reduction="mean", remove=True):
    grads = []

    def hook(module, grad_input, grad_output):
        grads.append((grad_output if which == "output" else grad_input)[0])

    handles = [m.register_full_backward_hook(hook) for m in _tanh_layers(model)]
    F.cross_entropy(model(X), y, reduction=reduction).backward()
    if remove:
        for h in handles:
            h.remove()
    return grads


def grads_backward_order(model, X, y):
    return [g.std().item() for g in _grad_hooks(model, X, y)]


def grads_of_input(model, X, y):
    return [g.std().item() for g in reversed(_grad_hooks(model, X, y, which="input"))]


def grads_summed_loss(model, X, y):
    return [g.std().item() for g in reversed(_grad_hooks(model, X, y, reduction="sum"))]


def grads_hooks_left(model, X, y):
    return [g.std().item() for g in reversed(_grad_hooks(model, X, y, remove=False))]


# ------------------------------------------------------------------------------ 08.4 mutants


def _mlp_backward_variant(params, X, y, divide=True, mask=True, own_output=False, db_mean=False,
                          transposed=False, mask_logits=False, stable=True, flipped=False):
    A, inputs, pre = X, [], []
    L = len(params)
    for l, (W, b) in enumerate(params):
        inputs.append(A)
        H = A @ W.T + b
        pre.append(H)
        A = np.maximum(H, 0) if (l < L - 1 or mask_logits) else H
    with np.errstate(all="ignore"):
        e = np.exp(A - A.max(axis=1, keepdims=True)) if stable else np.exp(A)
        P = e / e.sum(axis=1, keepdims=True)
    onehot = np.zeros_like(P)
    onehot[np.arange(len(y)), y] = 1
    dH = (onehot - P) if flipped else (P - onehot)
    if mask_logits:
        dH = dH * (pre[-1] > 0)
    if divide:
        dH = dH / len(y)
    grads = []
    for l in range(L - 1, -1, -1):
        A_in = (np.maximum(pre[l], 0) if l < L - 1 else pre[l]) if own_output else inputs[l]
        grads.append((dH.T @ A_in, dH.mean(axis=0) if db_mean else dH.sum(axis=0)))
        if l > 0:
            W = params[l][0]
            dA = dH @ W.T if transposed else dH @ W
            dH = dA * (pre[l - 1] > 0) if mask else dA
    return grads[::-1]


def mlp_not_divided(params, X, y):
    return _mlp_backward_variant(params, X, y, divide=False)


def mlp_no_relu_mask(params, X, y):
    return _mlp_backward_variant(params, X, y, mask=False)


def mlp_own_output(params, X, y):
    return _mlp_backward_variant(params, X, y, own_output=True)


def mlp_db_mean(params, X, y):
    return _mlp_backward_variant(params, X, y, db_mean=True)


def mlp_transposed_W(params, X, y):
    return _mlp_backward_variant(params, X, y, transposed=True)


def mlp_relu_on_logits(params, X, y):
    return _mlp_backward_variant(params, X, y, mask_logits=True)


def mlp_unstable_softmax(params, X, y):
    return _mlp_backward_variant(params, X, y, stable=False)


def mlp_sign_flipped(params, X, y):
    return _mlp_backward_variant(params, X, y, flipped=True)


# ------------------------------------------------------------------------------ 08.5 mutants


def _bn_parts(X, eps):
    mean, var = X.mean(0), X.var(0, unbiased=False)
    sigma = torch.sqrt(var + eps)
    return (X - mean) / sigma, sigma


def bn_constant_statistics(dY, X, gamma, eps=1e-5):
    X_hat, sigma = _bn_parts(X, eps)
    return dY * gamma / sigma, (dY * X_hat).sum(0), dY.sum(0)


def bn_mean_path_only(dY, X, gamma, eps=1e-5):
    X_hat, sigma = _bn_parts(X, eps)
    G = dY * gamma
    return (G - G.mean(0)) / sigma, (dY * X_hat).sum(0), dY.sum(0)


def bn_unbiased_variance(dY, X, gamma, eps=1e-5):
    sigma = torch.sqrt(X.var(0) + eps)
    X_hat = (X - X.mean(0)) / sigma
    G = dY * gamma
    return (G - G.mean(0) - X_hat * (G * X_hat).mean(0)) / sigma, (dY * X_hat).sum(0), dY.sum(0)


def bn_dgamma_without_x_hat(dY, X, gamma, eps=1e-5):
    dX, _, dbeta = S.batchnorm_backward(dY, X, gamma, eps)
    return dX, dY.sum(0), dbeta


def bn_dbeta_mean(dY, X, gamma, eps=1e-5):
    dX, dgamma, _ = S.batchnorm_backward(dY, X, gamma, eps)
    return dX, dgamma, dY.mean(0)


MUTANTS = {
    "08.1": [(init_std_variance, "returned the variance"), (init_std_no_gain, "left out the gain"),
             (init_std_kaiming_fan_out, "divides by fan_in"), (init_std_xavier_fan_in, "Xavier averages"),
             (init_std_gain_in_variance, "multiplies the standard deviation, not the variance"),
             (init_std_relu_factor_twice, "count it once")],
    "08.2": [(stats_of_inputs, "recorded each Tanh's INPUT"), (stats_one_sided, "both ends"),
             (stats_hooks_left, "hooks are still on the model"), (stats_every_module, "record only the nn.Tanh")],
    "08.3": [(grads_backward_order, "reverse it to the forward order"), (grads_of_input, "you took grad_input"),
             (grads_summed_loss, "N times too large"), (grads_hooks_left, "hooks are still on the model")],
    "08.4": [(mlp_not_divided, "N times too large"), (mlp_no_relu_mask, "passes through the ReLUs unmasked"),
             (mlp_own_output, "not by its own output"), (mlp_db_mean, "db is averaged"),
             (mlp_transposed_W, "not dH W^T"), (mlp_relu_on_logits, "the last layer has no ReLU"),
             (mlp_unstable_softmax, "subtract each row's maximum"),
             (mlp_sign_flipped, "the sign is flipped: dL/dlogits = (softmax - onehot(y)) / N")],
    "08.5": [(bn_constant_statistics, "treated the batch mean and variance as constants"),
             (bn_mean_path_only, "dropped the variance's"), (bn_unbiased_variance, "BIASED variance"),
             (bn_dgamma_without_x_hat, "gamma multiplies X_hat"), (bn_dbeta_mean, "dbeta is the sum of dY")],
}
IDS = [f"08.{k}" for k in range(1, 6)]


# ---------------------------------------------------------------------------- exercise tests


def test_notebook_08_has_five_exercises_each_with_hints_and_mutants():
    assert [ex.id for ex in E.exercises_of("08")] == IDS
    assert set(MUTANTS) == set(IDS)
    for exercise_id in IDS:
        ex = E.EXERCISES[exercise_id]
        assert E.reference(exercise_id).__name__ == ex.function
        assert ex.checker.__module__ == "mnist_course.exercises.nb08"
        assert len(ex.hint) > 40 and len(ex.formula) > 40, exercise_id
        assert len(MUTANTS[exercise_id]) >= 2


def test_two_references_are_at_least_ten_lines():
    """The full backward passes (08.4 and 08.5) are real programs, not one-liners."""
    for name in ("mlp_backward", "batchnorm_backward"):
        source = inspect.getsource(getattr(S, name))
        body = source.split('"""')[2] if source.count('"""') >= 2 else source
        lines = [line for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]
        assert len(lines) >= 10, (name, len(lines))


@pytest.mark.parametrize("exercise_id", IDS)
def test_no_hint_holds_a_line_of_the_answer(exercise_id):
    ex = E.EXERCISES[exercise_id]
    source = inspect.getsource(E.reference(exercise_id))
    code = source.split('"""')[2] if source.count('"""') >= 2 else source
    text = " ".join((ex.hint + " " + ex.formula).split())
    for line in code.splitlines():
        line = line.split("#")[0].strip()
        if len(line) >= 12:
            assert " ".join(line.split()) not in text, f"{exercise_id}'s hint holds the answer line {line!r}"


def test_the_hooks_exercises_leave_the_learners_model_clean():
    """08.2 and 08.3 are checked on the very model the learner's function gets (not a copy), so hooks
    left behind are seen; the reference leaves none and returns one entry per Tanh."""
    torch.manual_seed(0)
    model = D.deep_mlp(depth=4, width=8, activation="tanh", in_features=5)
    X, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 5])
    assert len(S.activation_stats(model, X)) == 3 and len(S.activation_grad_stds(model, X, y)) == 3
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


# ----------------------------------------------------------------------------- library tests


@pytest.mark.parametrize("scheme", ["xavier", "kaiming"])
@pytest.mark.parametrize("nonlinearity", ["linear", "tanh", "relu"])
def test_init_std_is_what_torch_nn_init_draws(scheme, nonlinearity):
    fan_in, fan_out = 1500, 600
    w = torch.empty(fan_out, fan_in)
    g = torch.Generator().manual_seed(0)
    if scheme == "xavier":
        nn.init.xavier_normal_(w, gain=nn.init.calculate_gain(nonlinearity), generator=g)
    else:
        nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity=nonlinearity, generator=g)
    want = D.init_std(fan_in, fan_out, scheme, nonlinearity)
    assert w.std().item() == pytest.approx(want, rel=0.005)  # 900,000 draws: about 0.07 % sampling error
    assert S.init_std(fan_in, fan_out, scheme, nonlinearity) == pytest.approx(want, rel=1e-12)


def test_init_std_refuses_what_it_does_not_know():
    with pytest.raises(ValueError, match="scheme must be"):
        D.init_std(10, 10, "he", "relu")
    with pytest.raises(ValueError, match="nonlinearity must be"):
        D.init_std(10, 10, "kaiming", "gelu")
    with pytest.raises(ValueError, match=">= 1"):
        D.init_std(0, 10)


def test_init_weights_sets_every_linear_layer():
    torch.manual_seed(0)
    model = D.deep_mlp(depth=5, width=400, activation="relu")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    D.init_weights_(model, "kaiming", "relu", generator=torch.Generator().manual_seed(1))
    for layer in linears:
        assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / layer.in_features), rel=0.03)
        assert torch.all(layer.bias == 0)
    D.init_weights_(model, "normal", std=0.01)
    assert all(layer.weight.std().item() == pytest.approx(0.01, rel=0.03) for layer in linears)
    D.init_weights_(model, "zeros")
    assert all(torch.all(layer.weight == 0) for layer in linears)
    D.init_weights_(model, "default")  # PyTorch's own: uniform in +-1/sqrt(fan_in), variance 1/(3 fan_in)
    for layer in linears:
        bound = 1 / math.sqrt(layer.in_features)
        assert layer.weight.abs().max().item() <= bound
        assert layer.weight.var().item() == pytest.approx(bound**2 / 3, rel=0.05)
    with pytest.raises(ValueError, match="scheme must be one of"):
        D.init_weights_(model, "orthogonal")
    with pytest.raises(ValueError, match="needs std"):
        D.init_weights_(model, "normal")


def test_deep_mlp_shapes_and_layers():
    torch.manual_seed(0)
    model = D.deep_mlp(depth=6, width=32, activation="tanh")
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 6
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 5
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    bn = D.deep_mlp(depth=6, width=32, activation="relu", batchnorm=True)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in bn.modules()) == 5
    hidden = [m for m in bn.modules() if isinstance(m, nn.Linear)][:-1]
    assert all(m.bias is None for m in hidden)
    assert bn(torch.randn(4, 784)).shape == (4, 10)
    with pytest.raises(ValueError, match="depth counts the linear layers"):
        D.deep_mlp(depth=1)
    with pytest.raises(ValueError, match="activation must be"):
        D.deep_mlp(activation="sigmoid")


def _by_hand(model, X, y):
    """Every activation's output and the gradient of the mean cross-entropy at it, without hooks."""
    outs, A = [], X
    for layer in model:
        A = layer(A)
        if isinstance(layer, (nn.Tanh, nn.ReLU)):
            A.retain_grad()
            outs.append(A)
    F.cross_entropy(A, y).backward()
    return outs


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_layer_stats_match_values_computed_without_hooks(activation):
    torch.manual_seed(0)
    model = D.deep_mlp(depth=5, width=16, activation=activation, in_features=12)
    D.init_weights_(model, "normal", std=0.6, generator=torch.Generator().manual_seed(2))  # tanh saturates
    X, y = torch.randn(32, 12), torch.randint(0, 10, (32,))
    outs = _by_hand(model, X, y)
    model.zero_grad()
    with D.LayerStats(model) as stats:
        F.cross_entropy(model(X), y).backward()
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules()), "hooks left behind"
    rows = stats.summary()
    assert [r["layer"] for r in rows] == [1, 2, 3, 4]
    for row, A in zip(rows, outs, strict=True):
        assert row["mean"] == pytest.approx(A.mean().item(), abs=1e-6)
        assert row["std"] == pytest.approx(A.std().item(), rel=1e-5)
        assert row["grad_std"] == pytest.approx(A.grad.std().item(), rel=1e-5)
        stuck = (A.abs() > 0.97) if activation == "tanh" else (A == 0)
        assert row["saturated"] == pytest.approx(stuck.float().mean().item())
    if activation == "tanh":
        assert max(r["saturated"] for r in rows) > 0.2  # the case really tests saturation


def test_layer_stats_needs_a_forward_pass_and_activation_layers():
    model = D.deep_mlp(depth=3, width=4, in_features=3)
    stats = D.LayerStats(model)
    with pytest.raises(RuntimeError, match="no forward pass"):
        stats.summary()
    stats.remove()
    with torch.no_grad():
        model(torch.randn(2, 3))
    assert stats.outputs == {}  # removed hooks record nothing
    with pytest.raises(ValueError, match="no layer of the kinds"):
        D.LayerStats(nn.Linear(3, 3))


def test_grad_and_update_ratios():
    torch.manual_seed(0)
    model = D.deep_mlp(depth=3, width=8, activation="relu", in_features=6)
    X, y = torch.randn(16, 6), torch.randint(0, 10, (16,))
    F.cross_entropy(model(X), y).backward()
    ratios = D.grad_to_data_ratios(model)
    weights = D.weight_matrices(model)
    assert list(ratios) == list(weights) == ["1.weight", "3.weight", "5.weight"]
    for name, w in weights.items():
        assert ratios[name] == pytest.approx((w.grad.std() / w.std()).item())
    before = {name: w.detach().clone() for name, w in weights.items()}
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    updates = D.update_to_data_ratios(before, model)
    for name, w in weights.items():
        assert updates[name] == pytest.approx((0.1 * w.grad).std().item() / before[name].std().item(), rel=1e-4)


def test_plot_layer_histograms_draws_one_line_per_tensor():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    D.plot_layer_histograms(ax, {"layer 1": torch.randn(500), "layer 2": 3 * torch.randn(50, 10)}, title="t")
    assert len(ax.lines) == 2 and "std" in ax.lines[1].get_label()
    plt.close(fig)
