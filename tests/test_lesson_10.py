"""Notebook 10 (what the CNN looks at): the library it teaches (mnist_course.attribution and
.adversarial, checked against PyTorch's autograd and plain loops) and its exercises' planted mistakes
(MUTANTS: tests/test_exercises.py runs them with every other exercise's)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_course import adversarial, attribution
from mnist_course import exercises as E
from mnist_course.exercises import solutions as S

# ------------------------------------------------------------------------------- the mutants
# One function per classic mistake, with the signature of the exercise's stub.


def _grad(model, X, pick):
    X = X.detach().clone().requires_grad_(True)
    return torch.autograd.grad(pick(model(X)), X)[0][:, 0]


def saliency_signed(model, X, target):
    model.eval()
    return _grad(model, X, lambda z: z[torch.arange(len(X)), target].sum())


def saliency_of_probability(model, X, target):
    model.eval()
    return _grad(model, X, lambda z: z.softmax(1)[torch.arange(len(X)), target].sum()).abs()


def saliency_train_mode(model, X, target):
    return _grad(model, X, lambda z: z[torch.arange(len(X)), target].sum()).abs()


def saliency_predicted_class(model, X, target):
    model.eval()
    return _grad(model, X, lambda z: z[torch.arange(len(X)), z.argmax(1)].sum()).abs()


def saliency_all_logits(model, X, target):
    model.eval()
    return _grad(model, X, lambda z: z.sum()).abs()


def saliency_of_loss(model, X, target):
    model.eval()
    return _grad(model, X, lambda z: F.cross_entropy(z, target)).abs()


def saliency_keeps_channel(model, X, target):
    return S.saliency_map(model, X, target)[:, None]


def _occlusion(model, X, target, patch, stride, fill, *, end=1, score=lambda z: z.softmax(1), drop=True,
               in_place=False, value=None, eval_mode=True):
    if eval_mode:
        model.eval()
    rows = range(0, X.shape[2] - patch + end, stride)
    n = torch.arange(len(X))
    with torch.no_grad():
        p0 = score(model(X))[n, target]
        out = torch.zeros(len(X), len(rows), len(rows), dtype=X.dtype)
        for i, r in enumerate(rows):
            for j, c in enumerate(rows):
                occluded = X if in_place else X.clone()
                occluded[:, :, r: r + patch, c: c + patch] = fill if value is None else value
                p = score(model(occluded))[n, target]
                out[:, i, j] = p0 - p if drop else p
    return out


def occlusion_last_position_missing(model, X, target, patch, stride, fill=0.0):
    return _occlusion(model, X, target, patch, stride, fill, end=0)


def occlusion_probability_not_drop(model, X, target, patch, stride, fill=0.0):
    return _occlusion(model, X, target, patch, stride, fill, drop=False)


def occlusion_sign_flipped(model, X, target, patch, stride, fill=0.0):
    return -_occlusion(model, X, target, patch, stride, fill)


def occlusion_logits(model, X, target, patch, stride, fill=0.0):
    return _occlusion(model, X, target, patch, stride, fill, score=lambda z: z)


def occlusion_in_place(model, X, target, patch, stride, fill=0.0):
    return _occlusion(model, X, target, patch, stride, fill, in_place=True)


def occlusion_always_zero(model, X, target, patch, stride, fill=0.0):
    return _occlusion(model, X, target, patch, stride, fill, value=0.0)


def occlusion_train_mode(model, X, target, patch, stride, fill=0.0):
    return _occlusion(model, X, target, patch, stride, fill, eval_mode=False)


def _shared(a, b, k, largest=True):
    top_a = a.flatten(1).topk(k, dim=1, largest=largest).indices
    top_b = b.flatten(1).topk(k, dim=1, largest=largest).indices
    return (top_a[:, :, None] == top_b[:, None, :]).any(dim=2).float().sum(dim=1)


def overlap_count(a, b, k):
    return _shared(a, b, k)


def overlap_iou(a, b, k):
    shared = _shared(a, b, k)
    return shared / (2 * k - shared)


def overlap_smallest(a, b, k):
    return _shared(a, b, k, largest=False) / k


def overlap_whole_batch(a, b, k):
    top_a, top_b = a.flatten().topk(k).indices, b.flatten().topk(k).indices
    return (top_a[:, None] == top_b[None, :]).any(dim=1).float().mean()


def _fgsm(model, X, y, eps, mean, std, *, sign=1.0, clamp=True, eval_mode=True, restore=True,
          normalised=False, labels=None, backward=False):
    was_training = model.training
    if eval_mode:
        model.eval()
    if labels == "predicted":
        with torch.no_grad():
            y = model((X - mean) / std).argmax(1)
    if normalised:
        Z = ((X - mean) / std).detach().requires_grad_(True)
        grad = torch.autograd.grad(F.cross_entropy(model(Z), y), Z)[0]
        X_adv = ((Z + sign * eps * grad.sign()) * std + mean).detach()
    else:
        Xr = X.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model((Xr - mean) / std), y)
        if backward:
            loss.backward()
            grad = Xr.grad
        else:
            grad = torch.autograd.grad(loss, Xr)[0]
        X_adv = X + sign * eps * grad.sign()
    if clamp:
        X_adv = X_adv.clamp(0, 1)
    if restore:
        model.train(was_training)
    return X_adv.detach()


def fgsm_sign_flipped(model, X, y, eps, mean, std):
    return _fgsm(model, X, y, eps, mean, std, sign=-1.0)


def fgsm_no_clamp(model, X, y, eps, mean, std):
    return _fgsm(model, X, y, eps, mean, std, clamp=False)


def fgsm_no_eval(model, X, y, eps, mean, std):
    return _fgsm(model, X, y, eps, mean, std, eval_mode=False)


def fgsm_normalised_input(model, X, y, eps, mean, std):
    return _fgsm(model, X, y, eps, mean, std, normalised=True)


def fgsm_predicted_label(model, X, y, eps, mean, std):
    return _fgsm(model, X, y, eps, mean, std, labels="predicted")


def fgsm_grads_left(model, X, y, eps, mean, std):
    return _fgsm(model, X, y, eps, mean, std, backward=True)


def fgsm_mode_not_restored(model, X, y, eps, mean, std):
    return _fgsm(model, X, y, eps, mean, std, restore=False)


def _accuracies(model, X, y, eps_list, attack, mean, std, *, clean=False, normalise=True, eval_mode=True, scale=1.0,
                error=False):
    out = []
    for eps in eps_list:
        X_adv = X if clean else attack(model, X, y, eps, mean, std)
        if eval_mode:
            model.eval()
        with torch.no_grad():
            y_hat = model((X_adv - mean) / std if normalise else X_adv).argmax(1)
        acc = (y_hat == y).float().mean().item()
        out.append(scale * ((1 - acc) if error else acc))
    return out


def accuracy_on_clean(model, X, y, eps_list, attack, mean, std):
    return _accuracies(model, X, y, eps_list, attack, mean, std, clean=True)


def accuracy_unnormalised(model, X, y, eps_list, attack, mean, std):
    return _accuracies(model, X, y, eps_list, attack, mean, std, normalise=False)


def accuracy_error_rate(model, X, y, eps_list, attack, mean, std):
    return _accuracies(model, X, y, eps_list, attack, mean, std, error=True)


def accuracy_percent(model, X, y, eps_list, attack, mean, std):
    return _accuracies(model, X, y, eps_list, attack, mean, std, scale=100.0)


def accuracy_train_mode(model, X, y, eps_list, attack, mean, std):
    return _accuracies(model, X, y, eps_list, attack, mean, std, eval_mode=False)


def _step(model, optimizer, X, y, eps, mean, std, alpha, *, train=True, zero=True, adv_only=False, swapped=False,
          separate=False, craft_in_train=False):
    if craft_in_train:
        X_adv = _fgsm(model, X, y, eps, mean, std, eval_mode=False)
    else:
        X_adv = adversarial.fgsm(model, X, y, eps, mean, std)
    if train:
        model.train()
    if separate:
        clean, adv = model((X - mean) / std), model((X_adv - mean) / std)
    else:
        logits = model((torch.cat([X, X_adv]) - mean) / std)
        clean, adv = logits[: len(X)], logits[len(X):]
    a = 0.0 if adv_only else (1 - alpha if swapped else alpha)
    loss = a * F.cross_entropy(clean, y) + (1 - a) * F.cross_entropy(adv, y)
    if zero:
        optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_no_train_mode(model, optimizer, X, y, eps, mean, std, alpha=0.5):
    return _step(model, optimizer, X, y, eps, mean, std, alpha, train=False)


def step_no_zero_grad(model, optimizer, X, y, eps, mean, std, alpha=0.5):
    return _step(model, optimizer, X, y, eps, mean, std, alpha, zero=False)


def step_adversarial_only(model, optimizer, X, y, eps, mean, std, alpha=0.5):
    return _step(model, optimizer, X, y, eps, mean, std, alpha, adv_only=True)


def step_alpha_swapped(model, optimizer, X, y, eps, mean, std, alpha=0.5):
    return _step(model, optimizer, X, y, eps, mean, std, alpha, swapped=True)


def step_two_passes(model, optimizer, X, y, eps, mean, std, alpha=0.5):
    return _step(model, optimizer, X, y, eps, mean, std, alpha, separate=True)


def step_crafted_in_train_mode(model, optimizer, X, y, eps, mean, std, alpha=0.5):
    return _step(model, optimizer, X, y, eps, mean, std, alpha, craft_in_train=True)


MUTANTS = {
    "10.1": [(saliency_signed, "take the absolute value"), (saliency_of_probability, "you differentiated the probability"),
             (saliency_train_mode, "call model.eval() first"), (saliency_predicted_class, "you used the predicted class"),
             (saliency_all_logits, "you added up every class's logit"), (saliency_of_loss, "you differentiated the loss"),
             (saliency_keeps_channel, "drop the channel axis")],
    "10.2": [(occlusion_last_position_missing, "range(0, H - patch + 1, stride)"),
             (occlusion_probability_not_drop, "return the DROP"), (occlusion_sign_flipped, "the sign is flipped"),
             (occlusion_logits, "you measured logits"), (occlusion_in_place, "changed its input"),
             (occlusion_always_zero, "painted with `fill`"), (occlusion_train_mode, "call model.eval() first")],
    "10.3": [(overlap_count, "divide by k to get a share"), (overlap_iou, "size of the union"),
             (overlap_smallest, "k SMALLEST"), (overlap_whole_batch, "one share per image")],
    "10.4": [(fgsm_sign_flipped, "you stepped DOWNHILL"), (fgsm_no_clamp, "clamp X_adv to [0, 1]"),
             (fgsm_no_eval, "call model.eval() first"), (fgsm_normalised_input, "you stepped on the NORMALISED input"),
             (fgsm_predicted_label, "you attacked the PREDICTED label"), (fgsm_grads_left, "left gradients on the parameters"),
             (fgsm_mode_not_restored, "give it back as it came")],
    "10.5": [(accuracy_on_clean, "predict on the ATTACKED images"), (accuracy_unnormalised, "normalise them"),
             (accuracy_error_rate, "you returned the error rate"), (accuracy_percent, "fractions between 0 and 1"),
             (accuracy_train_mode, "call model.eval() first")],
    "10.6": [(step_no_train_mode, "call model.train() after making X_adv"), (step_no_zero_grad, "optimizer.zero_grad()"),
             (step_adversarial_only, "attacked images only"), (step_alpha_swapped, "you swapped them"),
             (step_two_passes, "you made two forward passes"), (step_crafted_in_train_mode, "you made X_adv in train mode")],
}
IDS = [f"10.{k}" for k in range(1, 7)]

# ------------------------------------------------------------------------------- the exercises


def test_notebook_10_has_its_exercises_with_two_level_hints():
    assert [ex.id for ex in E.exercises_of("10")] == IDS
    assert set(MUTANTS) == set(IDS)
    for exercise_id in IDS:
        ex = E.EXERCISES[exercise_id]
        assert E.reference(exercise_id).__name__ == ex.function
        assert ex.checker.__module__ == "mnist_course.exercises.nb10"
        assert len(ex.hint) > 40 and len(ex.formula) > 40, exercise_id
        assert len(MUTANTS[exercise_id]) >= 2


def test_fgsm_reference_is_at_least_ten_lines():
    import inspect

    body = [line for line in inspect.getsource(S.fgsm).split('"""')[-1].splitlines() if line.strip()]
    assert len(body) >= 10, body


