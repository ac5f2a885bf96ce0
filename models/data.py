"""Datasets read from the training-data layout (simulator generator or models.synthetic):

    DIR/images/**.jpg|png            frames (RGB content, any size; 640x480 from the simulator)
    DIR/labels/**.txt                YOLO labels, same relative path: "class cx cy w h" normalised
    DIR/crops/<SKU>/*.png            product crops, one folder per SKU

Detector frames are letterboxed exactly as at run time (caper_edge.engines.calibration.letterbox_frame,
which is caper_edge.preprocess.letterbox when the core has it) and kept in memory as uint8.
Product crops go through caper_edge.embedding.preprocess_crops, the function the cart uses.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from caper_edge.embedding import preprocess_crops
from caper_edge.engines.calibration import IMAGE_SUFFIXES, letterbox_frame


def image_files(root: Path) -> list[Path]:
    folder = root / "images"
    if not folder.is_dir():
        raise FileNotFoundError(f"{root} has no images/ folder (expected the training-data layout, see models/README.md)")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def label_file(root: Path, image: Path) -> Path:
    return (root / "labels" / image.relative_to(root / "images")).with_suffix(".txt")


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"image {path} cannot be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_detection_set(root: Path, size: int = 320, limit: int | None = None, threads: int = 1):
    """(images (n, size, size, 3) uint8 letterboxed, targets list of (g, 5) float32 [cls, x0, y0, x1, y1]).

    ``threads`` > 1 decodes and letterboxes that many frames at once (OpenCV releases the GIL)."""
    files = image_files(root)[:limit]
    images = np.empty((len(files), size, size, 3), np.uint8)

    def load(i: int) -> np.ndarray:
        path = files[i]
        rgb = read_rgb(path)
        h, w = rgb.shape[:2]
        tensor = letterbox_frame(rgb, (size, size))
        images[i] = np.clip(np.rint(tensor.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
        r = min(size / h, size / w)
        px, py = (size - round(w * r)) // 2, (size - round(h * r)) // 2
        rows = []
        lf = label_file(root, path)
        if lf.exists():
            for line in lf.read_text().split("\n"):
                if line.strip():
                    c, cx, cy, bw, bh = (float(v) for v in line.split()[:5])
                    x0, x1 = (cx - bw / 2) * w * r + px, (cx + bw / 2) * w * r + px
                    y0, y1 = (cy - bh / 2) * h * r + py, (cy + bh / 2) * h * r + py
                    rows.append([c, x0, y0, x1, y1])
        return np.asarray(rows, np.float32).reshape(-1, 5)

    if threads > 1 and len(files) > 1:
        with ThreadPoolExecutor(threads) as pool:
            targets = list(pool.map(load, range(len(files))))
    else:
        targets = [load(i) for i in range(len(files))]
    return images, targets


def augment_detection(image: np.ndarray, target: np.ndarray, rng: np.random.Generator):
    """Flips (a top view has no up or right) and photometric jitter on a letterboxed uint8 frame."""
    img = image.astype(np.float32)
    t = target.copy()
    size = image.shape[1]
    if rng.random() < 0.5:
        img = img[:, ::-1]
        t[:, [1, 3]] = size - t[:, [3, 1]]
    if rng.random() < 0.5:
        img = img[::-1]
        t[:, [2, 4]] = size - t[:, [4, 2]]
    img = img * rng.uniform(0.7, 1.3) * rng.uniform(0.85, 1.15, 3) + rng.uniform(-20, 20)
    return np.clip(img, 0, 255), t


def load_crops(root: Path, skus: list[str] | None = None, per_sku_limit: int | None = None):
    """(crops list of RGB uint8, labels list of SKU strings) from DIR/crops/<SKU>/."""
    folder = root / "crops"
    if not folder.is_dir():
        raise FileNotFoundError(f"{root} has no crops/ folder (expected crops/<SKU>/*.png)")
    crops, labels = [], []
    for sku_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if skus is not None and sku_dir.name not in skus:
            continue
        files = sorted(p for p in sku_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:per_sku_limit]
        for f in files:
            crops.append(read_rgb(f))
            labels.append(sku_dir.name)
    return crops, labels


def augment_crop(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop jitter (detector boxes are not exact), any rotation (top view), light, blur, noise."""
    h, w = crop.shape[:2]
    dx0, dx1 = (int(rng.uniform(0, 0.12) * w) for _ in range(2))
    dy0, dy1 = (int(rng.uniform(0, 0.12) * h) for _ in range(2))
    img = crop[dy0 : max(dy0 + 2, h - dy1), dx0 : max(dx0 + 2, w - dx1)]
    img = np.ascontiguousarray(np.rot90(img, int(rng.integers(0, 4))))
    if rng.random() < 0.5:
        hh, ww = img.shape[:2]
        M = cv2.getRotationMatrix2D((ww / 2, hh / 2), rng.uniform(-30, 30), 1.0)
        img = cv2.warpAffine(img, M, (ww, hh), borderMode=cv2.BORDER_REPLICATE)
    f = img.astype(np.float32) * rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3) + rng.uniform(-20, 20)
    if rng.random() < 0.3:
        f = cv2.GaussianBlur(f, (3, 3), 0)
    f += rng.normal(0, 3, f.shape)
    return np.clip(f, 0, 255).astype(np.uint8)


def crop_batch(crops: list[np.ndarray], size: int) -> np.ndarray:
    return preprocess_crops(crops, size)
