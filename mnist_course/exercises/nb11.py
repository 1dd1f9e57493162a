"""The checks of notebook 11, trusting the confidence (notebooks/11_trusting_the_confidence.ipynb): the
reliability diagram's bins (11.1), the expected calibration error (11.2), fitting a temperature
(11.3), the "not sure" threshold for a target accuracy (11.4), cosine nearest neighbours (11.5) and
PCA from the covariance matrix (11.6).

Named after the notebook's number, as the exercise ids are ("11.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`. The referees are :mod:`mnist_course.calibration` and :mod:`mnist_course.embeddings`
(whose tests compare them with PyTorch and scikit-learn), and for 11.3 a golden-section search of
the NLL over log T.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import calibration, embeddings
from .core import Mistake, as_array, call, exercise, expect, seeded_rng

# ------------------------------------------------------------------------------------ 11.1


def _bins_with(conf, right, n_bins, index):
    """(count, mean confidence, accuracy) for the bin numbers `index` (any rule), nan for empty bins."""
    count = np.bincount(index, minlength=n_bins)[:n_bins]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(index, weights=conf, minlength=n_bins)[:n_bins] / count
        acc = np.bincount(index, weights=right.astype(float), minlength=n_bins)[:n_bins] / count
    return count, mean, acc


_EDGE = ("a confidence exactly on an edge belongs to the bin BELOW it: the bins are (m/M, (m+1)/M], closed on "
         "the right as in Guo et al. 2017 (0.5 with 10 bins is in bin 4, 1.0 in the last bin).")
_ONE = "the answers with confidence 1.0 are missing: 1.0 belongs to the last bin, (1 - 1/M, 1]."
_EXTRA = ("1.0 made a bin of its own (n_bins + 1 bins): the last bin is closed on the right and holds 1.0; "
          "a floor(confidence * M) bin number needs clipping to M - 1, or count edges from the right.")


def _bin_cases():
    rng = seeded_rng(11)
    conf = rng.uniform(0.1, 1.0, 1000)
    conf[:5], conf[5:8] = 1.0, 0.5
    cases = {"1,000 answers with confidences 1.0 and 0.5 among them, 10 bins": (conf, rng.random(1000) < conf, 10)}
    few = np.array([0.93, 0.95, 0.97, 0.99, 0.55, 0.52, 0.15])
    cases["7 answers in 3 of 10 bins (the other bins empty)"] = (few, np.array([1, 1, 0, 1, 1, 0, 0], bool), 10)
    edges = np.r_[[0.25, 0.5, 0.75, 1.0] * 3, rng.uniform(0.3, 1.0, 20)]
    cases["4 bins, confidences 0.25, 0.5, 0.75 and 1.0 on the edges"] = (edges, rng.random(len(edges)) < 0.7, 4)
    return cases


@exercise("11.1", "reliability_bins", "the reliability diagram's bins", hint="""
    Cut [0, 1] into n_bins bins of equal width and put each answer in the bin of its confidence; for
    each bin, count its answers, average their confidences and measure the share that are right. The
    bins are closed on the right, as in Guo et al.: a confidence exactly on an edge belongs to the bin
    below, and 1.0 to the last bin (the usual slip: a floor-based bin number sends 1.0 past the end).
    An empty bin has no average: 0 / 0, nan.""",
          formula="""
    With M = n_bins, bin m (m = 0 .. M - 1) holds the answers with m/M < confidence <= (m+1)/M (and 0.0
    in bin 0). count[m] = |B_m|, mean_confidence[m] = (1/|B_m|) sum of the confidences in B_m,
    accuracy[m] = (1/|B_m|) number of right answers in B_m; a bin number is ceil(M * confidence) - 1
    clipped to [0, M - 1], or the number of inner edges m/M strictly below the confidence
    (np.searchsorted on the inner edges, side "left"). np.bincount with weights= and minlength= sums
    per bin.""")
def _check_bins(fn):
    for case, (conf, right, n_bins) in _bin_cases().items():
        want = calibration.reliability_bins(conf, right, n_bins)
        got = call(fn, conf.copy(), right.copy(), n_bins=n_bins, case=case)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise Mistake(f"{case}: return three arrays, (count, mean_confidence, accuracy); got {type(got).__name__}.")
        count, mean, acc = (as_array(g, what, case) for g, what in zip(got, ("count", "mean_confidence", "accuracy")))
        if count.shape == (n_bins + 1,):
            raise Mistake(f"{case}: {_EXTRA}")
        floor = np.clip(np.floor(conf * n_bins).astype(int), 0, n_bins - 1)
        left = _bins_with(conf, right, n_bins, floor)
        dropped = _bins_with(conf[conf < 1], right[conf < 1], n_bins, floor[conf < 1])
        expect(count, want["count"], case, "your count", [(left[0], _EDGE), (dropped[0], _ONE)], atol=0, rtol=0)
        centres = (np.arange(n_bins) + 0.5) / n_bins
        with np.errstate(invalid="ignore"):
            centres = np.where(want["count"] > 0, centres, np.nan)
        empty_zero = "an empty bin has no mean: return nan there (0 / 0), not 0 (a 0 would draw a bar of accuracy 0)."
        expect(mean, want["confidence"], case, "your mean_confidence", [
            (left[1], _EDGE), (dropped[1], _ONE), (np.nan_to_num(want["confidence"]), empty_zero),
            (centres, "mean_confidence is the average of the bin's confidences, not the centre of the bin.")],
               atol=1e-9, rtol=1e-9)
        right_counts = np.bincount(calibration.bin_index(conf, n_bins), weights=right.astype(float), minlength=n_bins)
        share = "accuracy is the SHARE of right answers in the bin: divide by its count."
        expect(acc, want["accuracy"], case, "your accuracy", [
            (left[2], _EDGE), (dropped[2], _ONE), (np.nan_to_num(want["accuracy"]), empty_zero),
            (right_counts, share), (want["accuracy"] * want["count"], share)],
               atol=1e-9, rtol=1e-9)
    return "edges, 1.0, empty bins; mnist_course.calibration.reliability_bins agrees"


# ------------------------------------------------------------------------------------ 11.2


def _ece_cases():
    rng = seeded_rng(12)
    conf = np.r_[np.ones(60), rng.uniform(0.94, 0.999, 140), rng.uniform(0.8, 0.93, 400), rng.uniform(0.5, 0.7, 300),
                 rng.uniform(0.2, 0.3, 100)]
    right = np.r_[rng.random(60) < 0.8, np.ones(140, bool), rng.random(400) < 0.6, rng.random(300) < 0.85,
                  rng.random(100) < 0.1]
    cases = {"1,000 answers, 60 at exactly 1.0 (a saturated float32 softmax), some bins overconfident, some "
             "underconfident": (conf, right, 15)}
    calibrated = rng.uniform(0.1, 1.0, 5000)
    cases["5,000 answers right with probability equal to their confidence, 10 bins"] = (
        calibrated, rng.random(5000) < calibrated, 10)
    return cases


@exercise("11.2", "expected_calibration_error", "the expected calibration error (ECE)", hint="""
    The ECE is the reliability diagram in one number: in each bin, the gap between the accuracy and
    the mean confidence, without its sign, and the gaps averaged with each bin weighted by its share of
    the answers (a bin of 3 answers matters less than one of 3,000). Empty bins count for nothing. The
    usual mistakes: an unweighted mean over the bins, a signed gap (over- and underconfident bins
    cancel), one bin for everything, the largest gap (that is the MCE), and 1.0 falling past the last bin.""",
          formula="""
    ECE = sum over the non-empty bins m of (|B_m| / N) |acc(B_m) - conf(B_m)|, with N the number of
    answers and the bins of exercise 11.1 (equal width, closed on the right, 1.0 in the last). You may
    call your reliability_bins from 11.1 and keep the bins whose count is above 0.""")
def _check_ece(fn):
    for case, (conf, right, n_bins) in _ece_cases().items():
        want = calibration.expected_calibration_error(conf, right, n_bins)
        got = call(fn, conf.copy(), right.copy(), n_bins=n_bins, case=case,
                   errors={IndexError: "a confidence of 1.0 went past the last bin: 1.0 belongs to bin M - 1 "
                                       "(the bins are closed on the right)."})
        bins = calibration.reliability_bins(conf, right, n_bins)
        used = bins["count"] > 0
        gap = bins["accuracy"][used] - bins["confidence"][used]
        weight = bins["count"][used] / len(conf)
        floor = np.floor(conf * n_bins).astype(int)  # 1.0 -> a bin of its own
        own = _bins_with(conf, right, n_bins + 1, floor)
        own_used = own[0] > 0
        expect(got, want, case, "your ECE", [
            (np.mean(np.abs(gap)), "the bins must be weighted by their share of the answers (count / N), not averaged "
                                   "equally: a bin with 3 answers counts less than one with 3,000."),
            (abs(np.sum(weight * gap)), "take each bin's gap without its sign, |accuracy - confidence|: signed gaps of "
                                        "overconfident and underconfident bins cancel (the weighted sum of signed gaps is "
                                        "|overall accuracy - mean confidence|, one bin for everything)."),
            (np.sum(weight * gap), "take each bin's gap without its sign, |accuracy - confidence|."),
            (np.max(np.abs(gap)), "that is the largest gap (the maximum calibration error, MCE); the ECE is the "
                                  "weighted average of the gaps."),
            (np.sum(bins["count"][used] * np.abs(gap)), "divide each bin's weight by the number of answers N."),
            (np.sum(np.abs(gap)) / n_bins,
             "the bins must be weighted by their share of the answers (count / N), not divided by the number of bins."),
            (np.sum(own[0][own_used] / len(conf) * np.abs(own[2][own_used] - own[1][own_used])),
             "1.0 made a bin of its own: it belongs to the last bin, (1 - 1/M, 1] (clip the bin number to M - 1)."),
        ], atol=1e-9, rtol=1e-7)
    return "over- and underconfident bins, confidences of exactly 1.0, a calibrated model; mnist_course.calibration agrees"


# ------------------------------------------------------------------------------------ 11.3


def _temperature_case(scale: float, n: int = 2000, classes: int = 10, seed: int = 13):
    """Logits whose labels are drawn from softmax(z): the model's logits z * scale want T close to scale."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, classes, generator=g, dtype=torch.float64) * 3.0
    y = torch.multinomial(torch.softmax(z, dim=1), 1, generator=g)[:, 0]
    return (z * scale).float(), y


