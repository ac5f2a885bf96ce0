"""Train the product-crop embedding network (ArcFace-style margin) and export it to ONNX.

    python -m models.train_embedder --data DIR --epochs 20 --seed 0 --out models/out/embedder \
        --holdout-skus SKU034,SKU035,...

Crops come from DIR/crops/<SKU>/. SKUs named in --holdout-skus are never trained on: the
evaluation enrolls them afterwards to show that new SKUs need no retraining, and uses some as
"unknown" queries for the open-set ROC. Writes OUT/embedder.onnx, OUT/embedder.pt (also after
every epoch), OUT/train.json. On a GPU: --device cuda --workers N (models/batches.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from caper_edge.sim.catalog import DISTRACTOR_PREFIX

from .batches import cpu_state, start_batches
from .data import augment_crop, crop_batch, load_crops
from .embedder import CROP_SIZE, ArcMarginHead, EmbeddingNet
from .export import export_embedder
from .trainloop import TrainLoop, save_checkpoint, write_report


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

    def make_batch(task: tuple[list[int], int]) -> tuple[np.ndarray, np.ndarray]:
        """Augmented, preprocessed crops (B, 3, S, S) float32 and their class numbers."""
        idx, seed = task
        r = np.random.default_rng(seed)
        return crop_batch([augment_crop(crops[i], r) for i in idx], CROP_SIZE), y_all[idx]

    # Distractor identities (RND-..., caper_edge.sim.catalog.distractors) can outnumber the store's
    # SKUs many times over: the store's SKUs keep --store-share of each batch's identities.
    store = np.array([not s.startswith(DISTRACTOR_PREFIX) for s in skus])
    pick_p = None
    if store.any() and not store.all():
        pick_p = np.where(store, args.store_share / store.sum(), (1 - args.store_share) / (~store).sum())
        print(f"{int(store.sum())} store SKUs, {int((~store).sum())} distractor identities "
              f"(store share of a batch {args.store_share})", flush=True)

    def tasks():
        while True:
            # P SKUs x K views: every batch holds positives for every anchor.
            chosen = rng.choice(len(skus), size=min(args.p, len(skus)), replace=False, p=pick_p)
            yield [int(rng.choice(by_sku[skus[c]])) for c in chosen for _ in range(args.k)], int(rng.integers(2**63))

    prefetch, batches, device = start_batches(make_batch, tasks(), args.workers, args.device)

    model = EmbeddingNet()
    head = ArcMarginHead(model.proj.out_features, len(skus), scale=args.scale, margin=args.margin)
    if args.init:
        # Continue from saved weights; the class centres are "imprinted" as the mean embedding
        # of each SKU's crops, so the margin loss starts where the network already is.
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
        model.eval()
        with torch.no_grad():
            for c, sku in enumerate(skus):
                idx = by_sku[sku][:20]
                head.weight[c] = model(torch.from_numpy(crop_batch([crops[i] for i in idx], CROP_SIZE))).mean(0)
        print(f"initialised from {args.init}", flush=True)
    model.to(device)
    head.to(device)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = max(1, len(crops) // (args.p * args.k))
    loop = TrainLoop(opt, args.lr, args.epochs, steps_per_epoch, warmup=100, time_budget_min=args.time_budget_min)
    args.out.mkdir(parents=True, exist_ok=True)

    def step(epoch: int, i: int):
        x, y = next(batches)
        return head(model(torch.from_numpy(x).to(device)), torch.from_numpy(y).to(device)), {}

    try:
        loop.run(step, lambda epoch: model.train(), params,
                 epoch_end=lambda epoch: save_checkpoint(cpu_state(model), args.out / "embedder.pt"))
    finally:
        prefetch.close()
    model.cpu().eval()
    save_checkpoint(cpu_state(model), args.out / "embedder.pt")
    onnx_path = export_embedder(model, args.out / "embedder.onnx", CROP_SIZE)
    return write_report(args.out, "train_embedder", args.argv, onnx_path, loop, args.threads, data=str(args.data),
                        seed=args.seed, crops=len(crops), train_skus=[s for s, own in zip(skus, store) if own],
                        distractor_identities=int((~store).sum()), store_share=args.store_share if pick_p is not None else None,
                        holdout_skus=sorted(holdout),
                        device=str(device), workers=args.workers, batch=args.p * args.k)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m models.train_embedder", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="training-data folder (crops/<SKU>/)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--holdout-skus", default="", help="comma-separated SKUs never trained on")
    ap.add_argument("--p", type=int, default=16, help="SKUs per batch")
    ap.add_argument("--k", type=int, default=4, help="views per SKU per batch")
    ap.add_argument("--store-share", type=float, default=0.5,
                    help="share of a batch's identities drawn from the store's SKUs when distractor "
                         "identities (crops/RND-*) are present (default %(default)s)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--scale", type=float, default=30.0, help="ArcFace logit scale s")
    ap.add_argument("--margin", type=float, default=0.3, help="ArcFace angular margin m (radians)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (default %(default)s)")
    ap.add_argument("--workers", type=int, default=0,
                    help="processes that make augmented batches ahead of the step (0: inline; use several on a GPU)")
    ap.add_argument("--per-sku-limit", type=int, help="at most this many crops per SKU")
    ap.add_argument("--time-budget-min", type=float)
    ap.add_argument("--init", type=Path, help="start from these weights (embedder.pt of an earlier run)")
    args = ap.parse_args(argv)
    if not 0.0 < args.store_share < 1.0:
        ap.error(f"--store-share {args.store_share}: expected a share strictly between 0 and 1")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    report = train(parse(argv))
    print(f"wrote {report['onnx']} ({report['onnx_bytes'] / 1e6:.2f} MB) after {report['train_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
