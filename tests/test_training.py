"""The training loop: metrics, optimisers, schedules, determinism, early stopping, resume."""

import json

import pytest
import torch

import mnist_course as mc
from mnist_course.models import build_model
from mnist_course.training import (
    History,
    confusion_matrix,
    evaluate,
    fit,
    make_optimizer,
    make_scheduler,
    predict,
    train_epoch,
)


def toy_data(n=256, seed=0):
    """Separable fake 'images': the class sets the mean brightness of one image row."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    X = 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    X[torch.arange(n), 0, 2 * y + 4, :] += 2.0
    return X, y


def loaders(n=256, batch_size=32, seed=0):
    X, y = toy_data(n, seed)
    Xv, yv = toy_data(128, seed + 1)
    return (mc.BatchIterator(X, y, batch_size, shuffle=True, seed=seed),
            mc.BatchIterator(Xv, yv, 64))


def test_train_epoch_learns_and_reports_fractions():
    torch.manual_seed(0)
    model = build_model("mlp", hidden=(32,))
    train_loader, val_loader = loaders()
    optimizer = make_optimizer("adam", model.parameters(), lr=1e-2)
    before = evaluate(model, val_loader)
    for _ in range(5):
        stats = train_epoch(model, train_loader, optimizer)
    after = evaluate(model, val_loader)
    assert 0.0 <= stats["acc"] <= 1.0 and 0.0 <= after["acc"] <= 1.0
    assert after["loss"] < before["loss"] and after["acc"] > 0.9


def test_evaluate_matches_a_hand_computed_accuracy():
    torch.manual_seed(0)
    model = build_model("mlp_small")
    X, y = toy_data(100)
    logits = predict(model, X, batch_size=7)
    assert logits.shape == (100, 10)
    stats = evaluate(model, mc.BatchIterator(X, y, 33))
    assert stats["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert stats["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_reduces_the_loss(name):
    torch.manual_seed(0)
    model = build_model("mlp", hidden=(32,))
    train_loader, _ = loaders()
    optimizer = make_optimizer(name, model.parameters())
    first = train_epoch(model, train_loader, optimizer)["loss"]
    for _ in range(3):
        last = train_epoch(model, train_loader, optimizer)["loss"]
    assert last < first


def test_bad_names_are_refused():
    params = build_model("mlp_small").parameters()
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("lbfgs", params)
    opt = make_optimizer("sgd", build_model("mlp_small").parameters())
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("cosine", opt, 3, 10)


def test_schedulers_step_per_batch():
    model = build_model("mlp_small")
    opt = make_optimizer("sgd", model.parameters(), lr=0.1)
    sched = make_scheduler("steplr", opt, num_epochs=4, steps_per_epoch=5, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == lrs[9] == pytest.approx(0.1) and lrs[10] == lrs[19] == pytest.approx(0.05)
    opt = make_optimizer("adamw", model.parameters(), lr=0.01)
    sched = make_scheduler("onecycle", opt, num_epochs=2, steps_per_epoch=10)
    peak = 0.0
    for _ in range(20):
        opt.step()
        sched.step()
        peak = max(peak, opt.param_groups[0]["lr"])
    assert peak == pytest.approx(0.01, rel=1e-3) and opt.param_groups[0]["lr"] < peak / 50


def run(seed=0, num_epochs=2, **kw):
    torch.manual_seed(seed)
    model = build_model("cnn_small", dropout=0.2)  # BatchNorm and Dropout: both need care
    train_loader, val_loader = loaders(seed=seed)
    optimizer = make_optimizer("adamw", model.parameters(), lr=1e-2)
    scheduler = make_scheduler("onecycle", optimizer, num_epochs, len(train_loader))
    history = fit(model, train_loader, val_loader, num_epochs, optimizer, scheduler, verbose=False,
                  live_plot=False, **kw)
    return model, history


def metrics(history):
    return [(r["train_loss"], r["train_acc"], r["val_loss"], r["val_acc"], r["lr"]) for r in history.rows]


def test_same_seed_gives_identical_metrics_and_weights():
    m1, h1 = run(seed=0)
    m2, h2 = run(seed=0)
    assert metrics(h1) == metrics(h2)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    _, h3 = run(seed=1)
    assert metrics(h3) != metrics(h1)


def test_history_has_every_epoch_and_round_trips_json(tmp_path):
    _, history = run(num_epochs=2)
    assert history["epoch"] == [1, 2] and len(history) == 2
    assert all(t > 0 for t in history["time"])
    path = history.to_json(tmp_path / "h.json")
    again = History.from_json(path)
    assert again.rows == history.rows and json.loads(path.read_text())["meta"]["best_epoch"] in (1, 2)


def test_early_stopping_stops_and_restores_the_best_weights():
    torch.manual_seed(0)
    model = build_model("mlp", hidden=(32,))
    train_loader, val_loader = loaders()
    optimizer = make_optimizer("sgd", model.parameters(), lr=1e-9)  # nothing improves
    history = fit(model, train_loader, val_loader, 20, optimizer, patience=2, monitor="val_loss",
                  verbose=False, live_plot=False)
    assert len(history) == 3 and history.meta["stopped_early"] == 3 and history.best_epoch == 1


def test_run_dir_is_never_overwritten(tmp_path):
    run(num_epochs=1, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "best.safetensors").is_file()
    assert (tmp_path / "run" / "state.pt").is_file() and (tmp_path / "run" / "history.json").is_file()
    with pytest.raises(FileExistsError, match="already exists"):
        run(num_epochs=1, run_dir=tmp_path / "run")


def test_resuming_an_interrupted_run_gives_the_same_result(tmp_path):
    model_a, history_a = run(num_epochs=3)

    def interrupt(epoch, history):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(num_epochs=3, run_dir=tmp_path / "run", on_epoch_end=interrupt)
    torch.rand(10)  # disturb the global generator: resuming must restore it
    model_b, history_b = run(seed=0, num_epochs=3, run_dir=tmp_path / "run", resume=True)
    assert metrics(history_b) == metrics(history_a)
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()):
        assert torch.equal(a, b)


def test_confusion_matrix_counts():
    C = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 2, 1, 2]), num_classes=3)
    assert C.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
