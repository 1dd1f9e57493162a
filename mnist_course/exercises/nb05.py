"""The checks of notebook 05, pixel permutation (notebooks/05_pixel_permutation.ipynb): applying a
pixel permutation to a batch (05.1), inverting it (05.2), permuting a first layer's weights to match
(05.3).

Named after the notebook's number, as the exercise ids are ("05.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`.
"""

from __future__ import annotations

import numpy as np
import torch

from .core import Mistake, as_array, call, exercise, expect


def _perm(n, seed):
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


_ROWS = "Did you index the rows (X[perm]) instead of the columns (X[:, perm])?"


@exercise("05.1", "permute_pixels", "apply a pixel permutation to a batch", hint="""
    A pixel permutation moves the pixels to new positions, the same way in every image: it
    reorders the columns of the (N, 784) batch, never the rows (the images). The usual mistakes:
    shuffling the images instead of the pixels, and the inverse permutation (sending pixel j to
    position perm[j], where position j should take pixel perm[j]).""",
          formula="""
    X_perm[n, j] = X[n, perm[j]] for every image n and every position j: index the pixel axis (the
    second) with the whole perm tensor at once, keeping every row.""")
def _check_permute(fn):
    g = torch.Generator().manual_seed(8)
    for case, (N, D) in {"6 images of 6 pixels": (6, 6), "3 images of 784 pixels": (3, 784), "a batch of one": (1, 784)}.items():
        X, perm = torch.randn(N, D, generator=g), _perm(D, N)
        inv = torch.argsort(perm)
        expect(call(fn, X, perm, case=case, errors={IndexError: _ROWS}), X[:, perm], case, "your X_perm", [
            (X[perm] if N == D else X[:, perm], "you shuffled the images (rows); shuffle the pixels of each image, X[:, perm]."),
            (X[:, inv], "you applied the inverse permutation: pixel j of the result is pixel perm[j] of the original, X[:, perm].")])
    return "square and 784-pixel batches, a batch of one"


@exercise("05.2", "inverse_permutation", "invert a permutation", hint="""
    The inverse permutation undoes perm: where perm took pixel perm[j] to position j, the inverse
    takes it back from position j to perm[j]. The usual mistakes: returning perm itself (a permutation
    is its own inverse only in special cases, such as a single swap) and applying perm twice.""",
          formula="""
    inv[perm[j]] = j for every j. Start from an empty index tensor of perm's length and write the
    numbers 0 ... n - 1 into the places that perm names, in one assignment with fancy indexing on the
    left. Another way: the inverse of perm is the order that sorts it (torch.argsort).""")
def _check_inverse(fn):
    for case, perm in {"perm [1, 2, 0]": torch.tensor([1, 2, 0]), "a random permutation of 784": _perm(784, 9),
                       "the identity of 5": torch.arange(5), "a single pixel": torch.tensor([0])}.items():
        out = call(fn, perm, case=case)
        got = as_array(out, "your inverse", case)
        if got.shape == perm.shape and not np.array_equal(got, np.round(got)):
            raise Mistake(f"{case}: indices must be whole numbers.")
        expect(got, torch.argsort(perm), case, "your inverse", [
            (perm, "that is perm itself: the inverse undoes it, inv[perm[j]] = j."),
            (perm[perm], "you applied perm twice (perm[perm]); set inv[perm] = arange(n).")], atol=0, rtol=0)
    return "a 3-cycle, 784 pixels, the identity and a single pixel"


@exercise("05.3", "permute_first_layer", "permute a first layer's weights", hint="""
    A fully connected layer computes W x = sum over i of (column i of W) times x_i: weight column i
    meets pixel i. When every image's pixels are permuted, the outputs stay the same if the weight
    columns are permuted the same way, so that each weight meets the same pixel as before. The usual
    mistakes: permuting the rows (they belong to the hidden units, not to the pixels) and the inverse
    permutation.""",
          formula="""
    With x_perm[j] = x[perm[j]] you want W' x_perm = W x, that is sum over j of W'[:, j] x[perm[j]] =
    sum over i of W[:, i] x[i]: so column j of W' is column perm[j] of W (in matrix terms W' = W Pᵀ,
    where x_perm = P x). It is exercise 05.1's indexing, on W's columns.""")
def _check_first_layer(fn):
    g = torch.Generator().manual_seed(10)
    for case, (n_out, D) in {"W 5x12": (5, 12), "W 12x12": (12, 12), "W 8x784": (8, 784)}.items():
        W, perm, x = torch.randn(n_out, D, generator=g), _perm(D, D), torch.randn(D, generator=g)
        out = call(fn, W, perm, case=case, errors={IndexError: "Did you index the rows (W[perm]) instead of the columns?"})
        expect(out, W[:, perm], case, "your weights", [
            (W[:, torch.argsort(perm)], "you used the inverse permutation (W P instead of W Pᵀ): W[:, perm]."),
            (W[perm] if n_out == D else W[:, perm], "you permuted the rows (hidden units); permute the columns, W[:, perm].")])
        got = torch.as_tensor(as_array(out, "your weights", case))
        expect(got @ x[perm].double(), W.double() @ x.double(), case, "W' @ x[perm]", atol=1e-4)
    return "W' @ x[perm] == W @ x for 5x12, 12x12 and 8x784 weights"