def _argmin_log(f, lo: float = -7.0, hi: float = 7.0, iterations: int = 50) -> float:
    """exp of the minimiser of f(log T) over [lo, hi]: a grid, then a golden-section search."""
    grid = np.linspace(lo, hi, 141)
    best = int(np.argmin([f(g) for g in grid]))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(iterations):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if f(c) < f(d):
            b = d
        else:
            a = c
    return math.exp((a + b) / 2)


def _nll(logits, y, t: float) -> float:
    return float(F.cross_entropy(logits.double() / t, y))


@exercise("11.3", "fit_temperature", "fitting a temperature", hint="""
    Temperature scaling divides the logits by one number T > 0 before the softmax, and T is chosen to
    make the validation data most likely: minimise the mean negative log-likelihood (the cross-entropy)
    over T, with PyTorch's autograd and an optimiser (L-BFGS or Adam), or a 1-D search. Keep T positive
    by optimising log T. The usual mistakes: dividing the probabilities instead of the logits, letting T
    cross zero, minimising the error rate (which no T > 0 changes), and returning 1 / T.""",
          formula="""
    NLL(T) = -(1/N) sum_i log softmax(z_i / T)[y_i], which is F.cross_entropy of the logits divided by
    T. Write T = exp(s) with s a tensor that requires grad, starting at s = 0 (T = 1); let
    torch.optim.LBFGS (line_search_fn "strong_wolfe", with a closure that zeroes the gradient, computes
    the loss, calls backward and returns it) or a few hundred Adam steps minimise it in float64; return
    exp(s) as a Python float.""")
