"""Reference solutions of the course's exercises (the checks live in `mnist_course.exercises`).

Self-study course: these are not secret, but try first. `mnist_course.exercises.solution("02.1")`
prints one of them; `reference("02.1")` returns it as a function. Each function has the name and
signature of the stub in its notebook's `## Exercises` section, and uses only NumPy or PyTorch.
"""

from __future__ import annotations

import numpy as np
import torch

# ------------------------------------------------------------------ 01 · loading and exploring MNIST


def read_idx_header(raw):
    """raw: the first bytes of an IDX file -> (type_code, shape, offset): the data type code (byte 2),
    the tuple of dimension sizes (big-endian 32-bit integers) and the offset where the data start."""
    type_code, ndim = raw[2], raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return type_code, shape, 4 + 4 * ndim


def standardize(X, X_train):
    """X, X_train: uint8 images (N, 28, 28) -> X as float32, standardised with the mean and standard
    deviation of all of X_train's pixels (scaled to [0, 1])."""
    train = X_train.astype(np.float32) / 255
    return ((X.astype(np.float32) / 255 - train.mean()) / train.std()).astype(np.float32)


def batch_indices(n, batch_size, seed, drop_last=False):
    """The index arrays of one shuffled epoch over n examples: a seeded permutation cut into
    batches of batch_size (the last one smaller, or dropped when drop_last)."""
    order = np.random.default_rng(seed).permutation(n)
    stop = n - n % batch_size if drop_last else n
    return [order[i: i + batch_size] for i in range(0, stop, batch_size)]


# ------------------------------------------------------------- 02 · softmax regression in NumPy


def softmax(z):
    """z: (N, C) logits -> (N, C) probabilities; each row sums to 1, stable for any logits."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(z, y):
    """z: (N, C) logits, y: (N,) integer labels -> the mean cross-entropy (a float)."""
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def cross_entropy_grad(z, y):
    """z: (N, C) logits, y: (N,) labels -> dZ (N, C), the gradient of the mean cross-entropy."""
    dZ = softmax(z)
    dZ[np.arange(len(y)), y] -= 1
    return dZ / len(y)


# --------------------------------------------------------- 03 · an MLP by hand, then PyTorch


def relu_backward(dA, H):
    """dA: gradient w.r.t. A = max(0, H), H: the ReLU's input (same shape) -> dH."""
    return dA * (H > 0)


def linear_backward(dZ, A, W):
    """Z = A @ W.T + b with A (N, in), W (out, in); dZ (N, out) -> (dA (N, in), dW (out, in), db (out,))."""
    return dZ @ W, dZ.T @ A, dZ.sum(axis=0)


def sgd_momentum_step(w, grad, velocity, lr, momentum):
    """One step of torch.optim.SGD with momentum -> (new w, new velocity); velocity starts at zeros."""
    velocity = momentum * velocity + grad
    return w - lr * velocity, velocity


# ------------------------------------------------------------------------- 04 · MLP vs CNN


def conv_output_size(n, kernel_size, padding=0, stride=1):
    """Output height (or width) of a convolution or pooling over an n-pixel input."""
    return (n + 2 * padding - kernel_size) // stride + 1


def corr2d(X, K):
    """X: (H, W), K: (h, w) -> (H - h + 1, W - w + 1), the cross-correlation that nn.Conv2d computes."""
    h, w = K.shape
    Y = torch.zeros(X.shape[0] - h + 1, X.shape[1] - w + 1, dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i: i + h, j: j + w] * K).sum()
    return Y


def conv_num_params(in_channels, out_channels, kernel_size, bias=True):
    """Number of parameters of nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)."""
    return out_channels * (in_channels * kernel_size * kernel_size + int(bias))


