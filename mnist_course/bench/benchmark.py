"""How fast is the course's way of feeding and training models? A report, not a test.

    mnist-course bench                 # full run (about 15 minutes on 2 busy CPU cores)
    mnist-course bench --quick         # a short run on a subset (a few minutes)
    mnist-course bench --out results/benchmark.md   # also write the table (.md or .json)

It prints Markdown tables in four parts:

1. **Throughput**: images per second through one epoch of in-memory batches (:class:`BatchIterator`)
   vs a torchvision ``DataLoader`` that decodes a PIL image per sample (``ToTensor`` + ``Normalize``),
   as in pytorch/examples' ``mnist/main.py``.
2. **Time to 99 % test accuracy**: the course's loop (in-memory batches, the course ``cnn``, AdamW with
   a 2-epoch OneCycle schedule, batch 128) vs a pytorch/examples-style loop (``DataLoader``, its ``Net``, Adadelta with
   StepLR, batch 64), both measured in the same run, test accuracy checked after every epoch.
3. **Latency**: one image through each model (eval mode, no gradients), median over many calls,
   plus the rows of ``ROW_SOURCES``: a drawing through preprocess + predict and PyTorch vs ONNX
   Runtime (:mod:`.latency`), the service under load (:mod:`.load`). A source that fails gives a row
   saying so; the rest of the report goes on.
4. **Realistic pictures**: MNIST *test* digits photographed on paper (noise, lighting gradients,
   texture, blur, JPEG) and pictures without a digit, made by :mod:`mnist_course.photos`; the naive
   pipeline, the previous preprocessing and today's ``predict_image`` side by side with the course
   CNN (2,000 + 500 pictures; 300 + 100 with ``--quick``; :mod:`.pictures`). Then today's
   ``predict_image`` on pictures as people take them (:mod:`.conditions`: tight crops, thumbnails,
   margins, rotation, pen width, JPEG, contrast, both polarities; 300 pictures a row, 50 with
   ``--quick``): a *dev* part that tuning may look at and a *held-out* part (other digits, seeds and
   parameters) that only reports.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import latency_ms
from .latency import drawing_rows, onnx_rows
from .load import service_rows

ROW_SOURCES: list[Callable[..., list[dict]]] = [drawing_rows, onnx_rows, service_rows]
PICTURES = {"full": (2000, 500), "quick": (300, 100)}   # (digit pictures, pictures without a digit)
CONDITIONS = {"full": 300, "quick": 50}                  # pictures per row of .conditions (dev and held-out)


# ------------------------------------------------------------------------- the DataLoader baseline


class PILDataset(torch.utils.data.Dataset):
    """Per-sample PIL images from in-memory uint8 tensors, like torchvision.datasets.MNIST: item i ->
    (transform(PIL image), label)."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, transform=None):
        self.X, self.y, self.transform = X, y, transform

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.X[i].numpy(), mode="L")
        return (self.transform(img) if self.transform is not None else img), int(self.y[i])


def torchvision_loader(data, train: bool = True, batch_size: int = 64, shuffle: bool = True,
                       num_workers: int = 0, seed: int = 0) -> torch.utils.data.DataLoader:
    """The pytorch/examples baseline: a DataLoader over per-sample PIL images with ToTensor + Normalize.

    Uses torchvision.datasets.MNIST / FashionMNIST on mc.data.data_root() when its raw files are there
    and `data` is the whole set; otherwise the same per-sample pipeline over data's uint8 tensors.
    """
    from torchvision import datasets, transforms

    from ..data import DATASETS, FILES, data_root

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((data.mean,), (data.std,))])
    X, y = (data.X_train, data.y_train) if train else (data.X_test, data.y_test)
    info = DATASETS[data.name]
    raw = data_root() / info["folder"] / "raw"
    full = len(X) == (60_000 if train else 10_000)
    if full and all((raw / f).is_file() for f in FILES):
        dataset = getattr(datasets, info["torchvision"])(str(data_root()), train=train, download=False,
                                                         transform=transform)
    else:
        dataset = PILDataset(X, y, transform)
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                                       generator=g)


class ExamplesNet(nn.Module):
    """The CNN of pytorch/examples mnist/main.py: X (N, 1, 28, 28) -> log-probabilities (N, 10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


# ---------------------------------------------------------------------------------- measurements


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(loader, max_batches: int | None = None, device=None) -> float:
    """Images per second when iterating over a loader's (X, y) batches (moved to `device`)."""
    device = torch.device(device or "cpu")
    n, t0 = 0, time.perf_counter()
    for b, (X, _) in enumerate(loader):
        X = X.to(device)
        n += len(X)
        if max_batches is not None and b + 1 >= max_batches:
            break
    _sync(device)
    return n / (time.perf_counter() - t0)


