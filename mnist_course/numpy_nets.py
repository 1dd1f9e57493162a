"""Neural networks in plain NumPy, with hand-written backward passes (notebooks 02 and 03).

The surface mirrors PyTorch on purpose (``forward``, ``backward``, ``parameters``, ``zero_grad``,
``SGD.step``), so the switch to ``torch.nn`` in notebook 03 changes names, not ideas. Weights use
PyTorch's layout: a linear layer holds ``W`` of shape ``(out_features, in_features)`` and computes
``z = X @ W.T + b``, so the same numbers can be copied into ``nn.Linear`` unchanged.

Trade-offs: clarity over speed. Everything is float32 for training and float64 for gradient
checks (``model.to(np.float64)``); there is no autograd here, each layer caches what its
backward pass needs during ``forward``. Randomness comes only from the ``rng`` you pass
(``np.random.default_rng(seed)``); nothing is seeded on import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

__all__ = [
    "one_hot", "softmax", "log_softmax", "cross_entropy", "cross_entropy_grad", "CrossEntropyLoss",
    "Parameter", "Linear", "ReLU", "SoftmaxRegression", "MLP", "SGD",
    "numerical_gradient", "relative_error", "grad_check", "cmp",
    "minibatches", "train_epoch", "evaluate", "accuracy", "limit_blas_threads",
]


# ------------------------------------------------------------------------------------- checks

def _check_X(X: np.ndarray, in_features: int, who: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        hint = (" Flatten the images first: X.reshape(len(X), -1) or data.normalize(X, flatten=True)."
                if X.ndim > 2 else " Pass a batch: X[None, :] for a single example.")
        raise ValueError(f"{who} expects X of shape (N, {in_features}), got shape {X.shape}.{hint}")
    if X.shape[1] != in_features:
        raise ValueError(f"{who} expects X of shape (N, {in_features}), got {X.shape[1]} columns "
                         f"(shape {X.shape}). Check the input width: MNIST images flatten to 784.")
    if not np.issubdtype(X.dtype, np.floating):
        raise ValueError(f"{who} expects floating-point X, got dtype {X.dtype}. "
                         "Convert and normalise first, e.g. data.normalize(X, flatten=True).numpy().")
    return X


def _check_labels(y, n: int, num_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels y must have shape ({n},) to match the {n} rows of logits, got shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels y must be integers (class indices), got dtype {y.dtype}. "
                         "Use y.astype(np.int64); for one-hot targets use y.argmax(1).")
    if n and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)][0]
        raise ValueError(f"label {bad} is out of range: labels must lie in 0..{num_classes - 1} "
                         f"for {num_classes} classes.")
    return y


def _check_logits(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, num_classes), got shape {logits.shape}.")
    return logits


# ------------------------------------------------------------------------------- functions

def one_hot(y, num_classes: int = 10, dtype=np.float32) -> np.ndarray:
    """y: (N,) int labels -> (N, num_classes) array with a 1 in each label's column."""
    y = _check_labels(y, len(np.asarray(y).reshape(-1)), num_classes)
    out = np.zeros((len(y), num_classes), dtype=dtype)
    out[np.arange(len(y)), y] = 1
    return out


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable softmax along `axis`: subtracting the row maximum keeps exp() from overflowing. Taught in notebook 02, section 2."""
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable log(softmax(z)) = z - max - log(sum(exp(z - max))); finite even for logits of ±1000."""
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def cross_entropy(logits: np.ndarray, y) -> float:
    """Mean cross-entropy: logits (N, C), y (N,) int labels -> -mean(log softmax(logits)[i, y_i]). Taught in notebook 02, section 2."""
    logits = _check_logits(logits)
    y = _check_labels(y, len(logits), logits.shape[1])
    return float(-log_softmax(logits)[np.arange(len(y)), y].mean())


