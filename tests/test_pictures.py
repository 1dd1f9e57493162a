"""The realistic pictures: reproducible from a seed, labelled, dark digits on light paper inside the
picture, conditions recorded as applied."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mnist_course import photos
from mnist_course.bench import pictures as picture_bench

CLEAN = {"noise": 0.0, "gradient": 0.0, "texture": 0.0, "blur": 0.0, "jpeg": 0}


def fake_digits(n=12):
    """uint8 (n, 28, 28) white-on-black 'digits' and labels: label 0 a tall bar, label 1 a wide bar."""
    X = np.zeros((n, 28, 28), np.uint8)
    y = np.arange(n) % 2
    for i in range(n):
        if y[i] == 0:
            X[i, 4:24, 12:16] = 255          # tall: 20 x 4
        else:
            X[i, 12:16, 4:24] = 255          # wide: 4 x 20
        X[i, 4 + i % 3, 4] = 128             # make each image a little different
    return X, y


def seven():
    """A hand-made uint8 (28, 28) '7' that has no symmetry."""
    d = np.zeros((28, 28), np.uint8)
    d[5:8, 6:22] = 255
    for r in range(8, 24):
        c = 21 - (r - 8) // 2
        d[r, c - 1: c + 2] = 255
    return d


def test_same_seed_same_bytes_different_seed_different_pictures():
    X, y = fake_digits()
    a = photos.picture_set(X, y, 6, 5, seed=3)
    b = photos.picture_set(X, y, 6, 5, seed=3)
    c = photos.picture_set(X, y, 6, 5, seed=4)
    assert [(im.tobytes(), lab, k) for im, lab, k in a] == [(im.tobytes(), lab, k) for im, lab, k in b]
    assert all(im.dtype == np.uint8 and im.ndim == 2 for im, _, _ in a)
    differ = [ia.shape != ic.shape or not np.array_equal(ia, ic) for (ia, _, _), (ic, _, _) in zip(a, c)]
    assert all(differ)


def test_a_smaller_set_is_a_prefix_of_a_larger_one():
    X, y = fake_digits()
    small = photos.picture_set(X, y, 3, 2, seed=0)
    big = photos.picture_set(X, y, 5, 4, seed=0)
    same = [(im.tobytes(), lab, k) for im, lab, k in small]
    assert same[:3] == [(im.tobytes(), lab, k) for im, lab, k in big[:3]]
    assert same[3:] == [(im.tobytes(), lab, k) for im, lab, k in big[5:7]]


def _ink_box_shape(image: np.ndarray) -> tuple[int, int]:
    """(height, width) of the largest dark blob: smoothed, below half the paper's brightness."""
    s = ndimage.gaussian_filter(image.astype(np.float32) / 255, 2.0)
    mask = s < 0.5 * np.percentile(s, 90)
    labels, n = ndimage.label(mask)
    assert n >= 1, "no dark ink found"
    biggest = 1 + int(np.argmax(ndimage.sum(mask, labels, range(1, n + 1))))
    rows, cols = np.nonzero(labels == biggest)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_labels_go_with_their_digits_and_blank_pictures_have_none():
    X, y = fake_digits(12)
    pics = photos.picture_set(X, y, 12, 10, seed=1)
    digits, blanks = pics[:12], pics[12:]
    assert sorted(lab for _, lab, _ in digits) == sorted(y.tolist())       # every digit once
    for image, label, kind in digits:
        h, w = _ink_box_shape(image)
        assert (h > 2 * w) if label == 0 else (w > 2 * h), (label, kind, h, w)
        assert kind.startswith("digit: ")
    assert [lab for _, lab, _ in blanks] == [None] * 10
    assert [photos.conditions(k)["kind"] for _, _, k in blanks] == list(photos.BLANK_KINDS) * 2


