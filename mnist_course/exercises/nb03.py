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


@exercise("03.1", "relu_backward", "backward through a ReLU", hint="""
    The chain rule through an element-wise function multiplies by its slope. The ReLU max(0, h)
    has slope 1 where h > 0 and slope 0 elsewhere, so the gradient passes unchanged where the ReLU's
    INPUT was positive and is blocked where it was not. The usual mistakes: passing the gradient
    everywhere, using h >= 0 (PyTorch takes the slope at exactly 0 to be 0), multiplying by H itself,
    and returning the mask without the gradient.""",
          formula="""
    dH_ij = dA_ij x 1[H_ij > 0]: an element-wise product of the incoming gradient with a 0/1 mask
    that compares the ReLU's input with zero (a boolean array multiplies as 0 and 1).""")
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


@exercise("03.2", "linear_backward", "backward through a linear layer", hint="""
    Z = A Wᵀ + b. Each gradient has the shape of the variable it belongs to, and the shapes
    nearly decide the formulas: find the product of dZ with W or with A whose shape comes out right.
    The bias is added to every example, so its gradient gathers over the whole batch. The usual
    mistakes: transposed results, averaging db (dZ already carries the 1/N of the mean loss), and a
    minus sign (the minus belongs to the update, not to the backward pass).""",
          formula="""
    Shapes: dZ (N, out), A (N, in), W (out, in). In index form: dA_nj = sum over o of dZ_no W_oj
    (N, in); dW_oj = sum over n of dZ_no A_nj (out, in); db_o = sum over n of dZ_no (out,). The first
    two are matrix products (one of them with a transpose), the third a sum over axis 0.""")
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


@exercise("03.3", "sgd_momentum_step", "one step of SGD with momentum", hint="""
    Momentum keeps a running direction, the velocity: a decaying sum of the past gradients. The
    step follows the velocity instead of the current gradient alone, which smooths out zig-zags and
    speeds up along consistent directions. Follow PyTorch's convention. The usual mistakes: damping the
    gradient by (1 - momentum) (another convention, not torch.optim.SGD's), not carrying the velocity to
    the next step, and stepping uphill.""",
          formula="""
    With mu = momentum and g = grad: v_new = mu v + g (the full gradient added), then
    w_new = w - lr v_new; return both. The velocity starts at zeros, so the first step is plain SGD.""")
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