def max_pool2d(X):
    """X: (H, W) -> (H // 2, W // 2): the maximum of each 2x2 block (an odd last row/column is dropped)."""
    H, W = X.shape[0] // 2 * 2, X.shape[1] // 2 * 2
    return X[:H, :W].reshape(H // 2, 2, W // 2, 2).amax(dim=(1, 3))


# ------------------------------------------------------------------ 05 · pixel permutation


def permute_pixels(X, perm):
    """X: (N, 784), perm: (784,) -> (N, 784) where pixel j of each image is its pixel perm[j]."""
    return X[:, perm]


def inverse_permutation(perm):
    """perm: a permutation of 0..n-1 -> inv with permute_pixels(permute_pixels(X, perm), inv) == X."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    return inv


def permute_first_layer(W, perm):
    """W: (out, 784) first-layer weights -> W' with W' @ x[perm] == W @ x for every image x."""
    return W[:, perm]


# ------------------------------------------------------ 06 · regularisation and tricks


def dropout(X, p, training=True, generator=None):
    """Inverted dropout: in training, zero each element with probability p and scale the kept ones
    by 1 / (1 - p); in evaluation, return X unchanged."""
    if not training or p == 0:
        return X
    keep = torch.rand(X.shape, generator=generator) >= p
    return X * keep / (1 - p)


def batchnorm_forward(X, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """X: (N, C, H, W); gamma, beta, running_mean, running_var: (C,) -> (Y, new running_mean,
    new running_var), as nn.BatchNorm2d in train (training=True) or eval mode."""
    if training:
        mean = X.mean(dim=(0, 2, 3))
        var = X.var(dim=(0, 2, 3), unbiased=False)
        n = X.numel() / X.shape[1]
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    else:
        mean, var = running_mean, running_var
    X_hat = (X - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + eps)
    return gamma[None, :, None, None] * X_hat + beta[None, :, None, None], running_mean, running_var


def adam_step(w, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """One step of torch.optim.Adam at step t = 1, 2, ...; m, v start at zeros -> (new w, new m, new v)."""
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return w - lr * m_hat / (torch.sqrt(v_hat) + eps), m, v


# ---------------------------------------------------------------------- 07 · inside the CNN


def receptive_field(layers):
    """layers: [(kernel_size, stride), ...] from the input up -> the receptive field's side in pixels."""
    rf, jump = 1, 1
    for kernel_size, stride in layers:
        rf += (kernel_size - 1) * jump
        jump *= stride
    return rf


def feature_map_shape(layers, input_shape=(1, 28, 28)):
    """layers: nn.Conv2d and nn.MaxPool2d modules in order -> (C, H, W) of the output, computed with
    the output-size formula (no forward pass)."""
    C, H, W = input_shape

    def pair(v):
        return v if isinstance(v, tuple) else (v, v)

    for layer in layers:
        (kh, kw), (sh, sw), (ph, pw) = (pair(layer.kernel_size), pair(layer.stride), pair(layer.padding))
        H, W = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        if isinstance(layer, torch.nn.Conv2d):
            C = layer.out_channels
    return C, H, W


def most_confused_pairs(C, k=3):
    """C: (10, 10) confusion matrix (row: true class, column: predicted) -> the k pairs of classes
    i < j with the most mistakes between them, as [(i, j, C[i, j] + C[j, i]), ...], largest first."""
    pairs = [(int(C[i, j] + C[j, i]), i, j) for i in range(len(C)) for j in range(i + 1, len(C))]
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(i, j, total) for total, i, j in pairs[:k]]


# ---------------------------------------------------------------------- 08 · training deep nets


def init_std(fan_in, fan_out, scheme, nonlinearity):
    """fan_in, fan_out: a layer's inputs and outputs; scheme: "xavier" or "kaiming"; nonlinearity:
    "linear", "tanh" or "relu" -> the standard deviation of torch.nn.init's normal initialisation."""
    gain = {"linear": 1.0, "tanh": 5 / 3, "relu": 2**0.5}[nonlinearity]
    if scheme == "xavier":
        return gain * (2 / (fan_in + fan_out)) ** 0.5
    return gain / fan_in**0.5


