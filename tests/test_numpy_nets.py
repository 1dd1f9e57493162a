"""The NumPy networks of notebooks 02-03: every backward pass against finite differences and
against torch.autograd (float64, max abs diff <= 1e-10), stability, and clear input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_course import numpy_nets as nn_np
from mnist_course.numpy_nets import (
    MLP,
    SGD,
    CrossEntropyLoss,
    Linear,
    ReLU,
    SoftmaxRegression,
    cmp,
    cross_entropy,
    cross_entropy_grad,
    grad_check,
    log_softmax,
    numerical_gradient,
    one_hot,
    relative_error,
    softmax,
)

TOL = 1e-10  # float64 agreement with autograd


def batch(n=16, d=784, c=10, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * scale, rng.integers(0, c, size=n)


def torch_linear_from(layer: Linear) -> torch.nn.Linear:
    lin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(layer.W.data))
        lin.bias.copy_(torch.from_numpy(layer.b.data))
    return lin


# ------------------------------------------------------------------------------- functions

def test_softmax_and_log_softmax_match_torch():
    z, _ = batch(8, 10, scale=5.0)
    t = torch.from_numpy(z)
    np.testing.assert_allclose(softmax(z), torch.softmax(t, dim=1).numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(log_softmax(z), torch.log_softmax(t, dim=1).numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(softmax(z).sum(axis=1), 1.0, atol=1e-15)


def test_cross_entropy_and_its_gradient_match_autograd():
    z, y = batch(32, 10, scale=3.0)
    t = torch.from_numpy(z).requires_grad_()
    loss = F.cross_entropy(t, torch.from_numpy(y))
    loss.backward()
    assert abs(cross_entropy(z, y) - loss.item()) <= TOL
    assert np.max(np.abs(cross_entropy_grad(z, y) - t.grad.numpy())) <= TOL
    loss_fn = CrossEntropyLoss()
    assert abs(loss_fn(z, y) - loss.item()) <= TOL
    assert np.max(np.abs(loss_fn.backward() - t.grad.numpy())) <= TOL


def test_cross_entropy_gradient_matches_finite_differences():
    z, y = batch(6, 10)
    numeric = numerical_gradient(lambda: cross_entropy(z, y), z)
    assert relative_error(cross_entropy_grad(z, y), numeric) <= 1e-8


@pytest.mark.parametrize("big", [1000.0, -1000.0])
def test_extreme_logits_give_finite_loss_and_gradients(big):
    z = np.zeros((4, 10))
    z[:, 3] = big
    z[1, 5] = -big
    y = np.array([3, 5, 0, 9])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        loss = cross_entropy(z, y)
        grad = cross_entropy_grad(z, y)
        p = softmax(z)
        logp = log_softmax(z)
    assert np.isfinite(loss) and np.all(np.isfinite(grad)) and np.all(np.isfinite(p)) and np.all(np.isfinite(logp))
    ref = F.cross_entropy(torch.from_numpy(z), torch.from_numpy(y)).item()
    assert loss == pytest.approx(ref, rel=1e-12)
    # float32 too: the dtype notebooks train in
    loss32 = cross_entropy(z.astype(np.float32), y)
    assert np.isfinite(loss32)


def test_naive_softmax_would_overflow():
    """The reason for the max-subtraction: exp(1000) is inf, inf/inf is nan."""
    z = np.array([[1000.0, 0.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert np.isnan(naive).any()
    np.testing.assert_allclose(softmax(z), [[1.0, 0.0]])


def test_one_hot():
    out = one_hot(np.array([0, 3, 9]), 10)
    assert out.shape == (3, 10) and out.dtype == np.float32
    assert out.sum() == 3 and out[1, 3] == 1 and out[2, 9] == 1


# ------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("bad", [10, -1, 255])
def test_labels_out_of_range_raise_clear_error(bad):
    z, y = batch(4, 10)
    y[2] = bad
    for fn in (cross_entropy, cross_entropy_grad, CrossEntropyLoss()):
        with pytest.raises(ValueError, match=rf"label {bad} is out of range.*0\.\.9"):
            fn(z, y)
    with pytest.raises(ValueError, match="out of range"):
        one_hot(y, 10)


def test_float_labels_and_mismatched_lengths_raise():
    z, y = batch(4, 10)
    with pytest.raises(ValueError, match="must be integers"):
        cross_entropy(z, y.astype(np.float32))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        cross_entropy(z, y[:3])


@pytest.mark.parametrize("model", [SoftmaxRegression(), MLP(rng=np.random.default_rng(0))])
def test_wrong_input_width_raises_clear_error(model):
    with pytest.raises(ValueError, match=r"\(N, 784\), got 28 columns"):
        model.forward(np.zeros((5, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="Flatten the images"):
        model.forward(np.zeros((5, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="floating-point"):
        model.forward(np.zeros((5, 784), dtype=np.uint8))


def test_models_need_an_explicit_rng_for_random_init():
    with pytest.raises(ValueError, match="default_rng"):
        MLP()
    with pytest.raises(ValueError, match="default_rng"):
        Linear(3, 2)


def test_grad_check_refuses_float32():
    model = MLP(hidden=8, rng=np.random.default_rng(0))
    X, y = batch(4)
    with pytest.raises(ValueError, match="float64"):
        grad_check(model, X, y)


# --------------------------------------------------------------------- layers vs autograd

def test_linear_backward_matches_autograd():
    rng = np.random.default_rng(1)
    layer = Linear(7, 5, rng=rng, dtype=np.float64)
    X = rng.normal(size=(9, 7))
    dz = rng.normal(size=(9, 5))  # an arbitrary upstream gradient
    lin = torch_linear_from(layer)
    Xt = torch.from_numpy(X).requires_grad_()
    z_t = lin(Xt)
    (z_t * torch.from_numpy(dz)).sum().backward()
    z = layer.forward(X)
    dX = layer.backward(dz)
    assert np.max(np.abs(z - z_t.detach().numpy())) <= TOL
    assert np.max(np.abs(dX - Xt.grad.numpy())) <= TOL
    assert np.max(np.abs(layer.W.grad - lin.weight.grad.numpy())) <= TOL
    assert np.max(np.abs(layer.b.grad - lin.bias.grad.numpy())) <= TOL


def test_relu_backward_matches_autograd():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(6, 4))
    dout = rng.normal(size=(6, 4))
    relu = ReLU()
    Xt = torch.from_numpy(X).requires_grad_()
    (torch.relu(Xt) * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_array_equal(relu.forward(X), np.maximum(X, 0))
    assert np.max(np.abs(relu.backward(dout) - Xt.grad.numpy())) <= TOL


def test_softmax_regression_gradients_match_autograd_and_finite_differences():
    rng = np.random.default_rng(3)
    model = SoftmaxRegression(rng=rng, init="uniform", dtype=np.float64)
    X, y = batch(16)
    lin = torch_linear_from(model.linear)
    Xt = torch.from_numpy(X).requires_grad_()
    F.cross_entropy(lin(Xt), torch.from_numpy(y)).backward()
    model.zero_grad()
    dX = model.backward(cross_entropy_grad(model.forward(X), y))
    assert np.max(np.abs(model.W.grad - lin.weight.grad.numpy())) <= TOL
    assert np.max(np.abs(model.b.grad - lin.bias.grad.numpy())) <= TOL
    assert np.max(np.abs(dX - Xt.grad.numpy())) <= TOL
    assert grad_check(model, X, y, num_checks=30) <= 1e-6


def test_mlp_gradients_match_autograd_and_finite_differences():
    rng = np.random.default_rng(4)
    model = MLP(hidden=32, rng=rng, dtype=np.float64)
    X, y = batch(16)
    fc1, fc2 = torch_linear_from(model.fc1), torch_linear_from(model.fc2)
    Xt = torch.from_numpy(X).requires_grad_()
    logits_t = fc2(torch.relu(fc1(Xt)))
    logits_t.retain_grad()
    F.cross_entropy(logits_t, torch.from_numpy(y)).backward()
    model.zero_grad()
    logits = model.forward(X)
    dlogits = cross_entropy_grad(logits, y)
    dX = model.backward(dlogits)
    assert np.max(np.abs(logits - logits_t.detach().numpy())) <= TOL
    assert cmp("dlogits", dlogits, logits_t) <= TOL
    for ours, theirs in [(model.fc1.W, fc1.weight), (model.fc1.b, fc1.bias),
                         (model.fc2.W, fc2.weight), (model.fc2.b, fc2.bias)]:
        assert cmp(ours.name, ours.grad, theirs) <= TOL
    assert cmp("dX", dX, Xt) <= TOL
    assert grad_check(model, X, y, num_checks=30) <= 1e-6
    assert grad_check(model, X, y, loss_fn=CrossEntropyLoss(), num_checks=10) <= 1e-6


def test_grad_check_catches_a_wrong_backward(monkeypatch):
    """The checker must be able to fail: drop the ReLU mask and it reports a large error."""
    model = MLP(hidden=16, rng=np.random.default_rng(5), dtype=np.float64)
    X, y = batch(8)
    assert grad_check(model, X, y, num_checks=None) <= 1e-6
    monkeypatch.setattr(ReLU, "backward", lambda self, dout: dout)
    assert grad_check(model, X, y, num_checks=None) > 1e-2


def test_backward_accumulates_until_zero_grad():
    model = SoftmaxRegression(rng=np.random.default_rng(6), init="uniform", dtype=np.float64)
    X, y = batch(4)
    model.backward(cross_entropy_grad(model.forward(X), y))
    once = model.W.grad.copy()
    model.backward(cross_entropy_grad(model.forward(X), y))
    np.testing.assert_allclose(model.W.grad, 2 * once)
    model.zero_grad()
    assert not model.W.grad.any()


def test_cmp_reports_max_difference(capsys):
    t = torch.ones(3, requires_grad=True)
    (2 * t).sum().backward()
    assert cmp("x", np.full(3, 2.0), t) == 0.0
    assert cmp("x", np.array([2.0, 2.0, 2.5]), t) == pytest.approx(0.5)
    out = capsys.readouterr().out
    assert "exact: True" in out and "maxdiff: 5.00e-01" in out
    with pytest.raises(ValueError, match="backward"):
        cmp("y", np.zeros(3), torch.ones(3, requires_grad=True))
    with pytest.raises(ValueError, match="shapes differ"):
        cmp("x", np.zeros(2), t)


# ------------------------------------------------------------------------------ optimiser

@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 1e-3)])
def test_sgd_matches_torch_optim(momentum, weight_decay):
    model = MLP(hidden=8, rng=np.random.default_rng(7), dtype=np.float64)
    X, y = batch(10)
    fc1, fc2 = torch_linear_from(model.fc1), torch_linear_from(model.fc2)
    t_params = [fc1.weight, fc1.bias, fc2.weight, fc2.bias]
    opt_t = torch.optim.SGD(t_params, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    opt = SGD(model.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    for _ in range(3):
        opt.zero_grad()
        model.backward(cross_entropy_grad(model.forward(X), y))
        opt.step()
        opt_t.zero_grad()
        F.cross_entropy(fc2(torch.relu(fc1(torch.from_numpy(X)))), torch.from_numpy(y)).backward()
        opt_t.step()
    for p, t in zip(model.parameters(), t_params, strict=True):
        assert np.max(np.abs(p.data - t.detach().numpy())) <= TOL


def test_sgd_rejects_bad_settings():
    params = SoftmaxRegression().parameters()
    with pytest.raises(ValueError, match="lr"):
        SGD(params, lr=0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(params, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)


# ------------------------------------------------------------------------------- training

def toy_data(n=600, seed=0):
    """Three Gaussian blobs in 784 dimensions: linearly separable."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 784)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    X = centres[y] + 0.5 * rng.normal(size=(n, 784)).astype(np.float32)
    return X.astype(np.float32), y


