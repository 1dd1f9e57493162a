"""The checks of notebook 07, inside the CNN (notebooks/07_inside_the_cnn.ipynb): a receptive field's
size (07.1), a feature map's shape (07.2), the most-confused pairs of classes (07.3).

Named after the notebook's number, as the exercise ids are ("07.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .core import Mistake, as_int, call, exercise, seeded_rng, wrong_number


def _measured_receptive_field(layers) -> int:
    """The receptive field measured with PyTorch: which input pixels change one output unit."""
    size = 1 + sum((k - 1) * math.prod(s for _, s in layers[:i]) for i, (k, _) in enumerate(layers)) + 64
    X = torch.zeros(1, 1, size, size, requires_grad=True)
    out = X
    for k, s in layers:
        out = F.conv2d(out, torch.ones(1, 1, k, k), stride=s)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (X.grad[0, 0] != 0).any(dim=1).nonzero()
    return int(rows.max() - rows.min() + 1)


@exercise("07.1", "receptive_field", "a receptive field's size", hint="""
    The receptive field is the patch of input pixels that one unit of the last layer sees. Each
    layer widens it by (kernel size - 1) steps, and a step is measured in input pixels: after a stride-2
    layer (a pooling), neighbouring units are 2 input pixels apart, so every later kernel reaches twice
    as far. The usual mistakes: ignoring the earlier strides, counting a layer's own stride in its own
    widening, and starting from 0 instead of 1.""",
          formula="""
    Keep two numbers: r = 1 (a pixel sees itself) and j = 1 (neighbouring units are 1 input pixel
    apart). For each layer (k, s), from the input up: first r <- r + (k - 1) j, then j <- j s. The answer
    is the final r; in closed form r = 1 + sum over layers l of (k_l - 1) times the product of the
    strides of the layers before l.""")
def _check_rf(fn):
    stacks = {"no layers": [], "one 3x3 conv": [(3, 1)], "two 3x3 convs": [(3, 1), (3, 1)],
              "conv, 2x2 pool, conv": [(3, 1), (2, 2), (3, 1)],
              "the course cnn's features": [(3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (2, 2), (3, 1), (2, 2)],
              "a stride-2 5x5 conv, then 3x3": [(5, 2), (3, 1)]}
    for case, layers in stacks.items():
        want = _measured_receptive_field(layers)
        got = as_int(call(fn, list(layers), case=case), "your receptive field", case)
        if got == want:
            continue
        named = {1 + sum(k - 1 for k, _ in layers): "layers after a stride-2 layer (pooling) step 2 input pixels per unit: "
                                                   "multiply each (kernel_size - 1) by the product of the EARLIER strides.",
                 1 + sum((k - 1) * math.prod(s2 for _, s2 in layers[: i + 1]) for i, (k, _) in enumerate(layers)):
                     "a layer's own stride does not widen its own window: add (k - 1) * jump first, then multiply jump.",
                 want - 1: "off by one: start from rf = 1 (one pixel sees itself)."}
        raise wrong_number(f"{case} {layers}", got, want, named)
    return "six stacks; the gradient of one output unit in PyTorch agrees"


@exercise("07.2", "feature_map_shape", "a feature map's shape", hint="""
    Follow the shape through the layers without running them: every convolution and every
    pooling changes the height and width by the output-size formula of exercise 04.1, with its own
    kernel, stride and padding; a convolution sets the number of channels to its out_channels, a
    pooling keeps it. The usual mistakes: skipping the pooling, ignoring the padding, swapping H and W,
    and keeping the input's channels.""",
          formula="""
    Start from (C, H, W) = input_shape. For each layer: H <- floor((H + 2 p_h - k_h) / s_h) + 1, and
    W likewise with k_w, s_w, p_w (a layer's kernel_size, stride and padding may be an int or an (h, w)
    pair); an nn.Conv2d also sets C to its number of output channels. nn.MaxPool2d(2) has kernel 2,
    stride 2 and padding 0. Return (C, H, W).""")
