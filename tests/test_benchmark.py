"""The benchmark: its baseline pipeline matches the course's tensors, its latencies are medians of the
calls it times (checked with a fake clock and a known sleep), its report renders."""

import time

import pytest
import torch

from mnist_course import utils
from mnist_course.bench import benchmark


def test_torchvision_loader_gives_the_same_images_as_normalize(mnist):
    loader = benchmark.torchvision_loader(mnist, train=False, batch_size=16, shuffle=False)
    X, y = next(iter(loader))
    assert X.shape == (16, 1, 28, 28) and X.dtype == torch.float32
    torch.testing.assert_close(X, mnist.normalize(mnist.X_test[:16]), atol=1e-5, rtol=1e-5)
    assert torch.equal(y, mnist.y_test[:16])


def test_pil_dataset_on_a_subset(mnist):
    small = mnist.subset(100, 50, seed=0)
    loader = benchmark.torchvision_loader(small, train=True, batch_size=40, shuffle=False)
    assert isinstance(loader.dataset, benchmark.PILDataset) and len(loader.dataset) == 100
    X, y = next(iter(loader))
    torch.testing.assert_close(X, small.normalize(small.X_train[:40]), atol=1e-5, rtol=1e-5)


def test_examples_net_shape():
    assert benchmark.ExamplesNet()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


