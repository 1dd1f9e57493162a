"""The checks of notebook 08, why a deep net does not train (notebooks/08_training_deep_nets.ipynb):
the standard deviation of Xavier and Kaiming initialisation (08.1), activation statistics through
forward hooks (08.2), the gradient reaching each activation through backward hooks (08.3), a full
MLP backward pass in NumPy (08.4), BatchNorm's backward pass (08.5).

Named after the notebook's number, as the exercise ids are ("08.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .core import Mistake, as_array, call, exercise, expect

# ------------------------------------------------------------------------------------- 08.1


@exercise("08.1", "init_std", "the standard deviation of Xavier and Kaiming initialisation", hint="""
    Both schemes choose Var(w) so that the variance of a signal stays the same from layer to layer:
    Var(y) = n Var(w) Var(x) for a sum of n products. Kaiming keeps the forward pass steady (n is
    fan_in); Xavier compromises between the forward and the backward pass (fan_in and fan_out). A
    non-linearity changes the variance by a constant factor, which the gain undoes: ReLU halves the
    second moment, tanh squashes. The function returns a standard deviation, not a variance. The usual
    mistakes: returning the variance, forgetting ReLU's factor 2 (or tanh's gain), fan_out in Kaiming,
    and fan_in alone in Xavier.""",
          formula="""
    gain: 1 for "linear", 5/3 for "tanh", the square root of 2 for "relu" (torch.nn.init.calculate_gain).
    Xavier: std = gain * (2 / (fan_in + fan_out))^(1/2).
    Kaiming (fan-in mode): std = gain / fan_in^(1/2).""")
def _check_init_std(fn):
    cases = [(784, 100, "kaiming", "relu"), (100, 100, "kaiming", "tanh"), (100, 10, "kaiming", "linear"),
             (784, 100, "xavier", "tanh"), (300, 50, "xavier", "relu"), (50, 300, "xavier", "linear")]
    for fan_in, fan_out, scheme, nonlinearity in cases:
        case = f"init_std({fan_in}, {fan_out}, {scheme!r}, {nonlinearity!r})"
        gain = nn.init.calculate_gain(nonlinearity)  # PyTorch is the referee for the gains
        std = gain * math.sqrt(2 / (fan_in + fan_out)) if scheme == "xavier" else gain / math.sqrt(fan_in)
        got = call(fn, fan_in, fan_out, scheme, nonlinearity, case=case)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float, np.floating, np.integer)) or isinstance(got, bool):
            raise Mistake(f"{case}: return one number (a float), got {type(got).__name__}.")
        got = float(got)
        if math.isclose(got, std, rel_tol=1e-6):
            continue
        fan = fan_in if scheme == "kaiming" else (fan_in + fan_out) / 2
        named = [
            (std**2, "you returned the variance; the standard deviation is its square root."),
            (std / gain, f"you left out the gain of {nonlinearity} ({gain:.4g}): ReLU halves the second moment "
                         "(gain sqrt(2)), tanh squashes (gain 5/3); multiply the standard deviation by it."),
            (gain / math.sqrt(fan_out), "Kaiming (fan-in mode) divides by fan_in, the number of inputs each "
                                        "output sums, not by fan_out."),
            (gain / math.sqrt(fan_in), "Xavier averages the forward and the backward pass: "
                                       "Var(w) = 2 / (fan_in + fan_out) times gain^2, not 1 / fan_in."),
            (math.sqrt(gain / fan), "the gain multiplies the standard deviation, not the variance: "
                                    "Var(w) = gain^2 / n, so std = gain / sqrt(n)."),
            (gain * math.sqrt(2 / fan_in) if scheme == "kaiming" else gain * math.sqrt(1 / (fan_in + fan_out)),
             "the factor 2 is already in the gain (ReLU's gain is sqrt(2)) or belongs to Xavier's "
             "2 / (fan_in + fan_out) only: count it once."),
        ]
        for value, message in named:
            if not math.isclose(value, std, rel_tol=1e-6) and math.isclose(got, value, rel_tol=1e-6):
                raise Mistake(f"{case}: {got:.6g}, expected {std:.6g}: {message}")
        raise Mistake(f"{case}: {got:.6g}, expected {std:.6g}.")
    return "Xavier and Kaiming with linear, tanh and ReLU gains, as torch.nn.init"


# ------------------------------------------------------------------------------------- 08.2


class _Block(nn.Module):
    """Linear then Tanh, as a module of its own: the Tanh is not a direct child of the model."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.act = nn.Tanh()

    def forward(self, X):
        return self.act(self.linear(X))