def test_conditions_are_recorded_and_within_the_stated_ranges():
    X, y = fake_digits()
    pics = photos.picture_set(X, y, 12, 10, seed=2)
    for image, _, kind in pics:
        c = photos.conditions(kind)
        assert {"noise", "gradient", "texture", "blur", "jpeg", "size"} <= set(c), kind
        assert 0.0 <= c["noise"] <= photos.MAX_NOISE and 0.0 <= c["gradient"] <= 0.4
        assert c["size"] == image.shape
        assert all(photos.SIZE_RANGE[0] <= s <= photos.SIZE_RANGE[1] for s in image.shape)
    gradients = [photos.conditions(k)["gradient"] for _, lab, k in pics if lab is not None]
    assert 0 < sum(g > 0 for g in gradients) < len(gradients)     # some with a lighting gradient, some without


@pytest.mark.parametrize("noise", [0.02, 0.08])
def test_the_recorded_noise_is_the_noise_in_the_picture(noise):
    image, kind = photos.no_digit_picture(np.random.default_rng(0), "empty page", **dict(CLEAN, noise=noise))
    assert photos.conditions(kind)["noise"] == pytest.approx(noise, abs=5e-4)
    assert image.astype(float).std() / 255 == pytest.approx(noise, rel=0.1)


def test_a_gradient_darkens_one_side_by_the_recorded_fraction():
    image, kind = photos.no_digit_picture(np.random.default_rng(0), "empty page",
                                            **dict(CLEAN, gradient=0.3, angle=0.0, light=1.0, paper=1.0))
    left, right = image[:, 0].mean(), image[:, -1].mean()
    assert right / left == pytest.approx(0.7, abs=0.01) and photos.conditions(kind)["gradient"] == 0.3


def test_the_digit_is_dark_on_light_inside_the_picture_and_looks_like_the_digit():
    digit = seven()
    image, info = photos.render_digit(digit, np.random.default_rng(5), rotate=0.0, height=0.5, size=(150, 200),
                                        ink=0.1, paper=0.9, light=1.0, **CLEAN)
    top, left, bottom, right = info["box"]
    assert 0 < top < bottom < 150 and 0 < left < right < 200
    paper = round(0.9 * 255)
    outside = np.ones(image.shape, bool)
    outside[top:bottom, left:right] = False
    assert np.all(image[outside] == paper)                        # light paper everywhere else
    inside = image[top:bottom, left:right]
    assert inside.min() == round(0.1 * 255) and (bottom - top) == pytest.approx(0.5 * 150, rel=0.1)
    # the ink, cropped and shrunk back to the digit's own box, is the digit (white on black)
    small = np.asarray(Image.fromarray(255 - inside).resize((16, 18), Image.Resampling.BOX), np.float32)
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    original = np.asarray(Image.fromarray(digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
                          .resize((16, 18), Image.Resampling.BOX), np.float32)
    assert np.corrcoef(small.ravel(), original.ravel())[0, 1] > 0.9
    flipped = np.corrcoef(small[:, ::-1].ravel(), original.ravel())[0, 1]
    assert flipped < 0.7                                           # the check can tell a mirrored digit


def test_realistic_digit_is_render_digits_image():
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    assert np.array_equal(photos.realistic_digit(seven(), rng_a), photos.render_digit(seven(), rng_b)[0])


def test_bad_input_gets_a_clear_error():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="28, 28"):
        photos.realistic_digit(np.zeros((32, 32), np.uint8), rng)
    with pytest.raises(ValueError, match="no ink"):
        photos.realistic_digit(np.zeros((28, 28), np.uint8), rng)
    with pytest.raises(TypeError, match="default_rng"):
        photos.realistic_digit(seven(), 0)
    with pytest.raises(TypeError, match="unknown picture option"):
        photos.realistic_digit(seven(), rng, nosie=0.1)
    with pytest.raises(ValueError, match="BLANK_KINDS|choose one of"):
        photos.no_digit_picture(rng, "cat")
    X, y = fake_digits(4)
    with pytest.raises(ValueError, match="between 0 and 4"):
        photos.picture_set(X, y, 5, 0)


# ------------------------------------------------------------------------ the three pipelines, scored

def _kind(noise=0.05, gradient=0.2):
    return f"digit: noise={noise} gradient={gradient} texture=0 blur=0 jpeg=0 size=100x100"