def _check_temperature(fn):
    cases = {"an overconfident model (logits 2.5 times too large)": 2.5,
             "an underconfident model (logits 10 times too small)": 0.1,
             "a calibrated model": 1.0}
    answers = {}
    for case, scale in cases.items():
        logits, y = _temperature_case(scale)
        got = call(fn, logits, y, case=case)
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                raise Mistake(f"{case}: return T as one number, got a tensor of shape {tuple(got.shape)}.")
            got = got.item()
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, float, np.integer, np.floating)):
            raise Mistake(f"{case}: return T as a float, got {type(got).__name__}.")
        answers[case] = (float(got), logits, y)
    for case, (got, _, _) in answers.items():
        if not math.isfinite(got) or got <= 0:
            raise Mistake(f"{case}: T = {got:.4g}; T must stay positive (dividing by a negative T flips every "
                          "ranking, and T = 0 divides by zero): optimise s = log T and use T = exp(s).")
    same = len({round(got, 9) for got, _, _ in answers.values()}) == 1
    for case, (got, logits, y) in answers.items():
        best = _argmin_log(lambda s, lg=logits, y=y: _nll(lg, y, math.exp(s)))
        if abs(got / best - 1) <= 0.01:
            continue
        if same:
            raise Mistake(f"{case}: T = {got:.4g} for every model, though the NLL is lowest at T = {best:.3f} here: the "
                          "error rate (or accuracy) does not change when the logits are divided by any T > 0, so it "
                          "cannot choose T; minimise the NLL, F.cross_entropy(logits / T, y).")
        if abs(got * best - 1) <= 0.01:
            raise Mistake(f"{case}: you returned 1/T ({got:.4f} = 1 / {1 / got:.4f}); the calibrated logits are logits / T, "
                          f"with T = {best:.4f}: if you fitted a factor that multiplies the logits, return its inverse.")
        probs = torch.softmax(logits.double(), dim=1)
        on_probs = _argmin_log(lambda s, p=probs, y=y: float(F.cross_entropy(p / math.exp(s), y)))
        if abs(got / on_probs - 1) <= 0.02:
            raise Mistake(f"{case}: T = {got:.4f} fits softmax(probabilities / T): you divided the probabilities. "
                          "Temperature scaling divides the LOGITS, before the softmax: F.cross_entropy(logits / T, y).")
        raise Mistake(f"{case}: T = {got:.4f}, but the NLL is lowest at T = {best:.4f} (NLL {_nll(logits, y, got):.5f} "
                      f"against {_nll(logits, y, best):.5f}): the search stopped too early or too coarsely "
                      "(more iterations, a finer grid, or L-BFGS).")
    return "over- and underconfident and calibrated logits; T within 1% of the NLL's minimum (golden-section search)"


