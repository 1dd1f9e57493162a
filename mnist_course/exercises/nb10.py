"""The checks of notebook 10, what the CNN looks at (notebooks/10_what_the_cnn_looks_at.ipynb):
a saliency map (10.1), occlusion drops (10.2), the top-k overlap of two maps (10.3), FGSM (10.4),
accuracy against eps (10.5) and one step of adversarial training (10.6).

Named after the notebook's number, as the exercise ids are ("10.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`. The referee is the library (:mod:`mnist_course.attribution`,
:mod:`mnist_course.adversarial`) and PyTorch's autograd; each usual mistake is computed too, so that
a wrong answer is named.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import adversarial, attribution
from .core import Mistake, as_array, call, exercise, expect

MEAN, STD = 0.1307, 0.3081  # MNIST's, as the course CNN's info has them


def _small_cnn(seed: int, classes: int = 5, size: int = 10) -> nn.Module:
    """A small CNN with BatchNorm (train and eval mode differ) in float64, on (N, 1, size, size) images."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * (size // 2) ** 2, classes)).double()
    with torch.no_grad():  # running statistics unlike any batch's, so that eval mode shows
        model[1].running_mean.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
        model[1].running_var.copy_(torch.tensor([0.5, 2.0, 1.5, 0.8]))
        model[5].weight.mul_(4)
    return model


