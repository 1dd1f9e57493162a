"""Notebook 11, trusting the confidence: its exercises' planted mistakes (MUTANTS:
tests/test_exercises.py runs them with every other exercise's) and its library, mnist_course.calibration and
mnist_course.embeddings, checked against PyTorch, scikit-learn and brute force."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_course import calibration, drawing, embeddings
from mnist_course import exercises as E
from mnist_course.exercises import solutions as S

# ------------------------------------------------------------------------------- the mutants
# One function per usual mistake, with the signature of the exercise's stub.


def _floor_bins(confidence, n_bins):
    return np.floor(np.asarray(confidence) * n_bins).astype(int)


def bins_left_closed(confidence, correct, n_bins=10):
    b = np.clip(_floor_bins(confidence, n_bins), 0, n_bins - 1)     # [m/M, (m+1)/M): 0.5 goes up
    count = np.bincount(b, minlength=n_bins)
    return (count, np.bincount(b, weights=confidence, minlength=n_bins) / count,
            np.bincount(b, weights=np.asarray(correct, float), minlength=n_bins) / count)


def bins_extra_bin(confidence, correct, n_bins=10):
    b = _floor_bins(confidence, n_bins)                              # 1.0 -> bin n_bins
    count = np.bincount(b, minlength=n_bins)
    return (count, np.bincount(b, weights=confidence, minlength=n_bins) / count,
            np.bincount(b, weights=np.asarray(correct, float), minlength=n_bins) / count)


def bins_drop_one(confidence, correct, n_bins=10):
    confidence, correct = np.asarray(confidence), np.asarray(correct, float)
    b = _floor_bins(confidence, n_bins)
    keep = b < n_bins                                                # 1.0 silently dropped
    count = np.bincount(b[keep], minlength=n_bins)
    return (count, np.bincount(b[keep], weights=confidence[keep], minlength=n_bins) / count,
            np.bincount(b[keep], weights=correct[keep], minlength=n_bins) / count)


def bins_empty_zero(confidence, correct, n_bins=10):
    count, mean, acc = S.reliability_bins(confidence, correct, n_bins)
    return count, np.nan_to_num(mean), np.nan_to_num(acc)


def bins_centres(confidence, correct, n_bins=10):
    count, _, acc = S.reliability_bins(confidence, correct, n_bins)
    return count, np.where(count > 0, (np.arange(n_bins) + 0.5) / n_bins, np.nan), acc


def bins_count_right(confidence, correct, n_bins=10):
    count, mean, acc = S.reliability_bins(confidence, correct, n_bins)
    return count, mean, acc * count


def _gaps(confidence, correct, n_bins):
    count, mean, acc = S.reliability_bins(confidence, correct, n_bins)
    used = count > 0
    return count[used], acc[used] - mean[used]


def ece_unweighted(confidence, correct, n_bins=15):
    _, gap = _gaps(confidence, correct, n_bins)
    return float(np.mean(np.abs(gap)))


def ece_signed(confidence, correct, n_bins=15):
    count, gap = _gaps(confidence, correct, n_bins)
    return float(abs(np.sum(count / count.sum() * gap)))


def ece_max(confidence, correct, n_bins=15):
    _, gap = _gaps(confidence, correct, n_bins)
    return float(np.max(np.abs(gap)))


def ece_one_bin(confidence, correct, n_bins=15):
    return float(abs(np.mean(correct) - np.mean(confidence)))


def ece_not_divided(confidence, correct, n_bins=15):
    count, gap = _gaps(confidence, correct, n_bins)
    return float(np.sum(count * np.abs(gap)))


def ece_floor_bins(confidence, correct, n_bins=15):
    confidence, correct = np.asarray(confidence), np.asarray(correct, float)
    total = 0.0
    for m in range(n_bins + 1):                                      # [m/M, (m+1)/M): 1.0 alone in bin M
        inside = (confidence >= m / n_bins) & (confidence < (m + 1) / n_bins)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def ece_index_error(confidence, correct, n_bins=15):
    b = (np.asarray(confidence) * n_bins).astype(int)
    sums = np.zeros(n_bins)
    for i in b:
        sums[i] += 1                                                 # IndexError on 1.0
    return 0.0


def temp_on_probabilities(logits, y):
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(probs / log_t.exp(), y)               # probabilities, not logits
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def temp_raw(logits, y):
    logits = torch.as_tensor(logits, dtype=torch.float64)
    T = torch.ones(1, dtype=torch.float64, requires_grad=True)      # T itself, free to cross 0
    opt = torch.optim.LBFGS([T], lr=1.0, max_iter=100)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / T, y)
        loss.backward()
        return loss

    opt.step(closure)
    return T.detach().item()


def temp_error_rate(logits, y):
    logits = torch.as_tensor(logits, dtype=torch.float64)
    grid = np.linspace(0.05, 5.0, 100)
    errors = [float(((logits / t).argmax(1) != y).double().mean()) for t in grid]
    return float(grid[int(np.argmin(errors))])                       # every T gives the same error


def temp_inverse(logits, y):
    logits = torch.as_tensor(logits, dtype=torch.float64)
    log_a = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # a factor that multiplies the logits
    opt = torch.optim.LBFGS([log_a], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits * log_a.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_a.detach().exp())                              # a = 1 / T


def temp_too_few_steps(logits, y):
    logits = torch.as_tensor(logits, dtype=torch.float64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([log_t], lr=0.01)
    for _ in range(30):
        opt.zero_grad()
        F.cross_entropy(logits / log_t.exp(), y).backward()
        opt.step()
    return float(log_t.detach().exp())


def _accuracy_at_or_above(confidence, correct, t, strict=False):
    confidence, correct = np.asarray(confidence), np.asarray(correct, bool)
    chosen = confidence > t if strict else confidence >= t
    return correct[chosen].mean() if chosen.any() else -1.0


def threshold_strict(confidence, correct, target):
    for t in np.unique(confidence):
        if _accuracy_at_or_above(confidence, correct, t, strict=True) >= target:
            return float(t)
    raise ValueError("none")


def threshold_highest(confidence, correct, target):
    for t in np.unique(confidence)[::-1]:
        if _accuracy_at_or_above(confidence, correct, t) >= target:
            return float(t)
    raise ValueError("none")


def threshold_below(confidence, correct, target):
    confidence, correct = np.asarray(confidence), np.asarray(correct, bool)
    for t in np.unique(confidence):
        below = confidence < t
        if below.any() and correct[below].mean() >= target:
            return float(t)
    raise ValueError("none")


def threshold_share_of_all(confidence, correct, target):
    confidence, correct = np.asarray(confidence), np.asarray(correct, bool)
    for t in np.unique(confidence):
        if (correct & (confidence >= t)).mean() >= target:
            return float(t)
    raise ValueError("none")


def threshold_confident_wrong(confidence, correct, target):
    confidence, correct = np.asarray(confidence), np.asarray(correct, bool)
    for t in np.unique(confidence):
        if (~correct & (confidence >= t)).mean() <= 1 - target:
            return float(t)
    raise ValueError("none")


def threshold_never_raises(confidence, correct, target):
    for t in np.unique(confidence):
        if _accuracy_at_or_above(confidence, correct, t) >= target:
            return float(t)
    return 1.0                                                       # silently "sure" of nothing


def nn_dot(query, bank, k):
    return np.argsort(-(np.asarray(query) @ np.asarray(bank).T), axis=1)[:, :k]


def nn_l2_raw(query, bank, k):
    d = ((np.asarray(query)[:, None] - np.asarray(bank)[None]) ** 2).sum(-1)
    return np.argsort(d, axis=1)[:, :k]


def nn_columns(query, bank, k):
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    bank = bank / np.linalg.norm(bank, axis=0, keepdims=True)       # columns
    return np.argsort(-(query @ bank.T), axis=1)[:, :k]


def nn_farthest(query, bank, k):
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    return np.argsort(query @ bank.T, axis=1)[:, :k]


def nn_ascending(query, bank, k):
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    return np.argsort(query @ bank.T, axis=1)[:, -k:]               # the right k, least similar first


def _eigh(X):
    centred = X - X.mean(axis=0)
    return centred, np.linalg.eigh(centred.T @ centred / (len(X) - 1))[1]


def pca_not_centred(X, k):
    vectors = np.linalg.eigh(X.T @ X / (len(X) - 1))[1]
    return X @ vectors[:, ::-1][:, :k]


def pca_smallest(X, k):
    centred, vectors = _eigh(X)
    return centred @ vectors[:, :k]


def pca_ascending(X, k):
    centred, vectors = _eigh(X)
    return centred @ vectors[:, -k:]


def pca_rows(X, k):
    centred, vectors = _eigh(X)
    return centred @ vectors[::-1][:k].T


def pca_standardised(X, k):
    centred = X - X.mean(axis=0)
    vectors = np.linalg.eigh(np.corrcoef(X, rowvar=False))[1]
    return (centred / X.std(axis=0, ddof=1)) @ vectors[:, ::-1][:, :k]


# exercise id -> [(mutant, words its failure message must contain)]
MUTANTS = {
    "11.1": [(bins_left_closed, "belongs to the bin BELOW it"), (bins_extra_bin, "made a bin of its own"),
             (bins_drop_one, "with confidence 1.0 are missing"), (bins_empty_zero, "return nan there"),
             (bins_centres, "not the centre of the bin"), (bins_count_right, "SHARE of right answers")],
    "11.2": [(ece_unweighted, "weighted by their share"), (ece_signed, "without its sign"), (ece_max, "calibration error, MCE"),
             (ece_one_bin, "one bin for everything"), (ece_not_divided, "divide each bin's weight by the number"),
             (ece_floor_bins, "1.0 made a bin of its own"), (ece_index_error, "went past the last bin")],
    "11.3": [(temp_on_probabilities, "you divided the probabilities"), (temp_raw, "T must stay positive"),
             (temp_error_rate, "does not change when the logits are divided"), (temp_inverse, "you returned 1/T"),
             (temp_too_few_steps, "stopped too early")],
    "11.4": [(threshold_strict, "keep confidence >= t, not > t"), (threshold_highest, "HIGHEST threshold"),
             (threshold_below, "AT OR ABOVE t"), (threshold_share_of_all, "AMONG the answers AT OR ABOVE t"),
             (threshold_confident_wrong, "notebook 12's rule"), (threshold_never_raises, "raise ValueError")],
    "11.5": [(nn_dot, "plain dot product"), (nn_l2_raw, "Euclidean distance"), (nn_columns, "each ROW"),
             (nn_farthest, "LEAST similar"), (nn_ascending, "the most similar first")],
    "11.6": [(pca_not_centred, "centre the data first"), (pca_smallest, "ASCENDING order"),
             (pca_ascending, "put the largest first"), (pca_rows, "COLUMNS of eigh's matrix"),
             (pca_standardised, "standardised the columns")],
}
IDS = [f"11.{k}" for k in range(1, 7)]


# ------------------------------------------------------------------------------ exercises


def test_notebook_11_has_its_exercises_with_hints_in_two_levels():
    assert [ex.id for ex in E.exercises_of("11")] == IDS
    for exercise_id in IDS:
        ex = E.EXERCISES[exercise_id]
        assert E.reference(exercise_id).__name__ == ex.function
        assert len(ex.hint) > 40 and len(ex.formula) > 40, exercise_id
        assert len(MUTANTS[exercise_id]) >= 2


def test_no_hint_holds_a_line_of_the_answer():
    import inspect

    for exercise_id in IDS:
        ex = E.EXERCISES[exercise_id]
        lines = {line.strip() for line in inspect.getsource(E.reference(exercise_id)).splitlines()[1:]}
        lines = {line for line in lines if len(line) > 12 and not line.startswith(('"""', "#"))}
        for text in (ex.hint, ex.formula):
            for line in lines:
                assert line not in text, f"{exercise_id}'s hint holds the answer's line {line!r}"