def activation_stats(model, X, threshold=0.97):
    """model: an nn.Module containing nn.Tanh layers; X: a batch it accepts -> [(mean, std, saturated), ...]:
    one tuple of floats per nn.Tanh, in the order the forward pass calls them; saturated is the fraction
    of the outputs with |a| > threshold. The model is left without hooks."""
    outputs = []
    handles = [m.register_forward_hook(lambda module, inputs, output: outputs.append(output.detach()))
               for m in model.modules() if isinstance(m, torch.nn.Tanh)]
    try:
        with torch.no_grad():
            model(X)
    finally:
        for h in handles:
            h.remove()
    return [(A.mean().item(), A.std().item(), (A.abs() > threshold).float().mean().item()) for A in outputs]


def activation_grad_stds(model, X, y):
    """model: an nn.Module containing nn.Tanh layers; X, y: a batch and its labels -> [std, ...]: for each
    nn.Tanh, in forward order, the standard deviation of the gradient of the mean cross-entropy
    F.cross_entropy(model(X), y) with respect to that layer's output. The model is left without hooks."""
    grads = []
    handles = [m.register_full_backward_hook(lambda module, grad_input, grad_output: grads.append(grad_output[0]))
               for m in model.modules() if isinstance(m, torch.nn.Tanh)]
    try:
        torch.nn.functional.cross_entropy(model(X), y).backward()
    finally:
        for h in handles:
            h.remove()
    return [g.std().item() for g in reversed(grads)]  # backward hooks fire from the last layer to the first


def mlp_backward(params, X, y):
    """params: [(W1, b1), ..., (WL, bL)] NumPy arrays, W_l (out_l, in_l), b_l (out_l,); X: (N, in_1); y: (N,) ints.
    The MLP: H_l = A_{l-1} W_l^T + b_l with A_0 = X, A_l = max(0, H_l) for every layer but the last, whose
    H_L are the logits; loss: the mean cross-entropy. -> [(dW1, db1), ..., (dWL, dbL)], each of its parameter's shape."""
    A, inputs, pre = X, [], []
    for l, (W, b) in enumerate(params):
        inputs.append(A)
        H = A @ W.T + b
        pre.append(H)
        A = np.maximum(H, 0) if l < len(params) - 1 else H
    e = np.exp(A - A.max(axis=1, keepdims=True))  # softmax of the logits, stable
    dH = e / e.sum(axis=1, keepdims=True)
    dH[np.arange(len(y)), y] -= 1
    dH /= len(y)  # dL/dlogits of the MEAN loss
    grads = []
    for l in range(len(params) - 1, -1, -1):
        grads.append((dH.T @ inputs[l], dH.sum(axis=0)))
        if l > 0:
            dH = (dH @ params[l][0]) * (pre[l - 1] > 0)  # back through the linear layer, then its ReLU
    return grads[::-1]


def batchnorm_backward(dY, X, gamma, eps=1e-5):
    """BatchNorm1d in training mode, Y = gamma * (X - mean) / sqrt(var + eps) + beta with the batch's mean
    and biased variance per feature. dY, X: (N, D); gamma: (D,) -> (dX (N, D), dgamma (D,), dbeta (D,))."""
    mean = X.mean(dim=0)
    var = X.var(dim=0, unbiased=False)
    inv_std = 1 / torch.sqrt(var + eps)
    X_hat = (X - mean) * inv_std
    dbeta = dY.sum(dim=0)
    dgamma = (dY * X_hat).sum(dim=0)
    dX_hat = dY * gamma
    # X reaches X_hat three ways: directly, through var = mean((X - mean)^2) and through the mean
    dvar = -0.5 * inv_std**3 * (dX_hat * (X - mean)).sum(dim=0)
    dmean = -inv_std * dX_hat.sum(dim=0)  # var's own dependence on the mean sums to zero
    N = X.shape[0]
    dX = dX_hat * inv_std + dvar * 2 * (X - mean) / N + dmean / N
    return dX, dgamma, dbeta


# ---------------------------------------------------------------------- 09 · overfitting and the learning rate