def test_training_reduces_loss_and_is_reproducible():
    X, y = toy_data()
    results = []
    for _ in range(2):
        rng = np.random.default_rng(0)
        model = MLP(hidden=16, num_classes=3, rng=rng)
        opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
        before = nn_np.evaluate(model, X, y)
        stats = [nn_np.train_epoch(model, X, y, opt, batch_size=32, rng=rng) for _ in range(2)]
        after = nn_np.evaluate(model, X, y)
        results.append((stats, after, model.state_dict()))
        assert model.dtype == np.float32  # trains in float32
        assert after["loss"] < before["loss"] / 5 and after["acc"] == 1.0
    (s1, a1, w1), (s2, a2, w2) = results
    assert s1 == s2 and a1 == a2
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k])


def test_state_dict_round_trip_and_to_float64():
    model = MLP(hidden=4, rng=np.random.default_rng(0))
    other = MLP(hidden=4, rng=np.random.default_rng(1))
    other.load_state_dict(model.state_dict())
    X, _ = toy_data(5)
    np.testing.assert_array_equal(model(X), other(X))
    assert model.to(np.float64).dtype == np.float64
    assert set(model.state_dict()) == {"fc1.W", "fc1.b", "fc2.W", "fc2.b"}
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict({**model.state_dict(), "fc2.b": np.zeros(3)})
    assert "784" in repr(model) and "parameters" in repr(SoftmaxRegression())


def test_softmax_regression_learns_real_mnist(mnist):
    small = mnist.subset(3000, 1000, seed=0)
    X = small.normalize(small.X_train, flatten=True).numpy()
    X_test = small.normalize(small.X_test, flatten=True).numpy()
    model = SoftmaxRegression()
    opt = SGD(model.parameters(), lr=0.05)
    rng = np.random.default_rng(0)
    for _ in range(2):
        nn_np.train_epoch(model, X, small.y_train.numpy(), opt, batch_size=64, rng=rng)
    assert nn_np.evaluate(model, X_test, small.y_test.numpy())["acc"] > 0.8


def test_limit_blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(None):  # restores the original limits afterwards
        assert nn_np.limit_blas_threads(1) is True
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)