class FakeClock:
    """Stands in for the time module: perf_counter() reads a clock that only fn() advances."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_latency_is_the_median_of_the_timed_calls_in_milliseconds(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(utils, "time", clock)
    durations = iter([100.0, 100.0, 0.001, 0.050, 0.002, 0.003, 0.004])  # 2 warm-up calls, then 5 timed ones

    def fn():
        clock.now += next(durations)

    assert utils.latency_ms(fn, repeats=5, warmup=2) == pytest.approx(3.0)  # mean 12, min 1, max 50
    assert next(durations, "all used") == "all used"  # called exactly warmup + repeats times


def test_latency_of_a_known_sleep():
    ms = utils.latency_ms(lambda: time.sleep(0.01), repeats=5, warmup=1)
    assert 10.0 <= ms < 60.0  # 10 ms, plus the scheduler's delay on a busy machine


def test_model_latencies_time_each_models_forward_pass(monkeypatch):
    from mnist_course.models import CONFIGS, build_model, count_parameters

    outputs, answers = [], iter(range(1, 100))

    def fake_latency_ms(fn, repeats, device=None):
        outputs.append(fn().shape)
        return float(next(answers))

    monkeypatch.setattr(benchmark, "latency_ms", fake_latency_ms)
    rows = benchmark.model_latencies(torch.device("cpu"), repeats=3)
    assert outputs == [(1, 10)] * len(CONFIGS)  # one image through each model
    assert [r["ms"] for r in rows] == [float(i) for i in range(1, len(CONFIGS) + 1)]
    assert [r["model"] for r in rows] == [f"{n} ({count_parameters(build_model(n)):,} params)" for n in CONFIGS]


def test_markdown_report():
    report = {"quick": True, "date": "2026-01-01 00:00 UTC", "machine": "m", "device": "cpu", "torch": "x",
              "dataset": "mnist", "speedup": 100.0,
              "throughput": [{"loader": "a", "images_per_s": 1e6}, {"loader": "b", "images_per_s": 1e4}],
              "time_to_accuracy": {"target": 0.99, "n_train": 60000, "ratio": 0.1,
                                   "course": {"seconds": 10, "epochs": 2, "acc": 0.991, "reached": True},
                                   "examples": {"seconds": 100, "epochs": 3, "acc": 0.985, "reached": False}},
              "latency": [{"task": "t", "model": "cnn", "ms": 1.5, "goal": "<= 5 ms"}]}
    text = benchmark.markdown(report)
    assert "100x" in text and "0.10x" in text and "(not reached)" in text and "goal <= 5 ms" in text


def test_a_failing_row_source_gives_a_row_and_the_others_still_report(monkeypatch):
    def good(models=None):
        return [{"task": "good", "model": "m", "ms": 1.0}]

    quick_seen = []

    def sized(models=None, quick=False):      # takes `quick`: a --quick run passes it on
        return quick_seen.append(quick) or []

    def broken(models=None):
        raise FileNotFoundError("no ONNX file at models/onnx/cnn.onnx: run make export")

    def bad_rows(models=None):
        return [{"model": "m", "ms": "fast"}]

    def no_models_argument():
        return []

    monkeypatch.setattr(benchmark, "ROW_SOURCES", [broken, bad_rows, no_models_argument, good, sized])
    rows = benchmark.source_latencies(torch.device("cpu"), quick=True)
    assert quick_seen == [True]                          # and `good`, without the argument, still ran
    tasks = [r["task"] for r in rows]
    assert len(rows) == 4 and rows[-1] == {"task": "good", "model": "m", "ms": 1.0}
    assert "broken: failed (FileNotFoundError: no ONNX file" in tasks[0]
    assert "bad_rows: gave rows without a task or a numeric ms" in tasks[1]
    assert "no_models_argument: failed (TypeError" in tasks[2]
    assert all(r["ms"] is None for r in rows[:3])
    benchmark.markdown({"quick": True, "date": "d", "machine": "m", "device": "cpu", "torch": "x", "dataset": "mnist",
                        "speedup": 1.0, "throughput": [],
                        "time_to_accuracy": {"target": 0.99, "n_train": 1, "ratio": 1.0,
                                             "course": {"seconds": 1, "epochs": 1, "acc": 0.99, "reached": True},
                                             "examples": {"seconds": 1, "epochs": 1, "acc": 0.99, "reached": True}},
                        "latency": rows})  # renders every row


def test_the_row_sources_are_the_drawing_onnx_and_service_rows():
    from mnist_course.bench import latency, load

    assert benchmark.ROW_SOURCES == [latency.drawing_rows, latency.onnx_rows, load.service_rows]


def test_the_pictures_part_is_rendered_or_says_why_it_is_missing(monkeypatch):
    from mnist_course.bench import pictures

    row = {"pipeline": "new", "n_digits": 300, "n_blank": 100, "n_gradient": 170, "digits": 0.99,
           "digits_gradient": 0.985, "digits_not_sure": 0.01, "digits_no_digit": 0.0, "blank_declined": 1.0,
           "blank_no_digit": 0.995, "confident_wrong": 0.004, "ms": 20.0}
    row["met"] = pictures.targets_met(row)
    part = {"n_digits": 300, "n_blank": 100, "seed": 0, "model": "cnn", "model_test_acc": 0.995,
            "total_s": 31.0, "rows": [row]}
    text = benchmark.pictures_markdown(part)
    assert "300 MNIST test digits" in text and "98.5% ✓" in text and "99.5% ✓" in text and "0.40% ✓" in text
    assert pictures.CONFIDENT in text

    def missing(*args, **kwargs):
        raise FileNotFoundError("no course model at models/course_cnn.safetensors")

    monkeypatch.setattr(pictures, "benchmark_section", missing)
    failed = benchmark.pictures_part(quick=True)
    assert failed["n_digits"] == benchmark.PICTURES["quick"][0]
    assert "not measured (FileNotFoundError: no course model" in benchmark.pictures_markdown(failed)


def test_the_pictures_part_adds_the_conditions_table_or_says_why_it_is_missing():
    from mnist_course.bench import conditions, pictures

    row = {"pipeline": "new", "n_digits": 300, "n_blank": 100, "n_gradient": 170, "digits": 0.99,
           "digits_gradient": 0.985, "digits_not_sure": 0.01, "digits_no_digit": 0.0, "blank_declined": 1.0,
           "blank_no_digit": 0.995, "confident_wrong": 0.004, "ms": 20.0}
    row["met"] = pictures.targets_met(row)
    part = {"n_digits": 300, "n_blank": 100, "seed": 0, "model": "cnn", "model_test_acc": 0.995,
            "total_s": 31.0, "rows": [row], "conditions": {"error": "FileNotFoundError: no course model", "n": 50}}
    assert "not measured (FileNotFoundError: no course model)" in benchmark.pictures_markdown(part)
    scored = {"part": "held-out", "condition": "tight crop, longer side 20 px", "polarity": "light", "n": 50,
              "right": 0.98, "not_sure": 0.02, "no_digit": 0.0, "confident_wrong": 0.0}
    scored["met"] = conditions.row_goals(conditions.Condition("tight", 20), scored)
    part["conditions"] = {"parts": {"held-out": conditions.HELD_OUT.note}, "n": 50, "model": "cnn",
                          "model_path": None, "model_test_acc": None, "rows": [scored], "seconds": 3.0}
    text = benchmark.pictures_markdown(part)
    assert "| held-out | tight crop, longer side 20 px | light | 50 | 98.0% ✓ |" in text
    assert benchmark.CONDITIONS["quick"] < benchmark.CONDITIONS["full"]