def time_to_accuracy(train_one_epoch: Callable[[], None], test_acc: Callable[[], float], target: float,
                     max_epochs: int) -> dict:
    """Train epoch by epoch until test accuracy >= target; returns seconds (training + testing), epochs, acc."""
    elapsed, acc = 0.0, 0.0
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        train_one_epoch()
        acc = test_acc()
        elapsed += time.perf_counter() - t0
        print(f"    epoch {epoch}: test accuracy {100 * acc:.2f}% after {elapsed:.1f} s", flush=True)
        if acc >= target:
            return {"seconds": elapsed, "epochs": epoch, "acc": acc, "reached": True}
    return {"seconds": elapsed, "epochs": max_epochs, "acc": acc, "reached": False}


def course_run(data, device, max_epochs: int, target: float, seed: int = 0) -> dict:
    """The course's loop: BatchIterator over normalised tensors, the course cnn, AdamW + OneCycle over max_epochs, batch 128."""
    from ..data import BatchIterator
    from ..models import build_model
    from ..training import evaluate, make_optimizer, make_scheduler, train_epoch

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model("cnn").to(device)
    train_loader = BatchIterator(data.normalize(data.X_train), data.y_train, 128, shuffle=True, seed=seed,
                                 device=device)
    test_loader = BatchIterator(data.normalize(data.X_test), data.y_test, 1000, device=device)
    optimizer = make_optimizer("adamw", model.parameters(), lr=3e-3)
    scheduler = make_scheduler("onecycle", optimizer, max_epochs, len(train_loader))
    setup = time.perf_counter() - t0
    result = time_to_accuracy(lambda: train_epoch(model, train_loader, optimizer, device=device, scheduler=scheduler),
                              lambda: evaluate(model, test_loader, device=device)["acc"], target, max_epochs)
    result["seconds"] += setup
    return result


def examples_run(data, device, max_epochs: int, target: float, seed: int = 0) -> dict:
    """pytorch/examples mnist/main.py: DataLoader (PIL, ToTensor, Normalize), Net, Adadelta(1.0), StepLR(0.7), batch 64."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = ExamplesNet().to(device)
    train_loader = torchvision_loader(data, train=True, batch_size=64, shuffle=True, seed=seed)
    test_loader = torchvision_loader(data, train=False, batch_size=1000, shuffle=False)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    setup = time.perf_counter() - t0

    def train():
        model.train()
        for X, y in train_loader:
            X, y = X.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.nll_loss(model(X), y)
            loss.backward()
            optimizer.step()
        scheduler.step()

    @torch.no_grad()
    def test() -> float:
        model.eval()
        correct = 0
        for X, y in test_loader:
            X, y = X.to(device), y.to(device)
            correct += (model(X).argmax(dim=1) == y).sum().item()
        return correct / len(test_loader.dataset)

    result = time_to_accuracy(train, test, target, max_epochs)
    result["seconds"] += setup
    return result


def model_latencies(device, repeats: int) -> list[dict]:
    """One normalised image (1, 1, 28, 28) through each named model in eval mode."""
    from ..models import CONFIGS, build_model, count_parameters

    rows = []
    X = torch.randn(1, 1, 28, 28, device=device)
    for name in CONFIGS:
        model = build_model(name).to(device).eval()
        ms = latency_ms(lambda m=model: m(X), repeats=repeats, device=device)
        rows.append({"task": "model forward, 1 image", "model": f"{name} ({count_parameters(model):,} params)",
                     "ms": ms})
    return rows


def source_latencies(device, quick: bool = False) -> list[dict]:
    """Rows of every ROW_SOURCES function, called with models={"mlp", "cnn"} (untrained: timing only);
    one that takes a `quick` argument gets quick=True in a --quick run."""
    from ..models import build_model

    models = {"mlp": build_model("mlp").eval(), "cnn": build_model("cnn").eval()}
    rows = []
    for source in ROW_SOURCES:
        rows += _source_rows(source, models, quick)
    return rows


def _source_rows(source: Callable[..., list[dict]], models: dict, quick: bool = False) -> list[dict]:
    """A source's rows, or one row saying why there are none (a failure never stops the benchmark)."""
    name = getattr(source, "__name__", repr(source))

    def failed(what: str, e: BaseException) -> list[dict]:
        print(f"    {name}: {what}: {type(e).__name__}: {e}", flush=True)
        return [{"task": f"{name}: {what} ({type(e).__name__}: {e})", "model": "", "ms": None}]

    try:
        kwargs = {"quick": True} if quick and "quick" in inspect.signature(source).parameters else {}
        rows = list(source(models=models, **kwargs))
    except Exception as e:  # a source's failure must not lose the rest of the report
        return failed("failed", e)
    bad = [r for r in rows if not isinstance(r, dict) or "task" not in r or not
           (r.get("ms") is None or isinstance(r.get("ms"), (int, float)))]
    if bad:
        return failed("gave rows without a task or a numeric ms",
                      ValueError(f"{len(bad)} bad row(s), e.g. {bad[0]!r:.120}"))
    return rows


