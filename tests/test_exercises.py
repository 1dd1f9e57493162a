"""The exercise checks can fail: every reference passes, every mutant (a wrong implementation a
learner would plausibly type) fails with the message that names its mistake, stubs are 'not
attempted', and `--status` reads saved notebooks."""

from __future__ import annotations

import nbformat
import numpy as np
import pytest
import torch
from torch import nn

from mnist_course import exercises as E
from mnist_course.exercises import solutions as S
from mnist_course.exercises import status

# ------------------------------------------------------------------------------- the mutants
# One function per classic mistake, with the signature of the exercise's stub.


def idx_little_endian(raw):
    ndim = raw[3]
    return raw[2], tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "little") for i in range(ndim)), 4 + 4 * ndim


def idx_offset_16(raw):
    ndim = raw[3]
    return raw[2], tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)), 16


def idx_bytes_swapped(raw):
    type_code, ndim = raw[3], raw[2]
    return type_code, tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)), 4 + 4 * ndim


def idx_offset_no_magic(raw):
    ndim = raw[3]
    return raw[2], tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)), 4 * ndim


def standardize_own_stats(X, X_train):
    X = X / 255
    return (X - X.mean()) / X.std()


def standardize_per_pixel(X, X_train):
    train = X_train / 255
    return (X / 255 - train.mean(axis=0)) / train.std(axis=0)


def standardize_no_mean(X, X_train):
    return X / 255 / (X_train / 255).std()