def range_test_lrs(lr_min, lr_max, num_steps):
    """The learning rates of a range test: num_steps values growing geometrically (by the same
    factor at every step) from lr_min to lr_max, both included -> a list of num_steps floats."""
    factor = (lr_max / lr_min) ** (1 / (num_steps - 1))
    return [lr_min * factor**i for i in range(num_steps)]


def smooth_and_stop(losses, beta=0.98, stop_factor=4.0):
    """losses: the range test's loss of each batch -> the bias-corrected exponential moving average
    of the losses, up to and including the first step (after the first) whose smoothed loss exceeds
    stop_factor times the lowest smoothed loss before it; all of them when none does."""
    smoothed, avg, best = [], 0.0, float("inf")
    for t, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        smoothed.append(avg / (1 - beta**t))
        if t > 1 and smoothed[-1] > stop_factor * best:
            break
        best = min(best, smoothed[-1])
    return smoothed


def steepest_lr(lrs, smoothed):
    """lrs, smoothed: a range test's learning rates and smoothed losses (same length) -> the
    learning rate where the smoothed loss falls fastest per unit of log(lr), among the steps up to
    the lowest smoothed loss."""
    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    lowest = int(np.argmin(smoothed))
    slope = np.gradient(smoothed[:lowest + 1], np.log(lrs[:lowest + 1]))
    return float(lrs[int(np.argmin(slope))])


def sgd_weight_decay_step(w, grad, v, lr, momentum, weight_decay):
    """One step of torch.optim.SGD(lr, momentum, weight_decay) (no dampening, no Nesterov): w, grad, v
    tensors of one shape, v the momentum buffer (zeros before the first step) -> (new w, new v)."""
    grad = grad + weight_decay * w  # the gradient of the penalty (weight_decay / 2) * |w|^2
    v = momentum * v + grad
    return w - lr * v, v


