"""Train the product-crop embedding network (ArcFace-style margin) and export it to ONNX.

    python -m models.train_embedder --data DIR --epochs 20 --seed 0 --out models/out/embedder \
        --holdout-skus SKU034,SKU035,...

Crops come from DIR/crops/<SKU>/. SKUs named in --holdout-skus are never trained on: the
evaluation enrolls them afterwards to show that new SKUs need no retraining, and uses some as
"unknown" queries for the open-set ROC. Writes OUT/embedder.onnx, OUT/embedder.pt, OUT/train.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .data import augment_crop, crop_batch, load_crops
from .embedder import CROP_SIZE, ArcMarginHead, EmbeddingNet
from .export import export_embedder


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    crops, labels = load_crops(args.data, per_sku_limit=args.per_sku_limit)
    holdout = set(filter(None, args.holdout_skus.split(","))) if args.holdout_skus else set()
    keep = [i for i, s in enumerate(labels) if s not in holdout]
    crops, labels = [crops[i] for i in keep], [labels[i] for i in keep]
    skus = sorted(set(labels))
    by_sku = {s: [i for i, l in enumerate(labels) if l == s] for s in skus}
    y_all = np.array([skus.index(l) for l in labels])
    print(f"{len(crops)} crops of {len(skus)} SKUs (held out: {sorted(holdout)})", flush=True)

    model = EmbeddingNet()
    head = ArcMarginHead(model.proj.out_features, len(skus), scale=args.scale, margin=args.margin)
    if args.init:
        # Continue from saved weights; the class centres are "imprinted" as the mean embedding
        # of each SKU's crops, so the margin loss starts where the network already is.
        model.load_state_dict(torch.load(args.init))
        model.eval()
        with torch.no_grad():
            for c, sku in enumerate(skus):
                idx = by_sku[sku][:20]
                head.weight[c] = model(torch.from_numpy(crop_batch([crops[i] for i in idx], CROP_SIZE))).mean(0)
        print(f"initialised from {args.init}", flush=True)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = max(1, len(crops) // (args.p * args.k))
    total = args.epochs * steps_per_epoch
    history, start = [], time.monotonic()
    budget_s = args.time_budget_min * 60 if args.time_budget_min else None

    def lr_at(step: int) -> float:
        # Warm-up, then cosine over the steps or the time budget, whichever runs out first.
        progress = step / total
        if budget_s:
            progress = max(progress, (time.monotonic() - start) / budget_s)
        return args.lr * min(1.0, (step + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    global_step = 0
    for epoch in range(args.epochs):
        model.train()
        loss_sum = 0.0
        done = 0
        for _ in range(steps_per_epoch):
            if budget_s and time.monotonic() - start > budget_s:
                break
            # P SKUs x K views: every batch holds positives for every anchor.
            chosen = rng.choice(len(skus), size=min(args.p, len(skus)), replace=False)
            idx = [int(rng.choice(by_sku[skus[c]])) for c in chosen for _ in range(args.k)]
            x = torch.from_numpy(crop_batch([augment_crop(crops[i], rng) for i in idx], CROP_SIZE))
            y = torch.from_numpy(y_all[idx])
            loss = head(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for group in opt.param_groups:
                group["lr"] = lr_at(global_step)
            opt.step()
            global_step += 1
            loss_sum += float(loss.detach())
            done += 1
        if done == 0:
            break
        row = {"epoch": epoch + 1, "steps": done, "loss": loss_sum / done, "elapsed_s": round(time.monotonic() - start, 1)}
        history.append(row)
        print(json.dumps(row), flush=True)
        if budget_s and time.monotonic() - start > budget_s:
            print(f"time budget of {args.time_budget_min} min reached after epoch {epoch + 1}", flush=True)
            break
    train_s = time.monotonic() - start
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "embedder.pt")
    onnx_path = export_embedder(model, args.out / "embedder.onnx", CROP_SIZE)
    report = {
        "command": "python -m models.train_embedder " + " ".join(args.argv),
        "data": str(args.data), "seed": args.seed, "crops": len(crops), "train_skus": skus, "holdout_skus": sorted(holdout),
        "epochs_run": len(history), "train_seconds": round(train_s, 1), "threads": args.threads, "torch": torch.__version__,
        "onnx": str(onnx_path), "onnx_bytes": onnx_path.stat().st_size, "history": history,
    }
    (args.out / "train.json").write_text(json.dumps(report, indent=1))
    return report


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m models.train_embedder", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="training-data folder (crops/<SKU>/)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--holdout-skus", default="", help="comma-separated SKUs never trained on")
    ap.add_argument("--p", type=int, default=16, help="SKUs per batch")
    ap.add_argument("--k", type=int, default=4, help="views per SKU per batch")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--scale", type=float, default=30.0, help="ArcFace logit scale s")
    ap.add_argument("--margin", type=float, default=0.3, help="ArcFace angular margin m (radians)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--per-sku-limit", type=int, help="at most this many crops per SKU")
    ap.add_argument("--time-budget-min", type=float)
    ap.add_argument("--init", type=Path, help="start from these weights (embedder.pt of an earlier run)")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    report = train(parse(argv))
    print(f"wrote {report['onnx']} ({report['onnx_bytes'] / 1e6:.2f} MB) after {report['train_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
