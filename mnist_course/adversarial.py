"""Adversarial examples: the fast gradient sign method, a stronger iterated attack, accuracy under
attack, and adversarial training.

Taught in notebook 10 (notebooks/10_what_the_cnn_looks_at.ipynb), sections 5-7, where FGSM and the
adversarial training step are first written in full and checked against this module.

Everything works in **pixel space**: images ``X: (N, 1, H, W)`` float32 in [0, 1] (uint8 / 255) and
an ``eps`` in the same units (0.1 is about 25 grey levels of 255). The course's models expect
normalised input ``(X - mean) / std``, so every function takes the ``mean`` and ``std`` of the model
(``info["mean"]``, ``info["std"]``) and normalises inside: the attack's step and its clamp to
[0, 1] happen in pixel space, where ``eps`` means what it says. Attacks run the model in eval
mode and give it back in the mode it had; they leave no gradient on its parameters.

- :func:`fgsm`: ``clamp(X + eps * sign(d loss / d X), 0, 1)`` against the true labels
  (Goodfellow et al. 2015), ``(N, 1, H, W)``.
- :func:`random_sign`: the same size of change in random directions (the control).
- :func:`pgd`: projected gradient descent (Madry et al. 2018): many small FGSM steps from a random
  start, each projected back into the eps-box around X.
- :func:`accuracy`, :func:`fgsm_accuracy_curve`: accuracy on clean and attacked images; the curve
  reuses one gradient per image for every eps (FGSM's direction does not depend on eps).
- :func:`adversarial_training_step`, :func:`adversarial_train_epoch`: Goodfellow et al.'s mixed loss
  ``alpha * loss(X) + (1 - alpha) * loss(fgsm(X))``, the attack made afresh for every batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attribution import check_images, evaluating


def _check_eps(eps: float) -> float:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps <= 1:
        raise ValueError(f"eps is a change of pixel values in [0, 1] (0.1 is about 25 grey levels of 255); got {eps!r}.")
    return float(eps)


def loss_gradient(model: nn.Module, X: torch.Tensor, y: torch.Tensor, mean: float = 0.0,
                  std: float = 1.0) -> torch.Tensor:
    """d cross_entropy(model((X - mean) / std), y) / d X, for X (N, 1, H, W) pixels and y (N,) true
    labels -> (N, 1, H, W), in eval mode; the parameters' .grad are left untouched."""
    check_images(X, y)
    with evaluating(model):
        X = X.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model((X - mean) / std), y.to(X.device))
        (grad,) = torch.autograd.grad(loss, X)
    return grad


def fgsm(model: nn.Module, X: torch.Tensor, y: torch.Tensor, eps: float, mean: float = 0.0,
         std: float = 1.0) -> torch.Tensor:
    """Fast gradient sign method: X (N, 1, H, W) pixels in [0, 1], y (N,) TRUE labels, eps in pixel
    units -> X_adv (N, 1, H, W) = clamp(X + eps * sign(d loss / d X), 0, 1), detached."""
    eps = _check_eps(eps)
    return (X.detach() + eps * loss_gradient(model, X, y, mean, std).sign()).clamp(0, 1)