def test_no_hint_holds_a_line_of_the_reference():
    import inspect

    for exercise_id in IDS:
        ex = E.EXERCISES[exercise_id]
        code = inspect.getsource(E.reference(exercise_id)).split('"""')[-1]
        for line in code.splitlines():
            line = line.split("#")[0].strip()
            if len(line) > 20:
                assert line not in ex.hint and line not in ex.formula, (exercise_id, line)


# ------------------------------------------------------------------------------- the library


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(6 * 14 * 14, 10)).double()


def _digits(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64)
    return X * (X > 0.5), torch.randint(0, 10, (n,), generator=g)


MEAN, STD = 0.1307, 0.3081


def test_saliency_equals_per_example_gradients_from_torch_func():
    """One backward pass of the summed logits gives each image its own gradient in eval mode:
    torch.func's per-example gradient (vmap over grad) agrees; in train mode (BatchNorm couples the
    batch) it would not."""
    model, (X, y) = _model().train(), _digits()
    got = attribution.saliency(model, X, y, MEAN, STD)
    assert model.training  # given back in its mode
    model.eval()

    def logit(x, c):  # the logit of class c, written without indexing by a batched tensor (vmap)
        return model(((x - MEAN) / STD)[None])[0].gather(0, c[None])[0]

    want = torch.func.vmap(torch.func.grad(logit))(X, y).abs()[:, 0]
    torch.testing.assert_close(got, want)


