"""The training loop: metrics, optimisers, schedules, determinism, early stopping, resume."""

import json

import pytest
import torch

import mnist_course as mc
from mnist_course.models import build_model
from mnist_course.training import (
    DivergedError,
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


def reference_steps(name, w, grad_fn, lr, steps):
    """The update rules written out by hand (PyTorch's documented formulas, default settings of
    make_optimizer: SGD momentum 0.9, AdamW weight decay 0.01, RMSprop alpha 0.99, eps 1e-8)."""
    m, v, buf = torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(w)
    for t in range(1, steps + 1):
        g = grad_fn(w)
        if name == "sgd":
            buf = g if t == 1 else 0.9 * buf + g
            w = w - lr * buf
        elif name == "rmsprop":
            v = 0.99 * v + 0.01 * g * g
            w = w - lr * g / (v.sqrt() + 1e-8)
        else:
            if name == "adamw":
                w = w * (1 - lr * 0.01)
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            m_hat, v_hat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
            w = w - lr * m_hat / (v_hat.sqrt() + 1e-8)
    return w


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_makes_its_documented_update(name):
    """Five steps on a fixed quadratic, loss = sum(c * (w - target)^2), against the hand-written rule."""
    target, c = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64), torch.tensor([1.0, 3.0, 0.5, 2.0],
                                                                                      dtype=torch.float64)
    w0 = torch.tensor([0.5, 0.5, -1.0, 2.0], dtype=torch.float64)
    w = torch.nn.Parameter(w0.clone())
    optimizer = make_optimizer(name, [w], lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        (c * (w - target) ** 2).sum().backward()
        optimizer.step()
    expected = reference_steps(name, w0, lambda x: 2 * c * (x - target), lr=0.05, steps=5)
    torch.testing.assert_close(w.detach(), expected, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(w.detach(), w0)  # it moved


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


class Threshold(torch.nn.Module):
    """One weight b; an 'image' x (a number, shape (N, 1)) is class 0 when x < b, else class 1."""

    def __init__(self):
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, X):
        return torch.stack([self.b - X[:, 0], torch.zeros(len(X))], dim=1)


def push_b_up(y_hat, y, reduction="mean"):
    """A loss whose gradient with respect to b is -1 per batch (mean) whatever the data: SGD with lr 1
    moves b up by exactly 1 per batch."""
    return -y_hat[:, 0].sum() if reduction == "sum" else -y_hat[:, 0].mean()


def peaked_run(patience=2, num_epochs=10, monitor="val_acc", **kw):
    """b = epoch after each epoch (one batch per epoch). Validation: class 0 at x = 0.5, 1.5, 2.5 and
    class 1 at x = 3.5 (x3) and 4.5 (x3): accuracy 7/9, 8/9, 9/9, 6/9, 3/9, ...: a peak at epoch 3."""
    model = Threshold()
    X_val = torch.tensor([[0.5], [1.5], [2.5], [3.5], [3.5], [3.5], [4.5], [4.5], [4.5]])
    y_val = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1])
    train_loader = mc.BatchIterator(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), batch_size=4)
    val_loader = mc.BatchIterator(X_val, y_val, batch_size=9)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    seen = {}

    def remember(epoch, history):  # a copy of the weights after every epoch
        seen[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    kw = {"verbose": False, **kw}
    history = fit(model, train_loader, val_loader, num_epochs, optimizer, loss_fn=push_b_up, patience=patience,
                  monitor=monitor, live_plot=False, on_epoch_end=remember, **kw)
    return model, history, seen


def test_early_stopping_restores_the_best_epochs_weights_after_a_real_peak():
    model, history, seen = peaked_run(patience=2)
    assert [round(9 * a) for a in history["val_acc"]] == [7, 8, 9, 6, 3]  # improves, then worsens
    assert history.best_epoch == 3 and history.meta["stopped_early"] == 5 and len(history) == 5
    assert torch.equal(model.b.detach(), seen[3]["b"]) and model.b.item() == 3.0
    assert seen[5]["b"].item() == 5.0  # it did train past the peak; the restore undid that


def test_early_stopping_can_monitor_the_validation_loss():
    model, history, _ = peaked_run(patience=1, monitor="val_loss")  # push_b_up's loss falls every epoch
    assert history.best_epoch == len(history) == 10 and "stopped_early" not in history.meta


def test_resuming_an_early_stopped_run_trains_nothing(tmp_path, capsys):
    peaked_run(patience=2, run_dir=tmp_path / "run")
    model, history, seen = peaked_run(patience=2, run_dir=tmp_path / "run", resume=True, verbose=True)
    assert len(history) == 5 and seen == {} and model.b.item() == 3.0
    assert "stopped early after epoch 5" in capsys.readouterr().out


def test_diverged_training_stops_with_a_clear_error():
    torch.manual_seed(0)
    model = build_model("mlp", hidden=(32,))
    train_loader, val_loader = loaders()
    optimizer = make_optimizer("sgd", model.parameters(), lr=1e9)
    with pytest.raises(DivergedError, match="diverged.*Lower the learning rate"):
        fit(model, train_loader, val_loader, 3, optimizer, verbose=False, live_plot=False)


def test_weights_that_became_nan_in_the_last_step_are_caught_on_validation():
    def nan_gradient(y_hat, y, reduction="mean"):  # finite value, NaN gradient (0 * d sqrt(x)/dx at 0)
        b = model.b
        return push_b_up(y_hat, y, reduction) + 0 * torch.sqrt(0 * b)

    model = Threshold()
    val_loader = mc.BatchIterator(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long), batch_size=3)
    train_loader = mc.BatchIterator(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), batch_size=4)
    with pytest.raises(DivergedError, match="validation loss became nan"):
        fit(model, train_loader, val_loader, 2, torch.optim.SGD(model.parameters(), lr=1.0), loss_fn=nan_gradient,
            verbose=False, live_plot=False)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_in_one_batch_is_caught(bad):
    model = Threshold()
    calls = []

    def loss_fn(y_hat, y, reduction="mean"):
        calls.append(1)
        return push_b_up(y_hat, y, reduction) + (bad if len(calls) == 2 else 0.0)

    train_loader = mc.BatchIterator(torch.zeros(8, 1), torch.zeros(8, dtype=torch.long), batch_size=2)
    with pytest.raises(DivergedError, match="training loss became"):
        train_epoch(model, train_loader, torch.optim.SGD(model.parameters(), lr=0.0), loss_fn)


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