def batches_always_drop(n, batch_size, seed, drop_last=False):
    order = np.random.default_rng(seed).permutation(n)
    return [order[i: i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def batches_in_order(n, batch_size, seed, drop_last=False):
    order = np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return [order[i: i + batch_size] for i in range(0, stop, batch_size)]


def batches_unseeded(n, batch_size, seed, drop_last=False):
    order = np.random.permutation(n)
    stop = n - n % batch_size if drop_last else n
    return [order[i: i + batch_size] for i in range(0, stop, batch_size)]


def batches_never_drop(n, batch_size, seed, drop_last=False):
    order = np.random.default_rng(seed).permutation(n)
    return [order[i: i + batch_size] for i in range(0, n, batch_size)]


def softmax_naive(z):
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_axis0(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def softmax_no_keepdims(z):
    e = np.exp(z - z.max(axis=1))
    return e / e.sum(axis=1, keepdims=True)


def softmax_in_place(z):
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def ce_sum(z, y):
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y].sum()


def ce_log_of_softmax(z, y):
    with np.errstate(divide="ignore"):
        return -np.log(S.softmax(z)[np.arange(len(y)), y]).mean()


def ce_sign(z, y):
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return log_p[np.arange(len(y)), y].mean()


def ce_every_row(z, y):
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_p[:, y].mean()


def softmax_sum_no_keepdims(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1)


def grad_every_row(z, y):
    dZ = S.softmax(z)
    dZ[:, y] -= 1
    return dZ / len(y)


def linear_dA_transposed_W(dZ, A, W):
    return dZ @ W.T, dZ.T @ A, dZ.sum(axis=0)


def grad_not_divided(z, y):
    dZ = S.softmax(z)
    dZ[np.arange(len(y)), y] -= 1
    return dZ


def grad_transposed(z, y):
    dZ = S.softmax(z)
    dZ[np.arange(len(y)), y] -= 1
    return dZ.T / len(y)


def grad_no_onehot(z, y):
    return S.softmax(z) / len(y)


def relu_no_mask(dA, H):
    return dA


def relu_ge(dA, H):
    return dA * (H >= 0)


def relu_times_output(dA, H):
    return dA * np.maximum(H, 0)


def linear_dW_transposed(dZ, A, W):
    return dZ @ W, A.T @ dZ, dZ.sum(axis=0)


def linear_db_not_summed(dZ, A, W):
    return dZ @ W, dZ.T @ A, dZ


def linear_db_mean(dZ, A, W):
    return dZ @ W, dZ.T @ A, dZ.mean(axis=0)


def sgd_no_carry(w, grad, velocity, lr, momentum):
    return w - lr * grad, grad


def sgd_dampened(w, grad, velocity, lr, momentum):
    velocity = momentum * velocity + (1 - momentum) * grad
    return w - lr * velocity, velocity


def sgd_uphill(w, grad, velocity, lr, momentum):
    velocity = momentum * velocity + grad
    return w + lr * velocity, velocity


def size_no_plus_one(n, kernel_size, padding=0, stride=1):
    return (n + 2 * padding - kernel_size) // stride


def size_padding_once(n, kernel_size, padding=0, stride=1):
    return (n + padding - kernel_size) // stride + 1


def size_no_stride(n, kernel_size, padding=0, stride=1):
    return n + 2 * padding - kernel_size + 1


def size_true_division(n, kernel_size, padding=0, stride=1):
    return (n + 2 * padding - kernel_size) / stride + 1


def params_no_bias(in_channels, out_channels, kernel_size, bias=True):
    return out_channels * in_channels * kernel_size * kernel_size


def params_no_in_channels(in_channels, out_channels, kernel_size, bias=True):
    return out_channels * (kernel_size * kernel_size + int(bias))


def corr2d_flipped(X, K):
    return S.corr2d(X, K.flip(0, 1))


def corr2d_short(X, K):
    h, w = K.shape
    Y = torch.zeros(X.shape[0] - h, X.shape[1] - w, dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i: i + h, j: j + w] * K).sum()
    return Y


def pool_average(X):
    H, W = X.shape[0] // 2 * 2, X.shape[1] // 2 * 2
    return X[:H, :W].reshape(H // 2, 2, W // 2, 2).mean(dim=(1, 3))


def pool_stride_one(X):
    Y = torch.zeros(X.shape[0] - 1, X.shape[1] - 1, dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = X[i: i + 2, j: j + 2].max()
    return Y


def permute_rows(X, perm):
    return X[perm]


def permute_scatter(X, perm):
    out = torch.empty_like(X)
    out[:, perm] = X
    return out


def inverse_is_perm(perm):
    return perm


def inverse_twice(perm):
    return perm[perm]


def first_layer_inverse(W, perm):
    return W[:, torch.argsort(perm)]


def first_layer_rows(W, perm):
    return W[perm]


def dropout_no_scale(X, p, training=True, generator=None):
    if not training:
        return X
    return X * (torch.rand(X.shape, generator=generator) >= p)


def dropout_always(X, p, training=True, generator=None):
    return X * (torch.rand(X.shape, generator=generator) >= p) / (1 - p)


def dropout_keep_p(X, p, training=True, generator=None):
    if not training:
        return X
    return X * (torch.rand(X.shape, generator=generator) < p) / (1 - p)


def _bn(X, gamma, beta, mean, var, eps):
    def c(v):
        return v[None, :, None, None]
    return c(gamma) * (X - c(mean)) / torch.sqrt(c(var) + eps) + c(beta)


def bn_batch_stats_in_eval(X, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    mean, var = X.mean(dim=(0, 2, 3)), X.var(dim=(0, 2, 3), unbiased=False)
    if training:
        n = X.numel() / X.shape[1]
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    return _bn(X, gamma, beta, mean, var, eps), running_mean, running_var


def bn_biased_running_var(X, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    if not training:
        return _bn(X, gamma, beta, running_mean, running_var, eps), running_mean, running_var
    mean, var = X.mean(dim=(0, 2, 3)), X.var(dim=(0, 2, 3), unbiased=False)
    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var = (1 - momentum) * running_var + momentum * var
    return _bn(X, gamma, beta, mean, var, eps), running_mean, running_var


def bn_no_running_update(X, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    if not training:
        return _bn(X, gamma, beta, running_mean, running_var, eps), running_mean, running_var
    mean, var = X.mean(dim=(0, 2, 3)), X.var(dim=(0, 2, 3), unbiased=False)
    return _bn(X, gamma, beta, mean, var, eps), running_mean, running_var


def bn_momentum_reversed(X, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    if not training:
        return _bn(X, gamma, beta, running_mean, running_var, eps), running_mean, running_var
    mean, var = X.mean(dim=(0, 2, 3)), X.var(dim=(0, 2, 3), unbiased=False)
    n = X.numel() / X.shape[1]
    running_mean = momentum * running_mean + (1 - momentum) * mean
    running_var = momentum * running_var + (1 - momentum) * var * n / (n - 1)
    return _bn(X, gamma, beta, mean, var, eps), running_mean, running_var


def adam_no_bias_correction(w, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    m = betas[0] * m + (1 - betas[0]) * grad
    v = betas[1] * v + (1 - betas[1]) * grad**2
    return w - lr * m / (torch.sqrt(v) + eps), m, v


def adam_eps_inside(w, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    m = betas[0] * m + (1 - betas[0]) * grad
    v = betas[1] * v + (1 - betas[1]) * grad**2
    m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
    return w - lr * m_hat / torch.sqrt(v_hat + eps), m, v


def adam_only_m_corrected(w, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    m = betas[0] * m + (1 - betas[0]) * grad
    v = betas[1] * v + (1 - betas[1]) * grad**2
    return w - lr * (m / (1 - betas[0] ** t)) / (torch.sqrt(v) + eps), m, v


def rf_no_jump(layers):
    return 1 + sum(k - 1 for k, _ in layers)


def rf_jump_first(layers):
    rf, jump = 1, 1
    for k, s in layers:
        jump *= s
        rf += (k - 1) * jump
    return rf


def rf_from_zero(layers):
    rf, jump = 0, 1
    for k, s in layers:
        rf += (k - 1) * jump
        jump *= s
    return rf


def fmap_no_pool(layers, input_shape=(1, 28, 28)):
    return S.feature_map_shape([m for m in layers if isinstance(m, nn.Conv2d)], input_shape)


def fmap_no_padding(layers, input_shape=(1, 28, 28)):
    C, H, W = input_shape
    for m in layers:
        k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
        s = m.stride if isinstance(m.stride, int) else m.stride[0]
        H, W = (H - k) // s + 1, (W - k) // s + 1
        if isinstance(m, nn.Conv2d):
            C = m.out_channels
    return C, H, W


def fmap_in_channels(layers, input_shape=(1, 28, 28)):
    _, H, W = S.feature_map_shape(layers, input_shape)
    return layers[0].in_channels, H, W


def pairs_with_diagonal(C, k=3):
    pairs = [(int(C[i, j] + C[j, i]) if i != j else int(C[i, i]), i, j) for i in range(10) for j in range(i, 10)]
    pairs.sort(reverse=True)
    return [(i, j, n) for n, i, j in pairs[:k]]


def pairs_one_direction(C, k=3):
    pairs = sorted(((int(C[i, j]), i, j) for i in range(10) for j in range(10) if i != j), reverse=True)
    return [(i, j, n) for n, i, j in pairs[:k]]


def pairs_ascending(C, k=3):
    pairs = sorted((int(C[i, j] + C[j, i]), i, j) for i in range(10) for j in range(i + 1, 10))
    top = sorted(pairs, reverse=True)[:k]
    return [(i, j, n) for n, i, j in reversed(top)]


def com_swapped(img):
    rows, cols = np.indices(img.shape)
    return (cols * img).sum() / img.sum(), (rows * img).sum() / img.sum()


def com_unweighted(img):
    rows, cols = np.nonzero(img)
    return rows.mean(), cols.mean()


def crop_off_by_one(img, threshold=0.2):
    rows = np.flatnonzero((img > threshold).any(axis=1))
    cols = np.flatnonzero((img > threshold).any(axis=0))
    if len(rows) == 0:
        return img[:0, :0]
    return img[rows[0]: rows[-1], cols[0]: cols[-1]]


def crop_any_ink(img, threshold=0.2):
    return S.crop_to_ink(img, 0.0)


def crop_empty_crashes(img, threshold=0.2):
    rows = np.flatnonzero((img > threshold).any(axis=1))
    cols = np.flatnonzero((img > threshold).any(axis=0))
    return img[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def centre_sign_flipped(img, centre=14.0):
    cy, cx = S.centre_of_mass(img)
    return np.roll(img, (round(cy - centre), round(cx - centre)), axis=(0, 1))


def centre_swapped(img, centre=14.0):
    cy, cx = S.centre_of_mass(img)
    return np.roll(img, (round(centre - cx), round(centre - cy)), axis=(0, 1))


def fit_stretched(h, w, box=20):
    return box, box


def fit_truncated(h, w, box=20):
    scale = box / max(h, w)
    return max(1, int(h * scale)), max(1, int(w * scale))


def fit_swapped(h, w, box=20):
    scale = box / max(h, w)
    return max(1, round(w * scale)), max(1, round(h * scale))


def fit_can_vanish(h, w, box=20):
    scale = box / max(h, w)
    return round(h * scale), round(w * scale)


def softmax_global_max(z):
    e = np.exp(z - z.max())
    return e / e.sum(axis=1, keepdims=True)


def grad_sign_flipped(z, y):
    onehot = np.zeros_like(z)
    onehot[np.arange(len(y)), y] = 1
    return (onehot - S.softmax(z)) / len(y)


def relu_negated(dA, H):
    return -dA * (H > 0)


def linear_negated(dZ, A, W):
    return -(dZ @ W), -(dZ.T @ A), -dZ.sum(axis=0)


def linear_db_negated(dZ, A, W):
    return dZ @ W, dZ.T @ A, -dZ.sum(axis=0)


def sgd_velocity_minus_grad(w, grad, velocity, lr, momentum):
    velocity = momentum * velocity - grad
    return w - lr * velocity, velocity


def corr2d_every_position(X, K):
    h, w = K.shape
    Y = torch.zeros_like(X)
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            Y[i, j] = (X[i: i + h, j: j + w] * K).sum()
    return Y


def corr2d_zeros_like(X, K):
    h, w = K.shape
    Y = torch.zeros_like(X)
    for i in range(X.shape[0] - h + 1):
        for j in range(X.shape[1] - w + 1):
            Y[i, j] = (X[i: i + h, j: j + w] * K).sum()
    return Y


def bn_stats_not_reshaped(X, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    mean, var = X.mean(dim=(0, 2, 3)), X.var(dim=(0, 2, 3), unbiased=False)
    if not training:
        mean, var = running_mean, running_var
    Y = gamma * (X - mean) / torch.sqrt(var + eps) + beta
    if training:
        n = X.numel() / X.shape[1]
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    return Y, running_mean, running_var


def bn_running_keepdim(X, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    if not training:
        return _bn(X, gamma, beta, running_mean, running_var, eps), running_mean, running_var
    mean = X.mean(dim=(0, 2, 3), keepdim=True)
    var = X.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
    Y = gamma[None, :, None, None] * (X - mean) / torch.sqrt(var + eps) + beta[None, :, None, None]
    n = X.numel() / X.shape[1]
    return Y, (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * var * n / (n - 1)


def adam_uphill(w, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    m = betas[0] * m + (1 - betas[0]) * grad
    v = betas[1] * v + (1 - betas[1]) * grad**2
    m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
    return w + lr * m_hat / (torch.sqrt(v_hat) + eps), m, v


def adam_m_against_grad(w, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    m = betas[0] * m - (1 - betas[0]) * grad
    v = betas[1] * v + (1 - betas[1]) * grad**2
    m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
    return w - lr * m_hat / (torch.sqrt(v_hat) + eps), m, v


# exercise id -> [(mutant, words its failure message must contain)]
MUTANTS = {
    "01.1": [(idx_little_endian, "little-endian"), (idx_offset_16, "4 + 4 * ndim bytes"),
             (idx_bytes_swapped, "byte 2 is the type code"), (idx_offset_no_magic, "magic number come first")],
    "01.2": [(standardize_own_stats, "of X itself"), (standardize_per_pixel, "per pixel position"),
             (standardize_no_mean, "subtract the mean")],
    "01.3": [(batches_always_drop, "last, smaller batch of 1 is missing"), (batches_in_order, "shuffle first"),
             (batches_unseeded, "same seed gave different batches"), (batches_never_drop, "drop_last=True must leave out")],
    "02.1": [(softmax_naive, "subtract each row's own maximum"), (softmax_axis0, "over axis 0"),
             (softmax_no_keepdims, "z.max(axis=1, keepdims=True)"),
             (softmax_sum_no_keepdims, "e.sum(axis=1, keepdims=True)"), (softmax_in_place, "in place"),
             (softmax_global_max, "underflow")],
    "02.2": [(ce_sum, "average over the batch, don't sum"), (ce_log_of_softmax, "use log-sum-exp"),
             (ce_sign, "the sign is flipped: the loss is MINUS"), (ce_every_row, "log_p[np.arange(N), y]")],
    "02.3": [(grad_not_divided, "times N = 3: divide by the batch size"), (grad_transposed, "transposed"),
             (grad_no_onehot, "forgot to subtract onehot(y)"),
             (grad_every_row, "EVERY row"), (grad_sign_flipped, "the sign is flipped: dZ = (softmax(z) - onehot(y))")],
    "03.1": [(relu_no_mask, "through everywhere"), (relu_ge, "at H == 0"), (relu_times_output, "you multiplied by H"),
             (relu_negated, "the sign is flipped: dH = dA * (H > 0) passes dA on unchanged")],
    "03.2": [(linear_dW_transposed, "dW is transposed"), (linear_db_not_summed, "sum dZ over the batch"),
             (linear_db_mean, "db is averaged"), (linear_dA_transposed_W, "(a, b) @ (b, c)"),
             (linear_negated, "the sign is flipped: dA = dZ @ W"), (linear_db_negated, "the sign is flipped: db = dZ.sum(axis=0)")],
    "03.3": [(sgd_no_carry, "momentum has no effect"), (sgd_dampened, "(1 - momentum)"), (sgd_uphill, "the sign is flipped: you moved uphill"),
             (sgd_velocity_minus_grad, "the sign is flipped: you moved uphill")],
    "04.1": [(size_no_plus_one, "off by one"), (size_padding_once, "both sides"), (size_no_stride, "forgot the stride"),
             (size_true_division, "use // (floor division)")],
    "04.2": [(params_no_bias, "forgot the biases"), (params_no_in_channels, "forgot in_channels")],
    "04.3": [(corr2d_flipped, "flipped the kernel"), (corr2d_short, "off by one"),
             (corr2d_every_position, "must have K's shape (h, w)"), (corr2d_zeros_like, "one entry per position of the window")],
    "04.4": [(pool_average, "you averaged"), (pool_stride_one, "windows overlap")],
    "05.1": [(permute_rows, "shuffled the images (rows)"), (permute_scatter, "inverse permutation")],
    "05.2": [(inverse_is_perm, "perm itself"), (inverse_twice, "perm twice")],
    "05.3": [(first_layer_inverse, "inverse permutation"), (first_layer_rows, "rows (W[perm])")],
    "06.1": [(dropout_no_scale, "scale them by 1 / (1 - p)"), (dropout_always, "evaluation mode"),
             (dropout_keep_p, "probability to DROP")],
    "06.2": [(bn_batch_stats_in_eval, "batch statistics in eval mode"), (bn_biased_running_var, "UNBIASED batch variance"),
             (bn_no_running_update, "did not update the running statistics"), (bn_momentum_reversed, "NEW batch statistic"),
             (bn_stats_not_reshaped, "reshape them to (1, C, 1, 1)"), (bn_running_keepdim, "running statistics have shape (C,)")],
    "06.3": [(adam_no_bias_correction, "forgot the bias correction"), (adam_eps_inside, "outside the square root"),
             (adam_only_m_corrected, "bias-corrected m but not v"),
             (adam_uphill, "the sign is flipped: subtract the step"), (adam_m_against_grad, "m follows it")],
    "07.1": [(rf_no_jump, "EARLIER strides"), (rf_jump_first, "own stride"), (rf_from_zero, "start from rf = 1")],
    "07.2": [(fmap_no_pool, "skipped the pooling"), (fmap_no_padding, "ignored the padding"),
             (fmap_in_channels, "out_channels of the last convolution")],
    "07.3": [(pairs_with_diagonal, "diagonal"), (pairs_one_direction, "both ways"), (pairs_ascending, "smallest first")],
    "12.1": [(com_swapped, "(column, row)"), (com_unweighted, "without weights")],
    "12.2": [(crop_off_by_one, "cut off"), (crop_any_ink, "not ink"), (crop_empty_crashes, "without ink")],
    "12.3": [(centre_sign_flipped, "sign is flipped"), (centre_swapped, "rows and columns are swapped")],
    "12.4": [(fit_stretched, "keep the aspect ratio"), (fit_truncated, "round to the nearest pixel"),
             (fit_swapped, "height first"), (fit_can_vanish, "at least 1")],
}


# Notebooks 08-11 keep their mutants beside their library's tests (tests/test_lesson_NN.py); the tests
# below run every exercise of the course, with the mutants that must fail it:
from test_lesson_08 import MUTANTS as _MUTANTS_08  # noqa: E402
from test_lesson_09 import MUTANTS as _MUTANTS_09  # noqa: E402
from test_lesson_10 import MUTANTS as _MUTANTS_10  # noqa: E402
from test_lesson_11 import MUTANTS as _MUTANTS_11  # noqa: E402

ALL_MUTANTS = {**MUTANTS, **_MUTANTS_08, **_MUTANTS_09, **_MUTANTS_10, **_MUTANTS_11}


# --------------------------------------------------------------------------------- the tests


def test_every_exercise_has_a_reference_a_hint_and_two_mutants():
    assert len(E.EXERCISES) >= 24
    for nb in ("01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"):
        assert len(E.exercises_of(nb)) >= 3, nb
    assert set(ALL_MUTANTS) == set(E.EXERCISES)
    for exercise_id, ex in E.EXERCISES.items():
        assert E.reference(exercise_id).__name__ == ex.function
        assert len(ex.hint) > 40, exercise_id
        assert len(ALL_MUTANTS[exercise_id]) >= 2, exercise_id


def test_each_exercise_is_registered_by_its_notebooks_module():
    """Exercise "NN.k" is checked in mnist_course.exercises.nbNN: a check put in another notebook's
    module fails here."""
    for exercise_id, ex in E.EXERCISES.items():
        module = f"mnist_course.exercises.nb{exercise_id.split('.')[0]}"
        assert ex.checker.__module__ == module, f"{exercise_id} is registered in {ex.checker.__module__}, not in {module}"


@pytest.mark.parametrize("exercise_id", list(E.EXERCISES))
def test_reference_passes(exercise_id):
    result = E.check(exercise_id, E.reference(exercise_id), quiet=True)
    assert result.status == "passed", result.message


@pytest.mark.parametrize(("exercise_id", "mutant", "words"),
                         [(i, m, w) for i, ms in ALL_MUTANTS.items() for m, w in ms],
                         ids=[f"{i}-{m.__name__}" for i, ms in ALL_MUTANTS.items() for m, _ in ms])
def test_mutant_fails_with_the_message_naming_its_mistake(exercise_id, mutant, words):
    result = E.check(exercise_id, mutant, quiet=True)
    assert result.status == "failed"
    assert words in result.message, result.message


@pytest.mark.parametrize("exercise_id", list(E.EXERCISES))
def test_a_stub_is_not_attempted_and_does_not_raise(exercise_id, capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError

    result = E.check(exercise_id, stub)
    assert result.status == "not attempted" and not result.passed
    assert "not attempted yet" in capsys.readouterr().out


def test_check_prints_one_line_and_returns_a_result(capsys):
    assert E.check("02.1", S.softmax).passed
    assert E.check("02.1", softmax_naive).status == "failed"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("✓ 02.1 softmax: passed")
    assert lines[1].startswith("✗ 02.1 softmax: logits of +-1000") and 'hint("02.1")' in lines[1].replace("'", '"')


def test_errors_wrong_shapes_and_misuse_get_clear_messages():
    def raises(z):
        raise ValueError("boom")

    assert "raised ValueError: boom" in E.check("02.1", raises, quiet=True).message
    assert "has shape (3,), expected (3, 3)" in E.check("02.1", lambda z: z.sum(axis=1), quiet=True).message
    assert "forget `return`" in E.check("02.1", lambda z: None, quiet=True).message
    assert "not the result of calling it" in E.check("02.1", S.softmax(np.zeros((2, 3))), quiet=True).message
    with pytest.raises(KeyError, match="no exercise '99.1'"):
        E.check("99.1", S.softmax)


def test_broadcasting_advice_only_where_broadcasting_is_the_likely_cause():
    """A shape error gets the advice of its exercise: keepdims for the row-wise reductions of
    notebook 02, windows for corr2d, (1, C, 1, 1) for BatchNorm, and elsewhere only 'print the shapes'."""
    def broadcast_error(*args, **kwargs):
        return np.ones((3, 4)) + np.ones(5)

    keepdims = "keepdims=True keeps (N, 1)"
    for exercise_id in ("02.1", "02.2", "02.3"):
        assert keepdims in E.check(exercise_id, broadcast_error, quiet=True).message, exercise_id
    for exercise_id in ("01.2", "03.1", "03.2", "04.3", "06.2", "12.3"):
        message = E.check(exercise_id, broadcast_error, quiet=True).message
        assert "could not be broadcast" in message and keepdims not in message, message
    assert "print the .shape of each array" in E.check("03.1", broadcast_error, quiet=True).message
    assert "must have K's shape (h, w)" in E.check("04.3", broadcast_error, quiet=True).message
    assert "reshape them to (1, C, 1, 1)" in E.check("06.2", broadcast_error, quiet=True).message
    for exercise_id, mutant in (("04.3", corr2d_every_position), ("06.2", bn_stats_not_reshaped)):
        assert keepdims not in E.check(exercise_id, mutant, quiet=True).message


def test_a_flipped_sign_is_named_even_without_the_exercises_words():
    def standardize_flipped(X, X_train):
        return -S.standardize(X, X_train)

    message = E.check("01.2", standardize_flipped, quiet=True).message
    assert "the sign is flipped: your result is exactly minus the right answer" in message, message


def test_hint_and_solution_print(capsys):
    E.hint("02.1")
    E.solution("02.1")
    out = capsys.readouterr().out
    assert "keepdims" in out and "def softmax(z):" in out and "z.max(axis=1, keepdims=True)" in out


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))


def test_status_reads_saved_notebooks(tmp_path, capsys):
    _notebook(tmp_path / "02_softmax.ipynb", [
        "import numpy as xp\nfrom mnist_course.exercises import check",
        "%matplotlib inline\nraise RuntimeError('training: --status must not run this')",
        # passes, and uses the notebook's own import name
        "def softmax(z):\n    e = xp.exp(z - z.max(axis=1, keepdims=True))\n    return e / e.sum(axis=1, keepdims=True)\n\n"
        "check('02.1', softmax)",
        # two classic mistakes at once (a sum, and the log of a softmax): the first is named
        "def cross_entropy(z, y):\n    return -xp.log(softmax(z)[xp.arange(len(y)), y]).sum()\n\ncheck('02.2', cross_entropy)",
        # a helper next to the exercise, and a stub
        "def helper():\n    return 1\n\ndef cross_entropy_grad(z, y):\n    raise NotImplementedError\n\n"
        "check('02.3', cross_entropy_grad)",
    ])
    _notebook(tmp_path / "03_mlp.ipynb", ["check('03.1', relu_backward)"])
    assert E.check_calls(tmp_path / "02_softmax.ipynb") == [
        ("02.1", "softmax"), ("02.2", "cross_entropy"), ("02.3", "cross_entropy_grad")]
    assert status.main(["--status", str(tmp_path)]) == 1  # not every exercise passes
    out = capsys.readouterr().out
    assert "✓ 02.1 softmax: passed" in out
    assert "✗ 02.2 cross_entropy: random 3x3 logits: your loss is 3 (= N) times the right one" in out
    assert "○ 02.3 cross_entropy_grad: not attempted yet" in out
    assert "✗ 03.1 relu_backward: could not run it: no top-level `def relu_backward`" in out
    # 03_mlp.ipynb lacks the cells of 03.2 and 03.3: they count, as the instructor's gradebook counts them
    assert "○ 03.2 linear_backward: no check('03.2', ...) in 03_mlp.ipynb: its cell was deleted" in out
    assert "1 of 6 exercises pass, 2 fail, 3 not attempted yet." in out
    assert status.main(["--status", str(tmp_path / "missing")]) == 2


def test_reference_solutions_agree_with_the_library():
    """The references teach what the library does: same numbers as numpy_nets, permute and drawing."""
    from mnist_course import drawing, numpy_nets, permute

    z, y = np.random.default_rng(0).normal(size=(5, 10)), np.array([1, 2, 3, 4, 5])
    assert np.allclose(S.softmax(z), numpy_nets.softmax(z))
    assert np.isclose(S.cross_entropy(z, y), numpy_nets.cross_entropy(z, y))
    assert np.allclose(S.cross_entropy_grad(z, y), numpy_nets.cross_entropy_grad(z, y))
    perm = permute.random_permutation(28, seed=0)
    X = torch.randn(3, 784)
    assert torch.equal(S.permute_pixels(X, perm), permute.permute_pixels(X, perm))
    assert torch.equal(S.inverse_permutation(perm), permute.inverse_permutation(perm))
    img = np.zeros((28, 28), np.float32)
    img[3:9, 15:19] = 1.0
    assert np.allclose(S.centre_of_mass(img), drawing.centre_of_mass(img))
    assert np.array_equal(S.crop_to_ink(img), drawing.crop_to_ink(img))