def _pixels(seed: int, n: int = 6, size: int = 10) -> torch.Tensor:
    """Float64 images (n, 1, size, size) in [0, 1] with many pixels at exactly 0 and 1, like digits."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, size, size, generator=g, dtype=torch.float64)
    X[X < 0.4] = 0.0
    X[X > 0.8] = 1.0
    return X


def _in_train_mode(model: nn.Module) -> nn.Module:
    return model.train()


_EVAL = ("you ran the model in train mode: call model.eval() first, so that BatchNorm uses its running "
         "statistics (in train mode each image's output depends on the whole batch) and Dropout is off.")


# ------------------------------------------------------------------------------------- 10.1


def _saliency_variant(model, X, target, pick, mode="eval"):
    """d pick(logits, target) / d X (N, H, W), signed, with the model in `mode` (a usual mistake's answer)."""
    m = copy.deepcopy(model).train(mode == "train")
    Xr = X.clone().requires_grad_(True)
    return torch.autograd.grad(pick(m(Xr), target), Xr)[0][:, 0]


@exercise("10.1", "saliency_map", "a gradient saliency map", hint="""
    Saliency asks: if this pixel changed a little, how much would the class's score move? That is a
    derivative of the target class's LOGIT with respect to the input pixels, taken in eval mode,
    one map per image; its size matters, not its sign.""", formula="""
    1. model.eval(); make a copy of X that requires gradients.
    2. Run the model forward on that copy; pick the logit of image n's target class for every n and add them up (in eval mode
       image n's logit depends on image n only, so one backward pass gives every image its own gradient).
    3. torch.autograd.grad(that sum, X) -> (N, 1, H, W); return its absolute value without the channel
       axis, (N, H, W).""")
def _check_saliency(fn):
    for case, seed in {"6 images, model given in train mode": 1, "another model and batch": 2}.items():
        model, X = _small_cnn(seed), _pixels(seed)
        with torch.no_grad():
            predicted = model.eval()(X).argmax(1)
        target = (predicted + 1 + torch.arange(len(X)) % 3) % 5  # never the predicted class
        want = attribution.saliency(model, X, target)

        def logit(z, t):
            return z[torch.arange(len(z)), t].sum()

        mistakes = [
            (_saliency_variant(model, X, target, logit), "take the absolute value |gradient|: saliency is how much a "
                                                         "pixel matters, either way."),
            (_saliency_variant(model, X, target, logit, "train").abs(), _EVAL),
            (_saliency_variant(model, X, target, lambda z, t: logit(z.softmax(1), t)).abs(),
             "you differentiated the probability: differentiate the LOGIT logits[n, target[n]]; softmax "
             "saturates (its gradient vanishes when the model is sure) and mixes in the other classes."),
            (_saliency_variant(model, X, target, F.cross_entropy).abs(),
             "you differentiated the loss: saliency differentiates the target class's logit, logits[n, target[n]]."),
            (_saliency_variant(model, X, target, lambda z, t: logit(z, z.argmax(1))).abs(),
             "you used the predicted class: use the class given in `target` (here never the predicted one)."),
            (_saliency_variant(model, X, target, lambda z, t: z.sum()).abs(),
             "you added up every class's logit: pick one logit per image, logits[n, target[n]]."),
        ]
        out = call(fn, _in_train_mode(model), X, target, case=case)
        expect(out, want, case, "your saliency map", mistakes, atol=1e-10, rtol=1e-6,
               shape="Return (N, H, W): drop the channel axis, gradient[:, 0].")
    return "two models and batches; autograd and mnist_course.attribution.saliency agree"


# ------------------------------------------------------------------------------------- 10.2


def _occlusion_variant(model, X, target, patch, stride, value, score=lambda z: z.softmax(1), mode="eval",
                       minus_p0=True):
    """Occlusion drops with one usual mistake (probability or logits, model mode, drop or plain value)."""
    m = copy.deepcopy(model).train(mode == "train")
    rows = range(0, X.shape[2] - patch + 1, stride)
    n = torch.arange(len(X))
    with torch.no_grad():
        p0 = score(m(X))[n, target]
        out = torch.zeros(len(X), len(rows), len(rows), dtype=X.dtype)
        for i, r in enumerate(rows):
            for j, c in enumerate(rows):
                occluded = X.clone()
                occluded[:, :, r: r + patch, c: c + patch] = value
                p = score(m(occluded))[n, target]
                out[:, i, j] = p0 - p if minus_p0 else p
    return out


@exercise("10.2", "occlusion_drops", "the drops of an occlusion map", hint="""
    Occlusion asks: if this square of the picture were painted over, how much less sure would the
    model be of the class? Slide a square of `fill` over every position and measure the fall of the
    target class's PROBABILITY, in eval mode.""", formula="""
    rows = range(0, H - patch + 1, stride) (the last square ends at the border), cols likewise.
    p0[n] = softmax(model(X))[n, target[n]]. For each (i, r), (j, c): a COPY of X with
    [:, :, r:r+patch, c:c+patch] = fill; drops[:, i, j] = p0 - the same probability on that copy.
    Return drops (N, len(rows), len(cols)); model.eval() and torch.no_grad() around it.""")
def _check_occlusion(fn):
    cases = {"patch 4, stride 2, fill 0, model given in train mode": (3, 4, 2, 0.0),
             "patch 3, stride 3, fill 0.5 (grey)": (4, 3, 3, 0.5)}
    for case, (seed, patch, stride, fill) in cases.items():
        model, X = _small_cnn(seed), _pixels(seed, n=4)
        target = torch.arange(len(X)) % 5
        want = attribution.occlusion_drops(model, X, target, patch, stride, fill)
        args = (model, X, target, patch, stride)
        mistakes = [(_occlusion_variant(*args, fill, minus_p0=False),
                     "you returned the occluded probability itself: return the DROP, p(original) - p(occluded)."),
                    (_occlusion_variant(*args, fill, score=lambda z: z),
                     "you measured logits: use the probability softmax(logits)[n, target[n]], which is what "
                     "'how sure' means and is what the map compares."),
                    (_occlusion_variant(*args, fill, mode="train"), _EVAL)]
        if fill != 0:
            mistakes.append((_occlusion_variant(*args, 0.0), f"the square must be painted with `fill` (here {fill}), not 0."))
        out = call(fn, _in_train_mode(model), X, target, patch, stride, fill=fill, case=case)
        got = as_array(out, "your drops", case)
        if got.shape[1:] == (want.shape[1] - 1, want.shape[2] - 1):
            raise Mistake(f"{case}: your drops have shape {got.shape}, expected {tuple(want.shape)}: the last square "
                          "ends at the border, so positions run over range(0, H - patch + 1, stride) (the + 1).")
        expect(got, want, case, "your drops", mistakes, atol=1e-10, rtol=1e-6,
               sign="a drop is p(original) - p(occluded): positive where the square held evidence for the class.",
               shape="Return (N, R, C): one drop per image and patch position.")
    return "two patch sizes, strides and fills; mnist_course.attribution.occlusion_drops agrees"


# ------------------------------------------------------------------------------------- 10.3


@exercise("10.3", "top_k_overlap", "how far two maps agree: the top-k overlap", hint="""
    Two importance maps agree when they point at the same pixels. For each image, take the k pixels
    each map rates most important and ask what share of the first map's k is also in the second's.""",
          formula="""
    Flatten each map to (N, H*W); the indices of the k LARGEST values per row (topk(k, dim=1)) for a and
    for b; for each image count the indices of a that appear among those of b, divide by k. Return (N,).""")
def _check_overlap(fn):
    g = torch.Generator().manual_seed(5)
    a = torch.rand(5, 6, 6, generator=g, dtype=torch.float64)
    b = a + 0.3 * torch.rand(5, 6, 6, generator=g, dtype=torch.float64)  # related, not equal
    b[3] = torch.rand(6, 6, generator=g, dtype=torch.float64)  # one unrelated pair
    for case, k in {"k=5 of 36 pixels": 5, "k=12": 12}.items():
        want = attribution.top_k_overlap(a, b, k)
        ta, tb = a.flatten(1).topk(k, 1).indices, b.flatten(1).topk(k, 1).indices
        shared = torch.tensor([len(set(x.tolist()) & set(z.tolist())) for x, z in zip(ta, tb)], dtype=torch.float64)
        sa, sb = a.flatten(1).topk(k, 1, largest=False).indices, b.flatten(1).topk(k, 1, largest=False).indices
        low = torch.tensor([len(set(x.tolist()) & set(z.tolist())) for x, z in zip(sa, sb)], dtype=torch.float64) / k
        mistakes = [(shared, "you returned the count of shared pixels: divide by k to get a share between 0 and 1."),
                    (shared / (2 * k - shared), "you divided by the size of the union (intersection over union): "
                                                "the overlap is the share of a's k pixels, shared / k."),
                    (low, "you took the k SMALLEST values: the most important pixels are the k largest (topk(k) or "
                          "argsort(descending=True))."),
                    (shared / (a.shape[1] * a.shape[2]), "divide by k, not by the number of pixels.")]
        out = call(fn, a, b, k, case=case)
        got = as_array(out, "your overlap", case)
        if got.size == 1:
            raise Mistake(f"{case}: one number for the whole batch: return one share per image, (N,) = ({len(a)},); "
                          "flatten each map on its own, .flatten(1), not the whole batch.")
        expect(got, want, case, "your overlap", mistakes, atol=1e-9, shape=f"Return (N,) = ({len(a)},): one share per image.")
    return "k = 5 and 12, related and unrelated maps; mnist_course.attribution.top_k_overlap agrees"


# ------------------------------------------------------------------------------------- 10.4


def _fgsm_variant(model, X, y, eps, *, mode="eval", sign=1.0, clamp=True, normalised_step=False):
    """FGSM with one usual mistake (model: normalised images -> logits)."""
    m = copy.deepcopy(model).train(mode == "train")
    Xr = X.clone().requires_grad_(True)
    grad = torch.autograd.grad(F.cross_entropy(m((Xr - MEAN) / STD), y), Xr)[0]
    step = eps * STD if normalised_step else eps
    out = X + sign * step * grad.sign()
    return out.clamp(0, 1) if clamp else out


@exercise("10.4", "fgsm", "the fast gradient sign method", hint="""
    FGSM takes one step UPHILL on the loss, of size eps in every pixel, in the direction of the sign
    of the loss's gradient with respect to the input pixels, against the TRUE labels, with the model
    in eval mode; the result must still be a picture, and the model's parameters must not be touched.""",
          formula="""
    1. Remember model.training, then model.eval().
    2. A copy of X (pixels) that requires gradients; logits = model((copy - mean) / std), normalising
       INSIDE so the gradient is per pixel; loss = cross_entropy(logits, y) with the true y.
    3. grad = torch.autograd.grad(loss, copy)[0] (only the input's gradient: no .grad on the parameters).
    4. X_adv = X + eps * sign(grad), clamped to [0, 1] in pixel space; give the model back its mode.""")
def _check_fgsm(fn):
    for case, (seed, eps, mode) in {"eps 0.1, model in train mode": (6, 0.1, "train"),
                                     "eps 0.25, model in eval mode": (7, 0.25, "eval")}.items():
        model, X = _small_cnn(seed), _pixels(seed, n=8)
        with torch.no_grad():
            predicted = model.eval()((X - MEAN) / STD).argmax(1)
        y = predicted.clone()
        y[::2] = (predicted[::2] + 2) % 5  # half the images misclassified: their true label is not the prediction
        want = adversarial.fgsm(model, X, y, eps, MEAN, STD)
        Z = (X - MEAN) / STD
        mistakes = [
            (_fgsm_variant(model, X, y, eps, sign=-1.0),
             "you stepped DOWNHILL (X - eps * sign(grad)): that makes the model surer of the true label. The attack "
             "adds eps * sign(grad) so that the loss grows."),
            (_fgsm_variant(model, X, y, eps, clamp=False),
             "some pixels are outside [0, 1]: clamp X_adv to [0, 1] (in pixel space), so it is still a picture."),
            (_fgsm_variant(model, X, y, eps, mode="train"), _EVAL),
            (_fgsm_variant(model, X, y, eps, normalised_step=True),
             f"your perturbation is eps x std = {eps * STD:.4f} per pixel, not eps: you stepped on the NORMALISED "
             "input. Step in pixel space: X_adv = X + eps * sign(grad with respect to the pixels), normalising "
             "inside the model call, model((X_adv - mean) / std)."),
            (_fgsm_variant(model, X, predicted, eps),
             "you attacked the PREDICTED label: use the true labels y (on a misclassified image the predicted label "
             "points the other way)."),
            (Z + eps * (_fgsm_variant(model, X, y, 1.0, clamp=False) - X),
             "you returned a normalised image: return pixels, clamp(X + eps * sign(grad), 0, 1)."),
            (((Z + eps * (_fgsm_variant(model, X, y, 1.0, clamp=False) - X)).clamp(0, 1)),
             "you stepped and clamped on the normalised input: step and clamp in pixel space, X + eps * sign(grad) "
             "clamped to [0, 1], with eps in pixel units."),
        ]
        model.train(mode == "train")
        for p in model.parameters():
            p.grad = None
        # call() works on copies: hand it the model inside the arguments and get the copy back to inspect
        out, model = call(lambda args: (fn(*args), args[0]), (model, X, y, eps, MEAN, STD), case=case)
        left = [name for name, p in model.named_parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)]
        if model.training != (mode == "train"):
            raise Mistake(f"{case}: the model was in {mode} mode and your function left it in "
                          f"{'train' if model.training else 'eval'} mode: give it back as it came "
                          "(was_training = model.training, ..., model.train(was_training)); a training loop that "
                          "calls fgsm would otherwise go on with BatchNorm frozen and Dropout off.")
        expect(out, want, case, "your X_adv", mistakes, atol=1e-9, rtol=1e-6,
               shape="Return the attacked pixels, shaped like X (N, 1, H, W).")
        if left:
            raise Mistake(f"{case}: your function left gradients on the parameters ({', '.join(left[:2])}, ...): "
                          "loss.backward() fills every parameter's .grad, and the next optimizer.step() would use "
                          "them. Take the input's gradient only, torch.autograd.grad(loss, X_adv), or zero the "
                          "parameters' gradients before returning.")
    return "eps 0.1 and 0.25, train- and eval-mode models, misclassified images; mnist_course.adversarial.fgsm agrees"


