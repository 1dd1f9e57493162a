"""The checks of notebook 03, an MLP by hand, from NumPy to PyTorch
(notebooks/03_mlp_numpy_to_pytorch.ipynb): backward through a ReLU (03.1) and through a linear layer
(03.2), one step of SGD with momentum (03.3).

Named after the notebook's number, as the exercise ids are ("03.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .core import Mistake, as_array, call, exercise, expect, seeded_rng

_NO_MINUS = "no minus in the backward pass (the minus of gradient descent belongs to the update, w - lr * grad)."


@exercise("03.1", "relu_backward", "backward through a ReLU", """
    A = max(0, H) has slope 1 where H > 0 and 0 elsewhere (also at exactly 0, as in PyTorch):
    dH = dA * (H > 0).""")
def _check_relu(fn):
    rng = seeded_rng(3)
    for case, (N, D) in {"a 4x6 batch with some exact zeros": (4, 6), "a batch of one": (1, 5)}.items():
        H = rng.normal(size=(N, D))
        H[0, :2] = 0.0
        dA = rng.normal(size=(N, D))
        Ht = torch.from_numpy(H).requires_grad_()
        torch.relu(Ht).backward(torch.from_numpy(dA))
        want = Ht.grad.numpy()
        expect(call(fn, dA, H, case=case), want, case, "your dH", [
            (dA, "you passed the gradient through everywhere: block it where H <= 0, dA * (H > 0)."),
            (dA * (H >= 0), "at H == 0 the gradient must be 0 (PyTorch's convention): use H > 0, not H >= 0."),
            (1.0 * (H > 0), "you returned the mask itself: multiply dA by it."),
            (dA * H * (H > 0), "you multiplied by H: the ReLU's slope is 1 or 0, so multiply by the mask (H > 0) only."),
            (dA * (H < 0), "the mask is reversed: the gradient passes where H > 0.")],
            sign=f"dH = dA * (H > 0) passes dA on unchanged where H > 0, {_NO_MINUS}")
    return "with exact zeros and a batch of one; autograd agrees"


@exercise("03.2", "linear_backward", "backward through a linear layer", """
    Z = A @ W.T + b. Each gradient has the shape of its variable: dA = dZ @ W (N, in),
    dW = dZ.T @ A (out, in), db = dZ.sum(axis=0) (out,): the bias is used by every example, so its
    gradient is a SUM over the batch (dZ already carries the 1/N).""")
def _check_linear(fn):
    rng = seeded_rng(4)
    for case, (N, n_in, n_out) in {"N=4, in=6, out=3": (4, 6, 3), "a batch of one": (1, 5, 2),
                                   "N=in=out=3": (3, 3, 3)}.items():
        A, W, b, dZ = (rng.normal(size=s) for s in ((N, n_in), (n_out, n_in), (n_out,), (N, n_out)))
        At, Wt, bt = (torch.from_numpy(x).requires_grad_() for x in (A, W, b))
        F.linear(At, Wt, bt).backward(torch.from_numpy(dZ))
        out = call(fn, dZ, A, W, case=case)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Mistake(f"{case}: return three arrays, (dA, dW, db).")
        dA, dW, db = out
        expect(dA, At.grad.numpy(), case, "your dA", [(dZ @ W.T if n_in == n_out == N else At.grad.numpy(),
                                                        "dA is dZ @ W (N, in), not dZ @ W.T.")],
               sign=f"dA = dZ @ W, {_NO_MINUS}")
        expect(dW, Wt.grad.numpy(), case, "your dW", [
            (Wt.grad.numpy().T, "dW is transposed: it has the shape of W, (out, in): dZ.T @ A.")],
               sign=f"dW = dZ.T @ A, {_NO_MINUS}")
        if as_array(db, "your db", case).shape == dZ.shape:
            raise Mistake(f"{case}: db has shape {dZ.shape}: sum dZ over the batch, dZ.sum(axis=0).")
        expect(db, bt.grad.numpy(), case, "your db", [
            (dZ.mean(axis=0), "db is averaged: dZ already includes the 1/N, so SUM over the batch."),
            (dZ.sum(axis=1), "db is summed over the wrong axis: axis=0, the batch.")],
               sign=f"db = dZ.sum(axis=0), {_NO_MINUS}")
    return "dA, dW and db on three shapes; autograd agrees"


@exercise("03.3", "sgd_momentum_step", "one step of SGD with momentum", """
    PyTorch's rule: velocity = momentum * velocity + grad, then w = w - lr * velocity. The full
    gradient is added (no (1 - momentum) factor); the velocity starts at zeros.""")
def _check_sgd(fn):
    rng = seeded_rng(5)
    for case, (lr, momentum) in {"lr=0.1, momentum=0.9": (0.1, 0.9), "lr=0.5, momentum=0": (0.5, 0.0)}.items():
        w0 = rng.normal(size=(3, 4))
        grads = [rng.normal(size=(3, 4)) for _ in range(10)]
        p = torch.tensor(w0, requires_grad=True)
        opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
        w, v = w0.copy(), np.zeros_like(w0)
        for step, g in enumerate(grads, 1):
            p.grad = torch.from_numpy(g.copy())
            before = p.detach().clone().numpy()
            opt.step()
            out = call(fn, w, g, v, lr, momentum, case=f"{case}, step {step}", pure=False)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise Mistake(f"{case}: return two arrays, (w, velocity).")
            got_w = as_array(out[0], "your w", case)
            where = f"{case}, step {step}"
            want_delta, got_delta = p.detach().numpy() - before, got_w - w
            expect(got_delta, want_delta, where, "your update (new w - old w)", [
                ((1 - momentum) * want_delta if step == 1 else want_delta,
                 "you scaled the gradient by (1 - momentum): PyTorch adds the full gradient, velocity = momentum * velocity + grad."),
                (-lr * g, "momentum has no effect: keep the velocity between steps and step along it, w - lr * velocity.")],
                sign="you moved uphill. The velocity adds the gradient, velocity = momentum * velocity + grad, "
                     "and the step subtracts it, w = w - lr * velocity (do not add it).")
            w, v = got_w, as_array(out[1], "your velocity", case)
    return "ten steps with and without momentum match torch.optim.SGD"
