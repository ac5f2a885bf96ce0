"""The training loop shared by ``train_detector`` and ``train_embedder``.

Both scripts train on a shared CPU under a wall-clock budget, so the loop that they share lives
here once: epochs of a fixed number of steps, a warm-up then cosine learning rate over the steps
or the time budget (whichever runs out first, so that a run stopped by the budget still ends at
a low learning rate), gradient clipping, per-epoch loss rows, the stop when the budget is spent,
and the ``train.json`` report. What differs -- the data, the model's forward pass and loss, what
to do at the start of an epoch -- comes in as functions.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from caper_edge.atomic import atomic_write_bytes

# The learning rate never decays below this fraction of the base rate.
LR_FLOOR = 0.05


def lr_factor(step: int, total: int, warmup: int, time_progress: float = 0.0) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total``: linear warm-up over
    ``warmup`` steps, times a cosine from 1 down to ``LR_FLOOR`` over the progress, which is the
    larger of ``step / total`` and ``time_progress`` (the spent fraction of a time budget)."""
    if total <= 0:
        raise ValueError(f"total steps must be > 0, got {total}")
    progress = min(1.0, max(step / total, time_progress))
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    return warm * (LR_FLOOR + (1.0 - LR_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass
class TrainLoop:
    """Runs ``epochs`` x ``steps_per_epoch`` optimiser steps of ``step_fn`` within a time budget.

    ``step_fn(epoch, step_in_epoch) -> (loss, parts)`` computes one batch's loss tensor and a dict
    of float parts to log; the loop does the backward pass, clipping, learning rate and optimiser
    step. ``epoch_start(epoch)`` runs before each epoch (e.g. a new shuffle, train mode).
    """

    optimizer: torch.optim.Optimizer
    base_lr: float
    epochs: int
    steps_per_epoch: int
    warmup: int
    time_budget_min: float | None = None
    clip_norm: float | None = None
    log_every: int = 0
    history: list[dict] = field(default_factory=list)
    global_step: int = 0
    train_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.total = max(1, self.epochs * self.steps_per_epoch)
        self.budget_s = self.time_budget_min * 60 if self.time_budget_min else None
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def out_of_time(self) -> bool:
        return self.budget_s is not None and self.elapsed() > self.budget_s

    def progress(self) -> float:
        """Training progress 0..1: steps done or budget spent, whichever is further."""
        p = self.global_step / self.total
        return min(1.0, max(p, self.elapsed() / self.budget_s)) if self.budget_s else p

    def lr(self) -> float:
        time_progress = self.elapsed() / self.budget_s if self.budget_s else 0.0
        return self.base_lr * lr_factor(self.global_step, self.total, self.warmup, time_progress)

    def run(self, step_fn: Callable[[int, int], tuple[torch.Tensor, dict]],
            epoch_start: Callable[[int], None] | None = None, params: list | None = None,
            epoch_end: Callable[[int], None] | None = None) -> list[dict]:
        params = params if params is not None else [p for g in self.optimizer.param_groups for p in g["params"]]
        self.start = time.monotonic()
        for epoch in range(self.epochs):
            if epoch_start is not None:
                epoch_start(epoch)
            sums: dict[str, float] = {}
            done = 0
            for i in range(self.steps_per_epoch):
                if self.out_of_time():
                    break  # the budget ends the run mid-epoch; the learning rate is already at its floor
                loss, parts = step_fn(epoch, i)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.clip_norm:
                    torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
                for group in self.optimizer.param_groups:
                    group["lr"] = self.lr()
                self.optimizer.step()
                self.global_step += 1
                for k, v in {"loss": float(loss.detach()), **parts}.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                done += 1
                if self.log_every and done % self.log_every == 0:
                    print(f"  step {done}/{self.steps_per_epoch} loss {sums['loss'] / done:.3f} lr {self.lr():.2e} "
                          f"{self.elapsed():.0f} s", flush=True)
            if done == 0:
                break
            row = {"epoch": epoch + 1, "steps": done, **{k: v / done for k, v in sums.items()},
                   "elapsed_s": round(self.elapsed(), 1)}
            self.history.append(row)
            print(json.dumps(row), flush=True)
            if epoch_end is not None:
                epoch_end(epoch)
            if self.out_of_time():
                print(f"time budget of {self.time_budget_min} min reached after epoch {epoch + 1}", flush=True)
                break
        self.train_seconds = self.elapsed()
        return self.history


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, batches) -> None:
    """Replace every BatchNorm's running statistics by their plain (cumulative) average over
    ``batches`` at the current weights; each layer keeps its own momentum afterwards. Leaves the
    model in training mode."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for x in batches:
        model(x)
    for m, momentum in zip(bns, saved):
        m.momentum = momentum


def save_checkpoint(state: dict, path: Path) -> None:
    """``torch.save`` written atomically (caper_edge.atomic): a run killed mid-write (a time limit
    on a lent GPU) leaves the previous checkpoint whole."""
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def write_report(out: Path, script: str, argv: list[str], onnx_path: Path, loop: TrainLoop, threads: int,
                 **extra) -> dict:
    """OUT/train.json: the exact command, the run's facts and the per-epoch losses."""
    report = {
        "command": f"python -m models.{script} " + " ".join(argv),
        **extra,
        "epochs_run": len(loop.history), "train_seconds": round(loop.train_seconds, 1), "threads": threads,
        "torch": torch.__version__, "onnx": str(onnx_path), "onnx_bytes": onnx_path.stat().st_size,
        "history": loop.history,
    }
    (out / "train.json").write_text(json.dumps(report, indent=1))
    return report