def test_score_on_a_hand_made_case():
    labels = [3, 3, 5, 7, None, None, None, None, None]
    kinds = [_kind(gradient=0.2), _kind(gradient=0.0), _kind(gradient=0.3), _kind(gradient=0.1),
             "empty page: noise=0.01 gradient=0 size=100x100", "dot: noise=0.01 gradient=0.2 size=100x100",
             "noise: noise=0.09 gradient=0 size=100x100", "line: noise=0.01 gradient=0 size=100x100",
             "shadow: noise=0.01 gradient=0 size=100x100"]
    answers = [("digit", 3), ("digit", 3), ("digit", 6), ("not sure", None),
               ("no digit", None), ("not sure", None), ("digit", 1), ("no digit", None), ("no digit", None)]
    s = picture_bench.score(answers, labels, kinds)
    assert (s["n_digits"], s["n_blank"], s["n_gradient"]) == (4, 5, 3)
    assert s["digits"] == 2 / 4                 # 3 and 3 right; 6 for 5 wrong; "not sure" is not correct
    assert s["digits_gradient"] == 1 / 3        # pictures 0, 2, 3 have a gradient: only 0 is right
    assert s["digits_not_sure"] == 1 / 4 and s["digits_no_digit"] == 0
    assert s["blank_no_digit"] == 3 / 5 and s["blank_declined"] == 4 / 5
    assert s["confident_wrong"] == 2 / 9        # the 6 for a 5, and the 1 on the noise picture
    assert picture_bench.targets_met(s) == {"digits_gradient": False, "blank_no_digit": False, "confident_wrong": False}


def test_targets_are_met_at_their_bounds_and_not_beyond():
    row = {"digits_gradient": 0.97, "blank_no_digit": 0.99, "confident_wrong": 0.01}
    assert all(picture_bench.targets_met(row).values())
    row = {"digits_gradient": 0.9699, "blank_no_digit": 0.9899, "confident_wrong": 0.0101}
    assert not any(picture_bench.targets_met(row).values())
    assert not any(picture_bench.targets_met(dict.fromkeys(row)).values())   # no pictures: not met


def test_naive_input_inverts_a_light_page_and_shrinks_the_whole_picture():
    page = np.full((120, 60), 230, np.uint8)
    page[30:90, 20:40] = 20                                # a dark bar in the middle third
    x = picture_bench.naive_input(page)
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert x[0].max() == pytest.approx(1 - 230 / 255, abs=1e-5)        # the page is dark, not stretched to 0
    assert x[14, 14] == pytest.approx(1 - 20 / 255, abs=1e-5)          # the bar is light
    np.testing.assert_allclose(picture_bench.naive_input(255 - page), x, atol=1e-6)   # light on dark: kept as is