def fit_early_stopping(model, train_loader, val_loader, optimizer, num_epochs, patience,
                       loss_fn=torch.nn.functional.cross_entropy):
    """Train for at most num_epochs epochs, validating after each; stop once the validation loss has
    not improved (strictly) for `patience` epochs in a row; end with the weights of the epoch with the
    lowest validation loss. Loaders yield (X, y) batches. -> history: one dict per epoch trained,
    {"epoch": 1, 2, ..., "train_loss": mean training loss, "val_loss": mean validation loss}."""
    history, best_loss, best_state, bad_epochs = [], float("inf"), None, 0
    for epoch in range(1, num_epochs + 1):
        model.train()
        total, count = 0.0, 0
        for X, y in train_loader:
            loss = loss_fn(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(y), count + len(y)
        train_loss = total / count
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for X, y in val_loader:
                total, count = total + loss_fn(model(X), y).item() * len(y), count + len(y)
        val_loss = total / count
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        if val_loss < best_loss:
            best_loss, bad_epochs = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # a copy, not references
        else:
            bad_epochs += 1
            if bad_epochs >= patience:
                break
    model.load_state_dict(best_state)
    return history


def time_per_call(fn, sync, repeats=10, warmup=2, clock=None):
    """Seconds per call of fn() on a device that works asynchronously: warm up, wait for the device
    (sync()), read the clock, call fn() `repeats` times, wait for the device again, read the clock
    -> (elapsed time) / repeats. clock() returns seconds (None: time.perf_counter)."""
    if clock is None:
        import time

        clock = time.perf_counter
    for _ in range(warmup):
        fn()
    sync()
    start = clock()
    for _ in range(repeats):
        fn()
    sync()
    return (clock() - start) / repeats


# ---------------------------------------------------------------------- 10 · what the CNN looks at


def saliency_map(model, X, target):
    """model: images (N, 1, H, W) -> logits (N, C); X: (N, 1, H, W) float images; target: (N,) class
    per image -> |d logit_target / d X| (N, H, W), computed in eval mode."""
    model.eval()
    X = X.detach().clone().requires_grad_(True)
    logits = model(X)
    chosen = logits[torch.arange(len(X)), target].sum()
    (grad,) = torch.autograd.grad(chosen, X)
    return grad.abs()[:, 0]


def occlusion_drops(model, X, target, patch, stride, fill=0.0):
    """model: images -> logits; X: (N, 1, H, W); target: (N,) -> drops (N, R, C): the probability of
    the target class minus that probability with the patch x patch square at (rows[i], cols[j]) set to
    fill, for rows = range(0, H - patch + 1, stride) and cols likewise; eval mode, no gradients."""
    model.eval()
    rows = range(0, X.shape[2] - patch + 1, stride)
    cols = range(0, X.shape[3] - patch + 1, stride)
    with torch.no_grad():
        p0 = torch.softmax(model(X), dim=1)[torch.arange(len(X)), target]
        drops = torch.zeros(len(X), len(rows), len(cols), dtype=p0.dtype)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                occluded = X.clone()
                occluded[:, :, r: r + patch, c: c + patch] = fill
                drops[:, i, j] = p0 - torch.softmax(model(occluded), dim=1)[torch.arange(len(X)), target]
    return drops


def top_k_overlap(a, b, k):
    """a, b: (N, H, W) importance maps -> (N,) the share of a's k largest pixels that are also among
    b's k largest, per image."""
    top_a = a.flatten(1).topk(k, dim=1).indices
    top_b = b.flatten(1).topk(k, dim=1).indices
    shared = (top_a[:, :, None] == top_b[:, None, :]).any(dim=2)
    return shared.float().sum(dim=1) / k


def fgsm(model, X, y, eps, mean, std):
    """model: NORMALISED images (N, 1, H, W) -> logits; X: (N, 1, H, W) pixels in [0, 1]; y: (N,) true
    labels; eps: pixel units -> X_adv (N, 1, H, W) = clamp(X + eps * sign(d loss / d X), 0, 1).
    Runs the model in eval mode and gives it back in its mode; leaves no gradient on the parameters."""
    was_training = model.training
    model.eval()
    X_adv = X.detach().clone().requires_grad_(True)
    logits = model((X_adv - mean) / std)  # normalise inside, so the gradient is per pixel
    loss = torch.nn.functional.cross_entropy(logits, y)  # the TRUE labels
    (grad,) = torch.autograd.grad(loss, X_adv)  # the input's gradient only, not the parameters'
    X_adv = X.detach() + eps * grad.sign()  # uphill: the loss grows
    X_adv = X_adv.clamp(0.0, 1.0)  # still a valid picture
    model.train(was_training)
    return X_adv


def accuracy_vs_eps(model, X, y, eps_list, attack, mean, std):
    """model: normalised images -> logits; X: (N, 1, H, W) pixels; y: (N,) true labels; attack(model,
    X, y, eps, mean, std) -> attacked pixels -> [accuracy (0 to 1) on attack(..., eps) for eps in eps_list]."""
    accuracies = []
    for eps in eps_list:
        X_adv = attack(model, X, y, eps, mean, std)
        model.eval()
        with torch.no_grad():
            y_hat = model((X_adv - mean) / std).argmax(dim=1)
        accuracies.append((y_hat == y).float().mean().item())
    return accuracies


def adversarial_training_step(model, optimizer, X, y, eps, mean, std, alpha=0.5):
    """One step of adversarial training on a batch X (N, 1, H, W) pixels, y (N,): X_adv = fgsm(...)
    (eval mode), then in train mode one forward pass of torch.cat([X, X_adv]), the loss
    alpha * CE(clean half) + (1 - alpha) * CE(attacked half), zero_grad, backward, step -> the loss."""
    X_adv = fgsm(model, X, y, eps, mean, std)
    model.train()
    logits = model((torch.cat([X, X_adv]) - mean) / std)
    clean_loss = torch.nn.functional.cross_entropy(logits[: len(X)], y)
    adv_loss = torch.nn.functional.cross_entropy(logits[len(X):], y)
    loss = alpha * clean_loss + (1 - alpha) * adv_loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()



# ---------------------------------------------------------------------- 11 · trusting the confidence


def reliability_bins(confidence, correct, n_bins=10):
    """confidence: (N,) top probabilities in [0, 1], correct: (N,) booleans -> (count, mean_confidence,
    accuracy), three (n_bins,) arrays over equal-width bins (m / n_bins, (m + 1) / n_bins], closed on
    the right; an empty bin has count 0 and nan for the two means."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    inner_edges = np.arange(1, n_bins) / n_bins
    b = np.searchsorted(inner_edges, confidence, side="left")  # bin of each answer; 1.0 -> the last
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore"):  # 0 / 0 = nan for the empty bins
        mean_confidence = np.bincount(b, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(b, weights=correct, minlength=n_bins) / count
    return count, mean_confidence, accuracy


def expected_calibration_error(confidence, correct, n_bins=15):
    """confidence: (N,) in [0, 1], correct: (N,) booleans -> the ECE: the sum over the non-empty bins
    of (count / N) * |accuracy - mean confidence|, with the bins of reliability_bins."""
    count, mean_confidence, accuracy = reliability_bins(confidence, correct, n_bins)
    used = count > 0
    return float(np.sum(count[used] / count.sum() * np.abs(accuracy[used] - mean_confidence[used])))


def fit_temperature(logits, y):
    """logits: (N, C) of validation data, y: (N,) labels -> the temperature T > 0 (a float) that
    minimises the mean NLL of softmax(logits / T), by L-BFGS on log T."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # T = exp(log_t) > 0, starts at 1
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def threshold_for_accuracy(confidence, correct, target):
    """confidence: (N,), correct: (N,) booleans, target in (0, 1] -> the lowest confidence t among the
    answers such that the answers with confidence >= t are right at least a share target of the time;
    ValueError when no t reaches the target."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    for t in np.unique(confidence):  # ascending: the first that works is the lowest
        if correct[confidence >= t].mean() >= target:
            return float(t)
    raise ValueError(f"no threshold reaches an accuracy of {target}")


def nearest_neighbours(query, bank, k):
    """query: (Q, D), bank: (N, D) -> (Q, k) int indices of the k rows of bank with the largest cosine
    similarity to each query row, most similar first."""
    query = np.asarray(query, dtype=np.float64)
    bank = np.asarray(bank, dtype=np.float64)
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    similarity = query @ bank.T  # (Q, N) cosines
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def pca_project(X, k):
    """X: (N, D) -> (N, k): X centred and projected on the k eigenvectors of its covariance matrix with
    the largest eigenvalues, largest first (each column's sign is free)."""
    X = np.asarray(X, dtype=np.float64)
    centred = X - X.mean(axis=0)
    covariance = centred.T @ centred / (len(X) - 1)  # (D, D)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending eigenvalues, vectors in columns
    top = eigenvectors[:, ::-1][:, :k]  # the k largest, largest first
    return centred @ top


# ---------------------------------------------------------------------- 12 · draw a digit


def centre_of_mass(img):
    """img: (h, w) intensities -> (row, column) of the intensity-weighted centre."""
    rows, cols = np.indices(img.shape)
    return (rows * img).sum() / img.sum(), (cols * img).sum() / img.sum()


def crop_to_ink(img, threshold=0.2):
    """img: (h, w) -> the smallest rectangle holding every pixel above threshold ((0, 0) if none)."""
    rows = np.flatnonzero((img > threshold).any(axis=1))
    cols = np.flatnonzero((img > threshold).any(axis=0))
    if len(rows) == 0:
        return img[:0, :0]
    return img[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def centre_by_mass(img, centre=14.0):
    """img: (28, 28) with the digit somewhere -> the same digit shifted by whole pixels so that its
    centre of mass is as close as possible to (centre, centre)."""
    rows, cols = np.indices(img.shape)
    cy, cx = (rows * img).sum() / img.sum(), (cols * img).sum() / img.sum()
    return np.roll(img, (round(centre - cy), round(centre - cx)), axis=(0, 1))


def fit_size(h, w, box=20):
    """Size (new_h, new_w) of an h x w crop scaled so its longer side is box pixels, keeping the
    aspect ratio (each side at least 1 pixel)."""
    scale = box / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))
