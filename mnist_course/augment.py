"""Data augmentation on whole batches of tensors, with random parameters for every image.

A per-sample PIL pipeline (``torchvision.transforms`` inside a ``Dataset``) is slow, and a
``torchvision.transforms.v2`` transform called on a batch tensor draws ONE set of parameters for
the whole batch (every image gets the same rotation). Here each image of a batch gets its own
rotation, translation and zoom: we build one 2x3 affine matrix per image and resample the whole
batch at once with ``F.affine_grid`` + ``F.grid_sample`` (notebook 06 shows both).

Parameters are drawn on the CPU from an explicit ``torch.Generator``, so a seeded run gives the
same augmented batches on CPU and GPU, and the generator's state can be saved to resume a run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_images(X: torch.Tensor) -> None:
    if not isinstance(X, torch.Tensor) or X.ndim != 4 or not X.is_floating_point():
        got = f"{tuple(X.shape)} {X.dtype}" if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(f"expected float images (N, C, H, W), got {got}; use data.normalize(X) first.")


def sample_affine_params(n: int, degrees: float = 15.0, translate: float = 0.15, scale: float = 0.15,
                         generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Draw n independent parameter sets, uniformly: angle in [-degrees, degrees] (degrees),
    shift tx, ty in [-translate, translate] (fractions of the image size), zoom in [1-scale, 1+scale].
    Returns a dict of (n,) float32 CPU tensors: angle, tx, ty, zoom."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if degrees < 0 or translate < 0 or not 0 <= scale < 1:
        raise ValueError(f"need degrees >= 0, translate >= 0 and 0 <= scale < 1; got "
                         f"degrees={degrees}, translate={translate}, scale={scale}")
    u = torch.rand(4, n, generator=generator) * 2 - 1  # uniform in [-1, 1], one row per parameter
    return {"angle": u[0] * degrees, "tx": u[1] * translate, "ty": u[2] * translate, "zoom": 1 + u[3] * scale}


def affine_matrices(angle: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, zoom: torch.Tensor) -> torch.Tensor:
    """(n,) parameters -> (n, 2, 3) matrices for F.affine_grid.

    The image is rotated by `angle` degrees (counter-clockwise on screen), zoomed by `zoom` and
    shifted by (tx, ty) fractions of its width/height (positive: right/down). affine_grid wants the
    inverse map (output pixel -> input pixel), so we build A = zoom * R(angle) and return
    [A^-1 | -A^-1 t] in grid_sample's coordinates, where the image spans [-1, 1].
    """
    a = torch.deg2rad(angle.to(torch.float32))
    cos, sin = torch.cos(a), torch.sin(a)
    # Screen y points down, so a counter-clockwise rotation on screen is R(-a) in (x, y) coordinates.
    # Inverse of zoom * R(-a) is R(a) / zoom.
    inv = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2) / zoom.view(-1, 1, 1)
    t = torch.stack([tx, ty], -1).to(torch.float32) * 2  # fraction of the size -> grid units ([-1, 1] spans 2)
    return torch.cat([inv, -(inv @ t.unsqueeze(-1))], dim=-1)


def affine_batch(X: torch.Tensor, theta: torch.Tensor, fill: float = 0.0, mode: str = "bilinear") -> torch.Tensor:
    """Resample every image of X: (N, C, H, W) float with its own matrix theta: (N, 2, 3) -> (N, C, H, W).

    Pixels that come from outside the image get the value `fill` (the background: for standardised
    MNIST that is data.normalize of 0, i.e. -mean/std, not 0).
    """
    _check_images(X)
    if theta.shape != (len(X), 2, 3):
        raise ValueError(f"theta must have shape ({len(X)}, 2, 3) for {len(X)} images, got {tuple(theta.shape)}")
    theta = theta.to(device=X.device, dtype=X.dtype)
    grid = F.affine_grid(theta, list(X.shape), align_corners=False)
    # grid_sample pads with zeros: shift so that the background is 0, sample, shift back.
    out = F.grid_sample(X - fill, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out + fill


def random_affine(X: torch.Tensor, degrees: float = 15.0, translate: float = 0.15, scale: float = 0.15,
                  fill: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate, shift and zoom each image of X: (N, C, H, W) float by its own random amounts -> same shape.

    Defaults: rotation +-15 degrees, translation +-15 % of the size, zoom +-15 %.
    """
    _check_images(X)
    p = sample_affine_params(len(X), degrees, translate, scale, generator)
    return affine_batch(X, affine_matrices(**p), fill=fill)


class RandomAffine:
    """A batch transform for ``mc.BatchIterator(..., transform=RandomAffine(...))``:
    X: (N, C, H, W) float -> same shape, a new random rotation/shift/zoom for every image.

    It owns a seeded generator; ``state_dict()`` / ``load_state_dict()`` save and restore it so that
    a resumed run sees the same augmented batches. ``fill`` is the background value (standardised
    MNIST: ``-data.mean / data.std``; see :meth:`for_data`).
    """

    def __init__(self, degrees: float = 15.0, translate: float = 0.15, scale: float = 0.15,
                 fill: float = 0.0, seed: int = 0):
        sample_affine_params(0, degrees, translate, scale)  # validates the ranges now, not mid-epoch
        self.degrees, self.translate, self.scale, self.fill = degrees, translate, scale, fill
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def for_data(cls, data, **kwargs) -> RandomAffine:
        """A RandomAffine whose fill is the background of data.normalize(...) images (-mean/std)."""
        return cls(fill=-data.mean / data.std, **kwargs)

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return random_affine(X, self.degrees, self.translate, self.scale, self.fill, self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return (f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
                f"fill={self.fill:.4f})")


def same_params_across_batch(transform, X: torch.Tensor) -> bool:
    """True when `transform` applied to a batch of copies of one image gives identical outputs,
    i.e. it drew one set of random parameters for the whole batch. X: (C, H, W) or (1, C, H, W)."""
    x = X.reshape(1, *X.shape[-3:])
    out = transform(x.repeat(8, 1, 1, 1))
    return bool(all(torch.equal(out[0], out[i]) for i in range(1, len(out))))


__all__ = ["sample_affine_params", "affine_matrices", "affine_batch", "random_affine", "RandomAffine",
           "same_params_across_batch"]