def _old_drawing_module(folder):
    """drawing.py as it was at commit 5e3b6a9 (the "previous" pipeline), read from git (skips outside a git checkout)."""
    import importlib.util
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(photos.__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout: cannot read drawing.py of commit 5e3b6a9")
    r = subprocess.run(["git", "-C", str(root), "show", "5e3b6a9:mnist_course/drawing.py"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"commit 5e3b6a9 not available: {r.stderr.strip()}")
    path = folder / "old_drawing.py"
    path.write_text(r.stdout)
    spec = importlib.util.spec_from_file_location("mnist_course._old_drawing_for_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                       # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_the_frozen_copy_is_preprocess_of_commit_5e3b6a9(tmp_path):
    old = _old_drawing_module(tmp_path)
    X, y = fake_digits(6)
    pics = photos.picture_set(X, y, 6, 10, seed=7)
    page = np.full((50, 50), 200, np.uint8)
    page[20:30, 24:26] = 10                               # a dash: the old code answers it
    smudged = page.copy()
    smudged[2:6, 2:6] = 152                               # a faint smudge: 0.25 after the stretch
    blanks = 0
    for image in [p[0] for p in pics] + [page, smudged, np.full((40, 40), 128, np.uint8)]:
        want = old.preprocess(image)
        got = picture_bench.old_preprocess(image)
        if want.blank:
            blanks += 1
            assert got is None
        else:
            np.testing.assert_array_equal(got, want.image)
    assert 0 < blanks < len(pics) + 3                     # both branches compared


def test_status_of_old_and_new_predictions():
    from types import SimpleNamespace

    assert picture_bench.status_of(SimpleNamespace(blank=True)) == "no digit"
    assert picture_bench.status_of(SimpleNamespace(blank=False)) == "digit"
    assert picture_bench.status_of(SimpleNamespace(blank=False, status="not sure")) == "not sure"


def test_evaluate_with_a_fixed_model_on_a_tiny_set():
    from fakes import Fixed

    X, y = fake_digits(4)
    y = np.array([3, 3, 5, 3])
    digits = photos.picture_set(X, y, 4, 0, seed=0)
    flat = np.full((80, 80), 200, np.uint8)               # no contrast: the old pipeline says "no digit"
    tiny = digits + [(flat, None, "empty page: noise=0 gradient=0 size=80x80")]
    result = picture_bench.evaluate(tiny, Fixed(3), 0.1307, 0.3081, pipelines=("naive", "previous"))
    naive, old = result["rows"]
    assert result["answers"]["naive"] == [("digit", 3)] * 5           # naive always answers
    assert naive["digits"] == 3 / 4 and naive["blank_no_digit"] == 0 and naive["confident_wrong"] == 2 / 5
    assert result["answers"]["previous"][4] == ("no digit", None)
    assert old["blank_no_digit"] == 1 and old["confident_wrong"] == 1 / 5
    assert old["met"]["blank_no_digit"] and not old["met"]["confident_wrong"]
    assert naive["ms"] > 0 and naive["pipeline"] == "naive"


def test_markdown_table_marks_the_targets():
    row = {"n_digits": 10, "n_blank": 5, "n_gradient": 4, "digits": 0.9, "digits_gradient": 0.98,
           "digits_not_sure": 0.0, "digits_no_digit": 0.0, "blank_declined": 1.0, "blank_no_digit": 0.8,
           "confident_wrong": 0.005, "ms": 1.25}
    row["met"] = picture_bench.targets_met(row)
    text = picture_bench.markdown_table({"rows": [dict(row, pipeline="new")]})
    line = text.splitlines()[-1]
    assert "98.0% ✓" in line and "80.0% ✗" in line and "0.50% ✓" in line and line.endswith("| 1.2 |")


def test_cli_refuses_bad_sizes_and_an_existing_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        picture_bench.main(["--n-digits", "0", "--n-blank", "0"])
    assert "not both 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        picture_bench.main(["--n-digits", "20000"])
    assert "between 0 and 10000" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    with pytest.raises(SystemExit):                       # refused before any work is done
        picture_bench.main(["--save", str(tmp_path / "mine")])
    assert "exists already" in capsys.readouterr().err


def test_the_docs_state_the_sets_actual_ranges_and_size():
    from pathlib import Path

    from mnist_course.bench import benchmark

    root = Path(photos.__file__).resolve().parents[1]
    docs = "\n".join(p.read_text(encoding="utf-8") for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    text = " ".join(docs[docs.index("**Realistic pictures.**"):].split())
    n_digits, n_blank = benchmark.PICTURES["full"]
    assert f"σ up to {photos.MAX_NOISE:g})" in text
    assert f"{photos.SIZE_RANGE[0]}-{photos.SIZE_RANGE[1]} px" in text
    assert f"on {n_digits:,} + {n_blank:,} of them" in text
    assert f"[--n-digits {n_digits}] [--n-blank {n_blank}]" in text
    goals = picture_bench.TARGETS
    assert (f"(≥ {100 * goals['digits_gradient']:.0f} %, ≥ {100 * goals['blank_no_digit']:.0f} %, "
            f"≤ {100 * goals['confident_wrong']:.0f} %)") in text


# ------------------------------------------------------- pictures as people take them (.conditions)

def test_the_split_keeps_digits_seeds_and_parameters_apart():
    from mnist_course.bench import conditions as cond

    assert set(cond.DEV.digits).isdisjoint(cond.HELD_OUT.digits)
    assert len(cond.DEV.digits) == len(cond.HELD_OUT.digits) == 5000
    assert cond.DEV.seed + len(cond.DEV.conditions) <= cond.HELD_OUT.seed
    digit_rows = {c for c in cond.DEV.conditions if c.kind != "blank"}
    assert digit_rows.isdisjoint(c for c in cond.HELD_OUT.conditions if c.kind != "blank")
    assert "never" in cond.HELD_OUT.note and "tuning" in cond.DEV.note
    assert {c.kind for c in cond.DEV.conditions} == {c.kind for c in cond.HELD_OUT.conditions}


def test_condition_pictures_are_seeded_and_come_in_both_polarities():
    from mnist_course.bench import conditions as cond

    X, y = fake_digits(12)
    X = np.concatenate([X] * 834)[:10_000]
    y = np.concatenate([y] * 834)[:10_000]
    for part in (cond.DEV, cond.HELD_OUT):
        for r, c in enumerate(part.conditions):
            a, la = cond.row_pictures(part, r, "dark", X, y, 3)
            b, _ = cond.row_pictures(part, r, "dark", X, y, 3)
            light, ll = cond.row_pictures(part, r, "light", X, y, 3)
            assert all(np.array_equal(p, q) for p, q in zip(a, b)), c
            assert all(p.dtype == np.uint8 and p.ndim == 2 for p in a + light), c
            if c.kind == "blank":
                assert la == ll == [None] * 3
                continue
            assert all(lab in (0, 1) for lab in la + ll), c
            if c.kind in ("tight", "thumb") or c == cond.Condition("margin", 0):
                continue                    # no margin: the ink reaches the border
            for p, q in zip(a, light):      # dark ink: the border is lighter than the picture; light ink: darker
                assert np.median(np.concatenate([p[0], p[-1], p[:, 0], p[:, -1]])) > p.mean(), c
                assert np.median(np.concatenate([q[0], q[-1], q[:, 0], q[:, -1]])) < q.mean(), c
    tight = cond.make_picture(seven(), cond.Condition("tight", 40), "light", np.random.default_rng(0))
    assert max(tight.shape) == 40 and tight[0].max() > 0 and tight[:, -1].max() > 0
    margin = cond.make_picture(seven(), cond.Condition("margin", 50), "dark", np.random.default_rng(0))
    assert margin[0].min() == 255 and margin.shape[0] == 128


def test_a_condition_row_is_scored_with_its_goals():
    from mnist_course.bench import conditions as cond

    answers = [("digit", 1), ("digit", 2), ("not sure", None), ("no digit", None)]
    row = cond.score_row(answers, [1, 1, 1, 1])
    assert row == {"n": 4, "right": 0.25, "not_sure": 0.25, "no_digit": 0.25, "confident_wrong": 0.25}
    assert cond.row_goals(cond.Condition("tight", 16), row) == {"confident_wrong": False, "right": False}
    assert cond.row_goals(cond.Condition("pen", 2), row) == {"confident_wrong": False}
    blank = cond.score_row([("no digit", None)] * 99 + [("digit", 3)], [None] * 100)
    assert blank["confident_wrong"] == 0.01 and blank["right"] == 0.0
    assert cond.row_goals(cond.Condition("blank", "noise"), blank) == {"confident_wrong": True, "no_digit": True}
    section = {"parts": {"dev": cond.DEV.note}, "n": 4, "model": "cnn", "model_path": "models/x", "model_test_acc": 0.995,
               "rows": [{"part": "dev", "condition": "tight crop, longer side 16 px", "polarity": "dark",
                         **row, "met": cond.row_goals(cond.Condition("tight", 16), row)}]}
    table = cond.markdown_table(section)
    assert "| dev | tight crop, longer side 16 px | dark | 4 | 25.0% ✗ | 25.0% | 25.0% | 25.0% ✗ |" in table
    assert "held-out part reports only" in cond.describe(section) and "99.50%" in cond.describe(section)


def test_cli_conditions_refuses_a_bad_n(capsys):
    with pytest.raises(SystemExit):
        picture_bench.main(["--conditions", "dev", "--n", "0"])
    assert "--n must be between 1 and 5000" in capsys.readouterr().err