def _tanh_net(seed: int, scales=(0.5, 1.5, 3.0)):
    """A small tanh MLP whose layers are scaled so that the saturation differs from layer to layer,
    with one block nested a level deeper."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), _Block(32, 32), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 5))
    with torch.no_grad():
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        for layer, scale in zip(linears, scales, strict=False):
            layer.weight.mul_(scale * math.sqrt(layer.in_features))
    return model


def _forward_records(model, X):
    """{"in": [...], "out": [...]}: each nn.Tanh's input and output in forward order, recorded without hooks
    on the Tanh layers (the referee computes them by walking the model by hand)."""
    record = {"in": [], "out": []}

    def walk(module, A):
        if isinstance(module, nn.Sequential):
            for child in module:
                A = walk(child, A)
            return A
        if isinstance(module, _Block):
            return walk(module.act, module.linear(A))
        out = module(A)
        if isinstance(module, nn.Tanh):
            record["in"].append(A)
            record["out"].append(out)
        return out

    with torch.no_grad():
        walk(model, X)
    return record


def _hooks_left(model) -> bool:
    return any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in model.modules())


def _triples(out, n, case):
    if not isinstance(out, (list, tuple)):
        raise Mistake(f"{case}: return a list with one (mean, std, saturated) tuple per nn.Tanh, got {type(out).__name__}.")
    if len(out) != n:
        raise Mistake(f"{case}: your list has {len(out)} entries; the model has {n} nn.Tanh layers: record "
                      "only the nn.Tanh modules (isinstance(m, nn.Tanh)), one entry per layer and per forward pass.")
    rows = []
    for i, row in enumerate(out):
        arr = as_array(row, f"entry {i}", case)
        if arr.shape != (3,):
            raise Mistake(f"{case}: entry {i} should be three numbers (mean, std, saturated), got shape {arr.shape}.")
        rows.append(arr)
    return np.stack(rows)


@exercise("08.2", "activation_stats", "activation statistics through forward hooks", hint="""
    A forward hook, module.register_forward_hook(hook), calls hook(module, inputs, output) each time the
    module runs: register one on every nn.Tanh of the model (model.modules() walks nested modules too),
    keep each output, run one forward pass without gradients, then remove every hook through the handle
    that registering returned. Saturation counts both ends of tanh. The usual mistakes: recording the
    Tanh's input (the Linear's output) instead of its output, counting only a > threshold, and leaving
    the hooks on the model.""",
          formula="""
    For each recorded output A (any shape): mean = the mean of A's values, std = their standard
    deviation, saturated = the fraction of values with |A| > threshold. Order: the order in which the
    forward pass calls the layers. Afterwards each handle gets .remove(), so the model is as before.""")
def _check_activation_stats(fn):
    for case, seed, n_rows in (("a 4-layer tanh MLP, a batch of 64", 0, 64), ("another seed, a batch of 3", 1, 3)):
        model = _tanh_net(seed)
        X = torch.randn(n_rows, 20, generator=torch.Generator().manual_seed(seed))
        rec = _forward_records(model, X)
        want = np.array([[A.mean().item(), A.std().item(), (A.abs() > 0.97).float().mean().item()] for A in rec["out"]])
        got = _triples(call(lambda X_, m=model: fn(m, X_), X, case=case), len(want), case)  # this very model: hooks left on it show
        if _hooks_left(model):
            raise Mistake(f"{case}: your hooks are still on the model: keep the handle that register_forward_hook "
                          "returns and call handle.remove() for each (a try/finally does it even after an error).")
        inputs = np.array([[A.mean().item(), A.std().item(), (A.abs() > 0.97).float().mean().item()] for A in rec["in"]])
        one_sided = want.copy()
        one_sided[:, 2] = [(A > 0.97).float().mean().item() for A in rec["out"]]
        expect(got[:, :2], want[:, :2], case, "your (mean, std) columns", [
            (inputs[:, :2], "you recorded each Tanh's INPUT (the Linear layer's output): the hook's third "
                            "argument is the output, hook(module, inputs, output)."),
            (want[::-1, :2], "your layers are in reverse order: list them as the forward pass calls them.")],
            atol=1e-6, rtol=2e-3)
        expect(got[:, 2], want[:, 2], case, "your saturated fractions", [
            (one_sided[:, 2], "tanh saturates at both ends: count |a| > threshold, not only a > threshold."),
            (inputs[:, 2], "you measured saturation on the Tanh's input, not on its output.")],
            atol=1e-6, rtol=1e-6)
        out2 = call(lambda X_, m=model: fn(m, X_), X, case=case + ", called twice")
        _triples(out2, len(want), case + ", called twice")
    return "means, standard deviations and saturation of every Tanh, in order, hooks removed"


# ------------------------------------------------------------------------------------- 08.3


def _grad_records(model, X, y, reduction="mean"):
    """{"out": [...], "in": [...]}: the gradient of the loss with respect to each Tanh's output and
    input, in forward order, computed with retain_grad (no hooks)."""
    record = {"outs": [], "ins": []}

    def walk(module, A):
        if isinstance(module, nn.Sequential):
            for child in module:
                A = walk(child, A)
            return A
        if isinstance(module, _Block):
            return walk(module.act, module.linear(A))
        if isinstance(module, nn.Tanh):
            A.retain_grad()
            out = module(A)
            out.retain_grad()
            record["ins"].append(A)
            record["outs"].append(out)
            return out
        return module(A)

    F.cross_entropy(walk(model, X), y, reduction=reduction).backward()
    model.zero_grad(set_to_none=True)
    return {"out": [t.grad.std().item() for t in record["outs"]], "in": [t.grad.std().item() for t in record["ins"]]}


@exercise("08.3", "activation_grad_stds", "the gradient at each activation through backward hooks", hint="""
    A full backward hook, module.register_full_backward_hook(hook), calls hook(module, grad_input,
    grad_output) during loss.backward(): grad_output holds the gradient of the loss with respect to the
    module's output, grad_input with respect to its input. Register one on every nn.Tanh, compute the
    mean cross-entropy and call backward, then remove the hooks. Backward hooks run in the order the
    backward pass reaches the layers, which is not the forward order. The usual mistakes: grad_input
    instead of grad_output, the list in backward order, a summed loss, and hooks left behind.""",
          formula="""
    loss = the mean over the batch of the cross-entropy (F.cross_entropy's default reduction);
    after loss.backward(), for each nn.Tanh: std of grad_output[0]. The backward pass visits the
    layers from the last to the first: reverse what you recorded to get the forward order.""")
def _check_activation_grad_stds(fn):
    for case, seed, n_rows in (("a 4-layer tanh MLP, a batch of 64", 0, 64), ("another seed, a batch of 5", 2, 5)):
        model = _tanh_net(seed, scales=(0.5, 1.0, 1.5))
        g = torch.Generator().manual_seed(seed)
        X, y = torch.randn(n_rows, 20, generator=g), torch.randint(0, 5, (n_rows,), generator=g)
        want = _grad_records(model, X, y)
        summed = _grad_records(model, X, y, reduction="sum")["out"]
        out = call(lambda X_, y_, m=model: fn(m, X_, y_), X, y, case=case)  # this very model: hooks left on it show
        model.zero_grad(set_to_none=True)
        if _hooks_left(model):
            raise Mistake(f"{case}: your hooks are still on the model: keep the handle that "
                          "register_full_backward_hook returns and call handle.remove() for each.")
        if not isinstance(out, (list, tuple)):
            raise Mistake(f"{case}: return a list with one number per nn.Tanh, got {type(out).__name__}.")
        if len(out) != len(want["out"]):
            raise Mistake(f"{case}: your list has {len(out)} entries; the model has {len(want['out'])} nn.Tanh layers, "
                          "each called once by one backward pass.")
        expect(out, want["out"], case, "your gradient standard deviations", [
            (want["out"][::-1], "your list runs from the last layer to the first: backward hooks fire in the "
                                "order the backward pass reaches the layers; reverse it to the forward order."),
            (want["in"], "you took grad_input, the gradient with respect to the Tanh's INPUT (already multiplied "
                         "by the slope 1 - a^2); the gradient at the activation is grad_output[0]."),
            (want["in"][::-1], "you took grad_input (the gradient with respect to the Tanh's input), and in "
                               "backward order: use grad_output[0], and reverse the list."),
            (summed, "your gradients are N times too large: the loss is the MEAN cross-entropy over the batch "
                     "(F.cross_entropy's default), not the sum.")],
            atol=1e-9, rtol=1e-4)
    return "the gradient at every Tanh's output, in forward order, hooks removed"


# ------------------------------------------------------------------------------------- 08.4


def _mlp_params(rng, sizes, scale=1.0):
    """[(W, b), ...] in float64 for layer sizes [in, h1, ..., out], Kaiming-scaled; the last layer times `scale`."""
    params = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        W = rng.normal(0, math.sqrt(2 / n_in), size=(n_out, n_in))
        b = rng.normal(0, 0.1, size=n_out)
        if i == len(sizes) - 2:
            W, b = W * scale, b * scale
        params.append((W, b))
    return params


def _torch_grads(params, X, y, mask_logits=False, reduction="mean"):
    """Autograd's gradients of the MLP's cross-entropy, [(dW, db), ...] as NumPy float64."""
    ts = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in params]
    A = torch.tensor(X)
    for i, (W, b) in enumerate(ts):
        A = A @ W.T + b
        if i < len(ts) - 1 or mask_logits:
            A = torch.relu(A)
    F.cross_entropy(A, torch.tensor(y), reduction=reduction).backward()
    return [(W.grad.numpy(), b.grad.numpy()) for W, b in ts]


def _mlp_mistakes(params, X, y):
    """What the usual mistakes give, [(dW, db), ...] each, computed by hand."""
    L = len(params)
    inputs, pre, A = [], [], X
    for i, (W, b) in enumerate(params):
        inputs.append(A)
        H = A @ W.T + b
        pre.append(H)
        A = np.maximum(H, 0) if i < L - 1 else H
    e = np.exp(A - A.max(axis=1, keepdims=True))
    P = e / e.sum(axis=1, keepdims=True)
    d_last = P.copy()
    d_last[np.arange(len(y)), y] -= 1
    d_last /= len(y)

    def backward(mask=True, own_output=False, db_mean=False, transposed=False):
        """[(dW, db) or None, ...] first layer first; None where the mistake cannot be computed (shapes)."""
        dH, grads = d_last, []
        for i in range(L - 1, -1, -1):
            if dH is None:
                grads.append(None)
                continue
            W = params[i][0]
            A_in = (np.maximum(pre[i], 0) if i < L - 1 else pre[i]) if own_output else inputs[i]
            grads.append((dH.T @ A_in, dH.mean(axis=0) if db_mean else dH.sum(axis=0)))
            if i > 0:
                if transposed and W.shape[0] != W.shape[1]:
                    dH = None
                    continue
                dA = dH @ W.T if transposed else dH @ W
                dH = dA * (pre[i - 1] > 0) if mask else dA
        return grads[::-1]

    return {"no_mask": backward(mask=False), "own_output": backward(own_output=True),
            "db_mean": backward(db_mean=True), "transposed": backward(transposed=True)}


_MLP_SHAPES = ("Check each product's shapes: dW_l = dH_l^T A_{l-1} is (out, in); back through the layer, "
               "dA_{l-1} = dH_l W_l is (N, in), not dH W^T; the mask [H_{l-1} > 0] is (N, in).")


@exercise("08.4", "mlp_backward", "a full MLP backward pass in NumPy", hint="""
    Notebook 03 did this for one hidden layer; now loop over any number of layers. The forward pass
    must keep, for every layer, its input (for the weight gradient) and its pre-activation (for the
    ReLU's mask). The backward pass starts from the gradient of the mean cross-entropy with respect to
    the logits and walks the layers from the last to the first: each linear layer gives the gradients
    of its weight and bias and sends a gradient back to its input, which the previous layer's ReLU
    masks. The last layer has no ReLU. The usual mistakes: forgetting the mask, multiplying the
    gradient by the layer's output instead of its input, averaging the bias gradient, dividing by N
    twice or never, and W.T where W belongs.""",
          formula="""
    Forward, for l = 1..L: H_l = A_{l-1} W_l^T + b_l (A_0 = X), A_l = max(0, H_l) except for l = L.
    Start: dH_L = (softmax(H_L) - onehot(y)) / N (subtract each row's max before exp).
    For l = L..1: dW_l = dH_l^T A_{l-1}, db_l = the sum of dH_l over the batch;
    then, if l > 1: dA_{l-1} = dH_l W_l and dH_{l-1} = dA_{l-1} * [H_{l-1} > 0].""")
def _check_mlp_backward(fn):
    rng = np.random.default_rng(8)
    cases = {"square hidden layers 12-16-16-16-10, a batch of 8": ([12, 16, 16, 16, 10], 8, 1.0),
             "layers 20-12-7-5, a batch of one": ([20, 12, 7, 5], 1, 1.0),
             "two layers 9-6-4, logits in the thousands": ([9, 6, 4], 6, 1000.0)}
    for case, (sizes, N, scale) in cases.items():
        params = _mlp_params(rng, sizes, scale)
        X, y = rng.normal(size=(N, sizes[0])), rng.integers(0, sizes[-1], size=N)
        want = _torch_grads(params, X, y)
        out = call(fn, [(W.copy(), b.copy()) for W, b in params], X, y, case=case,
                   broadcast=_MLP_SHAPES, errors={ValueError: _MLP_SHAPES})
        if not isinstance(out, (list, tuple)) or len(out) != len(params):
            raise Mistake(f"{case}: return a list of {len(params)} (dW, db) pairs, one per layer, first layer first.")
        mistakes = _mlp_mistakes(params, X, y)
        summed = _torch_grads(params, X, y, reduction="sum")
        masked = _torch_grads(params, X, y, mask_logits=True)
        for l, (pair, (dW, db)) in enumerate(zip(out, want, strict=True), 1):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise Mistake(f"{case}: entry {l} should be a pair (dW, db).")
            named = [(summed[l - 1][0], "every gradient is N times too large: the loss is the MEAN cross-entropy, "
                                        "so divide dL/dlogits by the batch size N."),
                     (summed[l - 1][0] / len(y) ** 2, "your gradients are N times too small: divide by N once, "
                                                      "at the logits, and nowhere else.")]
            for key, message in (("no_mask", "the gradient passes through the ReLUs unmasked: multiply dA_{l-1} by "
                                              "[H_{l-1} > 0], the previous layer's ReLU slope."),
                                 ("own_output", "dW_l multiplies dH_l by the layer's INPUT A_{l-1}, not by its own "
                                                "output: keep each layer's input during the forward pass."),
                                 ("transposed", "back through a linear layer the gradient is dA = dH W (shape (N, in)), "
                                                "not dH W^T.")):
                if mistakes[key][l - 1] is not None:
                    named.append((mistakes[key][l - 1][0], message))
            named.append((masked[l - 1][0], "the last layer has no ReLU: its outputs are the logits, so the "
                                            "gradient at the logits is not masked."))
            where = f"{case}, layer {l} of {len(params)}"
            if not np.isfinite(as_array(pair[0], f"your dW{l}", where)).all():
                raise Mistake(f"{where}: your dW{l} holds nan or inf: with logits in the thousands exp overflows; "
                              "subtract each row's maximum from the logits before exp (notebook 02's stable softmax).")
            expect(pair[0], dW, where, f"your dW{l}", named, atol=1e-8, rtol=1e-6,
                   sign="dL/dlogits = (softmax - onehot(y)) / N: softmax first, minus the one-hot labels.",
                   shape=f"dW{l} has the shape of W{l}, (out, in) = {dW.shape}.")
            db_named = [(mistakes["db_mean"][l - 1][1], "db is averaged over the batch: the 1/N is already in "
                                                        "dL/dlogits, so sum dH over the batch.")]
            if mistakes["no_mask"][l - 1] is not None:
                db_named.append((mistakes["no_mask"][l - 1][1], "the gradient passes through the ReLUs unmasked: "
                                                                "multiply by [H_{l-1} > 0]."))
            expect(pair[1], db, where, f"your db{l}", db_named, atol=1e-8, rtol=1e-6,
                   shape=f"db{l} has the shape of b{l}, ({len(db)},).")
    return "three MLPs (square layers, a batch of one, large logits) match torch.autograd"


# ------------------------------------------------------------------------------------- 08.5


@exercise("08.5", "batchnorm_backward", "BatchNorm's backward pass", hint="""
    In training mode BatchNorm normalises with the batch's own mean and variance, and both depend on
    every X in the batch: X reaches the output three ways, directly, through the mean and through the
    variance. Add the three contributions (or let the result follow from X_hat's own properties: its
    mean is 0 and its variance 1 whatever the input). gamma and beta get ordinary linear-layer-like
    gradients. The usual mistakes: treating the mean and variance as constants, keeping the mean's path
    but dropping the variance's, forgetting X_hat in dgamma, and the unbiased variance.""",
          formula="""
    sigma = (var + eps)^(1/2) with the biased variance (divide by N); X_hat = (X - mean) / sigma.
    dbeta = the sum of dY over the batch; dgamma = the sum of dY * X_hat over the batch.
    With G = gamma * dY: dX = (G - mean_batch(G) - X_hat * mean_batch(G * X_hat)) / sigma,
    each mean_batch taken over the N rows, one value per feature.""")
def _check_batchnorm_backward(fn):
    g = torch.Generator().manual_seed(85)
    eps = 1e-5
    for case, (N, D) in {"a batch of 16, 5 features": (16, 5), "a batch of 2, 3 features": (2, 3)}.items():
        X = (torch.randn(N, D, generator=g, dtype=torch.float64) * torch.tensor([3.0, 0.5, 1.0, 2.0, 1.0][:D]).double()
             + torch.tensor([1.0, -2.0, 0.0, 5.0, 0.3][:D]).double())
        gamma = torch.tensor([1.5, 0.7, 2.0, 1.0, 0.3][:D], dtype=torch.float64)
        dY = torch.randn(N, D, generator=g, dtype=torch.float64)
        Xr, gr, br = X.clone().requires_grad_(), gamma.clone().requires_grad_(), torch.zeros(D, dtype=torch.float64, requires_grad=True)
        Y = F.batch_norm(Xr, None, None, gr, br, training=True, eps=eps)
        Y.backward(dY)
        out = call(fn, dY, X, gamma, eps=eps, case=case,
                   broadcast="X and dY are (N, D); the statistics, gamma, dgamma and dbeta are (D,): reduce over dim 0.")
        if not isinstance(out, (list, tuple)) or len(out) != 3:
            raise Mistake(f"{case}: return three things, (dX, dgamma, dbeta).")
        mean, var = X.mean(0), X.var(0, unbiased=False)
        sigma = torch.sqrt(var + eps)
        X_hat = (X - mean) / sigma
        G = gamma * dY
        sigma_u = torch.sqrt(X.var(0) + eps)
        X_hat_u = (X - mean) / sigma_u
        expect(out[0], Xr.grad, case, "your dX", [
            (G / sigma, "you treated the batch mean and variance as constants: in training mode both depend on X, "
                        "so dX also gets -mean(G) and -X_hat * mean(G * X_hat) (G = gamma * dY), divided by sigma."),
            ((G - G.mean(0)) / sigma, "you kept the mean's path but dropped the variance's: the variance depends on "
                                      "X too, which subtracts X_hat * mean(G * X_hat) before dividing by sigma."),
            ((G - G.mean(0) - X_hat_u * (G * X_hat_u).mean(0)) / sigma_u,
             "BatchNorm normalises with the BIASED variance (divide by N, not N - 1).")],
            atol=1e-8, rtol=1e-6, shape="dX has the shape of X, (N, D).",
            sign="dX has the direction of dY: dY times gamma, minus its batch mean and its X_hat component.")
        expect(out[1], gr.grad, case, "your dgamma", [
            (dY.sum(0), "dgamma is the sum of dY * X_hat over the batch: gamma multiplies X_hat, not 1."),
            ((dY * X).sum(0), "dgamma multiplies dY by the NORMALISED X_hat, not by X."),
            ((dY * X_hat).mean(0), "dgamma is a sum over the batch, not a mean.")],
            atol=1e-8, rtol=1e-6, shape="dgamma has the shape of gamma, (D,).")
        expect(out[2], br.grad, case, "your dbeta", [
            (dY.mean(0), "dbeta is the sum of dY over the batch, not its mean.")],
            atol=1e-8, rtol=1e-6, shape="dbeta has the shape of beta, (D,).")
    return "dX, dgamma and dbeta match torch.autograd through F.batch_norm (a batch of 16 and of 2)"