def cross_entropy_grad(logits: np.ndarray, y) -> np.ndarray:
    """dL/dlogits of the mean cross-entropy: (softmax(logits) - one_hot(y)) / N, shape (N, C). Taught in notebook 02, section 3."""
    logits = _check_logits(logits)
    y = _check_labels(y, len(logits), logits.shape[1])
    dz = softmax(logits)
    dz[np.arange(len(y)), y] -= 1
    return dz / len(y)


class CrossEntropyLoss:
    """Mean cross-entropy as a layer: loss = loss_fn(logits, y); dlogits = loss_fn.backward()."""

    def __call__(self, logits: np.ndarray, y) -> float:
        return self.forward(logits, y)

    def forward(self, logits: np.ndarray, y) -> float:
        """logits (N, C), y (N,) -> mean loss (a float); remembers softmax(logits) for backward."""
        logits = _check_logits(logits)
        y = _check_labels(y, len(logits), logits.shape[1])
        logp = log_softmax(logits)
        self.p, self.y = np.exp(logp), y
        return float(-logp[np.arange(len(y)), y].mean())

    def backward(self) -> np.ndarray:
        """-> dL/dlogits (N, C) = (p - one_hot(y)) / N, for the last forward call."""
        if getattr(self, "p", None) is None:
            raise RuntimeError("call the loss (forward) before backward().")
        dz = self.p.copy()
        dz[np.arange(len(self.y)), self.y] -= 1
        return dz / len(self.y)

    def __repr__(self) -> str:
        return "CrossEntropyLoss()"


def accuracy(logits: np.ndarray, y) -> float:
    """Fraction of rows whose largest logit is at the label: logits (N, C), y (N,) -> float in [0, 1]."""
    return float((np.asarray(logits).argmax(axis=1) == np.asarray(y)).mean())


# ---------------------------------------------------------------------------------- layers

class Parameter:
    """A trainable array and its gradient (like torch.nn.Parameter): .data and .grad, same shape."""

    def __init__(self, data: np.ndarray, name: str = ""):
        self.data = data
        self.grad = np.zeros_like(data)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: a module has parameters(), zero_grad(), __call__ = forward, and to(dtype)."""

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.forward(X)

    def parameters(self) -> list[Parameter]:
        return []

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [(p.name, p) for p in self.parameters()]

    def zero_grad(self) -> None:
        """Set every parameter's .grad to zeros (backward() accumulates into .grad, as in PyTorch)."""
        for p in self.parameters():
            p.grad = np.zeros_like(p.data)

    def to(self, dtype) -> Module:
        """Convert all parameters to `dtype` in place (np.float64 for gradient checks); returns self."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = p.grad.astype(dtype)
        return self

    @property
    def dtype(self):
        params = self.parameters()
        return params[0].data.dtype if params else None

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameter arrays by name (e.g. {'fc1.W': ..., 'fc1.b': ...})."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays from `state` into the parameters; names and shapes must match."""
        own = dict(self.named_parameters())
        if set(state) != set(own):
            raise KeyError(f"state_dict keys {sorted(state)} do not match the model's {sorted(own)}.")
        for name, p in own.items():
            value = np.asarray(state[name])
            if value.shape != p.data.shape:
                raise ValueError(f"{name}: shape {value.shape} in state_dict, model has {p.data.shape}.")
            p.data = value.astype(p.data.dtype, copy=True)


