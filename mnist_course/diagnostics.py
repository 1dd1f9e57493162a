"""Why a deep net does not train: initialisation and per-layer statistics. Taught in notebook 08
(notebooks/08_training_deep_nets.ipynb), which writes each piece in full before importing it.

- :func:`init_std`: the standard deviation of Xavier (Glorot) or Kaiming (He) normal
  initialisation, as ``torch.nn.init.xavier_normal_`` / ``kaiming_normal_`` draw it.
- :func:`init_weights_`: re-initialise every ``nn.Linear`` of a model (PyTorch's default, zeros,
  a fixed standard deviation, Xavier or Kaiming), biases at zero.
- :func:`deep_mlp`: the notebook's deep MLP, ``depth`` linear layers with tanh or ReLU between them
  and, optionally, BatchNorm before each non-linearity.
- :class:`LayerStats`: forward and backward hooks that keep, for every activation layer, its output
  and the gradient of the loss with respect to that output; ``summary()`` gives per-layer mean,
  standard deviation, saturation and gradient statistics.
- :func:`grad_to_data_ratios`, :func:`update_to_data_ratios`: how large a weight matrix's gradient,
  or its last update, is next to the weights themselves.
- :func:`plot_layer_histograms`: one histogram line per layer (the picture of makemore part 3).
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCHEMES = ("default", "zeros", "normal", "xavier", "kaiming")
NONLINEARITIES = ("linear", "tanh", "relu")
TANH_SATURATED = 0.97  # |tanh| above this: the local slope 1 - a^2 is below 0.06


def _gain(nonlinearity: str) -> float:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    return nn.init.calculate_gain(nonlinearity)


def init_std(fan_in: int, fan_out: int, scheme: str = "kaiming", nonlinearity: str = "relu") -> float:
    """The standard deviation of a normal initialisation for a layer with fan_in inputs and fan_out
    outputs: "xavier": gain * sqrt(2 / (fan_in + fan_out)); "kaiming" (fan-in mode): gain / sqrt(fan_in).
    The gain is torch.nn.init.calculate_gain(nonlinearity): 1 (linear), 5/3 (tanh), sqrt(2) (relu)."""
    if fan_in < 1 or fan_out < 1:
        raise ValueError(f"fan_in and fan_out must be >= 1, got {fan_in} and {fan_out}")
    gain = _gain(nonlinearity)
    if scheme == "xavier":
        return gain * math.sqrt(2.0 / (fan_in + fan_out))
    if scheme == "kaiming":
        return gain / math.sqrt(fan_in)
    raise ValueError(f"scheme must be 'xavier' or 'kaiming', got {scheme!r}")


def init_weights_(model: nn.Module, scheme: str, nonlinearity: str = "relu", std: float | None = None,
                  generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialise every nn.Linear of `model` in place and return the model.

    scheme: "default" (PyTorch's own: uniform in +-1/sqrt(fan_in) for weights and biases, drawn from
    the global generator), "zeros" (weights and biases 0), "normal" (weights N(0, std^2)), "xavier"
    or "kaiming" (weights N(0, init_std(...)^2) with `nonlinearity`'s gain). Every scheme but
    "default" sets the biases to zero. BatchNorm layers are left as they are."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if scheme == "normal" and (std is None or std < 0):
        raise ValueError(f"scheme 'normal' needs std >= 0, got {std!r}")
    with torch.no_grad():
        for layer in model.modules():
            if not isinstance(layer, nn.Linear):
                continue
            if scheme == "default":
                layer.reset_parameters()
                continue
            if scheme == "zeros":
                layer.weight.zero_()
            else:
                s = std if scheme == "normal" else init_std(layer.in_features, layer.out_features, scheme, nonlinearity)
                layer.weight.normal_(0.0, s, generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()
    return model


def deep_mlp(depth: int = 20, width: int = 100, activation: str = "tanh", batchnorm: bool = False,
             in_features: int = 784, num_classes: int = 10) -> nn.Sequential:
    """X (N, 1, 28, 28) or (N, 784) -> logits (N, 10) through `depth` linear layers: depth - 1 hidden
    layers of `width` units, each [Linear, BatchNorm1d if batchnorm, Tanh or ReLU], then a Linear to
    the classes. With BatchNorm the hidden Linear layers have no bias (BatchNorm's beta is the bias).
    PyTorch's default initialisation, from the global generator (torch.manual_seed first)."""
    if depth < 2:
        raise ValueError(f"depth counts the linear layers and must be >= 2, got {depth}")
    if activation not in ("tanh", "relu"):
        raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    n_in = in_features
    for _ in range(depth - 1):
        layers.append(nn.Linear(n_in, width, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.Tanh() if activation == "tanh" else nn.ReLU())
        n_in = width
    layers.append(nn.Linear(n_in, num_classes))
    return nn.Sequential(*layers)


class LayerStats:
    """Hooks on every layer of the given kinds (by default each nn.Tanh and nn.ReLU) of `model`.

    A forward hook keeps each layer's output (detached), a full backward hook the gradient of the
    loss with respect to that output (grad_output[0]). Run a forward pass (and a backward pass for
    the gradients), then read ``outputs`` / ``grads`` ({layer name: tensor}) or ``summary()``.
    Use it as a context manager, or call ``remove()``: hooks left behind slow every later pass.
    Layers must not work in place (nn.ReLU(inplace=True) breaks backward hooks)."""

    def __init__(self, model: nn.Module, kinds: tuple[type[nn.Module], ...] = (nn.Tanh, nn.ReLU)):
        self.kinds = kinds
        self.names: list[str] = []
        self.modules: dict[str, nn.Module] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self._handles = []
        for name, module in model.named_modules():
            if isinstance(module, kinds):
                self.names.append(name)
                self.modules[name] = module
                self._handles.append(module.register_forward_hook(self._keep_output(name)))
                self._handles.append(module.register_full_backward_hook(self._keep_grad(name)))
        if not self.names:
            raise ValueError(f"the model has no layer of the kinds {[k.__name__ for k in kinds]}")

    def _keep_output(self, name: str):
        def hook(module, inputs, output):
            self.outputs[name] = output.detach()
        return hook

    def _keep_grad(self, name: str):
        def hook(module, grad_input, grad_output):
            self.grads[name] = grad_output[0].detach()
        return hook

    def remove(self) -> None:
        """Remove every hook (the tensors kept so far stay readable)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> LayerStats:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def summary(self, threshold: float = TANH_SATURATED) -> list[dict]:
        """One dict per layer, in forward order: name, kind, mean, std (over every value of the
        output), saturated (the fraction of values whose local slope is about 0: |a| > threshold
        for tanh, a == 0 for ReLU), and grad_mean, grad_std (None before a backward pass)."""
        rows = []
        for i, name in enumerate(self.names, 1):
            if name not in self.outputs:
                raise RuntimeError("no forward pass was recorded: call the model first (with the hooks in place)")
            A, module = self.outputs[name], self.modules[name]
            saturated = (A.abs() > threshold) if isinstance(module, nn.Tanh) else (A == 0)
            G = self.grads.get(name)
            rows.append({"layer": i, "name": name, "kind": type(module).__name__, "mean": A.mean().item(),
                         "std": A.std().item(), "saturated": saturated.float().mean().item(),
                         "grad_mean": None if G is None else G.mean().item(),
                         "grad_std": None if G is None else G.std().item()})
        return rows


def weight_matrices(model: nn.Module) -> dict[str, nn.Parameter]:
    """{name: parameter} of every nn.Linear weight (the 2-D parameters), in order."""
    return {f"{name}.weight": m.weight for name, m in model.named_modules() if isinstance(m, nn.Linear)}


def grad_to_data_ratios(model: nn.Module) -> dict[str, float]:
    """{name: grad.std() / weight.std()} for every nn.Linear weight that has a gradient."""
    return {name: (w.grad.std() / w.std()).item() for name, w in weight_matrices(model).items()
            if w.grad is not None}


def update_to_data_ratios(before: dict[str, torch.Tensor], model: nn.Module) -> dict[str, float]:
    """{name: (w_now - w_before).std() / w_before.std()}: the last update's size next to the weights'
    (makemore's guide: about 1e-3). before: {name: a copy of the weight}, as weight_matrices(model)
    gives them (clone them before the optimiser's step)."""
    now = weight_matrices(model)
    return {name: ((now[name].detach() - w).std() / w.std()).item() for name, w in before.items()}


def plot_layer_histograms(ax, tensors: dict[str, torch.Tensor], bins: int = 60, value_range=None,
                          title: str | None = None, xlabel: str = "value") -> None:
    """One histogram line per tensor on the matplotlib axes `ax`, labelled with its mean and
    standard deviation. tensors: {label: tensor of any shape}; value_range: (low, high), or None for
    a common symmetric range around 0 that covers 99.9 % of the values."""
    if value_range is None:
        limit = max(float(t.detach().abs().flatten().float().quantile(0.999)) for t in tensors.values()) or 1.0
        value_range = (-limit, limit)
    for label, t in tensors.items():
        t = t.detach().flatten().float()
        counts, edges = torch.histogram(t.clamp(*value_range), bins=bins, range=value_range, density=True)
        centres = (edges[:-1] + edges[1:]) / 2
        ax.plot(centres.numpy(), counts.numpy(), label=f"{label}: mean {t.mean():+.2g}, std {t.std():.2g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