def _check_feature_map(fn):
    stacks = {"one conv": ([nn.Conv2d(1, 8, 3)], (1, 28, 28)),
              "conv (padding 1) + pool": ([nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2)], (1, 28, 28)),
              "cnn_small's three blocks": ([nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 15, 3, padding=1),
                                            nn.MaxPool2d(2), nn.Conv2d(15, 35, 3, padding=1), nn.MaxPool2d(2)], (1, 28, 28)),
              "a stride-2 conv on a 28x20 input": ([nn.Conv2d(1, 4, 5, stride=2), nn.Conv2d(4, 6, 3)], (1, 28, 20))}
    for case, (layers, shape) in stacks.items():
        with torch.no_grad():
            want = tuple(nn.Sequential(*layers)(torch.zeros(1, *shape)).shape[1:])
            no_pool = tuple(nn.Sequential(*[m for m in layers if isinstance(m, nn.Conv2d)])(torch.zeros(1, *shape)).shape[1:])
            unpadded = [nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride) if isinstance(m, nn.Conv2d) else m
                        for m in layers]
            no_pad = tuple(nn.Sequential(*unpadded)(torch.zeros(1, *shape)).shape[1:])
        out = call(fn, list(layers), shape, case=case)
        try:
            got = tuple(int(v) for v in out)
        except (TypeError, ValueError):
            raise Mistake(f"{case}: return a tuple (C, H, W), got {out!r}.") from None
        if got == want:
            continue
        if len(got) != 3:
            raise Mistake(f"{case}: return (C, H, W), three numbers; got {got}.")
        if got[1:] == want[1:]:
            raise Mistake(f"{case}: C = {got[0]}, expected {want[0]}: C is the out_channels of the last convolution.")
        named = {no_pool: "you skipped the pooling: nn.MaxPool2d(2) halves H and W (kernel 2, stride 2).",
                 no_pad: "you ignored the padding: it adds 2 * padding to H and W before the kernel is applied.",
                 (want[0], want[2], want[1]): "H and W are swapped: the input is (C, H, W), H the rows."}
        raise wrong_number(case, got, want, named)
    return "four stacks, including a non-square input; a forward pass in PyTorch agrees"


@exercise("07.3", "most_confused_pairs", "the most-confused pairs of classes", hint="""
    Row i, column j of a confusion matrix counts the digits of class i that the model called j.
    Two classes are confused both ways, so a pair's mistakes are its two off-diagonal entries together;
    the diagonal holds the correct answers. The usual mistakes: the diagonal counted as a pair, one
    direction only, a pair listed twice, and the smallest totals first.""",
          formula="""
    For every i < j: total_ij = C_ij + C_ji. Make the list of (total, i, j), sort it by total, largest
    first (on ties the smaller i, then the smaller j first), keep the first k and return them as
    (i, j, total) with plain ints.""")
def _check_pairs(fn):
    rng = seeded_rng(13)
    C = rng.integers(0, 2, (10, 10))  # background: at most 2 mistakes per pair
    C[np.arange(10), np.arange(10)] = rng.integers(900, 1100, 10)
    for (i, j), n in {(4, 9): 9, (9, 4): 6, (7, 2): 11, (2, 7): 1, (3, 5): 4, (5, 3): 6, (8, 1): 8, (1, 8): 0,
                      (0, 6): 3, (6, 0): 3, (5, 7): 2, (7, 5): 2}.items():
        C[i, j] = n  # pair totals 15, 12, 10, 8, 6, 4: no ties at the top
    totals = C + C.T
    for case, k in {"k=3": 3, "k=1": 1, "k=5": 5}.items():
        tri = sorted(((int(totals[i, j]), i, j) for i in range(10) for j in range(i + 1, 10)), key=lambda t: (-t[0], t[1], t[2]))
        if len({t for t, _, _ in tri[: k + 1]}) != k + 1:
            raise AssertionError("test matrix has ties")  # pragma: no cover (guards the check itself)
        want = [(i, j, t) for t, i, j in tri[:k]]
        out = call(fn, C, k, case=case)
        try:
            got = [tuple(int(v) for v in row) for row in out]
        except (TypeError, ValueError):
            raise Mistake(f"{case}: return a list of (i, j, count) tuples, got {out!r}.") from None
        if got == want:
            continue
        if any(len(row) != 3 for row in got):
            raise Mistake(f"{case}: each entry is (i, j, count), three numbers; got {got}.")
        if any(i == j for i, j, _ in got):
            raise Mistake(f"{case}: {got} contains a pair (i, i): the diagonal holds the correct answers, not mistakes.")
        if all(c == C[i, j] for i, j, c in got):
            raise Mistake(f"{case}: {got}: a pair's mistakes go both ways: count C[i, j] + C[j, i].")
        if any(i > j for i, j, _ in got):
            raise Mistake(f"{case}: {got}: list each pair once, as (i, j) with i < j.")
        if len(got) != k:
            raise Mistake(f"{case}: {len(got)} pairs, expected k = {k}.")
        if [c for _, _, c in got] == sorted(c for _, _, c in got) and k > 1:
            raise Mistake(f"{case}: {got} is sorted smallest first: the most-confused pairs come first.")
        raise Mistake(f"{case}: {got}, expected {want}.")
    return "k = 1, 3 and 5 on a confusion matrix with a big diagonal"