class Linear(Module):
    """z = X @ W.T + b with W: (out_features, in_features), b: (out_features,), as torch.nn.Linear.

    Initialisation: uniform in ±1/sqrt(in_features) (PyTorch's default), or zeros with init="zeros".
    Taught in notebook 03, section 2.
    """

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator | None = None,
                 dtype=np.float32, init: str = "uniform", name: str = ""):
        if init == "zeros":
            W = np.zeros((out_features, in_features), dtype=dtype)
            b = np.zeros(out_features, dtype=dtype)
        elif init == "uniform":
            if rng is None:
                raise ValueError("Linear needs rng=np.random.default_rng(seed) for its random initial weights "
                                 "(or init='zeros').")
            bound = 1.0 / np.sqrt(in_features)
            W = rng.uniform(-bound, bound, size=(out_features, in_features)).astype(dtype)
            b = rng.uniform(-bound, bound, size=out_features).astype(dtype)
        else:
            raise ValueError(f"init must be 'uniform' or 'zeros', got {init!r}.")
        prefix = f"{name}." if name else ""
        self.in_features, self.out_features = in_features, out_features
        self.W, self.b = Parameter(W, prefix + "W"), Parameter(b, prefix + "b")
        self.X = None

    def forward(self, X: np.ndarray) -> np.ndarray:
        """X: (N, in_features) -> z: (N, out_features); caches X for backward."""
        self.X = _check_X(X, self.in_features, type(self).__name__)
        return self.X @ self.W.data.T + self.b.data

    def backward(self, dz: np.ndarray) -> np.ndarray:
        """dz = dL/dz (N, out) -> dL/dX (N, in); adds dL/dW = dz.T @ X and dL/db = dz.sum(0) to .grad."""
        if self.X is None:
            raise RuntimeError("call forward() before backward().")
        self.W.grad += dz.T @ self.X
        self.b.grad += dz.sum(axis=0)
        return dz @ self.W.data

    def parameters(self) -> list[Parameter]:
        return [self.W, self.b]

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features})"


class ReLU(Module):
    """max(0, x) elementwise; its backward lets the gradient through where the input was positive."""

    def forward(self, X: np.ndarray) -> np.ndarray:
        self.mask = X > 0
        return X * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask

    def __repr__(self) -> str:
        return "ReLU()"


# ---------------------------------------------------------------------------------- models

class SoftmaxRegression(Module):
    """Multinomial logistic regression: X (N, 784) -> logits (N, 10) = X @ W.T + b (notebook 02)."""

    def __init__(self, in_features: int = 784, num_classes: int = 10, rng: np.random.Generator | None = None,
                 dtype=np.float32, init: str = "zeros"):
        self.in_features, self.num_classes = in_features, num_classes
        self.linear = Linear(in_features, num_classes, rng=rng, dtype=dtype, init=init)

    @property
    def W(self) -> Parameter:
        return self.linear.W

    @property
    def b(self) -> Parameter:
        return self.linear.b

    def forward(self, X: np.ndarray) -> np.ndarray:
        """X: (N, in_features) float -> logits (N, num_classes)."""
        return self.linear.forward(X)

    def backward(self, dlogits: np.ndarray) -> np.ndarray:
        """dL/dlogits (N, C) -> dL/dX (N, in_features); accumulates W.grad and b.grad."""
        return self.linear.backward(dlogits)

    def parameters(self) -> list[Parameter]:
        return self.linear.parameters()

    def predict(self, X: np.ndarray) -> np.ndarray:
        """X: (N, in_features) -> predicted labels (N,) int64."""
        return self.forward(X).argmax(axis=1)

    def __repr__(self) -> str:
        return (f"SoftmaxRegression(in_features={self.in_features}, num_classes={self.num_classes}, "
                f"parameters={self.num_parameters():,}, dtype={self.dtype})")


