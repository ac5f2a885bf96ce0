"""Training data straight from the simulator: images, YOLO labels, and labelled product crops.

Each image is an independent random scene (0-12 products resting, stacked where the floor is
full, 0-2 hands over the basket, half of them holding a product, random light, exposure, sensor
noise and motion blur), rendered by the same renderer as the bags. Layout of ``OUT``::

    images/<split>_000000.jpg        640x480 colour frames (JPEG q90)
    labels/<split>_000000.txt        YOLO: "class cx cy w h" normalised; class 0 item, 1 hand
    crops/<SKU>/<split>_000000_<id>.png   product crops cut from the same frames (8 % margin),
                                          occluded, blurred and lit as they are in the frame
    crops.csv                        one row per crop: path, sku, visible, carried, image
    data.yaml                        Ultralytics dataset file (names: item, hand)
    manifest.json                    split, seed, frames, counts, catalog and generator versions

Boxes are the *visible* extent of each object (what a detector can see); objects with less than
``min_visible`` of their area visible are left out of the labels. Held-out splits: each image's
random stream is seeded by (seed, split name, image index), so ``--split val`` differs from
``--split train`` even with the same ``--seed``; use different seeds for splits you compare
against each other.

    python -m caper_edge.sim.dataset OUT --split train --seed 1 --frames 5000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..scale.loadcell import LoadCellModel
from .catalog import CATALOG_VERSION, catalog
from .catalog import distractors as distractor_skus
from .geometry import CartGeometry
from .render import Effects, Renderer
from .world import Carry, World

__all__ = ["GENERATOR_VERSION", "generate", "main"]

GENERATOR_VERSION = 1
CLASSES = ("item", "hand")
_CAL = ((0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0))


def generate(
    out: str | os.PathLike[str],
    *,
    split: str = "train",
    seed: int = 0,
    frames: int = 1000,
    skus: Sequence[str] | None = None,
    min_visible: float = 0.15,
    crop_min_visible: float = 0.35,
    distractors: int = 0,
    distractor_share: float = 0.5,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ``frames`` images with labels and crops to ``out``; returns the manifest.

    ``distractors`` > 0 adds that many products from outside the store
    (:func:`caper_edge.sim.catalog.distractors`, drawn from ``seed``), each item of a scene being
    one of them with probability ``distractor_share``; their crops go to ``crops/RND-.../``."""
    out = Path(out)
    if frames < 1:
        raise InputError(f"frames = {frames}: expected at least 1")
    if distractors < 0 or not 0.0 <= distractor_share <= 1.0:
        raise InputError(f"distractors = {distractors}, distractor_share = {distractor_share}: expected a count >= 0 "
                         "and a share in [0, 1]")
    if not split.replace("-", "").replace("_", "").isalnum():
        raise InputError(f"split {split!r}: expected letters, digits, '-' or '_'")
    pool = [s for s in catalog() if skus is None or s.sku in set(skus)]
    if skus is not None and len(pool) != len(set(skus)):
        unknown = sorted(set(skus) - {s.sku for s in catalog()})
        raise InputError(f"unknown SKU(s) {', '.join(unknown)}; the catalog has SKU-0001..SKU-{len(catalog()):04d}")
    if out.exists():
        if not overwrite and any(out.iterdir()):
            raise InputError(f"output {out} exists and is not empty; choose another folder or pass --overwrite")
        shutil.rmtree(out)
    for sub in ("images", "labels", "crops"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    pick = _picker(pool, distractor_skus(distractors, seed) if distractors else (), distractor_share)
    split_key = zlib.crc32(split.encode())
    renderer = Renderer(CartGeometry(), seed)
    counts = {"images": 0, "boxes": 0, "items": 0, "hands": 0, "crops": 0}
    rows = ["path,sku,visible,carried,image"]
    for i in range(frames):
        name = f"{split}_{i:06d}"
        rng = np.random.default_rng([seed, split_key, i])
        color, objects, carried = _scene(renderer, rng, pick, int(rng.integers(1 << 31)))
        cv2.imwrite(str(out / "images" / f"{name}.jpg"), cv2.cvtColor(color, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        labels = []
        for o in objects:
            if o["visible"] < min_visible:
                continue
            x0, y0, x1, y1 = o["xyxy"]
            cls = CLASSES.index(o["class"])
            labels.append(f"{cls} {(x0 + x1) / 2 / 640:.6f} {(y0 + y1) / 2 / 480:.6f} {(x1 - x0) / 640:.6f} {(y1 - y0) / 480:.6f}")
            counts["items" if cls == 0 else "hands"] += 1
            if cls == 0 and o["visible"] >= crop_min_visible and min(x1 - x0, y1 - y0) >= 16:
                crop = _crop(color, o["xyxy"])
                rel = Path("crops") / o["sku"] / f"{name}_{o['id']}.png"
                (out / rel).parent.mkdir(exist_ok=True)
                cv2.imwrite(str(out / rel), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
                rows.append(f"{rel.as_posix()},{o['sku']},{o['visible']:.3f},{int(o['id'] in carried)},images/{name}.jpg")
                counts["crops"] += 1
        (out / "labels" / f"{name}.txt").write_text("\n".join(labels) + ("\n" if labels else ""))
        counts["images"] += 1
        counts["boxes"] += len(labels)
        if progress is not None:
            progress(i + 1, frames)
    (out / "crops.csv").write_text("\n".join(rows) + "\n")
    (out / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames:\n  0: {CLASSES[0]}\n  1: {CLASSES[1]}\n")
    manifest = {
        "split": split, "seed": seed, "frames": frames, "generator_version": GENERATOR_VERSION,
        "catalog_version": CATALOG_VERSION, "skus": [s.sku for s in pool], "distractors": distractors,
        "distractor_share": distractor_share if distractors else 0.0, "min_visible": min_visible,
        "crop_min_visible": crop_min_visible, **counts,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _crop(color: np.ndarray, xyxy: list[float], margin: float = 0.08) -> np.ndarray:
    x0, y0, x1, y1 = xyxy
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    h, w = color.shape[:2]
    a, b = max(int(x0 - mx), 0), max(int(y0 - my), 0)
    c, d = min(int(math.ceil(x1 + mx)), w), min(int(math.ceil(y1 + my)), h)
    return color[b:d, a:c].copy()


def _picker(pool, extra, share: float):
    """rng -> the product of one new item: from ``pool``, or from ``extra`` with probability ``share``."""
    if not extra:
        return lambda rng: pool[int(rng.integers(len(pool)))]
    return lambda rng: extra[int(rng.integers(len(extra)))] if rng.random() < share else pool[int(rng.integers(len(pool)))]


def _scene(renderer: Renderer, rng: np.random.Generator, pick, frame_seed: int):
    """One random basket scene: (colour RGB, ground-truth objects, ids of carried items)."""
    world = World(int(rng.integers(1 << 31)), renderer.geom, loadcell=LoadCellModel(_CAL, seed=0))
    n_items = int(rng.choice(13, p=_ITEM_COUNT_P))
    for _ in range(n_items):
        item = world.new_item(pick(rng))
        if world.find_spot(item, tries=20):
            item.t_rest = 0.0
            world.items[item.uid] = item
    _, static, _ = world.scene_at(0.0, 30.0)
    moving, carried = [], set()
    for _ in range(int(rng.choice(3, p=(0.35, 0.5, 0.15)))):
        parts, carried_id = _random_hand(world, rng, pick)
        moving.extend(parts)
        if carried_id is not None:
            carried.add(carried_id)
    level = float(rng.uniform(0.55, 1.45))
    tint = rng.normal(0, 0.06, 3)
    shake = rng.normal(0, 2.5, 2) if rng.random() < 0.25 else (0.0, 0.0)
    fx = Effects(gain=tuple(float(level * (1 + d)) for d in tint), shake_px=(0.0, 0.0),
                 shake_velocity_px=(float(shake[0]), float(shake[1])), noise_sigma=float(rng.uniform(1.0, 4.0)), seed=frame_seed)
    result = renderer.render(renderer.render_static(static), moving, fx, want_depth=False)
    return result.color, result.objects, carried


def _random_hand(world: World, rng: np.random.Generator, pick):
    """A hand somewhere over the basket, moving, holding a product half of the time."""
    g = world.geom
    hand, _ = world._new_hand(None)
    rx, ry = g.rim_half_mm
    x, y = float(rng.uniform(-rx, rx)), float(rng.uniform(-ry, ry))
    z = float(rng.uniform(80.0, g.rim_height_mm + 200.0))
    speed = float(rng.choice([0.0, rng.uniform(100, 900)]))  # mm/s; 0: holding still
    ang = float(rng.uniform(0, 2 * math.pi))
    dt = 1 / 30
    hand.keys = [(-dt, x - math.cos(ang) * speed * dt, y - math.sin(ang) * speed * dt, z), (0.0, x, y, z)]
    carried_id = None
    if rng.random() < 0.5:
        item = world.new_item(pick(rng))
        item.x, item.y, item.yaw = x, y, float(rng.uniform(-math.pi, math.pi))
        item.z_base = max(z - 2.0 - item.sprite.top_mm, 0.0)
        yaw = hand.yaw(0.0)
        hand.carries.append(Carry(item, -1.0, 1.0, (float(rng.normal(20, 15)), float(rng.normal(0, 15))),
                                  item.z_base - z, yaw))
        carried_id = item.uid
    return world._hand_parts(hand, 0.0, dt), carried_id


# Empty baskets are rare in training; mid-size baskets are common.
_ITEM_COUNT_P = np.array([0.03, 0.07, 0.09, 0.1, 0.1, 0.1, 0.1, 0.09, 0.08, 0.07, 0.06, 0.06, 0.05])
_ITEM_COUNT_P = _ITEM_COUNT_P / _ITEM_COUNT_P.sum()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m caper_edge.sim.dataset", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--split", default="train", help="split name (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    parser.add_argument("--frames", type=int, default=1000, help="images to write (default %(default)s)")
    parser.add_argument("--skus", nargs="*", help="only these SKUs (e.g. leave some out for open-set tests)")
    parser.add_argument("--distractors", type=int, default=0,
                        help="add this many products from outside the store (training identities for the embedder; default 0)")
    parser.add_argument("--distractor-share", type=float, default=0.5,
                        help="probability that an item is a distractor when --distractors > 0 (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    args = parser.parse_args(argv)
    try:
        m = generate(args.out, split=args.split, seed=args.seed, frames=args.frames, skus=args.skus, overwrite=args.overwrite,
                     distractors=args.distractors, distractor_share=args.distractor_share,
                     progress=lambda d, n: sys.stderr.write(f"\r{d}/{n}") if d % 50 == 0 or d == n else None)
    except InputError as exc:
        print(f"caper_edge.sim.dataset: {exc}", file=sys.stderr)
        return exc.exit_code
    sys.stderr.write("\n")
    print(f"wrote {m['images']} images, {m['boxes']} boxes ({m['items']} items, {m['hands']} hands), {m['crops']} crops to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