# ------------------------------------------------------------------------------------ 11.4


def _threshold_variants(conf, right, target):
    """The answers of the usual mistakes: {message: threshold}."""
    values = np.unique(conf)

    def lowest(ok):
        hits = [t for t in values if ok(t)]
        return hits[0] if hits else None

    def highest(ok):
        hits = [t for t in values if ok(t)]
        return hits[-1] if hits else None

    n = len(conf)
    return {
        "strict": lowest(lambda t: (conf > t).any() and right[conf > t].mean() >= target),
        "highest": highest(lambda t: right[conf >= t].mean() >= target),
        "below": lowest(lambda t: (conf < t).any() and right[conf < t].mean() >= target),
        "confident_wrong": lowest(lambda t: (~right & (conf >= t)).sum() / n <= 1 - target),
    }


_THRESHOLD_WORDS = {
    "strict": "the answers AT the threshold count as sure (the pad says 'not sure' only below it): keep confidence >= t, not > t.",
    "highest": "that is the HIGHEST threshold that reaches the target; the lowest one keeps the most answers.",
    "below": "measure the accuracy of the answers AT OR ABOVE t (those the pad gives), not of those below it.",
    "confident_wrong": "that is notebook 12's rule (confident and wrong answers as a share of ALL answers); here the "
                       "target is the accuracy among the answers at or above t.",
}


def _threshold_cases():
    rng = seeded_rng(14)
    conf = np.round(rng.beta(8, 1.2, 800), 2)
    right = rng.random(800) < conf ** 3
    return {
        "800 answers with confidences rounded to 0.01 (many ties), target 0.95": (conf, right, 0.95),
        "6 answers, ties at the threshold, target 0.8": (np.array([0.9, 0.7, 0.8, 0.9, 0.8, 0.9]),
                                                        np.array([1, 0, 1, 1, 0, 1], bool), 0.8),
        "the same 800 answers, target 0.9": (conf, right, 0.9),
    }


@exercise("11.4", "threshold_for_accuracy", "the 'not sure' threshold for a target accuracy", hint="""
    The pad answers when the confidence is at least a threshold t and says "not sure" below it. Among
    the given confidences, find the lowest t for which the answers at or above t are right at least
    `target` of the time: the lowest keeps the most answers. Every answer tied at t counts. When even
    the most confident answers miss the target, no threshold works: raise ValueError. The usual
    mistakes: > instead of >=, the highest threshold, the accuracy below t, a share of ALL answers.""",
          formula="""
    For each candidate t in the sorted distinct confidences (np.unique, ascending): answered = the
    answers with confidence >= t; accuracy(t) = (right answers among them) / (number of them). The
    answer is the first (smallest) t with accuracy(t) >= target; if there is none, raise
    ValueError("...").""")
