"""A small stand-in generator of detector and crop training data, in the same on-disk layout as
the simulator's training-data generator (see models/README.md, "Data layout").

It exists so the model code has tests that run in seconds (tiny datasets made in the test) and so
training works before/without ``caper_edge.sim``. It draws a top view of a wire basket with
procedurally textured products (boxes, cans, bottles; some pairs look alike) and hands, with
occlusion, lighting gradients, blur and noise. It is simpler than the simulator; numbers from
models trained on it are labelled as such on the model card.

    python -m models.synthetic OUT --images 1500 --seed 1
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

W, H = 640, 480
ITEM, HAND = 0, 1


@dataclass(frozen=True)
class Product:
    sku: str
    shape: str                    # box | can | bottle
    size: tuple[int, int]         # width, height in pixels at 640x480
    base: tuple[int, int, int]    # RGB
    accent: tuple[int, int, int]
    pattern: str                  # stripes | band | dots | checker | logo
    lookalike_of: str | None = None


def make_catalog(num_skus: int = 40, seed: int = 7) -> list[Product]:
    """``num_skus`` products; every 6th SKU is a near copy (same look, other accent) of the previous one."""
    rng = np.random.default_rng(seed)
    shapes, patterns = ("box", "can", "bottle"), ("stripes", "band", "dots", "checker", "logo")
    out: list[Product] = []
    for i in range(num_skus):
        sku = f"SKU{i:03d}"
        if i % 6 == 5:
            p = out[-1]
            accent = tuple(int(c) for c in np.clip(np.array(p.accent) + rng.integers(-60, 61, 3), 0, 255))
            out.append(Product(sku, p.shape, p.size, p.base, accent, p.pattern, lookalike_of=p.sku))
            continue
        shape = shapes[i % 3]
        if shape == "box":
            size = (int(rng.integers(70, 150)), int(rng.integers(90, 170)))
        elif shape == "can":
            d = int(rng.integers(60, 95))
            size = (d, d)
        else:
            size = (int(rng.integers(45, 70)), int(rng.integers(130, 190)))
        base = tuple(int(c) for c in rng.integers(20, 236, 3))
        accent = tuple(int(c) for c in (255 - np.array(base) + rng.integers(-40, 41, 3)).clip(0, 255))
        out.append(Product(sku, shape, size, base, accent, patterns[int(rng.integers(0, 5))]))
    return out


def render_texture(p: Product) -> tuple[np.ndarray, np.ndarray]:
    """(RGBA-like) texture h x w x 3 uint8 and mask h x w bool of one product seen from above."""
    w, h = p.size
    tex = np.empty((h, w, 3), np.uint8)
    tex[:] = p.base
    a = p.accent
    if p.pattern == "stripes":
        for x in range(0, w, 14):
            cv2.rectangle(tex, (x, 0), (x + 5, h), a, -1)
    elif p.pattern == "band":
        cv2.rectangle(tex, (0, h // 3), (w, h // 3 + max(6, h // 5)), a, -1)
    elif p.pattern == "dots":
        for y in range(8, h, 18):
            for x in range(8, w, 18):
                cv2.circle(tex, (x, y), 4, a, -1)
    elif p.pattern == "checker":
        s = max(8, min(w, h) // 5)
        for y in range(0, h, s):
            for x in range(0, w, s):
                if (x // s + y // s) % 2:
                    tex[y : y + s, x : x + s] = a
    else:
        cv2.circle(tex, (w // 2, h // 2), max(6, min(w, h) // 4), a, -1)
        cv2.circle(tex, (w // 2, h // 2), max(3, min(w, h) // 8), p.base, -1)
    mask = np.zeros((h, w), np.uint8)
    if p.shape == "can":
        cv2.circle(mask, (w // 2, h // 2), min(w, h) // 2 - 1, 1, -1)
        cv2.circle(tex, (w // 2, h // 2), min(w, h) // 2 - 6, tuple(int(c * 0.8) for c in p.base), 2)
    elif p.shape == "bottle":
        cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 1, -1)
        cv2.rectangle(tex, (w // 2 - 5, 0), (w // 2 + 5, h // 6), (230, 230, 230), -1)
    else:
        mask[:] = 1
        cv2.rectangle(tex, (0, 0), (w - 1, h - 1), tuple(int(c * 0.6) for c in p.base), 2)
    return tex, mask.astype(bool)


def _background(rng: np.random.Generator) -> np.ndarray:
    img = np.empty((H, W, 3), np.float32)
    img[:] = rng.integers(90, 160, 3)
    step = int(rng.integers(18, 28))
    wire = tuple(float(c) for c in rng.integers(150, 220, 3))
    for x in range(int(rng.integers(0, step)), W, step):
        cv2.line(img, (x, 0), (x, H), wire, 2)
    for y in range(int(rng.integers(0, step)), H, step):
        cv2.line(img, (0, y), (W, y), wire, 2)
    return img


def _paste(img, labels, tex, mask, cx, cy, angle, scale):
    h, w = mask.shape
    M = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    M[:, 2] += (cx - w / 2, cy - h / 2)
    warped = cv2.warpAffine(tex.astype(np.float32), M, (W, H), flags=cv2.INTER_LINEAR)
    m = cv2.warpAffine(mask.astype(np.uint8), M, (W, H), flags=cv2.INTER_NEAREST).astype(bool)
    img[m] = warped[m]
    for lab in labels:  # later objects occlude earlier ones
        lab["mask"] &= ~m
    return m


def _hand_texture(rng) -> tuple[np.ndarray, np.ndarray]:
    skin = np.array([rng.integers(150, 235), rng.integers(100, 170), rng.integers(70, 130)], np.uint8)
    tex = np.empty((170, 120, 3), np.uint8)
    tex[:] = skin
    mask = np.zeros((170, 120), np.uint8)
    cv2.ellipse(mask, (60, 95), (45, 55), 0, 0, 360, 1, -1)
    for k, x in enumerate((28, 48, 68, 88)):
        cv2.rectangle(mask, (x - 7, 10 + 6 * abs(k - 1.5).__round__()), (x + 7, 80), 1, -1)
    cv2.rectangle(mask, (95, 70), (118, 90), 1, -1)   # thumb
    shade = (tex.astype(np.float32) * 0.85).astype(np.uint8)
    tex[::9] = shade[::9]
    return tex, mask.astype(bool)


def render_scene(catalog: list[Product], rng: np.random.Generator):
    """One frame: image (H, W, 3) uint8 RGB and objects [{'cls', 'sku', 'xyxy', 'visible'}]."""
    img = _background(rng)
    labels = []
    for _ in range(int(rng.integers(0, 6))):
        p = catalog[int(rng.integers(0, len(catalog)))]
        tex, mask = render_texture(p)
        scale = float(rng.uniform(0.8, 1.2))
        m = _paste(img, labels, tex, mask, rng.uniform(60, W - 60), rng.uniform(60, H - 60), rng.uniform(0, 360), scale)
        labels.append({"cls": ITEM, "sku": p.sku, "mask": m, "full": int(m.sum())})
    if rng.random() < 0.5:
        tex, mask = _hand_texture(rng)
        cx, cy = rng.uniform(80, W - 80), rng.uniform(80, H - 80)
        angle = rng.uniform(0, 360)
        if rng.random() < 0.5:  # carrying an item: the item under the fingers
            p = catalog[int(rng.integers(0, len(catalog)))]
            ptex, pmask = render_texture(p)
            m = _paste(img, labels, ptex, pmask, cx, cy, angle, 1.0)
            labels.append({"cls": ITEM, "sku": p.sku, "mask": m, "full": int(m.sum())})
            dx, dy = 0.45 * p.size[1] * math.sin(math.radians(angle)), 0.45 * p.size[1] * math.cos(math.radians(angle))
            cx, cy = cx + dx, cy + dy
        m = _paste(img, labels, tex, mask, cx, cy, angle, float(rng.uniform(0.9, 1.2)))
        labels.append({"cls": HAND, "sku": None, "mask": m, "full": int(m.sum())})
    # Lighting gradient, blur, noise.
    gx = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(1.0, 1.3), W, dtype=np.float32)
    img *= gx[None, :, None] * rng.uniform(0.8, 1.15)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5, 7]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    img += rng.normal(0, rng.uniform(2, 8), img.shape).astype(np.float32)
    image = np.clip(img, 0, 255).astype(np.uint8)
    objects = []
    for lab in labels:
        ys, xs = np.nonzero(lab["mask"])
        visible = len(xs) / max(lab["full"], 1)
        if len(xs) < 60 or visible < 0.25:
            continue
        objects.append({"cls": lab["cls"], "sku": lab["sku"], "visible": visible,
                        "xyxy": [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]})
    return image, objects


def write_dataset(out: Path, images: int, seed: int, catalog: list[Product] | None = None, min_crop_visible: float = 0.6) -> Path:
    """Write ``images`` frames in the training layout under ``out`` (see models/README.md)."""
    catalog = catalog or make_catalog()
    rng = np.random.default_rng(seed)
    for sub in ("images", "labels"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    crops = 0
    for i in range(images):
        image, objects = render_scene(catalog, rng)
        stem = f"s{seed}_{i:06d}"
        cv2.imwrite(str(out / "images" / f"{stem}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        lines = []
        for o in objects:
            x0, y0, x1, y1 = o["xyxy"]
            lines.append(f"{o['cls']} {(x0 + x1) / 2 / W:.6f} {(y0 + y1) / 2 / H:.6f} {(x1 - x0) / W:.6f} {(y1 - y0) / H:.6f}")
            if o["cls"] == ITEM and o["visible"] >= min_crop_visible:
                d = out / "crops" / o["sku"]
                d.mkdir(parents=True, exist_ok=True)
                xi0, yi0, xi1, yi1 = (int(round(v)) for v in o["xyxy"])
                cv2.imwrite(str(d / f"{stem}_{crops}.png"), cv2.cvtColor(image[yi0:yi1, xi0:xi1], cv2.COLOR_RGB2BGR))
                crops += 1
        (out / "labels" / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    meta = {"generator": "models.synthetic", "seed": seed, "images": images, "crops": crops, "classes": ["item", "hand"],
            "catalog": [{"sku": p.sku, "shape": p.shape, "lookalike_of": p.lookalike_of} for p in catalog]}
    (out / "dataset.json").write_text(json.dumps(meta, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.synthetic", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    write_dataset(args.out, args.images, args.seed)
    print(f"wrote {args.images} images to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