def test_saliency_in_train_mode_would_couple_the_images():
    """Why eval mode matters: with BatchNorm in train mode, image 0's logit depends on image 1."""
    model, (X, _) = _model(), _digits()
    model.train()
    model[5].p = 0.0  # no dropout noise: only BatchNorm's coupling
    Xr = X.clone().requires_grad_(True)
    g = torch.autograd.grad(model((Xr - MEAN) / STD)[0, 3], Xr)[0]
    assert g[1:].abs().sum() > 0
    Xr = X.clone().requires_grad_(True)
    g = torch.autograd.grad(model.eval()((Xr - MEAN) / STD)[0, 3], Xr)[0]
    assert g[1:].abs().sum() == 0


def test_occlusion_drops_match_a_plain_loop_and_spread_to_pixels():
    model, (X, y) = _model().eval(), _digits(3)
    drops = attribution.occlusion_drops(model, X, y, patch=6, stride=2, fill=0.25, mean=MEAN, std=STD)
    assert drops.shape == (3, 12, 12)
    with torch.no_grad():
        for n in range(3):
            p0 = torch.softmax(model((X[n: n + 1] - MEAN) / STD), 1)[0, y[n]]
            for i, r in enumerate(range(0, 23, 2)):
                for j, c in enumerate(range(0, 23, 2)):
                    Xo = X[n: n + 1].clone()
                    Xo[..., r: r + 6, c: c + 6] = 0.25
                    p = torch.softmax(model((Xo - MEAN) / STD), 1)[0, y[n]]
                    assert torch.isclose(drops[n, i, j], (p0 - p).to(drops.dtype), atol=1e-6)
    pixels = attribution.drops_to_pixels(drops, 6, 2)
    assert pixels.shape == (3, 28, 28)
    torch.testing.assert_close(pixels[:, 0, 0], drops[:, 0, 0])  # only the first square covers the corner
    torch.testing.assert_close(pixels[:, 27, 27], drops[:, -1, -1])
    torch.testing.assert_close(pixels[:, 2, 0], drops[:, :2, 0].mean(1))  # rows 0 and 2 cover row 2
    torch.testing.assert_close(attribution.occlusion_map(model, X, y, 6, 2, 0.25, MEAN, STD), pixels)
    with pytest.raises(ValueError, match="patch"):
        attribution.occlusion_drops(model, X, y, patch=40)


