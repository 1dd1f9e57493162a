"""What the network considers similar: embeddings, PCA and nearest neighbours (taught in notebook 11).

The *embedding* of an image is what a trained network computes just before its last linear layer:
for the course CNN the 128 numbers after the hidden layer's ReLU, from which the logits are a
linear function. Images the network treats alike get nearby embeddings.

- :func:`last_linear`, :func:`embed`: the penultimate features of a model, read with a forward
  pre-hook on its last ``nn.Linear`` (the model itself is not changed);
- :func:`pca`: principal component analysis by the SVD of the centred data (scikit-learn's
  ``PCA`` agrees, up to the sign of each component);
- :func:`nearest_neighbours`: the k nearest rows of a bank of vectors, by cosine similarity or
  Euclidean (L2) distance.

t-SNE, the non-linear map of notebook 11's figures, comes from scikit-learn (``sklearn.manifold.TSNE``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last ``nn.Linear`` module (in registration order): for the course models, the layer
    that turns the embedding into logits. Raises ValueError for a model without one."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer, so no penultimate features to read.")
    return linears[-1]


@torch.no_grad()
def embed(model: nn.Module, X: torch.Tensor, batch_size: int = 1024, device=None) -> torch.Tensor:
    """Penultimate features: X (N, ...) normalised images as the model takes them, e.g. (N, 1, 28, 28)
    -> (N, D) float32 on the CPU, the input of the model's last linear layer (D = 128 for the course
    CNN), computed in eval mode in batches. The model is left in eval mode."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X must be a torch.Tensor of normalised images, got {type(X).__name__}")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    model.eval()
    captured = []
    hook = last_linear(model).register_forward_pre_hook(lambda m, inputs: captured.append(inputs[0].detach().cpu()))
    try:
        for i in range(0, len(X), batch_size):
            model(X[i: i + batch_size].to(device))
    finally:
        hook.remove()
    if not captured:
        return torch.empty(0, last_linear(model).in_features)
    return torch.cat(captured).float()


def pca(X, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal component analysis of X (N, D): (Z (N, k) the coordinates along the first k
    components, components (k, D) unit vectors, explained (k,) the share of the total variance along
    each). By the SVD of the centred X, X - mean = U S Vt: the components are the first k rows of Vt,
    Z = (X - mean) @ components.T; each component's sign makes its largest coordinate positive."""
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    X = X.astype(np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"X must be (N, D) with N >= 2, got shape {X.shape}")
    if not 1 <= k <= min(X.shape):
        raise ValueError(f"k must be between 1 and min(N, D) = {min(X.shape)}, got {k}")
    centred = X - X.mean(axis=0)
    _, S, Vt = np.linalg.svd(centred, full_matrices=False)
    components = Vt[:k]
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    explained = S[:k] ** 2 / np.sum(S ** 2)
    return centred @ components.T, components, explained


def nearest_neighbours(query, bank, k: int = 5, metric: str = "cosine") -> tuple[torch.Tensor, torch.Tensor]:
    """The k rows of bank (N, D) nearest to each row of query (Q, D) (or one (D,) vector):
    (indices (Q, k) int64, scores (Q, k)), nearest first. metric "cosine": scores are cosine
    similarities (largest first; the vectors' lengths do not count); "l2": Euclidean distances
    (smallest first)."""
    query = torch.as_tensor(query, dtype=torch.float32)
    bank = torch.as_tensor(bank, dtype=torch.float32)
    if query.ndim == 1:
        query = query[None]
    if query.ndim != 2 or bank.ndim != 2 or query.shape[1] != bank.shape[1]:
        raise ValueError(f"query (Q, D) and bank (N, D) must have the same D, got {tuple(query.shape)} and {tuple(bank.shape)}")
    if not 1 <= k <= len(bank):
        raise ValueError(f"k must be between 1 and the bank's size {len(bank)}, got {k}")
    if metric == "cosine":
        scores = nn.functional.normalize(query, dim=1) @ nn.functional.normalize(bank, dim=1).T
        values, indices = scores.topk(k, dim=1, largest=True)
    elif metric == "l2":
        values, indices = torch.cdist(query, bank).topk(k, dim=1, largest=False)
    else:
        raise ValueError(f"metric must be 'cosine' or 'l2', got {metric!r}")
    return indices, values


__all__ = ["embed", "last_linear", "nearest_neighbours", "pca"]