def pictures_part(quick: bool, seed: int = 0) -> dict:
    """Part 4: :func:`mnist_course.bench.pictures.benchmark_section` with the course CNN, sized by PICTURES;
    {"error": message} when the course CNN is missing or the part fails."""
    from . import pictures

    n_digits, n_blank = PICTURES["quick" if quick else "full"]
    try:
        part = pictures.benchmark_section(n_digits, n_blank, seed, "cnn")
    except Exception as e:  # e.g. no course CNN: the other parts still count
        print(f"    realistic pictures failed: {type(e).__name__}: {e}", flush=True)
        return {"error": f"{type(e).__name__}: {e}", "n_digits": n_digits, "n_blank": n_blank}
    part = {k: v for k, v in part.items() if k not in ("pictures", "answers")}  # keep the report JSON-ready
    print(f"    {part['total_s']:.0f} s", flush=True)
    part["conditions"] = conditions_part(quick)
    return part


def conditions_part(quick: bool) -> dict:
    """Part 4, second table: :func:`mnist_course.bench.conditions.conditions_section` (dev and held-out,
    CONDITIONS pictures a row) with the course CNN; {"error": message} when it fails."""
    from . import conditions

    n = CONDITIONS["quick" if quick else "full"]
    try:
        section = conditions.conditions_section(("dev", "held-out"), n, model_name="cnn")
    except Exception as e:  # e.g. no course CNN
        print(f"    pictures as people take them failed: {type(e).__name__}: {e}", flush=True)
        return {"error": f"{type(e).__name__}: {e}", "n": n}
    print(f"    pictures as people take them: {section['seconds']:.0f} s", flush=True)
    return section


# ------------------------------------------------------------------------------------- the report


def run(quick: bool = False, device=None, dataset: str = "mnist", seed: int = 0) -> dict:
    """Run every measurement; returns a dict with the environment and the rows of each part."""
    from ..data import load_mnist
    from ..utils import get_device, set_progress

    set_progress(False)
    device = get_device(device)
    data = load_mnist(dataset)
    full = data
    if quick:
        data = data.subset(10_000, 2_000, seed=seed)
    report = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
                         f"{_cpu_count()} CPU cores" + (f", {torch.cuda.get_device_name(0)}" if device.type == "cuda" else ""),
              "device": str(device), "torch": torch.__version__, "quick": quick, "dataset": data.name}

    print("1/4 throughput", flush=True)
    from ..data import BatchIterator

    max_batches = 150 if quick else None

    t0 = time.perf_counter()
    X_train = full.normalize(full.X_train)  # once, before training: uint8 -> standardised float32
    normalise_s = time.perf_counter() - t0
    mem_loader = BatchIterator(X_train, full.y_train, 64, shuffle=True, seed=seed, device=device)
    mem = max(throughput(mem_loader, None, device) for _ in range(3))  # best of 3 epochs: it is short
    pil = throughput(torchvision_loader(full, batch_size=64, shuffle=True, seed=seed), max_batches, device)
    report["throughput"] = [
        {"loader": "BatchIterator (in-memory tensors, batch 64)", "images_per_s": mem},
        {"loader": "torchvision DataLoader (PIL + ToTensor + Normalize, batch 64, num_workers=0)",
         "images_per_s": pil},
    ]
    report["normalise_s"] = normalise_s
    report["speedup"] = mem / pil
    print(f"    in-memory {mem:,.0f} images/s, DataLoader {pil:,.0f} images/s: {mem / pil:.0f}x", flush=True)

    target = 0.97 if quick else 0.99
    course_epochs = 1 if quick else 2  # the course's recipe for speed: a short one-cycle schedule
    max_epochs = 2 if quick else 5      # pytorch/examples runs until it gets there (it needs 4 here)
    print(f"2/4 time to {100 * target:.0f}% test accuracy ({len(data.X_train):,} training images)", flush=True)
    print("  course loop", flush=True)
    course = course_run(data, device, course_epochs, target, seed)
    course["schedule_epochs"] = course_epochs
    print("  pytorch/examples loop", flush=True)
    examples = examples_run(data, device, max_epochs, target, seed)
    report["time_to_accuracy"] = {"target": target, "n_train": len(data.X_train), "course": course,
                                  "examples": examples, "ratio": course["seconds"] / examples["seconds"]}

    print("3/4 latency", flush=True)
    report["latency"] = model_latencies(device, repeats=50 if quick else 200) + source_latencies(device, quick)

    print("4/4 realistic pictures: naive, previous, new", flush=True)
    report["pictures"] = pictures_part(quick, seed)
    return report


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