# ------------------------------------------------------------------------------------- 10.5


def _fgsm_attack(model, X, y, eps, mean, std):
    return adversarial.fgsm(model, X, y, eps, mean, std)


@exercise("10.5", "accuracy_vs_eps", "accuracy against eps", hint="""
    For each eps, attack the images with the attack function you are given, then measure the share of
    ATTACKED images the model still classifies right, predicting in eval mode on normalised input.""",
          formula="""
    For each eps of eps_list, in order: the attack function (called with the model, X, y, that eps,
    mean and std) gives attacked PIXELS; switch the model to eval mode; without gradients, predict
    on the normalised attacked images, (pixels - mean) / std, and take the argmax; the accuracy is
    the mean of (prediction == y), a float between 0 and 1. Return the list of accuracies.""")
def _check_accuracy_vs_eps(fn):
    model, X = _small_cnn(8), _pixels(8, n=40)
    with torch.no_grad():
        y = model.eval()((X - MEAN) / STD).argmax(1)
    y[:8] = (y[:8] + 1) % 5  # clean accuracy 0.8
    eps_list = [0.0, 0.05, 0.1, 0.2, 0.4]
    want = [adversarial.accuracy(model, adversarial.fgsm(model, X, y, e, MEAN, STD), y, MEAN, STD) for e in eps_list]
    if len(set(want)) < 3:
        raise AssertionError("the check's model is not hurt by the attack")  # pragma: no cover (guards the check)

    def measured(normalise=True, mode="eval"):
        m = copy.deepcopy(model)  # attacked and measured together: train mode changes BatchNorm's statistics
        accs = []
        for e in eps_list:
            images = adversarial.fgsm(m, X, y, e, MEAN, STD)
            m.train(mode == "train")
            with torch.no_grad():
                accs.append(float((m((images - MEAN) / STD if normalise else images).argmax(1) == y).double().mean()))
        return accs

    mistakes = [([want[0]] * len(eps_list), "every accuracy is the clean one: predict on the ATTACKED images, "
                                             "attack(model, X, y, eps, mean, std), not on X."),
                (measured(normalise=False), "the attack returns pixels: normalise them, (X_adv - mean) / std, "
                                                     "before the model."),
                ([1 - a for a in want], "you returned the error rate: return the accuracy, the share classified RIGHT."),
                ([100 * a for a in want], "you returned percentages: return fractions between 0 and 1."),
                (measured(mode="train"), _EVAL)]
    case = f"eps {eps_list}, 40 images, clean accuracy 0.8, model given in train mode"
    out = call(fn, model.train(), X, y, eps_list, _fgsm_attack, MEAN, STD, case=case)
    got = as_array(out, "your accuracies", case)
    expect(got, np.array(want), case, "your accuracies", mistakes, atol=1e-9,
           shape=f"Return one accuracy per eps: a list of {len(eps_list)} numbers.")
    return f"accuracies {', '.join(f'{a:.3f}' for a in want)} at eps {eps_list}"


