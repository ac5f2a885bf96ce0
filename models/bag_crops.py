"""Product crops as the cart sees them: the detector's boxes in recorded sessions, labelled by the
bags' ground truth.

The simulator's training-data generator (``caper_edge.sim.dataset``) crops each product's true
visible box. The cart crops what its *detector* returns: boxes that are looser or tighter, cut
by the image edge while a product is carried in, partly covered by a hand or by another product.
An embedder trained, and a gallery enrolled, only on the first kind meets the second kind for
the first time on the cart. This tool runs the runtime's own vision path
(:func:`caper_edge.replay.open_model_vision`: the configured or packaged detector, the crop rule
of :class:`caper_edge.replay.ModelVision`) over bags that carry ground-truth objects
(simulator bags do), matches every item detection to the ground-truth item it overlaps most
(IoU >= ``--min-iou``), and writes the crop under that object's SKU:

    OUT/crops/<SKU>/<bag>_<frame>_<row>.png      the training-data layout (models/README.md)
    OUT/crops.json                                per crop: bag, frame, t_ns, sku, iou, visible,
                                                  in_basket, score; and the arguments

``python -m models.train_embedder --data OUT`` trains on them (mix them with generator crops by
pointing both at one folder of links), and ``python -m models.release --extra-views OUT``
enrolls some of them as additional gallery views.

Use bags made with other seeds than the ones you evaluate on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from caper_edge.embedding import crop_box
from caper_edge.evaluation.metrics import box_iou

__all__ = ["match_crops", "main"]


def match_crops(image: np.ndarray, xyxy: np.ndarray, class_id: np.ndarray, objects: list[dict], *,
                item_class: int = 0, min_iou: float = 0.5) -> list[tuple[int, dict, float, np.ndarray]]:
    """(detection row, ground-truth object, IoU, crop) for every item detection whose best
    ground-truth item overlaps it by at least ``min_iou``. The crop is the runtime's
    (:func:`caper_edge.embedding.crop_box`); boxes it does not embed are skipped."""
    items = [o for o in objects if o.get("class") == "item" and o.get("sku") and len(o.get("xyxy", ())) == 4]
    rows = np.flatnonzero(np.asarray(class_id) == item_class)
    if not items or not len(rows):
        return []
    ious = box_iou(np.asarray(xyxy)[rows], np.array([o["xyxy"] for o in items]))
    out = []
    for r, row in enumerate(rows):
        j = int(np.argmax(ious[r]))
        crop = crop_box(image, xyxy[row]) if ious[r, j] >= min_iou else None
        if crop is not None:
            out.append((int(row), items[j], float(ious[r, j]), crop))
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m models.bag_crops", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="output folder (crops/<SKU>/ and crops.json are written there)")
    ap.add_argument("bags", type=Path, nargs="+", help="bags with ground-truth objects (simulator bags)")
    ap.add_argument("--every", type=int, default=4, help="use every N-th frame (neighbouring frames are near copies)")
    ap.add_argument("--min-iou", type=float, default=0.5, help="least IoU of a detection with its ground-truth item")
    ap.add_argument("--config", default="sim-cart", help="configuration (profile name or TOML path) for the models")
    args = ap.parse_args(argv)
    if args.every < 1:
        ap.error(f"--every {args.every}: expected an integer >= 1")
    if not 0.0 < args.min_iou <= 1.0:
        ap.error(f"--min-iou {args.min_iou}: expected a number in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    from caper_edge import config
    from caper_edge.atomic import atomic_write_bytes
    from caper_edge.errors import CaperError
    from caper_edge.replay import open_model_vision
    from caper_edge.sources import BagSource
    from caper_edge.sources.messages import Frame

    args = parse(argv)
    try:
        cfg = config.load(args.config)
        vision = open_model_vision(cfg)
    except CaperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows: list[dict] = []
    (args.out / "crops").mkdir(parents=True, exist_ok=True)
    for bag in args.bags:
        n0, k, with_truth = len(rows), 0, 0
        try:
            with BagSource(bag, speed="max", decode=True) as src:
                for msg in src:
                    if not isinstance(msg, Frame):
                        continue
                    k += 1
                    if (k - 1) % args.every:
                        continue
                    if not msg.objects:
                        continue
                    with_truth += 1
                    obs = vision(msg)
                    image = msg.decode()
                    for row, obj, iou, crop in match_crops(image, obs.xyxy, obs.class_id, msg.objects,
                                                           min_iou=args.min_iou):
                        folder = args.out / "crops" / obj["sku"]
                        folder.mkdir(exist_ok=True)
                        name = f"{bag.name}_{k:06d}_{row}.png"
                        if not cv2.imwrite(str(folder / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)):
                            raise OSError(f"could not write {folder / name} (disk full?)")
                        rows.append({"file": f"{obj['sku']}/{name}", "bag": bag.name, "frame": k, "t_ns": msg.t_ns,
                                     "sku": obj["sku"], "iou": round(iou, 4), "visible": obj.get("visible"),
                                     "in_basket": obj.get("in_basket"), "score": round(float(obs.score[row]), 4)})
        except CaperError as exc:
            print(f"error: bag {bag}: {exc}", file=sys.stderr)
            return 2
        if k and not with_truth:
            print(f"error: bag {bag} has no ground-truth objects on its frames (simulator bags have them)",
                  file=sys.stderr)
            return 2
        print(f"{bag.name}: {len(rows) - n0} crops from {k} frames", flush=True)
    meta = {"args": {"bags": [str(b) for b in args.bags], "every": args.every, "min_iou": args.min_iou,
                     "config": args.config}, "crops": rows}
    atomic_write_bytes(args.out / "crops.json", json.dumps(meta, indent=0).encode())
    skus = sorted({r["sku"] for r in rows})
    print(f"{len(rows)} crops of {len(skus)} SKUs in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