def _check_threshold(fn):
    for case, (conf, right, target) in _threshold_cases().items():
        want = calibration.threshold_for_accuracy(conf, right, target)
        got = call(fn, conf.copy(), right.copy(), target, case=case, errors={ValueError: (
            f"Yet t = {want:.2f} reaches the target: compare it with the accuracy AMONG the answers AT OR ABOVE t "
            "(the right ones divided by their number), not with a share of all answers or of those below t.")})
        if got is None:
            raise Mistake(f"{case}: your threshold is None: did you forget `return`?")
        got = float(as_array(got, "your threshold", case))
        if abs(got - want) <= 1e-12:
            continue
        for name, value in _threshold_variants(conf, right, target).items():
            if value is not None and abs(value - want) > 1e-12 and abs(got - value) <= 1e-12:
                raise Mistake(f"{case}: {got:.2f}, expected {want:.2f}: {_THRESHOLD_WORDS[name]}")
        raise Mistake(f"{case}: {got:.4f}, expected {want:.4f}, the lowest confidence at which the answers at or "
                      "above it reach the target accuracy.")
    case = "the most confident answer is wrong and the target is 0.99: no threshold reaches it"
    conf, right = np.array([0.99, 0.95, 0.9, 0.8]), np.array([0, 1, 1, 1], bool)
    try:
        got = fn(conf.copy(), right.copy(), 0.99)
    except ValueError:
        return "ties, a target out of reach (ValueError); mnist_course.calibration.threshold_for_accuracy agrees"
    except NotImplementedError:
        raise
    except Exception as e:
        raise Mistake(f"{case}: raise ValueError, not {type(e).__name__} ({e}).") from None
    raise Mistake(f"{case}: you returned {got!r}; no threshold works here, so raise ValueError saying so (a "
                  "threshold that does not reach the target would let the pad answer wrongly).")


# ------------------------------------------------------------------------------------ 11.5


def _neighbour_cases():
    rng = seeded_rng(15)
    bank = rng.normal(size=(60, 8)) * rng.uniform(0.1, 10.0, (60, 1))  # lengths from 0.1 to 10
    query = rng.normal(size=(4, 8)) * rng.uniform(0.5, 5.0, (4, 1))
    return {"4 queries, a bank of 60 vectors of very different lengths, k=5": (query, bank, 5),
            "one query, k=1": (query[:1], bank, 1),
            "2 queries, k = the whole bank (the full order)": (query[2:], bank, 60)}


@exercise("11.5", "nearest_neighbours", "cosine nearest neighbours", hint="""
    Cosine similarity compares directions, not lengths: the cosine of the angle between two vectors is
    their dot product divided by both lengths. Compute it between every query row and every bank row,
    and keep the k bank rows with the largest similarity, most similar first. The usual mistakes: a
    plain dot product (long vectors win), Euclidean distance on vectors of different lengths,
    normalising the columns instead of the rows, the farthest instead of the nearest, an unsorted top k.""",
          formula="""
    cos(q, b) = (q . b) / (||q|| ||b||). Divide each row of query and of bank by its own length
    (np.linalg.norm with axis=1 and keepdims=True), then similarity = query_n @ bank_n.T, shape (Q, N);
    for each row, the indices of the k largest values in decreasing order (np.argsort of minus the
    similarity, first k columns).""")
def _check_neighbours(fn):
    for case, (query, bank, k) in _neighbour_cases().items():
        want = embeddings.nearest_neighbours(query, bank, k)[0].numpy()
        got = as_array(call(fn, query.copy(), bank.copy(), k, case=case), "your indices", case)
        dot = np.argsort(-(query @ bank.T), axis=1, kind="stable")[:, :k]
        l2 = np.argsort(((query[:, None] - bank[None]) ** 2).sum(-1), axis=1, kind="stable")[:, :k]
        columns = bank / np.linalg.norm(bank, axis=0, keepdims=True)
        by_columns = np.argsort(-(query @ columns.T), axis=1, kind="stable")[:, :k]
        cos = (query / np.linalg.norm(query, axis=1, keepdims=True)) @ (bank / np.linalg.norm(bank, axis=1, keepdims=True)).T
        farthest = np.argsort(cos, axis=1, kind="stable")[:, :k]
        expect(got, want, case, "your indices", [
            (dot, "a plain dot product favours long vectors: divide each row of bank (and query) by its length first."),
            (l2, "Euclidean distance on vectors of different lengths is not cosine similarity: normalise the rows "
                 "first (then both give the same order)."),
            (by_columns, "normalise each ROW (one vector each), axis=1, not each column."),
            (farthest, "those are the LEAST similar: sort by decreasing similarity (the nearest have the largest cosine)."),
            (want[:, ::-1], "the right neighbours, but in the wrong order: the most similar first."),
        ], atol=0, rtol=0, shape="return one row of k indices per query row: shape (Q, k).")
    return "vectors of very different lengths, k = 1 and the whole bank; mnist_course.embeddings.nearest_neighbours agrees"