# ------------------------------------------------------------------------------------- 10.6


def _step_variant(model, X, y, eps, alpha, *, craft_mode="eval", update_mode="train", zero_grad=True,
                  adv_only=False, swapped=False, separate=False, lr=0.1):
    """The parameters after one adversarial training step with one usual mistake (SGD, lr)."""
    m = copy.deepcopy(model)
    optimizer = torch.optim.SGD(m.parameters(), lr=lr)
    X_adv = _fgsm_variant(m, X, y, eps, mode=craft_mode).detach()
    m.train(update_mode == "train")
    if separate:
        clean, adv = m((X - MEAN) / STD), m((X_adv - MEAN) / STD)
    else:
        logits = m((torch.cat([X, X_adv]) - MEAN) / STD)
        clean, adv = logits[: len(X)], logits[len(X):]
    a = 0.0 if adv_only else (1 - alpha if swapped else alpha)
    loss = a * F.cross_entropy(clean, y) + (1 - a) * F.cross_entropy(adv, y)
    if zero_grad:
        optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return torch.cat([p.detach().flatten() for p in m.parameters()])


@exercise("10.6", "adversarial_training_step", "one step of adversarial training", hint="""
    Adversarial training mixes two losses on every batch: the loss on the clean images and the loss on
    the same images attacked against the model as it is NOW. The attack is made in eval mode; the
    update is an ordinary training step, in train mode.""", formula="""
    1. Attack the batch with FGSM at eps (your 10.4, or mnist_course.adversarial.fgsm): it runs in eval mode.
    2. Switch the model to train mode; make ONE forward pass of the clean and attacked images
       concatenated along the batch axis (normalised), and split the logits into the two halves.
    3. The loss: alpha times the clean half's cross-entropy plus (1 - alpha) times the attacked half's.
    4. Zero the old gradients, backpropagate, take the optimizer's step; return the loss as a float.""")
