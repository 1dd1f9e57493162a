"""Training recipes: one definition of each named set of settings, shared by notebook 06 and the CLI.

``BEST_CNN`` is the course's best CNN (notebook 06; ``mnist-course train --recipe best-cnn``).
:func:`train_setup` turns a recipe into (model, train_loader, optimizer, scheduler), always drawing
random numbers in the same order, so the notebook and the command line train identical models
from the same seed (same initial weights, same batches, same augmentation draws).
"""

from __future__ import annotations

import torch

# The course's best CNN (notebook 06). "epochs" is the full-mode length; "val_size" the number of
# training images held out (data.split(val_size, seed)) to choose the best epoch; "augment" the
# ranges of augment.RandomAffine (None: no augmentation).
BEST_CNN = {
    "model": "cnn",
    "optimizer": "adamw",
    "lr": 3e-3,
    "scheduler": "onecycle",  # stepped once per batch
    "batch_size": 128,
    "epochs": 15,
    "val_size": 5_000,
    "augment": {"degrees": 15.0, "translate": 0.15, "scale": 0.15},
}

RECIPES = {"best-cnn": BEST_CNN}


def train_setup(data, X_train: torch.Tensor, y_train: torch.Tensor, recipe: dict, num_epochs: int,
                seed: int = 0, device=None):
    """(model, train_loader, optimizer, scheduler) for a recipe (a dict like BEST_CNN).

    data: the MNISTData that X_train came from (for the augmentation's background value);
    X_train: normalised images (N, 1, 28, 28) float32, y_train: (N,) int64. Random numbers are drawn in
    this order: torch.manual_seed(seed), the model's initial weights, then the augmentation's and the
    loader's own generators (both seeded with `seed`); dropout then draws from the global generator.
    """
    from .augment import RandomAffine
    from .data import BatchIterator
    from .models import build_model
    from .training import make_optimizer, make_scheduler

    torch.manual_seed(seed)
    model = build_model(recipe["model"]).to(device)
    augment = recipe.get("augment")
    transform = RandomAffine.for_data(data, seed=seed, **augment) if augment else None
    train_loader = BatchIterator(X_train, y_train, batch_size=recipe["batch_size"], shuffle=True, seed=seed,
                                 device=device, transform=transform)
    optimizer = make_optimizer(recipe["optimizer"], model.parameters(), lr=recipe["lr"])
    scheduler = make_scheduler(recipe["scheduler"], optimizer, num_epochs, len(train_loader))
    return model, train_loader, optimizer, scheduler


__all__ = ["BEST_CNN", "RECIPES", "train_setup"]