def test_fit_temperature_reference_is_at_least_ten_lines():
    import inspect

    body = [line for line in inspect.getsource(S.fit_temperature).splitlines() if line.strip()]
    body = body[body.index(next(line for line in body if line.strip().endswith('"""') and line.strip() != '"""'
                                    and not line.strip().startswith('"""'))) + 1:]
    assert len(body) >= 10, body


def test_references_agree_with_the_library():
    rng = np.random.default_rng(3)
    conf = np.r_[rng.uniform(0.1, 1, 500), np.ones(20), [0.5] * 5]
    right = rng.random(len(conf)) < conf
    count, mean, acc = S.reliability_bins(conf, right, 10)
    want = calibration.reliability_bins(conf, right, 10)
    assert np.array_equal(count, want["count"])
    assert np.allclose(mean, want["confidence"], equal_nan=True) and np.allclose(acc, want["accuracy"], equal_nan=True)
    assert math.isclose(S.expected_calibration_error(conf, right), calibration.expected_calibration_error(conf, right))
    assert S.threshold_for_accuracy(conf, right, 0.9) == calibration.threshold_for_accuracy(conf, right, 0.9)
    logits, y = torch.randn(300, 10, generator=torch.Generator().manual_seed(0)) * 4, torch.arange(300) % 10
    assert math.isclose(S.fit_temperature(logits, y), calibration.fit_temperature(logits, y), rel_tol=1e-5)
    X = rng.normal(size=(40, 5)) + 3
    Z = embeddings.pca(X, 3)[0]
    mine = S.pca_project(X, 3)
    assert np.allclose(np.abs(mine), np.abs(Z), atol=1e-8)
    q, bank = rng.normal(size=(3, 5)), rng.normal(size=(30, 5)) * rng.uniform(0.1, 5, (30, 1))
    assert np.array_equal(S.nearest_neighbours(q, bank, 4), embeddings.nearest_neighbours(q, bank, 4)[0].numpy())