def _check_training_step(fn):
    for case, (seed, alpha, start) in {"alpha 0.3, model given in eval mode, stale gradients": (9, 0.3, "eval"),
                                       "alpha 0.5, model in train mode": (10, 0.5, "train")}.items():
        model, X = _small_cnn(seed), _pixels(seed, n=8)
        y = torch.arange(len(X)) % 5
        eps = 0.1
        want = _step_variant(model, X, y, eps, alpha)
        mistakes = [(_step_variant(model, X, y, eps, alpha, update_mode="eval"),
                     "the update ran in eval mode: call model.train() after making X_adv, so that BatchNorm uses the "
                     "batch's statistics (and updates its running ones) and Dropout is on."),
                    (_step_variant(model, X, y, eps, alpha, craft_mode="train"),
                     "you made X_adv in train mode: the attack runs in eval mode (fgsm does model.eval()), the update "
                     "in train mode."),
                    (_step_variant(model, X, y, eps, alpha, adv_only=True),
                     "you trained on the attacked images only: the loss is alpha * clean loss + (1 - alpha) * attacked loss."),
                    (_step_variant(model, X, y, eps, alpha, separate=True),
                     "you made two forward passes: make ONE of torch.cat([X, X_adv]), so BatchNorm sees both halves "
                     "in one batch, and split the logits.")]
        if alpha != 0.5:
            mistakes.append((_step_variant(model, X, y, eps, alpha, swapped=True),
                             "alpha weights the CLEAN loss and (1 - alpha) the attacked one; you swapped them."))
        learner = copy.deepcopy(model).train(start == "train")  # arrives with stale gradients (run, below)
        optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
        no_zero = _step_variant(model, X, y, eps, alpha, zero_grad=False)
        # the stale gradients the model arrives with: without zero_grad they are added to the step
        no_zero = no_zero - 0.1 * 0.5 * torch.ones_like(no_zero)
        mistakes.append((no_zero, "the model arrived with stale gradients in .grad and your step added them: call "
                                  "optimizer.zero_grad() before loss.backward()."))
        # call() works on copies: one bundle keeps the optimizer on the copied model's parameters
        def run(args):
            for p in args[0].parameters():  # (deepcopy drops .grad: set the stale ones on the copy)
                p.grad = torch.full_like(p, 0.5)
            return fn(*args[:-1], alpha=args[-1]), args[0]

        out, learner = call(run, (learner, optimizer, X, y, eps, MEAN, STD, alpha), case=case, pure=False)
        try:
            loss = float(out)
        except (TypeError, ValueError):
            raise Mistake(f"{case}: return the loss as a number (loss.item()), got {type(out).__name__}.") from None
        got = torch.cat([p.detach().flatten() for p in learner.parameters()])
        expect(got, want, case, "the parameters after your step", mistakes, atol=1e-9, rtol=1e-6)
        if not np.isfinite(loss) or loss <= 0:
            raise Mistake(f"{case}: your function returned {loss}: return the mixed loss, loss.item().")
    return "two batches, alpha 0.3 and 0.5; the parameters after one SGD step match mnist_course.adversarial's"
