"""Train the item/hand detector and export it to ONNX.

    python -m models.train_detector --data DIR --epochs 30 --seed 0 --out models/out/detector

DIR is the training-data layout (models/README.md). Writes OUT/detector.onnx (YOLOv8 output
layout, see models/detector.py), OUT/detector.pt (weights) and OUT/train.json (arguments,
per-epoch losses, wall time). CPU only; keep --threads at 1-2 on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from .data import augment_detection, load_detection_set
from .detector import TinyDetector, anchor_points, detection_loss
from .export import export_detector


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    t0 = time.monotonic()
    images, targets = load_detection_set(args.data, args.size, args.limit)
    print(f"loaded {len(images)} frames from {args.data} in {time.monotonic() - t0:.0f} s", flush=True)
    model = TinyDetector(num_classes=2)
    if args.init:
        model.load_state_dict(torch.load(args.init))
        print(f"initialised from {args.init}", flush=True)
    points, strides = anchor_points(args.size, args.size)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = max(1, len(images) // args.batch)
    total = args.epochs * steps_per_epoch
    warmup = min(200, total // 10)
    start = time.monotonic()
    budget_s = args.time_budget_min * 60 if args.time_budget_min else None

    def lr_at(step: int) -> float:
        # Linear warm-up, then cosine decay over the steps or, with a time budget, over whichever
        # runs out first, so that a run stopped by the budget still ends at a low learning rate.
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if budget_s:
            progress = max(progress, (time.monotonic() - start) / budget_s)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    global_step = 0
    frozen = False

    def progress() -> float:
        p = global_step / max(1, total)
        return max(p, (time.monotonic() - start) / budget_s) if budget_s else p

    def augmented_batch(idx) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, tgts = [], []
        for i in idx:
            img, t = augment_detection(images[i], targets[i], rng)
            batch.append(img)
            tgts.append(torch.from_numpy(t))
        return torch.from_numpy(np.stack(batch).transpose(0, 3, 1, 2).copy()).float().div_(255.0), tgts
    history = []
    for epoch in range(args.epochs):
        model.train()
        set_bn_frozen(model, frozen)
        order = rng.permutation(len(images))
        sums = {"loss": 0.0, "cls": 0.0, "box": 0.0}
        done = 0
        for step in range(steps_per_epoch):
            if budget_s and time.monotonic() - start > budget_s:
                break  # the budget ends the run mid-epoch; the learning rate is already at its floor
            if not frozen and progress() >= args.freeze_bn_at:
                # The deployed network normalises with running statistics; train the last part
                # that way too (after re-estimating them), so eval-mode outputs are what was trained.
                recalibrate_bn(model, [augmented_batch(rng.choice(len(images), args.batch))[0] for _ in range(args.bn_batches)])
                set_bn_frozen(model, True)
                frozen = True
                print(f"  BatchNorm statistics re-estimated and frozen at step {global_step}", flush=True)
            idx = order[step * args.batch : (step + 1) * args.batch]
            x, tgts = augmented_batch(idx)
            ltrb, logits = model(x)
            loss, parts = detection_loss(ltrb, logits, tgts, points, strides)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            for group in opt.param_groups:
                group["lr"] = lr_at(global_step)
            opt.step()
            global_step += 1
            sums["loss"] += float(loss.detach())
            sums["cls"] += parts["cls"]
            sums["box"] += parts["box"]
            done += 1
            if done % 25 == 0:
                print(f"  step {done}/{steps_per_epoch} loss {sums['loss'] / done:.3f} lr {lr_at(global_step):.2e} "
                      f"{time.monotonic() - start:.0f} s", flush=True)
        if done == 0:
            break
        row = {"epoch": epoch + 1, "steps": done, **{k: v / done for k, v in sums.items()},
               "elapsed_s": round(time.monotonic() - start, 1)}
        history.append(row)
        print(json.dumps(row), flush=True)
        if budget_s and time.monotonic() - start > budget_s:
            print(f"time budget of {args.time_budget_min} min reached after epoch {epoch + 1}", flush=True)
            break
    train_s = time.monotonic() - start
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "detector.pt")
    onnx_path = export_detector(model, args.out / "detector.onnx", args.size)
    report = {
        "command": "python -m models.train_detector " + " ".join(args.argv),
        "data": str(args.data), "seed": args.seed, "frames": len(images), "epochs_run": len(history),
        "train_seconds": round(train_s, 1), "threads": args.threads, "torch": torch.__version__,
        "onnx": str(onnx_path), "onnx_bytes": onnx_path.stat().st_size, "history": history, "bn_frozen": frozen,
    }
    (args.out / "train.json").write_text(json.dumps(report, indent=1))
    return report


def set_bn_frozen(model: torch.nn.Module, frozen: bool) -> None:
    """BatchNorm layers use (and stop updating) their running statistics when ``frozen``."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train(not frozen)


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    """Replace running statistics by their plain average over ``batches`` at the current weights."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for x in batches:
        model(x)
    for m in bns:
        m.momentum = 0.1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m models.train_detector", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="training-data folder (images/, labels/)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, default=320, help="input size in pixels (square)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--limit", type=int, help="use only the first N frames")
    ap.add_argument("--freeze-bn-at", type=float, default=0.7, help="training progress (0..1) at which BatchNorm is frozen")
    ap.add_argument("--bn-batches", type=int, default=20, help="batches used to re-estimate BatchNorm statistics")
    ap.add_argument("--init", type=Path, help="start from these weights (detector.pt of an earlier run)")
    ap.add_argument("--time-budget-min", type=float, help="stop after the epoch that passes this many minutes")
    import sys

    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    report = train(parse(argv))
    print(f"wrote {report['onnx']} ({report['onnx_bytes'] / 1e6:.2f} MB) after {report['train_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
