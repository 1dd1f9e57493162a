"""Tests for mnist_course.permute: permutations, disorder, and the MLP permutation identity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_course import permute as P


def _is_perm(p, n=784):
    return torch.equal(torch.sort(p).values, torch.arange(n))


@pytest.mark.parametrize("make", [
    lambda: P.random_permutation(seed=3),
    lambda: P.patch_shuffle(4, seed=3),
    lambda: P.patch_shuffle(5, seed=3),  # 5 does not divide 28: smaller edge patches
    lambda: P.banded_permutation(30, seed=3),
])
def test_families_are_seeded_permutations(make):
    p = make()
    assert _is_perm(p)
    assert torch.equal(p, make())  # same seed, same permutation
    assert not torch.equal(p, torch.arange(784))


def test_different_seeds_differ():
    assert not torch.equal(P.random_permutation(seed=0), P.random_permutation(seed=1))


def test_patch_shuffle_stays_inside_its_patch():
    k = 4
    p = P.patch_shuffle(k, seed=0)
    j = torch.arange(784)
    assert torch.equal((j // 28) // k, (p // 28) // k)
    assert torch.equal((j % 28) // k, (p % 28) // k)
    assert torch.equal(P.patch_shuffle(1), torch.arange(784))


def test_banded_permutation_moves_less_than_width():
    for width in (1, 5, 40):
        p = P.banded_permutation(width, seed=2)
        assert (p - torch.arange(784)).abs().max() < max(width, 1)


def test_disorder_grows_from_local_to_global():
    d = [P.neighbour_distance(P.patch_shuffle(k, seed=0)) for k in (1, 2, 4, 7, 14)]
    assert d[0] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(d, d[1:], strict=False))
    assert P.neighbour_distance(P.random_permutation(seed=0)) > 12
    assert P.displacement(torch.arange(784)) == 0.0


def test_permute_pixels_shapes_and_inverse():
    X = torch.arange(2 * 784, dtype=torch.float32).reshape(2, 28, 28)
    p = P.random_permutation(seed=0)
    Xp = P.permute_pixels(X, p)
    assert Xp.shape == X.shape
    assert torch.equal(Xp.reshape(2, -1)[:, 5], X.reshape(2, -1)[:, p[5]])
    # the same for (N, 1, 28, 28) and (N, 784)
    assert torch.equal(P.permute_pixels(X[:, None], p)[:, 0], Xp)
    assert torch.equal(P.permute_pixels(X.reshape(2, 784), p), Xp.reshape(2, 784))
    assert torch.equal(P.permute_pixels(Xp, P.inverse_permutation(p)), X)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="not a permutation"):
        P.permute_pixels(torch.zeros(1, 28, 28), torch.zeros(784, dtype=torch.long))
    with pytest.raises(ValueError, match="784 entries|pixels"):
        P.permute_pixels(torch.zeros(1, 28, 28), torch.arange(100))
    with pytest.raises(ValueError, match="patch size"):
        P.patch_shuffle(0)
    with pytest.raises(ValueError, match="seed"):
        P.random_permutation(seed=-1)
    with pytest.raises(ValueError, match="no nn.Linear"):
        P.first_linear(nn.Conv2d(1, 2, 3))


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 10))


def test_first_layer_permutation_identity_forward():
    torch.manual_seed(0)
    model = _mlp().eval()
    X = torch.randn(5, 1, 28, 28)
    p = P.random_permutation(seed=1)
    y_hat = model(X)
    P.permute_first_layer(model, p)
    torch.testing.assert_close(model(P.permute_pixels(X, p)), y_hat, rtol=1e-5, atol=1e-5)
    # and it is NOT a no-op: the unpermuted images now give other logits
    assert not torch.allclose(model(X), y_hat, atol=1e-3)


def _train(model, X, y, optimizer_cls, seed, steps=30):
    """A few steps of minibatch training with a fixed batch order and dropout stream; losses per step."""
    opt = optimizer_cls(model.parameters(), lr=0.05 if optimizer_cls is torch.optim.SGD else 1e-3)
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)  # dropout masks
    losses = []
    model.train()
    for step in range(steps):
        idx = order[(step * 16) % len(X):][:16]
        loss = F.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("optimizer_cls", [torch.optim.SGD, torch.optim.Adam])
def test_mlp_trajectory_identical_on_permuted_images(optimizer_cls):
    """W(Px) = (WP)x during training: permuted data + permuted init follow the same trajectory."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(160, 1, 28, 28, generator=g), torch.randint(0, 10, (160,), generator=g)
    p = P.random_permutation(seed=7)
    torch.manual_seed(1)
    a = _mlp()
    init = {k: v.clone() for k, v in a.state_dict().items()}
    b = _mlp()
    b.load_state_dict(init)
    P.permute_first_layer(b, p)
    loss_a = _train(a, X, y, optimizer_cls, seed=2)
    loss_b = _train(b, P.permute_pixels(X, p), y, optimizer_cls, seed=2)
    torch.testing.assert_close(torch.tensor(loss_b), torch.tensor(loss_a), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b[1].weight, a[1].weight[:, p], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b[4].weight, a[4].weight, rtol=1e-4, atol=1e-5)
    # without permuting the initial weights the trajectory differs, so this test can fail
    c = _mlp()
    c.load_state_dict(init)
    loss_c = _train(c, P.permute_pixels(X, p), y, optimizer_cls, seed=2)
    assert max(abs(u - v) for u, v in zip(loss_c, loss_a, strict=True)) > 1e-3


def test_course_mlp_permutation_identity():
    """The same identity with the course's own MLP (models.build_model)."""
    models = pytest.importorskip("mnist_course.models")
    torch.manual_seed(0)
    model = models.build_model("mlp_small").eval()
    X = torch.randn(4, 1, 28, 28)
    p = P.patch_shuffle(7, seed=0)
    y_hat = model(X)
    P.permute_first_layer(model, p)
    torch.testing.assert_close(model(P.permute_pixels(X, p)), y_hat, rtol=1e-5, atol=1e-5)
