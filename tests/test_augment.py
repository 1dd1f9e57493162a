"""Tests for mnist_course.augment: per-sample random affine transforms on whole batches."""

from __future__ import annotations

import pytest
import torch

from mnist_course import augment as A


def _dot(row, col, n=4):
    """n copies of a 28x28 image that is 0 except one bright pixel at (row, col)."""
    X = torch.zeros(n, 1, 28, 28)
    X[:, 0, row, col] = 1.0
    return X


def _argmax_rc(img):
    i = int(img.flatten().argmax())
    return divmod(i, 28)


def _one(angle=0.0, tx=0.0, ty=0.0, zoom=1.0):
    t = lambda v: torch.tensor([float(v)])  # noqa: E731
    return A.affine_matrices(t(angle), t(tx), t(ty), t(zoom))


def test_identity_parameters_change_nothing():
    X = torch.rand(3, 1, 28, 28)
    theta = A.affine_matrices(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.ones(3))
    torch.testing.assert_close(A.affine_batch(X, theta), X, atol=1e-5, rtol=0)


@pytest.mark.parametrize("params, expected", [
    (dict(angle=90), (7, 14)),      # counter-clockwise: a pixel right of the centre goes up
    (dict(tx=0.15), (14, 24)),      # 15 % of 28 = 4.2 pixels to the right
    (dict(ty=0.15), (18, 20)),      # ... and down
    (dict(zoom=1.15), (14, 21)),    # away from the centre by 15 %
])
def test_geometry_of_each_parameter(params, expected):
    out = A.affine_batch(_dot(14, 20, n=1), _one(**params))
    assert _argmax_rc(out[0, 0]) == expected


def test_fill_is_the_background_value():
    fill = -0.4242
    X = torch.full((2, 1, 28, 28), fill)
    out = A.affine_batch(X, A.affine_matrices(torch.tensor([30.0, -30.0]), torch.tensor([0.15, -0.15]),
                                              torch.zeros(2), torch.tensor([0.85, 0.85])), fill=fill)
    torch.testing.assert_close(out, X, atol=1e-5, rtol=0)
    # with the default fill 0 the corners would be 0, not the background
    out0 = A.affine_batch(X, _one(angle=30).repeat(2, 1, 1))
    assert out0[0, 0, 0, 0].abs() < 1e-6


def test_each_image_gets_its_own_parameters():
    X = _dot(10, 10, n=16)
    out = A.random_affine(X, generator=torch.Generator().manual_seed(0))
    assert out.shape == X.shape and out.dtype == X.dtype
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) == 16
    assert not A.same_params_across_batch(A.RandomAffine(seed=0), X[0])


def test_parameters_stay_in_range_and_are_seeded():
    p = A.sample_affine_params(10_000, 15, 0.15, 0.15, torch.Generator().manual_seed(1))
    assert p["angle"].abs().max() <= 15 and p["angle"].abs().max() > 14.9
    assert p["tx"].abs().max() <= 0.15 and p["ty"].abs().max() <= 0.15
    assert p["zoom"].min() >= 0.85 and p["zoom"].max() <= 1.15
    q = A.sample_affine_params(10_000, 15, 0.15, 0.15, torch.Generator().manual_seed(1))
    assert all(torch.equal(p[k], q[k]) for k in p)


def test_transform_state_round_trip():
    X = torch.rand(8, 1, 28, 28)
    t = A.RandomAffine(seed=3)
    t(X)
    state = t.state_dict()
    first = t(X)
    t2 = A.RandomAffine(seed=99)
    t2.load_state_dict(state)
    assert torch.equal(t2(X), first)
    assert not torch.equal(t(X), first)


def test_torchvision_v2_draws_one_parameter_set_per_batch():
    """The pitfall notebook 06 shows: transforms.v2 on a batch tensor transforms every image alike."""
    v2 = pytest.importorskip("torchvision.transforms.v2")
    torch.manual_seed(0)
    tv = v2.RandomAffine(degrees=15, translate=(0.15, 0.15), scale=(0.85, 1.15))
    assert A.same_params_across_batch(tv, torch.rand(1, 28, 28))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="float images"):
        A.random_affine(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="float images"):
        A.random_affine(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="scale"):
        A.RandomAffine(scale=1.5)
    with pytest.raises(ValueError, match="theta"):
        A.affine_batch(torch.zeros(2, 1, 28, 28), torch.zeros(3, 2, 3))


def test_augmented_batches_resume_where_they_stopped():
    """Saving the loader's and the transform's generators after epoch 1 and restoring them in fresh
    objects gives the same augmented batches in epoch 2 as an uninterrupted run."""
    import mnist_course as mc

    X, y = torch.rand(40, 1, 28, 28), torch.arange(40) % 10

    def make(seed_shift=0):
        return mc.BatchIterator(X, y, batch_size=16, shuffle=True, seed=1 + seed_shift,
                                transform=A.RandomAffine(seed=2 + seed_shift))

    straight = make()
    list(straight)
    state = {"loader": straight.state_dict(), "transform": straight.transform.state_dict()}
    epoch2 = [b for b, _ in straight]
    resumed = make(seed_shift=5)  # different seeds: everything must come from the saved state
    resumed.load_state_dict(state["loader"])
    resumed.transform.load_state_dict(state["transform"])
    for a, b in zip(epoch2, (b for b, _ in resumed), strict=True):
        assert torch.equal(a, b)
