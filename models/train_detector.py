"""Train the item/hand detector and export it to ONNX.

    python -m models.train_detector --data DIR --epochs 30 --seed 0 --out models/out/detector

DIR is the training-data layout (models/README.md). Writes OUT/detector.onnx (YOLOv8 output
layout, see models/detector.py), OUT/detector.pt (weights, also after every epoch) and
OUT/train.json (arguments, per-epoch losses, wall time). On a shared CPU keep --threads at 1-2;
on a GPU use --device cuda --workers N --batch 64 (models/batches.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from .batches import cpu_state, start_batches
from .data import augment_detection, image_files, label_file, load_detection_set
from .detector import TinyDetector, anchor_points, detection_loss
from .export import export_detector
from .trainloop import TrainLoop, recalibrate_bn, save_checkpoint, write_report


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    t0 = time.monotonic()
    images, targets = load_detection_set(args.data, args.size, args.limit, threads=max(1, args.workers))
    print(f"loaded {len(images)} frames from {args.data} in {time.monotonic() - t0:.0f} s", flush=True)
    weights = frame_weights(args.data, args.limit, args.edge_weight)
    if args.edge_weight != 1.0:
        print(f"{int(np.sum(weights != 1.0))} frames with an item cut by the image edge drawn {args.edge_weight}x as often",
              flush=True)
    steps_per_epoch = max(1, len(images) // args.batch)

    def make_batch(task: tuple[np.ndarray, int]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Augmented frames (B, 3, S, S) uint8 and their targets, from sample indices and a seed."""
        idx, seed = task
        r = np.random.default_rng(seed)
        pairs = [augment_detection(images[i], targets[i], r) for i in idx]
        batch = np.stack([np.rint(img).astype(np.uint8) for img, _ in pairs]).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch), [t for _, t in pairs]

    def tasks():
        # An epoch draws as many frames as the set holds, without replacement while the weights allow.
        p = weights / weights.sum()
        while True:
            order = rng.choice(len(images), size=steps_per_epoch * args.batch, replace=bool(np.any(weights != 1.0)), p=p)
            for i in range(steps_per_epoch):
                yield order[i * args.batch : (i + 1) * args.batch], int(rng.integers(2**63))

    prefetch, batches, device = start_batches(make_batch, tasks(), args.workers, args.device)

    def to_device(batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, tgts = batch
        x = torch.from_numpy(x).to(device, non_blocking=True).float().div_(255.0)
        return x, [torch.from_numpy(t).to(device) for t in tgts]

    model = TinyDetector(num_classes=2)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
        print(f"initialised from {args.init}", flush=True)
    model.to(device)
    points, strides = anchor_points(args.size, args.size, device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    loop = TrainLoop(opt, args.lr, args.epochs, steps_per_epoch, warmup=min(200, args.epochs * steps_per_epoch // 10),
                     time_budget_min=args.time_budget_min, clip_norm=10.0, log_every=25)
    state = {"frozen": False}
    args.out.mkdir(parents=True, exist_ok=True)

    def epoch_start(epoch: int) -> None:
        model.train()
        set_bn_frozen(model, state["frozen"])

    def step(epoch: int, i: int):
        if not state["frozen"] and loop.progress() >= args.freeze_bn_at:
            # The deployed network normalises with running statistics; train the last part
            # that way too (after re-estimating them), so eval-mode outputs are what was trained.
            recalibrate_bn(model, [to_device(next(batches))[0] for _ in range(args.bn_batches)])
            set_bn_frozen(model, True)
            state["frozen"] = True
            print(f"  BatchNorm statistics re-estimated and frozen at step {loop.global_step}", flush=True)
        x, tgts = to_device(next(batches))
        ltrb, logits = model(x)
        loss, parts = detection_loss(ltrb, logits, tgts, points, strides)
        return loss, {"cls": parts["cls"], "box": parts["box"]}

    def epoch_end(epoch: int) -> None:
        save_checkpoint(cpu_state(model), args.out / "detector.pt")

    try:
        loop.run(step, epoch_start, epoch_end=epoch_end)
    finally:
        prefetch.close()
    model.cpu().eval()
    save_checkpoint(cpu_state(model), args.out / "detector.pt")
    onnx_path = export_detector(model, args.out / "detector.onnx", args.size)
    return write_report(args.out, "train_detector", args.argv, onnx_path, loop, args.threads, data=str(args.data),
                        seed=args.seed, frames=len(images), edge_weight=args.edge_weight, bn_frozen=state["frozen"],
                        device=str(device), workers=args.workers, batch=args.batch)


def frame_weights(root: Path, limit: int | None, edge_weight: float, margin: float = 0.004) -> np.ndarray:
    """Sampling weight per frame of ``root`` (the order of ``load_detection_set``): ``edge_weight``
    for frames with an item box (class 0) that touches the image edge -- in the cart's view, a
    product carried in or out over the rim, cut by the frame and seen for only a few frames -- and
    1 for the rest. Read from the YOLO labels (normalised; ``margin`` in image fractions)."""
    if edge_weight <= 0:
        raise ValueError(f"edge_weight must be > 0, got {edge_weight}")
    files = image_files(root)[:limit]
    w = np.ones(len(files))
    for i, path in enumerate(files):
        lf = label_file(root, path)
        if not lf.exists():
            continue
        for line in lf.read_text().split("\n"):
            if not line.strip():
                continue
            c, cx, cy, bw, bh = (float(v) for v in line.split()[:5])
            if int(c) == 0 and (cx - bw / 2 <= margin or cy - bh / 2 <= margin
                                or cx + bw / 2 >= 1 - margin or cy + bh / 2 >= 1 - margin):
                w[i] = edge_weight
                break
    return w


def set_bn_frozen(model: torch.nn.Module, frozen: bool) -> None:
    """BatchNorm layers use (and stop updating) their running statistics when ``frozen``."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train(not frozen)


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
    ap.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (default %(default)s)")
    ap.add_argument("--workers", type=int, default=0,
                    help="processes that make augmented batches ahead of the step (0: inline; use several on a GPU)")
    ap.add_argument("--limit", type=int, help="use only the first N frames")
    ap.add_argument("--freeze-bn-at", type=float, default=0.7, help="training progress (0..1) at which BatchNorm is frozen")
    ap.add_argument("--bn-batches", type=int, default=20, help="batches used to re-estimate BatchNorm statistics")
    ap.add_argument("--init", type=Path, help="start from these weights (detector.pt of an earlier run)")
    ap.add_argument("--time-budget-min", type=float, help="stop after the epoch that passes this many minutes")
    ap.add_argument("--edge-weight", type=float, default=1.0,
                    help="sampling weight of frames with an item cut by the image edge (carried over the rim); 1 = uniform")
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