def test_top_k_overlap():
    a = torch.arange(16.0).reshape(1, 4, 4)
    assert attribution.top_k_overlap(a, a, 4).item() == 1.0
    assert attribution.top_k_overlap(a, -a, 4).item() == 0.0
    b = a.clone()
    b[0, 3, 3] = -1  # one of a's top 4 leaves b's top 4
    assert attribution.top_k_overlap(a, b, 4).item() == 0.75
    torch.testing.assert_close(attribution.top_k_overlap(a, b, 4), S.top_k_overlap(a, b, 4))
    with pytest.raises(ValueError, match="k must be"):
        attribution.top_k_overlap(a, b, 0)


def test_fgsm_is_one_signed_step_uphill_in_pixel_space():
    model, (X, y) = _model().train(), _digits(8)
    eps = 0.1
    X_adv = adversarial.fgsm(model, X, y, eps, MEAN, STD)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert X_adv.min() >= 0 and X_adv.max() <= 1
    assert (X_adv - X).abs().max() <= eps + 1e-12
    inside = (X > eps) & (X < 1 - eps)  # no clamp there: exactly eps
    torch.testing.assert_close((X_adv - X).abs()[inside], torch.full_like(X[inside], eps))
    model.eval()
    loss = F.cross_entropy(model((X - MEAN) / STD), y, reduction="none")
    loss_adv = F.cross_entropy(model((X_adv - MEAN) / STD), y, reduction="none")
    assert (loss_adv > loss).all()
    torch.testing.assert_close(X_adv, S.fgsm(model, X, y, eps, MEAN, STD))
    # to first order the loss grows by eps * |gradient|_1 (the linear view FGSM rests on)
    tiny = 1e-5
    grad = adversarial.loss_gradient(model, X, y, MEAN, STD)
    X_t = adversarial.fgsm(model, X, y, tiny, MEAN, STD)
    stuck = ((X <= 0) & (grad < 0)) | ((X >= 1) & (grad > 0))  # the clamp keeps these where they are
    free = (~stuck).to(X.dtype)
    predicted = tiny * (grad.abs() * free).sum()
    change = F.cross_entropy(model((X_t - MEAN) / STD), y) - F.cross_entropy(model((X - MEAN) / STD), y)
    assert abs(change.item() - predicted.item()) < 1e-3 * abs(predicted.item())
    with pytest.raises(ValueError, match="eps"):
        adversarial.fgsm(model, X, y, 25, MEAN, STD)