# ------------------------------------------------------------------------------ calibration


def _bins_by_loops(conf, right, n_bins):
    """Guo et al.'s definition, written as plainly as possible: bin m = ((m - 1)/M, m/M], m = 1..M."""
    out = []
    for m in range(1, n_bins + 1):
        lower, upper = (m - 1) / n_bins, m / n_bins
        inside = [i for i, c in enumerate(conf) if (lower < c <= upper) or (m == 1 and c == 0)]
        out.append((len(inside), np.mean([conf[i] for i in inside]) if inside else np.nan,
                    np.mean([right[i] for i in inside]) if inside else np.nan))
    return out


def test_reliability_bins_follow_guo_et_al_and_count_every_answer():
    rng = np.random.default_rng(0)
    conf = np.r_[rng.uniform(0, 1, 300), [0.0, 1.0, 1.0, 0.5, 0.2, 0.4, 14 / 15, 1 / 15]]
    right = rng.random(len(conf)) < 0.7
    for n_bins in (1, 4, 10, 15):
        got = calibration.reliability_bins(conf, right, n_bins)
        want = _bins_by_loops(conf, right, n_bins)
        assert got["count"].tolist() == [w[0] for w in want]
        assert np.allclose(got["confidence"], [w[1] for w in want], equal_nan=True)
        assert np.allclose(got["accuracy"], [w[2] for w in want], equal_nan=True)
        assert got["count"].sum() == len(conf) and len(got["edges"]) == n_bins + 1
    with pytest.raises(ValueError, match="probabilities in"):
        calibration.reliability_bins([0.5, 1.5], [True, False])
    with pytest.raises(ValueError, match="two \\(N,\\) arrays"):
        calibration.reliability_bins([0.5, 0.7], [True])
    with pytest.raises(ValueError, match="n_bins"):
        calibration.bin_index([0.5], 0)


