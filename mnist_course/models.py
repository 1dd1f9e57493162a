"""The course's PyTorch models: a configurable MLP and CNN (notebook 04 onwards).

Every model takes normalised images ``X: (N, 1, 28, 28) float32`` (from ``data.normalize``) and
returns logits ``(N, 10)``; MLPs flatten inside, so the same batches feed both kinds. Each model
keeps the arguments it was built with in ``model.config``, so ``rebuild(type_name, config)`` (used
by checkpoints) can make an identical empty copy.

Named configurations for :func:`build_model`:

=============  ====================================================================  ===========
name           what                                                                  parameters
=============  ====================================================================  ===========
``mlp_small``  784-8-10, BatchNorm on the hidden layer: the equal-budget pair's MLP  6,378
``cnn_small``  three 3x3 conv blocks (8, 15, 35 channels), BatchNorm, average pool   6,353
``mlp``        784-512-512-10, the full-size MLP                                      669,706
``cnn``        the course CNN: three conv blocks (16, 32, 64) with BatchNorm, 128     98,682
               hidden, Dropout (notebooks 04 and 06 train it, 07 and 12 use it)
``cnn_wide``   two conv blocks (32, 64), a 128 hidden layer (pytorch/examples-like)   421,642
=============  ====================================================================  ===========
"""

from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


def _check_input(X: torch.Tensor) -> None:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(X).__name__}")
    if X.dim() != 4 or tuple(X.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(
            f"expected images of shape (N, 1, 28, 28), got {tuple(X.shape)}. "
            "Use data.normalize(X) to turn uint8 (N, 28, 28) images into that shape.")
    if not X.is_floating_point():
        raise TypeError(f"expected float images (from data.normalize), got dtype {X.dtype}")


class MLP(nn.Module):
    """Fully connected net: X (N, 1, 28, 28) -> flatten (N, 784) -> hidden layers with ReLU -> logits (N, 10).

    hidden: sizes of the hidden layers (empty: softmax regression); dropout: after each hidden ReLU;
    batchnorm: BatchNorm1d before each ReLU.
    """

    def __init__(self, hidden=(512, 512), dropout: float = 0.0, batchnorm: bool = False,
                 in_features: int = 784, num_classes: int = NUM_CLASSES):
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if any(h <= 0 for h in hidden):
            raise ValueError(f"hidden layer sizes must be positive, got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.config = dict(hidden=list(hidden), dropout=float(dropout), batchnorm=bool(batchnorm),
                           in_features=int(in_features), num_classes=int(num_classes))
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X: (N, 1, 28, 28) (or (N, 784)) float32 -> logits (N, 10)."""
        if X.dim() == 2 and X.shape[1] == self.config["in_features"]:
            return self.net(X)
        _check_input(X)
        return self.net(X)


class CNN(nn.Module):
    """Convolutional net: conv blocks (3x3 conv [+BN] + ReLU, x convs_per_block, then 2x2 max-pool),
    then global average pooling or flattening, an optional hidden layer, and logits (N, 10).

    channels: output channels of each block; hidden: size of the hidden fully connected layer (0: none);
    dropout: before each fully connected layer; global_pool: average each channel to one number
    (few parameters) instead of flattening the feature map.
    Taught in notebook 04, section 1 (the equal-budget CNN written out as `SmallCNN`).
    Taught in notebook 06, section 2a (BatchNorm in train/eval mode, inverted Dropout).
    """

    def __init__(self, channels=(32, 64), hidden: int = 128, dropout: float = 0.0, batchnorm: bool = False,
                 convs_per_block: int = 1, kernel_size: int = 3, global_pool: bool = False,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or any(c <= 0 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive sizes, got {channels}")
        if len(channels) > 4:
            raise ValueError(f"at most 4 blocks fit a 28x28 image (each halves it), got {len(channels)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if convs_per_block < 1 or kernel_size % 2 == 0:
            raise ValueError("convs_per_block must be >= 1 and kernel_size odd (padding keeps the size)")
        self.config = dict(channels=list(channels), hidden=int(hidden), dropout=float(dropout),
                           batchnorm=bool(batchnorm), convs_per_block=int(convs_per_block),
                           kernel_size=int(kernel_size), global_pool=bool(global_pool),
                           num_classes=int(num_classes))
        blocks: list[nn.Module] = []
        c_in, size = 1, 28
        for c_out in channels:
            for _ in range(convs_per_block):
                blocks.append(nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=not batchnorm))
                if batchnorm:
                    blocks.append(nn.BatchNorm2d(c_out))
                blocks.append(nn.ReLU())
                c_in = c_out
            blocks.append(nn.MaxPool2d(2))
            size //= 2
        self.features = nn.Sequential(*blocks)
        head: list[nn.Module] = []
        if global_pool:
            head += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            width = c_in
        else:
            head.append(nn.Flatten())
            width = c_in * size * size
        if hidden:
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            head.append(nn.Linear(width, hidden, bias=not batchnorm))
            if batchnorm:
                head.append(nn.BatchNorm1d(hidden))
            head.append(nn.ReLU())
            width = hidden
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(width, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X: (N, 1, 28, 28) float32 -> logits (N, 10)."""
        _check_input(X)
        return self.head(self.features(X))


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of a model. Taught in notebook 04, section 1 (a convolution has (k*k*c_in + 1)*c_out)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# Named configurations: (class, keyword arguments). build_model(name, **overrides) changes any of them.
CONFIGS: dict[str, tuple[type[nn.Module], dict]] = {
    # The equal-budget pair differs only in architecture: both put BatchNorm between every hidden
    # layer's weights and its ReLU (notebook 04).
    "mlp_small": (MLP, dict(hidden=(8,), batchnorm=True)),
    "cnn_small": (CNN, dict(channels=(8, 15, 35), hidden=0, global_pool=True, batchnorm=True)),
    "mlp": (MLP, dict(hidden=(512, 512))),
    "cnn": (CNN, dict(channels=(16, 32, 64), hidden=128, batchnorm=True, dropout=0.25)),   # the course CNN
    "cnn_wide": (CNN, dict(channels=(32, 64), hidden=128)),
}
RENAMED = {"cnn_best": "cnn"}  # old name -> new name (the old 'cnn' is now 'cnn_wide')

MODEL_CLASSES = {"MLP": MLP, "CNN": CNN}


def build_model(name: str, **kwargs) -> nn.Module:
    """A fresh model by name ('mlp_small', 'cnn_small', 'mlp', 'cnn', 'cnn_wide'); kwargs override its config."""
    key = str(name).strip().lower()
    if key in RENAMED:
        raise ValueError(f"model {name!r} is now called {RENAMED[key]!r} (the course CNN); the wider "
                         "two-block CNN that was called 'cnn' is 'cnn_wide'.")
    if key not in CONFIGS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(CONFIGS)}.")
    cls, config = CONFIGS[key]
    unknown = set(kwargs) - set(cls.__init__.__code__.co_varnames[1:cls.__init__.__code__.co_argcount])
    if unknown:
        raise TypeError(f"{cls.__name__} has no option(s) {sorted(unknown)}; see help(mnist_course.models.{cls.__name__}).")
    model = cls(**{**config, **kwargs})
    model.name = key
    return model


def rebuild(type_name: str, config: dict) -> nn.Module:
    """An untrained model of class `type_name` ('MLP' or 'CNN') with the given `model.config`."""
    if type_name not in MODEL_CLASSES:
        raise ValueError(f"unknown model class {type_name!r}: expected one of {', '.join(MODEL_CLASSES)}")
    return MODEL_CLASSES[type_name](**config)
