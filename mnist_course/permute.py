"""Fixed pixel permutations (notebook 05): shuffle the 784 pixels of every image the same way.

A permutation is a LongTensor ``perm`` of the pixel indices 0..H*W-1 in raster order, applied as
``X_perm.flatten()[j] = X.flatten()[perm[j]]``: pixel j of the permuted image is pixel perm[j]
of the original. An MLP cannot tell the difference: its first layer computes W x, and
W' = W[:, perm] (the weight columns permuted the same way) gives W' x_perm = W x exactly, so an
MLP trained on permuted images from the permuted initial weights follows the same trajectory.
A CNN relies on neighbouring pixels being related, and loses accuracy as the disorder grows.

Families from local to global disorder: :func:`patch_shuffle` (shuffle inside k x k patches),
:func:`banded_permutation` (every pixel moves at most `width` places in raster order) and
:func:`random_permutation` (everything shuffled); :func:`neighbour_distance` measures disorder.
Every random choice comes from an explicit, seeded ``torch.Generator``.
"""

from __future__ import annotations

import torch
from torch import nn


def _generator(seed: int) -> torch.Generator:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def check_permutation(perm: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """Return perm as a CPU int64 tensor after checking that it is a permutation of 0..n-1."""
    perm = torch.as_tensor(perm)
    if perm.ndim != 1 or perm.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"a permutation is a 1-D integer tensor, got {tuple(perm.shape)} {perm.dtype}")
    perm = perm.to("cpu", torch.int64)
    if n is not None and len(perm) != n:
        raise ValueError(f"permutation has {len(perm)} entries but the images have {n} pixels")
    if not torch.equal(torch.sort(perm).values, torch.arange(len(perm))):
        raise ValueError("not a permutation: every index 0..n-1 must appear exactly once")
    return perm


def identity_permutation(size: int = 28) -> torch.Tensor:
    """The permutation that changes nothing: arange(size * size)."""
    return torch.arange(size * size)


def random_permutation(size: int = 28, seed: int = 0) -> torch.Tensor:
    """A seeded uniformly random permutation of the size*size pixels (the 'full' shuffle)."""
    return torch.randperm(size * size, generator=_generator(seed))


def patch_shuffle(k: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    """Shuffle pixels only inside each k x k patch (k=1: identity; k=size: a full shuffle).

    When k does not divide size, the patches on the right/bottom edge are smaller.
    """
    if not isinstance(k, int) or not 1 <= k <= size:
        raise ValueError(f"patch size k must be an integer in 1..{size}, got {k!r}")
    g = _generator(seed)
    index = torch.arange(size * size).reshape(size, size)
    perm = index.clone()
    for r in range(0, size, k):
        for c in range(0, size, k):
            block = index[r:r + k, c:c + k]
            flat = block.flatten()
            perm[r:r + k, c:c + k] = flat[torch.randperm(len(flat), generator=g)].reshape(block.shape)
    return perm.flatten()


def banded_permutation(width: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    """A seeded permutation that moves each pixel fewer than `width` places in raster order
    (its matrix is banded): sort the keys i + width * u_i, u_i uniform in [0, 1).
    width=0 or 1: identity; width >= size*size: close to a full shuffle."""
    if not isinstance(width, int) or width < 0:
        raise ValueError(f"width must be a non-negative integer, got {width!r}")
    n = size * size
    keys = torch.arange(n, dtype=torch.float64) + width * torch.rand(n, generator=_generator(seed), dtype=torch.float64)
    return torch.argsort(keys, stable=True)


def inverse_permutation(perm: torch.Tensor) -> torch.Tensor:
    """inv such that permute_pixels(permute_pixels(X, perm), inv) == X."""
    perm = check_permutation(perm)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    return inv


def permute_pixels(X: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Apply one pixel permutation to every image: X (N, 28, 28), (N, 1, 28, 28) or (N, 784) -> same shape.

    Pixel j of each output image is pixel perm[j] of the input (raster order).
    """
    if not isinstance(X, torch.Tensor) or X.ndim < 2:
        raise ValueError("X must be a tensor of images (N, H, W), (N, C, H, W) or (N, H*W)")
    flat_dims = 1 if X.ndim == 2 else 2  # (N, 784) or (..., H, W)
    n = X.shape[-1] if flat_dims == 1 else X.shape[-1] * X.shape[-2]
    perm = check_permutation(perm, n).to(X.device)
    flat = X.reshape(*X.shape[:-flat_dims], n)
    return flat[..., perm].reshape(X.shape)


def displacement(perm: torch.Tensor, size: int = 28) -> float:
    """Mean distance in pixels between where each pixel was and where the permutation puts it."""
    perm = check_permutation(perm, size * size)
    j = torch.arange(size * size)
    dr, dc = (j // size - perm // size).double(), (j % size - perm % size).double()
    return float(torch.sqrt(dr**2 + dc**2).mean())


def neighbour_distance(perm: torch.Tensor, size: int = 28) -> float:
    """Disorder of a permutation: the mean distance, in the ORIGINAL image, between pixels that are
    side by side (horizontally or vertically) in the permuted image. Identity: 1.0; a full random
    shuffle of 28 x 28: about 14.6. It measures what a 3x3 convolution loses."""
    perm = check_permutation(perm, size * size).reshape(size, size)
    rows, cols = perm // size, perm % size

    def dist(a, b):
        return torch.sqrt(((rows[a] - rows[b]).double()) ** 2 + ((cols[a] - cols[b]).double()) ** 2)

    horizontal = dist((slice(None), slice(0, -1)), (slice(None), slice(1, None)))
    vertical = dist((slice(0, -1), slice(None)), (slice(1, None), slice(None)))
    return float(torch.cat([horizontal.flatten(), vertical.flatten()]).mean())


def first_linear(model: nn.Module, in_features: int = 784) -> nn.Linear:
    """The first nn.Linear of model that reads `in_features` inputs (an MLP's input layer)."""
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.in_features == in_features:
            return module
    raise ValueError(f"{type(model).__name__} has no nn.Linear with {in_features} inputs; "
                     "permute_first_layer works on MLPs whose first layer reads the flattened image.")


@torch.no_grad()
def permute_first_layer(model: nn.Module, perm: torch.Tensor) -> nn.Module:
    """Permute the columns of an MLP's first-layer weights in place, W <- W[:, perm], so that the
    model on permuted images equals the old model on the originals: W[:, perm] @ x[perm] == W @ x.
    Returns the model. Taught in notebook 05."""
    layer = first_linear(model, len(check_permutation(perm)))
    layer.weight.copy_(layer.weight[:, perm.to(layer.weight.device)])
    return model


__all__ = ["check_permutation", "identity_permutation", "random_permutation", "patch_shuffle",
           "banded_permutation", "inverse_permutation", "permute_pixels", "displacement",
           "neighbour_distance", "first_linear", "permute_first_layer"]