def test_ece_matches_the_usual_pytorch_implementation():
    """gpleiss/temperature_scaling's _ECELoss, the implementation most papers use, in PyTorch."""
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(2000, 10, generator=g) * 3, torch.randint(0, 10, (2000,), generator=g)
    conf, pred = torch.softmax(logits, 1).max(1)
    right = pred.eq(y)
    boundaries = torch.linspace(0, 1, 16)
    ece = torch.zeros(1)
    for lower, upper in zip(boundaries[:-1], boundaries[1:]):
        inside = conf.gt(lower.item()) * conf.le(upper.item())
        if inside.float().mean() > 0:
            ece += torch.abs(conf[inside].mean() - right[inside].float().mean()) * inside.float().mean()
    assert math.isclose(calibration.expected_calibration_error(conf, right), ece.item(), rel_tol=1e-5)
    # a perfectly calibrated bin structure has ECE 0; a model always 100 % sure and 90 % right has 0.1
    assert calibration.expected_calibration_error(np.ones(10), np.arange(10) > 0) == pytest.approx(0.1)


def test_nll_is_cross_entropy_and_temperature_keeps_every_answer():
    g = torch.Generator().manual_seed(2)
    logits, y = torch.randn(500, 10, generator=g) * 5, torch.randint(0, 10, (500,), generator=g)
    assert calibration.nll(logits, y, 2.0) == pytest.approx(F.cross_entropy(logits.double() / 2, y).item())
    by_hand = -torch.log_softmax(logits.double() / 0.5, 1)[torch.arange(500), y].mean().item()
    assert calibration.nll(logits, y, 0.5) == pytest.approx(by_hand)
    model = torch.nn.Linear(4, 10)
    X = torch.randn(64, 4, generator=g)
    scaled = calibration.TemperatureScaled(model, 3.0)
    assert torch.equal(scaled(X).argmax(1), model(X).argmax(1))
    assert torch.allclose(scaled(X), model(X) / 3.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be"):
            calibration.TemperatureScaled(model, bad)


@pytest.mark.parametrize("scale", [3.0, 1.0, 0.2])
def test_fit_temperature_finds_the_nll_minimum(scale):
    g = torch.Generator().manual_seed(4)
    z = torch.randn(3000, 10, generator=g, dtype=torch.float64) * 2
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=g)[:, 0]
    T = calibration.fit_temperature((z * scale).float(), y)
    grid = np.exp(np.linspace(np.log(T) - 0.05, np.log(T) + 0.05, 201))
    nlls = [calibration.nll(z * scale, y, t) for t in grid]
    assert abs(np.log(grid[int(np.argmin(nlls))] / T)) < 1e-3   # the grid's best is T itself
    assert T == pytest.approx(scale, rel=0.1)                     # labels drawn from softmax(z): T ~ scale


