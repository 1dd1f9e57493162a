"""The checks of notebook 04, MLP vs CNN (notebooks/04_mlp_vs_cnn.ipynb): a convolution's output size
(04.1) and parameter count (04.2), a 2-D cross-correlation with loops (04.3), 2x2 max-pooling
(04.4).

Named after the notebook's number, as the exercise ids are ("04.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .core import as_int, call, exercise, expect, wrong_number


@exercise("04.1", "conv_output_size", "a convolution's output size", hint="""
    Count the positions where the window fits. A k-wide window fits into n pixels at n - k + 1
    positions; padding adds pixels on BOTH sides; a stride keeps only every s-th position, starting at
    the first. The usual mistakes: forgetting the + 1, padding only one side, ignoring the stride, and
    rounding up (a window that would stick out over the edge is not used).""",
          formula="""
    out = floor((n + 2p - k) / s) + 1, with p the padding, k the kernel size and s the stride. Floor
    division (//) of whole numbers keeps the result a whole number.""")
def _check_out_size(fn):
    cases = [(28, 3, 0, 1), (28, 3, 1, 1), (28, 5, 2, 2), (7, 3, 0, 2), (28, 2, 0, 2), (10, 4, 1, 3), (8, 3, 0, 2)]
    for n, k, p, s in cases:
        case = f"n={n}, kernel_size={k}, padding={p}, stride={s}"
        want = nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n, n)).shape[-1]
        got = as_int(call(fn, n, k, padding=p, stride=s, case=case), "your size", case)
        if got == want:
            continue
        named = {want - 1: "off by one: a k-wide window fits n - k + 1 times (the + 1).",
                 (n + p - k) // s + 1: "padding goes on both sides: n + 2 * padding.",
                 n + 2 * p - k + 1: "you forgot the stride: divide by it, (n + 2p - k) // stride + 1.",
                 -(-(n + 2 * p - k) // s) + 1: "round down (//): a window that would stick out is not used."}
        raise wrong_number(case, got, want, named)
    return f"{len(cases)} shapes, nn.Conv2d agrees"


@exercise("04.2", "conv_num_params", "a convolution's parameter count", hint="""
    A convolution has one filter per output channel; each filter looks at EVERY input channel
    through a k x k window, so it holds one weight per (input channel, row, column) of its window, and
    one bias. The usual mistakes: forgetting the input channels, forgetting the biases, and one bias per
    (output, input) pair instead of one per output channel.""",
          formula="""
    parameters = C_out x (C_in x k² + 1) with biases, C_out x C_in x k² without (bias=False).""")
def _check_params(fn):
    cases = [(1, 8, 3, True), (8, 15, 3, True), (16, 32, 5, False), (3, 1, 1, True), (35, 10, 1, True)]
    for c_in, c_out, k, bias in cases:
        case = f"nn.Conv2d({c_in}, {c_out}, {k}, bias={bias})"
        want = sum(p.numel() for p in nn.Conv2d(c_in, c_out, k, bias=bias).parameters())
        got = as_int(call(fn, c_in, c_out, k, bias=bias, case=case), "your count", case)
        if got == want:
            continue
        named = {c_out * c_in * k * k: "you forgot the biases: one per output channel.",
                 c_out * (k * k + int(bias)): "you forgot in_channels: each filter has in_channels x k x k weights.",
                 c_out * c_in * (k * k + 1): "one bias per output channel, not per (output, input) pair.",
                 c_out * (c_in * k * k + 1): "bias=False: no biases."}
        raise wrong_number(case, got, want, named)
    return f"{len(cases)} layers, nn.Conv2d's parameter count agrees"


_WINDOWS = ("Each window X[i:i + h, j:j + w] must have K's shape (h, w), so the windows stop where K still fits: "
            "Y has H - h + 1 rows and W - w + 1 columns, i in range(H - h + 1) and j in range(W - w + 1).")


@exercise("04.3", "corr2d", "a 2-D cross-correlation with loops", hint="""
    Slide the kernel over the image: at every position where the whole kernel fits, multiply
    the window by the kernel element by element and add everything up. That is what nn.Conv2d computes,
    a cross-correlation: the kernel is NOT flipped (the textbook convolution flips it). The usual
    mistakes: flipping the kernel, an output one row or column short, and windows that run over the
    edge.""",
          formula="""
    For X (H, W) and a kernel (h, w): the output has H - h + 1 rows and W - w + 1 columns, and
    Y_ij = sum over a < h and b < w of X_(i+a, j+b) K_ab. Make the output tensor first (zeros, X's
    dtype), then two loops over its rows i and columns j; inside, the window is the h x w block of X
    whose top-left corner is (i, j).""")
def _check_corr2d(fn):
    g = torch.Generator().manual_seed(6)
    digit = torch.zeros(12, 10, dtype=torch.float64)
    digit[2:10, 4:6] = 1.0
    cases = {"X 5x7, K 2x3": (torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(2, 3, generator=g, dtype=torch.float64)),
             "a vertical stroke, edge kernel [[1, -1]]": (digit, torch.tensor([[1.0, -1.0]], dtype=torch.float64)),
             "a 1x1 kernel": (torch.randn(4, 6, generator=g, dtype=torch.float64), torch.tensor([[2.0]], dtype=torch.float64)),
             "K as large as X": (torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64))}
    for case, (X, K) in cases.items():
        want = F.conv2d(X[None, None], K[None, None])[0, 0]
        H, W = X.shape[0] - K.shape[0], X.shape[1] - K.shape[1]
        expect(call(fn, X, K, case=case, broadcast=_WINDOWS), want, case, "your Y", [
            (F.conv2d(X[None, None], K.flip(0, 1)[None, None])[0, 0],
             "you flipped the kernel (the textbook convolution); nn.Conv2d computes a cross-correlation, no flip."),
            (want[:H, :W], "off by one: the output has H - h + 1 rows and W - w + 1 columns (the last window is missing).")],
               shape="Y has one entry per position of the window: H - h + 1 rows and W - w + 1 columns "
                     "for X (H, W) and K (h, w), torch.zeros(H - h + 1, W - w + 1).")
    return "non-square X and K, an edge kernel, 1x1 and full-size kernels; F.conv2d agrees"


@exercise("04.4", "max_pool2d", "2x2 max-pooling", hint="""
    Max-pooling cuts the feature map into non-overlapping 2 x 2 blocks (a stride of 2) and keeps
    the largest value of each: a stroke moved by one pixel inside a block gives the same output. An odd
    last row or column fills no block and is dropped, as in nn.MaxPool2d(2). The usual mistakes:
    averaging, overlapping windows (stride 1), and padding the odd edge.""",
          formula="""
    The output has floor(H/2) rows and floor(W/2) columns, and Y_ij is the largest of X_(2i, 2j),
    X_(2i, 2j+1), X_(2i+1, 2j) and X_(2i+1, 2j+1). Two loops do it; without loops: cut X to even sizes,
    view it as (H/2, 2, W/2, 2) and take the maximum over the two axes of length 2.""")
def _check_pool(fn):
    g = torch.Generator().manual_seed(7)
    for case, (H, W) in {"X 4x6": (4, 6), "X 5x7 (odd)": (5, 7), "X 2x2": (2, 2)}.items():
        X = torch.randn(H, W, generator=g, dtype=torch.float64)
        want = F.max_pool2d(X[None, None], 2)[0, 0]
        expect(call(fn, X, case=case), want, case, "your pooled X", [
            (F.avg_pool2d(X[None, None], 2)[0, 0], "you averaged: max-pooling keeps each block's largest value."),
            (F.max_pool2d(X[None, None], 2, stride=1)[0, 0], "your windows overlap: a 2x2 pool moves 2 pixels at a time (stride 2)."),
            (F.max_pool2d(X[None, None], 2, ceil_mode=True)[0, 0], "an odd last row/column is dropped (H // 2), as in nn.MaxPool2d(2).")])
    return "even, odd and 2x2 inputs; F.max_pool2d agrees"
