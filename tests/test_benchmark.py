"""The benchmark: its baseline pipeline matches the course's tensors, its latencies are medians of the
calls it times (checked with a fake clock and a known sleep), its report renders."""

import time

import pytest
import torch

from mnist_course import benchmark


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
    monkeypatch.setattr(benchmark, "time", clock)
    durations = iter([100.0, 100.0, 0.001, 0.050, 0.002, 0.003, 0.004])  # 2 warm-up calls, then 5 timed ones

    def fn():
        clock.now += next(durations)

    assert benchmark.latency_ms(fn, repeats=5, warmup=2) == pytest.approx(3.0)  # mean 12, min 1, max 50
    assert next(durations, "all used") == "all used"  # called exactly warmup + repeats times


def test_latency_of_a_known_sleep():
    ms = benchmark.latency_ms(lambda: time.sleep(0.01), repeats=5, warmup=1)
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


def test_registered_latency_rows_time_the_registered_function(monkeypatch):
    calls = []
    monkeypatch.setattr(benchmark, "PLUGINS", [])
    monkeypatch.setattr(benchmark, "latency_ms", lambda fn, repeats: fn() or 42.0)
    monkeypatch.setitem(benchmark._LATENCY, "test row", lambda: calls.append(1))
    rows = benchmark.plugin_latencies(torch.device("cpu"))
    assert rows == [{"task": "test row", "model": "", "ms": 42.0}] and calls == [1]


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
