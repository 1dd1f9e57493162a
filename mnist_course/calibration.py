"""Can I trust its confidence? Calibration of a classifier's probabilities (taught in notebook 11).

A classifier is *calibrated* when its confidence means what it says: of all the answers it gives
with top probability p, a share p is right. This module measures that and fixes it:

- :func:`reliability_bins`: equal-width confidence bins, each with its count, mean confidence and
  accuracy (the reliability diagram's bars);
- :func:`expected_calibration_error`: the ECE of Guo et al. 2017 (*On calibration of modern neural
  networks*): the bins' |accuracy - confidence| gaps, weighted by the share of answers in each bin;
- :func:`nll`, :func:`fit_temperature`: temperature scaling, one number T > 0 that divides the
  logits, fitted on validation data by minimising the negative log-likelihood (L-BFGS on log T);
  :class:`TemperatureScaled` wraps a model so that its logits are divided by T;
- :func:`threshold_for_accuracy`: the lowest confidence at which the answers at or above it reach
  a target accuracy: the drawing pad's "not sure" threshold;
- :func:`save_not_sure` / :func:`load_not_sure`: notebook 11 saves that threshold and T beside the
  course model (``<models_dir()>/course_cnn_not_sure.json``); notebook 12's pad reads them, and
  falls back to :data:`mnist_course.drawing.NOT_SURE_BELOW` (with T = 1), saying so, when notebook
  11 has not saved them for the course model of today.

Confidences are the top softmax probabilities, shape (N,); ``correct`` says whether each answer
was right, (N,) booleans; logits are (N, C) with labels y (N,) ints.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .files import atomic_write

N_BINS = 15  # Guo et al. 2017 measure the ECE with 15 equal-width bins


def _vectors(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(confidence, torch.Tensor):
        confidence = confidence.detach().cpu().numpy()
    if isinstance(correct, torch.Tensor):
        correct = correct.detach().cpu().numpy()
    conf, right = np.asarray(confidence, dtype=np.float64), np.asarray(correct)
    if conf.ndim != 1 or conf.shape != right.shape or len(conf) == 0:
        raise ValueError(f"confidence and correct must be two (N,) arrays with N > 0, got shapes "
                         f"{conf.shape} and {right.shape}")
    if not np.all((conf >= 0) & (conf <= 1)):
        raise ValueError("confidence must hold probabilities in [0, 1] (the top softmax probability of each "
                         f"answer), got values from {np.nanmin(conf):.3g} to {np.nanmax(conf):.3g}; "
                         "apply the softmax to the logits first.")
    return conf, right.astype(bool)


def bin_index(confidence, n_bins: int = N_BINS) -> np.ndarray:
    """(N,) confidences in [0, 1] -> (N,) bin numbers 0 .. n_bins - 1 of equal-width bins that are
    closed on the right, ((m - 1) / M, m / M] as in Guo et al.: 1.0 falls in the last bin, a
    confidence exactly on an edge in the bin below it (0 in the first)."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a whole number >= 1, got {n_bins!r}")
    inner = np.arange(1, n_bins) / n_bins          # m / M, rounded as a confidence m / M would be
    return np.searchsorted(inner, np.asarray(confidence, dtype=np.float64), side="left")