# ------------------------------------------------------------------------------------ 11.6


def _align(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """got with each column's sign flipped to match want's (a principal component's sign is free)."""
    if got.shape != want.shape:
        return got
    signs = np.sign(np.sum(got * want, axis=0))
    signs[signs == 0] = 1
    return got * signs


@exercise("11.6", "pca_project", "PCA from the covariance matrix", hint="""
    The principal components are the directions in which the data vary most: the eigenvectors of the
    covariance matrix of the CENTRED data, ordered by their eigenvalue (the variance along each), the
    largest first. Project the centred data on the first k. NumPy's eigh returns the eigenvalues in
    ascending order, and the eigenvectors as COLUMNS. The usual mistakes: not centring, keeping the
    smallest components, taking rows of the eigenvector matrix, the components in ascending order.""",
          formula="""
    Xc = X - mean over the rows; covariance C = Xc.T Xc / (N - 1), shape (D, D); np.linalg.eigh(C)
    gives (values, vectors) with C vectors[:, j] = values[j] vectors[:, j], values ascending. Take the
    columns of the k largest values, largest first, as a (D, k) matrix W; the answer is Xc @ W, shape
    (N, k). A component's sign is free: the check accepts either.""")
def _check_pca(fn):
    rng = seeded_rng(16)
    latent = rng.normal(size=(300, 4)) * np.array([5.0, 3.0, 1.5, 0.5])
    mixing = np.linalg.qr(rng.normal(size=(6, 6)))[0][:4]
    X = latent @ mixing + np.array([10.0, -4.0, 2.0, 0.0, 7.0, 3.0]) + 0.05 * rng.normal(size=(300, 6))
    for case, (data, k) in {"300 points in 6-D, variances 25, 9, 2.25, 0.25, a mean far from 0, k=2": (X, 2),
                            "the same points, k=3": (X, 3)}.items():
        want = embeddings.pca(data, k)[0]
        got = as_array(call(fn, data.copy(), k, case=case), "your projection", case)
        centred = data - data.mean(axis=0)
        _, vectors = np.linalg.eigh(centred.T @ centred / (len(data) - 1))
        _, raw_vectors = np.linalg.eigh(data.T @ data / (len(data) - 1))
        std = data.std(axis=0, ddof=1)
        _, corr_vectors = np.linalg.eigh(np.corrcoef(data, rowvar=False))
        mistakes = [
            (data @ raw_vectors[:, ::-1][:, :k], "centre the data first (subtract each column's mean): otherwise the "
                                                 "first component points at the mean, not along the spread."),
            (centred @ vectors[:, :k], "eigh returns the eigenvalues in ASCENDING order: those are the smallest "
                                       "components; take the last k columns, largest first."),
            (centred @ vectors[:, -k:], "the right components in ascending order: put the largest first."),
            (centred @ vectors[::-1][:k].T, "eigenvectors are the COLUMNS of eigh's matrix, not its rows."),
            (centred @ vectors[-k:].T, "eigenvectors are the COLUMNS of eigh's matrix, not its rows."),
            ((centred / std) @ corr_vectors[:, ::-1][:, :k], "you standardised the columns (a PCA of the correlation "
                                                             "matrix); centre them only."),
        ]
        expect(_align(got, want), want, case, "your projection", [(_align(m, want), w) for m, w in mistakes],
               atol=1e-6, rtol=1e-6, shape="return (N, k): one row per point, one column per component.")
    return "a 6-D cloud with a mean far from 0, k = 2 and 3; mnist_course.embeddings.pca agrees up to each component's sign"
