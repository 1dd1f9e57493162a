"""The benchmark's baseline pipeline matches the course's tensors; its report renders (no timing asserted)."""

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


def test_examples_net_and_latency_rows():
    assert benchmark.ExamplesNet()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    rows = benchmark.model_latencies(torch.device("cpu"), repeats=2)
    assert {r["model"].split()[0] for r in rows} >= {"mlp", "cnn", "cnn_best"} and all(r["ms"] > 0 for r in rows)
    calls = []
    benchmark.register_latency("test row", lambda: calls.append(1))
    try:
        assert benchmark.latency_ms(benchmark._LATENCY["test row"], repeats=3, warmup=1) >= 0 and len(calls) == 4
    finally:
        benchmark._LATENCY.pop("test row")


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