def test_threshold_for_accuracy_is_the_lowest_that_reaches_the_target():
    rng = np.random.default_rng(5)
    conf = np.round(rng.beta(6, 1, 400), 2)
    right = rng.random(400) < conf ** 2
    for target in (0.8, 0.9, 0.95):
        t = calibration.threshold_for_accuracy(conf, right, target)
        assert t in conf and right[conf >= t].mean() >= target
        lower = conf[conf < t]
        assert all(right[conf >= s].mean() < target for s in np.unique(lower))
    with pytest.raises(ValueError, match="no threshold reaches"):
        calibration.threshold_for_accuracy([0.9, 0.5], [False, True], 0.99)
    with pytest.raises(ValueError, match="target must be"):
        calibration.threshold_for_accuracy([0.9], [True], 1.5)


# ------------------------------------------------------------------- the pad's saved threshold


@pytest.fixture
def course_cnn(tmp_path, monkeypatch):
    """A course CNN in a private models folder (fast mode: its fast/ subfolder)."""
    from mnist_course.models import build_model
    from mnist_course.pretrained import save_course_model

    monkeypatch.setenv("MNIST_COURSE_MODELS", str(tmp_path))
    monkeypatch.setenv("MNIST_COURSE_FAST", "1")
    torch.manual_seed(0)
    model = build_model("cnn")
    info = {"mean": 0.13, "std": 0.31, "test_acc": 0.5, "classes": [str(i) for i in range(10)], "dataset": "mnist"}
    save_course_model(model, "cnn", info)
    return model, info


def test_load_not_sure_falls_back_to_drawing_and_says_so(course_cnn, capsys):
    result = calibration.load_not_sure("cnn")
    assert (result.threshold, result.temperature, result.from_notebook) == (drawing.NOT_SURE_BELOW, 1.0, False)
    out = capsys.readouterr().out
    assert "drawing.NOT_SURE_BELOW" in out and "run notebook 11" in out
    model = course_cnn[0]
    assert result.calibrated(model) is model