def markdown(report: dict) -> str:
    """The report as Markdown tables."""
    lines = [f"Benchmark {'(quick) ' if report['quick'] else ''}on {report['date']}: {report['machine']}, "
             f"device {report['device']}, PyTorch {report['torch']}, {report['dataset']}.", "",
             "| data pipeline | images / s |", "|---|---:|"]
    for row in report["throughput"]:
        lines.append(f"| {row['loader']} | {row['images_per_s']:,.0f} |")
    lines.append(f"| **speed-up of in-memory batches** (goal >= 50x) | **{report['speedup']:,.0f}x** |")
    if "normalise_s" in report:
        lines.append(f"| (in-memory: normalising all training images once beforehand took "
                     f"{report['normalise_s']:.2f} s) | |")
    t = report["time_to_accuracy"]
    lines += ["", f"| loop (to {100 * t['target']:.0f}% test accuracy, {t['n_train']:,} training images) | "
                  "seconds | epochs | test accuracy |", "|---|---:|---:|---:|"]
    n = t["course"].get("schedule_epochs", "")
    for key, label in (("course", f"course: BatchIterator, cnn, AdamW + OneCycle ({n} epochs), batch 128"),
                       ("examples", "pytorch/examples: DataLoader, Net, Adadelta + StepLR, batch 64")):
        r = t[key]
        mark = "" if r["reached"] else " (not reached)"
        lines.append(f"| {label} | {r['seconds']:.1f}{mark} | {r['epochs']} | {100 * r['acc']:.2f}% |")
    lines.append(f"| **course / examples time** (goal <= 0.2x) | **{t['ratio']:.2f}x** | | |")
    lines += ["", "| single-image latency | model | median ms |", "|---|---|---:|"]
    for row in report["latency"]:
        ms = "—" if row.get("ms") is None else f"{row['ms']:.3f}"
        if row.get("ms") is None and isinstance(row.get("value"), (int, float)):   # a ratio, a size: "0.62 x"
            ms = f"{row['value']:g} {row.get('unit', '')}".strip()
        goal = f" (goal {row['goal']})" if row.get("goal") else ""
        lines.append(f"| {row['task']}{goal} | {row.get('model', '')} | {ms} |")
    if "pictures" in report:
        lines += ["", pictures_markdown(report["pictures"])]
    return "\n".join(lines)


def pictures_markdown(part: dict) -> str:
    """Part 4 as a sentence and a table (or the reason it is missing)."""
    from .pictures import CONFIDENT, markdown_table

    head = (f"Realistic pictures (`mnist-course bench pictures`): {part['n_digits']:,} MNIST test digits "
            f"photographed on paper and {part['n_blank']:,} pictures without a digit")
    if "error" in part:
        return head + f": not measured ({part['error']})."
    acc = part.get("model_test_acc")
    text = (head + f", seed {part['seed']}, course {part['model']}"
            + (f" ({100 * acc:.2f}% on the MNIST test set)" if acc else "")
            + f", one PyTorch thread, {part['total_s']:.0f} s; {CONFIDENT}.\n\n" + markdown_table(part))
    section = part.get("conditions")
    if section is None:
        return text
    if "error" in section:
        return text + f"\n\nPictures as people take them (`mnist-course bench pictures --conditions both`): not measured ({section['error']})."
    from . import conditions

    return text + "\n\n" + conditions.describe(section) + "\n\n" + conditions.markdown_table(section)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mnist-course bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run: subset, 97%% target, fewer repeats")
    p.add_argument("--out", type=Path, default=None, help="also write the report: .json or .md")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.out is not None and args.out.suffix not in (".json", ".md"):
        p.error(f"--out {args.out}: use a .json or .md file name")
    report = run(quick=args.quick, device=args.device, dataset=args.dataset, seed=args.seed)
    text = markdown(report)
    print()
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n" if args.out.suffix == ".json" else text + "\n")
        print(f"\nwrote {args.out}")
        if args.out.suffix == ".md":   # the numbers too, for the README's generated sentences
            args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
            print(f"wrote {args.out.with_suffix('.json')}")
    return 0