class MLP(Module):
    """One hidden layer: X (N, 784) -> fc1 -> ReLU -> fc2 -> logits (N, 10) (notebook 03)."""

    def __init__(self, in_features: int = 784, hidden: int = 256, num_classes: int = 10,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        if rng is None:
            raise ValueError("MLP needs rng=np.random.default_rng(seed) for its random initial weights.")
        self.in_features, self.hidden, self.num_classes = in_features, hidden, num_classes
        self.fc1 = Linear(in_features, hidden, rng=rng, dtype=dtype, name="fc1")
        self.relu = ReLU()
        self.fc2 = Linear(hidden, num_classes, rng=rng, dtype=dtype, name="fc2")

    def forward(self, X: np.ndarray) -> np.ndarray:
        """X: (N, in_features) float -> logits (N, num_classes)."""
        return self.fc2.forward(self.relu.forward(self.fc1.forward(X)))

    def backward(self, dlogits: np.ndarray) -> np.ndarray:
        """dL/dlogits (N, C) -> dL/dX (N, in_features); accumulates every parameter's .grad."""
        return self.fc1.backward(self.relu.backward(self.fc2.backward(dlogits)))

    def parameters(self) -> list[Parameter]:
        return self.fc1.parameters() + self.fc2.parameters()

    def predict(self, X: np.ndarray) -> np.ndarray:
        """X: (N, in_features) -> predicted labels (N,) int64."""
        return self.forward(X).argmax(axis=1)

    def __repr__(self) -> str:
        return (f"MLP(\n  (fc1): {self.fc1!r}\n  (relu): ReLU()\n  (fc2): {self.fc2!r}\n)"
                f"  # {self.num_parameters():,} parameters, {self.dtype}")


# ------------------------------------------------------------------------------- optimiser

class SGD:
    """Minibatch SGD with optional momentum and weight decay, with torch.optim.SGD's update rule:
    g = grad + weight_decay * w;  v = momentum * v + g;  w -= lr * v. Taught in notebook 03, section 5 (the loop: notebook 02)."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD got an empty parameter list; pass model.parameters().")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}.")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = np.zeros_like(p.data)

    def step(self) -> None:
        """Update every parameter in place from its .grad."""
        for i, p in enumerate(self.params):
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if self.momentum:
                self.velocity[i] = g.copy() if self.velocity[i] is None else self.momentum * self.velocity[i] + g
                g = self.velocity[i]
            p.data -= (self.lr * g).astype(p.data.dtype, copy=False)

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay})"


# ------------------------------------------------------------------------- gradient checks

def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6,
                       indices: np.ndarray | None = None) -> np.ndarray:
    """Central differences (f(x+eps) - f(x-eps)) / 2eps of a scalar f() w.r.t. the array x, which
    f reads and which is perturbed in place (and restored). indices: flat positions to check
    (default all); the others stay 0 in the result."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    for i in (range(x.size) if indices is None else indices):
        old = flat_x[i]
        flat_x[i] = old + eps
        f_plus = f()
        flat_x[i] = old - eps
        f_minus = f()
        flat_x[i] = old
        flat_g[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / (||a|| + ||b||): 0 when equal, about 1e-7 or less for a good float64 check."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def grad_check(model: Module, X: np.ndarray, y, loss_fn=cross_entropy, eps: float = 1e-6,
               num_checks: int | None = 20, seed: int = 0, verbose: bool = False) -> float:
    """Compare the model's backward pass with central differences; returns the largest relative
    error over all parameters (checked at `num_checks` random entries each; None: all entries).
    The model must be float64 (model.to(np.float64)): in float32, rounding swamps the difference."""
    if model.dtype != np.float64:
        raise ValueError(f"grad_check needs a float64 model, got {model.dtype}: call model.to(np.float64) "
                         "and pass float64 X (float32 rounding errors (~1e-7) swamp finite differences).")
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(seed)
    model.zero_grad()
    logits = model.forward(X)
    model.backward(cross_entropy_grad(logits, y) if loss_fn is cross_entropy else _loss_grad(loss_fn, logits, y))

    def f() -> float:
        return loss_fn(model.forward(X), y)

    worst = 0.0
    for name, p in model.named_parameters():
        idx = None if num_checks is None or num_checks >= p.data.size else rng.choice(p.data.size, num_checks, replace=False)
        numeric = numerical_gradient(f, p.data, eps, idx)
        analytic = p.grad.reshape(-1) if idx is None else p.grad.reshape(-1)[idx]
        numeric = numeric.reshape(-1) if idx is None else numeric.reshape(-1)[idx]
        err = relative_error(analytic, numeric)
        worst = max(worst, err)
        if verbose:
            print(f"{name:8s} {str(p.data.shape):12s} relative error {err:.2e}")
    return worst


def _loss_grad(loss_fn, logits, y):
    if isinstance(loss_fn, CrossEntropyLoss):
        loss_fn(logits, y)
        return loss_fn.backward()
    raise ValueError("grad_check knows the gradient of cross_entropy and CrossEntropyLoss only.")


def cmp(name: str, dt: np.ndarray, t) -> float:
    """Print whether a hand-computed gradient `dt` (NumPy) equals autograd's `t.grad` (or the array
    `t`): exactly, approximately (allclose) and the max absolute difference; returns that difference. Taught in notebook 03, section 4."""
    import torch

    if isinstance(t, torch.Tensor):
        ref = t.grad if t.grad is not None else t
        if t.requires_grad and t.grad is None:
            raise ValueError(f"{name}: the tensor has no .grad; call loss.backward() first "
                             "(and t.retain_grad() for a non-leaf tensor).")
        ref = ref.detach().cpu().numpy()
    else:
        ref = np.asarray(t)
    dt = np.asarray(dt)
    if dt.shape != ref.shape:
        raise ValueError(f"{name}: shapes differ, hand-written {dt.shape} vs autograd {ref.shape}.")
    exact = bool(np.all(dt == ref))
    approx = bool(np.allclose(dt, ref))
    maxdiff = float(np.max(np.abs(dt - ref))) if dt.size else 0.0
    print(f"{name:15s} | exact: {exact!s:5} | approximate: {approx!s:5} | maxdiff: {maxdiff:.2e}")
    return maxdiff


# -------------------------------------------------------------------------------- training

def minibatches(X: np.ndarray, y: np.ndarray, batch_size: int = 128,
                rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (X_batch, y_batch) slices; shuffled with `rng` when given, in order otherwise."""
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}; they must match.")
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = rng.permutation(len(X)) if rng is not None else None
    for lo in range(0, len(X), batch_size):
        if order is None:
            yield X[lo:lo + batch_size], y[lo:lo + batch_size]
        else:
            idx = order[lo:lo + batch_size]
            yield X[idx], y[idx]


def train_epoch(model: Module, X: np.ndarray, y: np.ndarray, optimizer: SGD, batch_size: int = 128,
                rng: np.random.Generator | None = None, loss_fn: CrossEntropyLoss | None = None) -> dict:
    """One pass of minibatch SGD over (X, y): forward, loss, backward, step.
    -> {"loss": mean training loss, "acc": training accuracy in [0, 1]} (notebook 02's loop)."""
    loss_fn = loss_fn or CrossEntropyLoss()
    total_loss, correct = 0.0, 0
    for X_batch, y_batch in minibatches(X, y, batch_size, rng):
        logits = model.forward(X_batch)
        loss = loss_fn(logits, y_batch)
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
        total_loss += loss * len(y_batch)
        correct += int((logits.argmax(axis=1) == y_batch).sum())
    return {"loss": total_loss / len(y), "acc": correct / len(y)}


def evaluate(model: Module, X: np.ndarray, y: np.ndarray, batch_size: int = 2000) -> dict:
    """Mean loss and accuracy of `model` on (X, y), no updates -> {"loss": float, "acc": float}."""
    total_loss, correct = 0.0, 0
    for X_batch, y_batch in minibatches(X, y, batch_size):
        logits = model.forward(X_batch)
        total_loss += cross_entropy(logits, y_batch) * len(y_batch)
        correct += int((logits.argmax(axis=1) == y_batch).sum())
    return {"loss": total_loss / len(y), "acc": correct / len(y)}


def limit_blas_threads(num_threads: int = 1) -> bool:
    """Make NumPy's BLAS use `num_threads` threads from now on (through threadpoolctl, if installed);
    returns False when it could not. A minibatch's matrices are small: on two busy cores, BLAS
    threads can spend more time waiting for each other than computing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(num_threads, user_api="blas")
    return True