def test_saved_threshold_is_read_back_and_goes_stale_with_the_model(course_cnn, capsys):
    from mnist_course.models import build_model
    from mnist_course.pretrained import save_course_model

    path = calibration.save_not_sure(0.9, 1.4, 0.995, {"n": 100})
    assert path == calibration.not_sure_path("cnn") and path.parent.name == "fast"
    result = calibration.load_not_sure("cnn")
    assert (result.threshold, result.temperature, result.from_notebook) == (0.9, 1.4, True)
    assert "notebook 11" in capsys.readouterr().out
    scaled = result.calibrated(course_cnn[0])
    assert isinstance(scaled, calibration.TemperatureScaled) and scaled.temperature == 1.4
    with pytest.raises(FileExistsError, match="overwrite=True"):
        calibration.save_not_sure(0.8, 1.0, 0.99, {})
    assert json.loads(path.read_text())["threshold"] == 0.9          # not overwritten
    torch.manual_seed(1)                                             # the course CNN is retrained ...
    save_course_model(build_model("cnn"), "cnn", course_cnn[1], overwrite=True)
    stale = calibration.load_not_sure("cnn")                         # ... so the threshold is stale
    assert not stale.from_notebook and stale.threshold == drawing.NOT_SURE_BELOW
    assert "computed for another cnn" in capsys.readouterr().out


def test_a_damaged_file_is_named_and_bad_values_are_refused(course_cnn, capsys):
    path = calibration.not_sure_path("cnn")
    path.write_text("{not json")
    assert not calibration.load_not_sure("cnn").from_notebook
    assert "is damaged" in capsys.readouterr().out
    for threshold, temperature in ((0.0, 1.0), (1.2, 1.0), (0.9, -1.0), (0.9, float("nan"))):
        with pytest.raises(ValueError):
            calibration.save_not_sure(threshold, temperature, 0.99, {}, overwrite=True)


def test_saving_without_a_course_model_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_COURSE_MODELS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no course model"):
        calibration.save_not_sure(0.9, 1.0, 0.99, {})


# ------------------------------------------------------------------------------ embeddings


def test_embed_reads_the_input_of_the_last_linear_layer():
    from mnist_course.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn").eval()
    X = torch.randn(70, 1, 28, 28)
    Z = embeddings.embed(model, X, batch_size=32)
    with torch.no_grad():
        want = model.head[:-1](model.features(X))    # everything before the last Linear
        assert torch.allclose(Z, want, atol=1e-6)
        assert torch.allclose(embeddings.last_linear(model)(Z), model(X), atol=1e-5)
    assert Z.shape == (70, 128) and not model.training
    assert not embeddings.last_linear(model)._forward_pre_hooks    # the hook is gone
    with pytest.raises(ValueError, match="no nn.Linear"):
        embeddings.embed(torch.nn.Conv2d(1, 1, 3), X)


def test_pca_agrees_with_scikit_learn_up_to_sign():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12)) + 5
    Z, components, explained = embeddings.pca(X, 4)
    ref = PCA(4).fit(X)
    signs = np.sign(np.sum(components * ref.components_, axis=1))
    assert np.allclose(components * signs[:, None], ref.components_, atol=1e-8)
    assert np.allclose(Z * signs, ref.transform(X), atol=1e-8)
    assert np.allclose(explained, ref.explained_variance_ratio_)
    with pytest.raises(ValueError, match="k must be"):
        embeddings.pca(X, 13)


def test_nearest_neighbours_agree_with_scikit_learn():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(7)
    bank = rng.normal(size=(100, 6)) * rng.uniform(0.1, 10, (100, 1))
    query = rng.normal(size=(5, 6))
    for metric, sk in (("cosine", "cosine"), ("l2", "euclidean")):
        idx, scores = embeddings.nearest_neighbours(query, bank, 7, metric)
        dist, want = NearestNeighbors(n_neighbors=7, metric=sk).fit(bank).kneighbors(query)
        assert np.array_equal(idx.numpy(), want)
        assert np.allclose(scores.numpy(), 1 - dist if metric == "cosine" else dist, atol=1e-5)
    assert embeddings.nearest_neighbours(query[0], bank, 2)[0].shape == (1, 2)
    with pytest.raises(ValueError, match="metric"):
        embeddings.nearest_neighbours(query, bank, 2, "manhattan")
    with pytest.raises(ValueError, match="same D"):
        embeddings.nearest_neighbours(query[:, :3], bank, 2)
