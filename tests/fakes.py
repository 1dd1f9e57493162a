"""Stand-ins shared by the drawing and pad tests: a fixed-answer model, a fake clock, a drawn stroke."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def bar_image(h=200, w=50, size=280, top=30, left=100) -> np.ndarray:
    """uint8 (size, size): a white h x w rectangle on black."""
    a = np.zeros((size, size), np.uint8)
    a[top: top + h, left: left + w] = 255
    return a


class Fixed(nn.Module):
    """A stand-in model: always the same logits, favouring class `label`; counts its calls."""

    def __init__(self, label: int = 3):
        super().__init__()
        self.bias = nn.Parameter(torch.full((10,), -2.0).index_fill(0, torch.tensor([label]), 2.0))
        self.calls = 0

    def forward(self, X):
        assert X.shape[1:] == (1, 28, 28) and X.dtype == torch.float32
        self.calls += 1
        return self.bias.expand(len(X), 10)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def draw_one(pad, x=140, y0=40, y1=240, step=10):
    """A vertical stroke, as the mouse would draw a '1'."""
    pad.on_mouse_down(x, y0)
    for y in range(y0 + step, y1 + 1, step):
        pad.on_mouse_move(x, y)
    pad.on_mouse_up(x, y1)