def random_sign(X: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The control for FGSM: X (N, 1, H, W) pixels -> clamp(X + eps * s, 0, 1) with s = +-1 drawn at
    random per pixel (from `generator`): the same size of change as FGSM, in no chosen direction."""
    eps = _check_eps(eps)
    s = torch.randint(0, 2, X.shape, generator=generator).to(X.device, X.dtype) * 2 - 1
    return (X.detach() + eps * s).clamp(0, 1)


def pgd(model: nn.Module, X: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10,
        step_size: float | None = None, mean: float = 0.0, std: float = 1.0,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent (an iterated FGSM, Madry et al. 2018): start at a random point of
    the box |X_adv - X| <= eps, take `steps` steps of step_size * sign(gradient) (default 2.5 * eps /
    steps), and after each clamp back into the box and into [0, 1]. X (N, 1, H, W) pixels, y (N,)
    true labels -> X_adv (N, 1, H, W). Stronger than FGSM: a check that a defence did not only
    hide the gradient."""
    eps = _check_eps(eps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    step_size = 2.5 * eps / steps if step_size is None else step_size
    X = X.detach()
    noise = torch.rand(X.shape, generator=generator).to(X.device, X.dtype)
    X_adv = (X + eps * (2 * noise - 1)).clamp(0, 1)
    for _ in range(steps):
        X_adv = X_adv + step_size * loss_gradient(model, X_adv, y, mean, std).sign()
        X_adv = torch.min(torch.max(X_adv, X - eps), X + eps).clamp(0, 1)
    return X_adv


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, mean: float = 0.0, std: float = 1.0,
             batch_size: int = 1000) -> float:
    """Share (0 to 1) of images X (N, 1, H, W) in pixel space whose prediction is y (N,), in eval mode."""
    check_images(X, y)
    with evaluating(model):
        correct = sum(int((model((X[i: i + batch_size] - mean) / std).argmax(1) == y[i: i + batch_size].to(X.device)).sum())
                      for i in range(0, len(X), batch_size))
    return correct / len(X)


def fgsm_accuracy_curve(model: nn.Module, X: torch.Tensor, y: torch.Tensor, eps_list, mean: float = 0.0,
                        std: float = 1.0, batch_size: int = 500) -> list[float]:
    """Accuracy (0 to 1) under FGSM for each eps of eps_list: X (N, 1, H, W) pixels, y (N,) true labels.
    The gradient's sign is computed once per batch and reused for every eps (equal to calling
    fgsm(model, X, y, eps) for each eps, at the cost of one gradient)."""
    eps_list = [_check_eps(e) for e in eps_list]
    correct = [0] * len(eps_list)
    for i in range(0, len(X), batch_size):
        Xb, yb = X[i: i + batch_size], y[i: i + batch_size]
        direction = loss_gradient(model, Xb, yb, mean, std).sign()
        for k, eps in enumerate(eps_list):
            correct[k] += round(accuracy(model, (Xb + eps * direction).clamp(0, 1), yb, mean, std) * len(Xb))
    return [c / len(X) for c in correct]


def adversarial_training_step(model: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor,
                              y: torch.Tensor, eps: float, mean: float = 0.0, std: float = 1.0,
                              alpha: float = 0.5) -> float:
    """One step of adversarial training on a batch X (N, 1, H, W) pixels, y (N,) true labels: make
    X_adv = fgsm(model, X, y, eps) (eval mode), then in train mode one forward pass of
    torch.cat([X, X_adv]) and the loss alpha * CE(clean half) + (1 - alpha) * CE(attacked half);
    zero the gradients, backward, optimizer.step(). Returns the loss (a float)."""
    X_adv = fgsm(model, X, y, eps, mean, std)
    model.train()
    logits = model((torch.cat([X, X_adv]) - mean) / std)
    loss = alpha * F.cross_entropy(logits[: len(X)], y) + (1 - alpha) * F.cross_entropy(logits[len(X):], y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def adversarial_train_epoch(model: nn.Module, train_loader, optimizer: torch.optim.Optimizer, eps: float,
                            mean: float = 0.0, std: float = 1.0, alpha: float = 0.5, desc: str = "adversarial") -> dict:
    """One pass of adversarial_training_step over train_loader's (X pixels (B, 1, H, W), y (B,)) batches.
    Returns {"loss": mean loss}."""
    from .utils import progress

    device = next(model.parameters()).device
    total, n = 0.0, 0
    for X, y in progress(train_loader, desc=desc, leave=False):
        X, y = X.to(device), y.to(device)
        total += adversarial_training_step(model, optimizer, X, y, eps, mean, std, alpha) * len(X)
        n += len(X)
    return {"loss": total / max(n, 1)}


__all__ = ["accuracy", "adversarial_train_epoch", "adversarial_training_step", "fgsm", "fgsm_accuracy_curve",
           "loss_gradient", "pgd", "random_sign"]