def reliability_bins(confidence, correct, n_bins: int = N_BINS) -> dict:
    """Equal-width bins of the confidences (:func:`bin_index`): confidence (N,) in [0, 1], correct (N,)
    booleans -> {"edges": (n_bins + 1,), "count": (n_bins,) ints, "confidence": (n_bins,) mean
    confidence, "accuracy": (n_bins,) share right}; an empty bin has count 0 and nan for the two means."""
    conf, right = _vectors(confidence, correct)
    idx = bin_index(conf, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(idx, weights=right.astype(np.float64), minlength=n_bins) / count
    return {"edges": np.arange(n_bins + 1) / n_bins, "count": count, "confidence": mean_conf,
            "accuracy": accuracy}


def expected_calibration_error(confidence, correct, n_bins: int = N_BINS) -> float:
    """ECE (Guo et al. 2017): sum over the equal-width bins of (count / N) * |accuracy - mean
    confidence|, empty bins skipped; confidence (N,) in [0, 1], correct (N,) booleans -> a float in [0, 1]."""
    bins = reliability_bins(confidence, correct, n_bins)
    used = bins["count"] > 0
    weights = bins["count"][used] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"][used] - bins["confidence"][used])))


def top_confidence(logits: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (N, C) -> (confidence (N,), y_hat (N,)): the top softmax probability of logits / T and its class."""
    probs = torch.softmax(torch.as_tensor(logits).double() / temperature, dim=1)
    confidence, y_hat = probs.max(dim=1)
    return confidence, y_hat


def nll(logits: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood -log softmax(logits / T)[y]: logits (N, C), y (N,) -> a float
    (F.cross_entropy of the scaled logits)."""
    logits = torch.as_tensor(logits).double()
    return float(F.cross_entropy(logits / temperature, torch.as_tensor(y).long()))


def fit_temperature(logits: torch.Tensor, y: torch.Tensor, max_iter: int = 100) -> float:
    """The temperature T > 0 that minimises nll(logits, y, T): logits (N, C) of validation data, y (N,)
    -> T as a float. L-BFGS on log T (so T = exp(log T) stays positive), in float64, from T = 1.
    Dividing by T keeps every argmax, so the accuracy does not change; T > 1 softens overconfident
    probabilities, T < 1 sharpens underconfident ones."""
    logits = torch.as_tensor(logits).detach().double().cpu()
    y = torch.as_tensor(y).long().cpu()
    if logits.ndim != 2 or y.shape != logits.shape[:1] or len(y) == 0:
        raise ValueError(f"logits must be (N, C) and y (N,) with N > 0, got {tuple(logits.shape)} and {tuple(y.shape)}")
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        raise ValueError("the temperature did not converge (the logits hold nan or inf?)")
    return temperature


class TemperatureScaled(nn.Module):
    """`model` with its logits divided by `temperature` (> 0): the same answers (argmax), calibrated
    probabilities. Input and output as the model's, e.g. (N, 1, 28, 28) -> (N, 10)."""

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        temperature = float(temperature)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        self.model = model
        self.temperature = temperature

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.model(X) / self.temperature

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4f}"


def threshold_for_accuracy(confidence, correct, target: float) -> float:
    """The lowest confidence t of the given answers such that the answers with confidence >= t are
    right at least a share `target` of the time (all answers tied at t included): confidence (N,),
    correct (N,) booleans, target in (0, 1] -> t, one of the confidences. Below t the pad says
    "not sure". Raises ValueError when even the most confident answers miss the target."""
    conf, right = _vectors(confidence, correct)
    if not 0 < target <= 1:
        raise ValueError(f"target must be an accuracy in (0, 1], e.g. 0.995, got {target!r}")
    order = np.argsort(-conf, kind="stable")
    conf, right = conf[order], right[order]
    accuracy_above = np.cumsum(right) / np.arange(1, len(conf) + 1)   # of the n most confident answers
    last_of_tie = np.r_[conf[1:] != conf[:-1], True]                  # a threshold takes all its ties
    ok = np.flatnonzero((accuracy_above >= target) & last_of_tie)
    if len(ok) == 0:
        raise ValueError(f"no threshold reaches {target:.2%} accuracy: even the most confident answers are "
                         "wrong more often than that. Lower the target, or improve the model.")
    return float(conf[ok[-1]])


# --------------------------------------------------------------- the pad's saved threshold

NOTEBOOK = "notebooks/11_trusting_the_confidence.ipynb"


def not_sure_path(name: str = "cnn", dataset: str = "mnist") -> Path:
    """Where notebook 11 saves the "not sure" threshold of a course model: beside its weights,
    <models_dir()>/course_<name>[_fashion]_not_sure.json (fast mode: models/fast/)."""
    from .pretrained import course_model_paths

    weights, _ = course_model_paths(name, dataset)
    return weights.with_name(weights.stem + "_not_sure.json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class NotSure:
    """The pad's "not sure" rule: a calibrated top probability below `threshold` is "not sure";
    the probabilities are those of the logits divided by `temperature`. `source` says in words where
    the two numbers come from; `record` is what notebook 11 saved (None for the fallback)."""

    threshold: float
    temperature: float
    source: str
    record: dict | None = field(default=None, compare=False)

    @property
    def from_notebook(self) -> bool:
        """True when the numbers are notebook 11's, False for the fallback."""
        return self.record is not None

    def calibrated(self, model: nn.Module) -> nn.Module:
        """`model` with its logits divided by the temperature (the model itself when T = 1)."""
        return model if self.temperature == 1.0 else TemperatureScaled(model, self.temperature)


def save_not_sure(threshold: float, temperature: float, target: float, details: dict, name: str = "cnn",
                  dataset: str = "mnist", overwrite: bool = False) -> Path:
    """Save the "not sure" threshold and temperature measured for course model `name` (notebook 11)
    to :func:`not_sure_path`, with the SHA-256 of the model's weights (a retrained model makes the
    file stale) and `details` (JSON-ready: how they were measured). Refuses to replace an existing
    file unless overwrite=True. Returns the path written."""
    from .pretrained import course_model_paths

    for what, value in (("threshold", threshold), ("temperature", temperature)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    if threshold > 1:
        raise ValueError(f"threshold is a probability, at most 1; got {threshold!r}")
    weights, _ = course_model_paths(name, dataset)
    if not weights.is_file():
        raise FileNotFoundError(f"no course model at {weights}: the threshold belongs to a model; load it "
                                f"with load_course_model({name!r}) first.")
    path = not_sure_path(name, dataset)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it with this run's numbers.")
    record = {"threshold": float(threshold), "temperature": float(temperature), "target_accuracy": float(target),
              "model": name, "dataset": dataset, "weights": weights.name, "weights_sha256": _sha256(weights),
              "saved_by": NOTEBOOK,
              "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "details": details}
    return atomic_write(path, json.dumps(record, indent=2) + "\n", overwrite=True)


def load_not_sure(name: str = "cnn", dataset: str = "mnist", verbose: bool = True) -> NotSure:
    """The "not sure" threshold and temperature that notebook 11 saved for course model `name`, or,
    when there is none for today's model (never saved, unreadable, or saved for weights that have
    since been retrained), the fallback: :data:`mnist_course.drawing.NOT_SURE_BELOW` with T = 1.
    verbose prints one line saying which, and why."""
    from .drawing import NOT_SURE_BELOW
    from .pretrained import course_model_paths

    path = not_sure_path(name, dataset)
    weights, _ = course_model_paths(name, dataset)
    why = None
    record = None
    if not path.is_file():
        why = f"no saved threshold at {path}: run notebook 11 to compute it"
    else:
        try:
            record = json.loads(path.read_text())
            threshold, temperature = float(record["threshold"]), float(record["temperature"])
            if not (0 < threshold <= 1 and math.isfinite(temperature) and temperature > 0):
                raise ValueError(f"threshold {threshold} or temperature {temperature} out of range")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            why, record = f"{path} is damaged ({e}): delete it and run notebook 11 again", None
        else:
            if not weights.is_file() or record.get("weights_sha256") != _sha256(weights):
                why, record = (f"{path} was computed for another {name} than the one at {weights} (retrained "
                               "since): run notebook 11 again"), None
    if record is None:
        result = NotSure(NOT_SURE_BELOW, 1.0, f"drawing.NOT_SURE_BELOW = {NOT_SURE_BELOW} with T = 1 ({why})")
    else:
        result = NotSure(threshold, temperature,
                         f"notebook 11: threshold {threshold:.4f} on probabilities at temperature {temperature:.4f}, "
                         f"for {record.get('target_accuracy', float('nan')):.2%} accuracy, saved {record.get('saved', '?')}",
                         record)
    if verbose:
        print(f"'not sure' below {result.threshold:.4f}, from {result.source}")
    return result


__all__ = ["N_BINS", "NotSure", "TemperatureScaled", "bin_index", "expected_calibration_error", "fit_temperature",
           "load_not_sure", "nll", "not_sure_path", "reliability_bins", "save_not_sure", "threshold_for_accuracy",
           "top_confidence"]
