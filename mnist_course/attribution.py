"""What a classifier looks at: gradient saliency, occlusion maps, and how far two maps agree.

Taught in notebook 10 (notebooks/10_what_the_cnn_looks_at.ipynb), sections 2-4, where each
function is first written in full and checked against this module (and saliency against
``torch.func``'s per-example gradients).

Every function works in **pixel space**: images ``X: (N, 1, H, W)`` float32 in [0, 1] (uint8 / 255),
the space a person sees. The course's models expect normalised input, ``(X - mean) / std``
(``data.normalize``), so each function takes the ``mean`` and ``std`` the model was trained with
(``info["mean"]``, ``info["std"]`` of ``pretrained.load_course_model``) and normalises inside, where
autograd sees it. The model is evaluated in eval mode (BatchNorm with its running statistics,
Dropout off) and left in the mode it was given in.

- :func:`saliency`: ``|d logit_c / d x|`` per pixel (Simonyan et al. 2013), ``(N, H, W)``.
- :func:`occlusion_drops`: the drop of the class probability when a ``patch x patch`` square is
  painted over with ``fill``, at every patch position (Zeiler & Fergus 2014), ``(N, R, C)``;
  :func:`drops_to_pixels` spreads them onto pixels; :func:`occlusion_map` does both.
- :func:`top_k_overlap`: the share of one map's k most important pixels that are among the other
  map's k most important, per image, ``(N,)``; chance level is about ``k / (H * W)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode inside the block and give it back in the mode it had (train or eval)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def check_images(X: torch.Tensor, target: torch.Tensor | None = None) -> None:
    """Raise ValueError unless X is float images (N, 1, H, W) and target (if given) N class indices."""
    if not isinstance(X, torch.Tensor) or X.dim() != 4 or X.shape[1] != 1 or not X.is_floating_point():
        raise ValueError(f"X must be float images (N, 1, H, W) in pixel space [0, 1] (uint8 / 255); got "
                         f"{getattr(X, 'dtype', type(X).__name__)} {tuple(getattr(X, 'shape', ()))}.")
    if target is not None and (not isinstance(target, torch.Tensor) or target.shape != (len(X),)):
        raise ValueError(f"target must be a tensor of {len(X)} class indices (N,), one per image; got "
                         f"{tuple(getattr(target, 'shape', ())) or type(target).__name__}.")


def saliency(model: nn.Module, X: torch.Tensor, target: torch.Tensor, mean: float = 0.0,
             std: float = 1.0) -> torch.Tensor:
    """Gradient saliency: X (N, 1, H, W) pixels in [0, 1], target (N,) class per image ->
    |d logit_target / d pixel| (N, H, W), computed in eval mode.

    One backward pass for the whole batch: the sum of the chosen logits is differentiated, and in
    eval mode image i's logit depends on image i alone, so each image gets its own gradient.
    """
    check_images(X, target)
    with evaluating(model):
        X = X.detach().clone().requires_grad_(True)
        logits = model((X - mean) / std)
        chosen = logits.gather(1, target.to(logits.device)[:, None]).sum()
        (grad,) = torch.autograd.grad(chosen, X)
    return grad.abs()[:, 0]


def patch_positions(size: int, patch: int, stride: int) -> list[int]:
    """Top (or left) coordinates of the patches along one side: 0, stride, ..., up to size - patch."""
    if not 1 <= patch <= size or stride < 1:
        raise ValueError(f"need 1 <= patch <= {size} and stride >= 1; got patch={patch}, stride={stride}.")
    return list(range(0, size - patch + 1, stride))


@torch.no_grad()
def occlusion_drops(model: nn.Module, X: torch.Tensor, target: torch.Tensor, patch: int = 6, stride: int = 2,
                    fill: float = 0.0, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Occlusion: X (N, 1, H, W) pixels in [0, 1], target (N,) -> drops (N, R, C), where drops[n, i, j] is
    p(target | X[n]) - p(target | X[n] with the patch x patch square at (rows[i], cols[j]) set to fill),
    rows = cols = patch_positions(H or W, patch, stride). Positive: the square held evidence for the class."""
    check_images(X, target)
    rows, cols = patch_positions(X.shape[2], patch, stride), patch_positions(X.shape[3], patch, stride)
    target = target.to(X.device)
    with evaluating(model):
        def prob(images):
            return torch.softmax(model((images - mean) / std), dim=1).gather(1, target[:, None])[:, 0]

        p0 = prob(X)
        drops = torch.empty(len(X), len(rows), len(cols), device=X.device)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                occluded = X.clone()
                occluded[:, :, r: r + patch, c: c + patch] = fill
                drops[:, i, j] = p0 - prob(occluded)
    return drops


def drops_to_pixels(drops: torch.Tensor, patch: int, stride: int, size: tuple[int, int] = (28, 28)) -> torch.Tensor:
    """drops (N, R, C) from occlusion_drops -> (N, H, W): each pixel gets the mean drop of the patches
    that covered it (0 where none did)."""
    H, W = size
    rows, cols = patch_positions(H, patch, stride), patch_positions(W, patch, stride)
    if drops.shape[1:] != (len(rows), len(cols)):
        raise ValueError(f"drops has shape {tuple(drops.shape)}, but patch={patch}, stride={stride} on {H}x{W} "
                         f"gives {len(rows)}x{len(cols)} positions.")
    total = torch.zeros(len(drops), H, W, dtype=drops.dtype, device=drops.device)
    count = torch.zeros(H, W, dtype=drops.dtype, device=drops.device)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            total[:, r: r + patch, c: c + patch] += drops[:, i, j, None, None]
            count[r: r + patch, c: c + patch] += 1
    return total / count.clamp(min=1)


def occlusion_map(model: nn.Module, X: torch.Tensor, target: torch.Tensor, patch: int = 6, stride: int = 2,
                  fill: float = 0.0, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Occlusion map per pixel: X (N, 1, H, W) pixels, target (N,) -> (N, H, W), the mean drop in
    p(target) over the patches covering each pixel (occlusion_drops, then drops_to_pixels)."""
    drops = occlusion_drops(model, X, target, patch, stride, fill, mean, std)
    return drops_to_pixels(drops, patch, stride, tuple(X.shape[2:]))


def top_k_overlap(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """Agreement of two importance maps: a, b (N, H, W) -> (N,) the share (0 to 1) of a's k largest
    pixels that are also among b's k largest, per image. Chance level is about k / (H * W)."""
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"a and b must be maps of the same shape (N, H, W); got {tuple(a.shape)} and {tuple(b.shape)}.")
    if not 1 <= k <= a.shape[1] * a.shape[2]:
        raise ValueError(f"k must be between 1 and {a.shape[1] * a.shape[2]} (pixels per map), got {k}.")
    top_a = a.flatten(1).topk(k, dim=1).indices
    top_b = b.flatten(1).topk(k, dim=1).indices
    in_b = torch.zeros_like(a.flatten(1), dtype=torch.bool).scatter_(1, top_b, True)
    return in_b.gather(1, top_a).float().mean(dim=1)


__all__ = ["check_images", "drops_to_pixels", "evaluating", "occlusion_drops", "occlusion_map", "patch_positions", "saliency",
           "top_k_overlap"]