def test_curve_reuses_one_gradient_and_equals_fgsm_at_each_eps():
    model, (X, y) = _model(1).eval(), _digits(20, seed=1)
    eps_list = [0.0, 0.05, 0.2]
    curve = adversarial.fgsm_accuracy_curve(model, X, y, eps_list, MEAN, STD, batch_size=7)
    want = [adversarial.accuracy(model, adversarial.fgsm(model, X, y, e, MEAN, STD), y, MEAN, STD) for e in eps_list]
    assert curve == pytest.approx(want)
    assert curve[0] == pytest.approx(adversarial.accuracy(model, X, y, MEAN, STD))
    assert S.accuracy_vs_eps(model, X, y, eps_list, adversarial.fgsm, MEAN, STD) == pytest.approx(want)


def test_random_sign_and_pgd_stay_in_the_box():
    model, (X, y) = _model(2).eval(), _digits(6, seed=2)
    g = torch.Generator().manual_seed(0)
    noisy = adversarial.random_sign(X, 0.2, g)
    assert (noisy - X).abs().max() <= 0.2 + 1e-12 and noisy.min() >= 0 and noisy.max() <= 1
    X_pgd = adversarial.pgd(model, X, y, 0.1, steps=5, mean=MEAN, std=STD, generator=g)
    assert (X_pgd - X).abs().max() <= 0.1 + 1e-12 and X_pgd.min() >= 0 and X_pgd.max() <= 1
    loss = F.cross_entropy(model((X - MEAN) / STD), y)
    assert F.cross_entropy(model((X_pgd - MEAN) / STD), y) > loss


def test_adversarial_training_step_matches_the_reference_and_lowers_the_attacked_loss():
    model, (X, y) = _model(3), _digits(16, seed=3)
    model[5].p = 0.0  # deterministic, to compare two copies
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.05), torch.optim.SGD(b.parameters(), lr=0.05)
    for p in [*a.parameters(), *b.parameters()]:
        p.grad = torch.ones_like(p)  # stale gradients from an earlier step: the step must zero them
    la = adversarial.adversarial_training_step(a, opt_a, X, y, 0.1, MEAN, STD, alpha=0.3)
    lb = S.adversarial_training_step(b, opt_b, X, y, 0.1, MEAN, STD, alpha=0.3)
    assert la == pytest.approx(lb)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)
    before = F.cross_entropy(model.eval()((adversarial.fgsm(model, X, y, 0.1, MEAN, STD) - MEAN) / STD), y)
    m, opt = copy.deepcopy(model), None
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    loader = [(X, y)] * 20
    adversarial.adversarial_train_epoch(m, loader, opt, 0.1, MEAN, STD)
    m.eval()
    after = F.cross_entropy(m((adversarial.fgsm(m, X, y, 0.1, MEAN, STD) - MEAN) / STD), y)
    assert after < before


def test_bad_input_gets_a_clear_error():
    model, (X, y) = _model().eval(), _digits(2)
    with pytest.raises(ValueError, match="pixel space"):
        attribution.saliency(model, (X * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match="one per image"):
        attribution.saliency(model, X, y[:1])
    with pytest.raises(ValueError, match="same shape"):
        attribution.top_k_overlap(X[:, 0], X[:1, 0], 3)
