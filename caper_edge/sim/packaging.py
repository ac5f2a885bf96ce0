"""Procedural packaging: a top-view sprite (colour, alpha, height map) per SKU and resting pose.

A sprite is drawn once, at ``PX_PER_MM`` pixels per millimetre, and then only warped per frame.
It holds what the camera sees of the item's upper face with the overhead store light baked in
(a soft gradient and, for metal, glass and film, specular highlights), the height of that face
above the item's base in millimetres (flat carton tops, the dome of a bag, the curve of a lying
bottle, the shoulder of a standing one), and a per-pixel probability that the depth camera gets
no return there (glossy, dark or transparent surfaces).

Poses: boxes lie on their largest face (``top``) or on a long side (``side``); cylinders stand
(``upright``: the camera sees the lid, cap or printed tub lid) or lie (``lying``: the label);
bags lie flat (``flat``). Inside a look-alike group every element is drawn from the shared design
seed, so the members differ only in their variant text and size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .catalog import Sku, lookup

__all__ = ["PX_PER_MM", "Sprite", "poses", "sprite"]

#: Resolution sprites are drawn at; frames show items at 0.8-2 px/mm, so warps mostly shrink.
PX_PER_MM = 1.4


@dataclass(frozen=True)
class Sprite:
    """One SKU in one pose, seen from above.

    ``color`` (h, w, 3) uint8 RGB; ``alpha`` (h, w) float32 in [0, 1]; ``height`` (h, w) float32
    mm above the item's base; ``hole`` (h, w) float32 probability of a depth dropout; ``size_mm``
    (x, y) footprint; ``top_mm`` the highest point; ``side_color`` RGB of the walls (seen at
    the edges of the image through perspective).
    """

    sku: str
    pose: str
    color: np.ndarray
    alpha: np.ndarray
    height: np.ndarray
    hole: np.ndarray
    size_mm: tuple[float, float]
    top_mm: float
    side_color: tuple[int, int, int]
    round: bool
    rgba: np.ndarray  # (h, w, 4) uint8: colour and alpha in one array, so one warp moves both
    hole8: np.ndarray  # (h, w) uint8: ``hole`` scaled to 0..255


def poses(sku: Sku) -> tuple[str, ...]:
    return {"box": ("top", "side"), "cylinder": ("upright", "lying"), "bag": ("flat",)}[sku.shape]


@lru_cache(maxsize=256)
def sprite(sku_id: str, pose: str) -> Sprite:
    """The sprite of ``sku_id`` in ``pose`` (cached: drawn once per process)."""
    sku = lookup(sku_id)
    if pose not in poses(sku):
        raise ValueError(f"pose {pose!r} is not a pose of {sku_id} ({sku.shape}); expected one of {poses(sku)}")
    draw = {"top": _box_top, "side": _box_side, "upright": _cyl_upright, "lying": _cyl_lying, "flat": _bag}[pose]
    s = draw(sku)
    for a in (s.color, s.alpha, s.height, s.hole, s.rgba, s.hole8):
        a.flags.writeable = False
    return s


# -------------------------------------------------------------------------------------------------
# Artwork
# -------------------------------------------------------------------------------------------------


def _px(mm: float) -> int:
    return max(int(round(mm * PX_PER_MM)), 2)


def _artwork(sku: Sku, w_mm: float, h_mm: float, *, face: str = "front") -> np.ndarray:
    """The printed design on a (h_mm x w_mm) panel: background pattern, label, logo, variant."""
    rng = np.random.default_rng([sku.design, 0xA57])
    w, h = _px(w_mm), _px(h_mm)
    base, accent, label = (np.array(c, dtype=np.float32) for c in sku.colors)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    _pattern(img, sku.pattern, accent, xx, yy, rng)
    img = np.clip(img, 0, 255).astype(np.uint8)
    brand = sku.name.split()[0].upper()
    if face == "front":
        # Label panel across the middle with the brand, a logo, and the variant badge.
        ph = int(h * rng.uniform(0.28, 0.42))
        py = int(h * rng.uniform(0.25, 0.45))
        px0 = int(w * 0.08)
        cv2.rectangle(img, (px0, py), (w - px0, min(py + ph, h - 2)), tuple(int(c) for c in label), -1, cv2.LINE_AA)
        _text(img, brand, (px0, py, w - px0, min(py + ph, h - 2)), _contrast(label))
        lx, ly = int(w * rng.uniform(0.15, 0.85)), int(h * rng.uniform(0.75, 0.9))
        cv2.circle(img, (lx, min(ly, h - 3)), max(int(min(w, h) * 0.08), 2), tuple(int(c) for c in accent), -1, cv2.LINE_AA)
        if sku.variant:
            vy = int(h * 0.08)
            box = (int(w * 0.1), vy, int(w * 0.9), vy + max(int(h * 0.14), 6))
            _text(img, sku.variant, box, _contrast(base))
    else:
        # Side panels: barcode, nutrition-like text rows.
        bw = max(int(w * 0.3), 8)
        bx, by = int(w * 0.6), int(h * 0.2)
        cv2.rectangle(img, (bx, by), (min(bx + bw, w - 1), min(by + int(h * 0.6), h - 1)), (250, 250, 250), -1)
        bars = rng.integers(1, 3, size=40)
        x = bx + 2
        for i, b in enumerate(bars):
            if x + b >= min(bx + bw, w - 1) - 1:
                break
            if i % 2 == 0:
                cv2.rectangle(img, (x, by + 2), (x + int(b) - 1, min(by + int(h * 0.6), h - 1) - 2), (20, 20, 20), -1)
            x += int(b)
        _text(img, brand, (int(w * 0.05), int(h * 0.2), int(w * 0.55), int(h * 0.8)), _contrast(base))
    return img


def _pattern(img: np.ndarray, pattern: str, accent: np.ndarray, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    scale = max(h, w)
    if pattern == "wave":
        phase = rng.uniform(0, 6.28)
        m = (np.sin(xx / scale * 12 + phase) * h * 0.12 + h * 0.7 - yy) < 0
    elif pattern == "rays":
        cx, cy = w * rng.uniform(0, 1), h * rng.uniform(-0.2, 0.2)
        m = (np.sin(np.arctan2(yy - cy, xx - cx) * 16) > 0.3)
    elif pattern == "dots":
        step = max(scale / 9.0, 6.0)
        m = ((np.mod(xx, step) - step / 2) ** 2 + (np.mod(yy, step) - step / 2) ** 2) < (step * 0.28) ** 2
    elif pattern == "stripes":
        step = max(scale / 8.0, 6.0)
        m = np.mod(xx + yy, step) < step * 0.35
    elif pattern == "checker":
        step = max(scale / 10.0, 5.0)
        m = (np.floor(xx / step) + np.floor(yy / step)) % 2 == 0
        img[m] = img[m] * 0.55 + accent * 0.45
        return
    elif pattern == "band":
        m = np.abs(yy - h * 0.5) < h * 0.18
    elif pattern == "window":
        m = (np.abs(xx - w * 0.5) < w * 0.3) & (np.abs(yy - h * 0.62) < h * 0.2)
        img[m] = (235, 215, 160)  # the product seen through a clear window (pasta, lentils)
        lines = m & (np.mod(yy * 0.7 + xx * 0.2, 5.0) < 1.2)
        img[lines] = (200, 170, 110)
        return
    else:  # plain: a soft two-tone gradient
        img *= (0.85 + 0.15 * yy / max(h - 1, 1))[..., None]
        return
    img[m] = accent


def _text(img: np.ndarray, text: str, box: tuple[int, int, int, int], color: tuple[int, int, int]) -> None:
    """Put ``text`` centred and as large as fits in ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    if bw < 6 or bh < 5 or not text:
        return
    font = cv2.FONT_HERSHEY_DUPLEX
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, 2)
    scale = min(bw * 0.9 / tw, bh * 0.7 / th)
    thick = max(int(scale * 2), 1)
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    org = (x0 + (bw - tw) // 2, y0 + (bh + th) // 2)
    cv2.putText(img, text, org, font, scale, color, thick, cv2.LINE_AA)


def _contrast(rgb) -> tuple[int, int, int]:
    r, g, b = (float(c) for c in rgb)
    return (20, 20, 20) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (250, 250, 250)


# -------------------------------------------------------------------------------------------------
# Shading, gloss, depth dropout
# -------------------------------------------------------------------------------------------------


def _finish(sku: Sku, pose: str, color: np.ndarray, alpha: np.ndarray, height: np.ndarray, size_mm, round_: bool) -> Sprite:
    rng = np.random.default_rng([sku.design, 0x5EE, len(pose)])
    h, w = alpha.shape
    # Overhead light, slightly from the rear: a gentle gradient plus shading by the surface slope.
    gy, gx = np.gradient(height.astype(np.float32) * PX_PER_MM)
    slope = np.clip(1.0 - 0.35 * (gy + 0.3 * gx) / (1 + np.abs(gy) + np.abs(gx)), 0.6, 1.15)
    light = slope * (0.92 + 0.1 * np.linspace(1, 0, h, dtype=np.float32)[:, None])
    col = color.astype(np.float32) * light[..., None]
    hole = np.zeros((h, w), np.float32)
    gloss = {"metal": 0.9, "glass": 0.8, "plastic": 0.45, "film": 0.6}.get(sku.material, 0.0)
    if gloss:
        # Specular highlights: where the surface normal points between light and camera.
        n_spots = 2 if round_ else 3
        for _ in range(n_spots):
            cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.2, 0.6) * h
            sx, sy = rng.uniform(0.05, 0.15) * w, rng.uniform(0.03, 0.08) * h
            yy, xx = np.ogrid[0:h, 0:w]
            spot = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2)).astype(np.float32) * gloss
            col += spot[..., None] * (255 - col) * 0.8
            hole += spot * 0.9  # saturated speculars give the stereo matcher nothing to match
    if sku.material == "glass":
        hole += 0.25
    luminance = col @ np.array([0.299, 0.587, 0.114], np.float32)
    hole += np.clip((45.0 - luminance) / 45.0, 0, 1) * 0.35  # very dark print absorbs the IR pattern
    if sku.material == "film":
        crinkle = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 2.0)
        col *= (1.0 + 0.12 * crinkle)[..., None]
    side = tuple(int(c * 0.75) for c in sku.colors[0])
    return Sprite(
        sku=sku.sku,
        pose=pose,
        color=np.clip(col, 0, 255).astype(np.uint8),
        alpha=alpha.astype(np.float32),
        height=height.astype(np.float32),
        hole=np.clip(hole, 0, 1).astype(np.float32),
        size_mm=(float(size_mm[0]), float(size_mm[1])),
        top_mm=float(height.max()),
        side_color=side,
        round=round_,
        rgba=_rgba(np.clip(col, 0, 255).astype(np.uint8), alpha),
        hole8=np.clip(hole * 255, 0, 255).astype(np.uint8),
    )


def _rgba(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.dstack([color, np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)]))


def _rect_alpha(h: int, w: int, radius_px: float) -> np.ndarray:
    a = np.zeros((h * 4, w * 4), np.uint8)
    r = int(radius_px * 4)
    cv2.rectangle(a, (r, 0), (w * 4 - 1 - r, h * 4 - 1), 255, -1)
    cv2.rectangle(a, (0, r), (w * 4 - 1, h * 4 - 1 - r), 255, -1)
    for cx, cy in ((r, r), (w * 4 - 1 - r, r), (r, h * 4 - 1 - r), (w * 4 - 1 - r, h * 4 - 1 - r)):
        cv2.circle(a, (cx, cy), r, 255, -1)
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _disc_alpha(d: int) -> np.ndarray:
    a = np.zeros((d * 4, d * 4), np.uint8)
    cv2.circle(a, (d * 2, d * 2), d * 2 - 2, 255, -1, cv2.LINE_AA)
    return cv2.resize(a, (d, d), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


# -------------------------------------------------------------------------------------------------
# Poses
# -------------------------------------------------------------------------------------------------


def _box_top(sku: Sku) -> Sprite:
    l, w, h = sku.size_mm
    color = _artwork(sku, l, w)
    ph, pw = color.shape[:2]
    alpha = _rect_alpha(ph, pw, 1.5)
    height = np.full((ph, pw), h, np.float32)
    height[[0, -1], :] -= 2.0  # rounded carton edges
    height[:, [0, -1]] -= 2.0
    return _finish(sku, "top", color, alpha, height, (l, w), False)


def _box_side(sku: Sku) -> Sprite:
    l, w, h = sku.size_mm
    color = _artwork(sku, l, h, face="side")
    ph, pw = color.shape[:2]
    alpha = _rect_alpha(ph, pw, 1.0)
    height = np.full((ph, pw), w, np.float32)
    return _finish(sku, "side", color, alpha, height, (l, h), False)


def _cyl_upright(sku: Sku) -> Sprite:
    d, _, h = sku.size_mm
    n = _px(d)
    alpha = _disc_alpha(n)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r = np.hypot(xx - (n - 1) / 2, yy - (n - 1) / 2) / (n / 2)  # 0 centre .. 1 edge
    base, accent, label = (np.array(c, np.float32) for c in sku.colors)
    color = np.empty((n, n, 3), np.float32)
    height = np.full((n, n), h, np.float32)
    if sku.kind == "can":
        metal = np.array([188, 190, 196], np.float32)
        color[:] = metal * (0.85 + 0.15 * (1 - r))[..., None]
        rim = (r > 0.86) & (r < 0.97)
        color[rim] = metal * 1.1
        color[r >= 0.97] = base * 0.8  # the printed body just shows at the rim
        height[r < 0.86] = h - 3.0
        tab = (((xx - n * 0.5) / (n * 0.12)) ** 2 + ((yy - n * 0.38) / (n * 0.08)) ** 2) < 1
        color[tab] = metal * 0.75
    elif sku.kind == "bottle":
        cap_r = 0.42
        color[:] = base * 0.9
        color[r < cap_r] = accent
        shoulder = r >= cap_r
        height[shoulder] = h - 20.0 - (r[shoulder] - cap_r) / (1 - cap_r) * 0.25 * h
        ring = (r > cap_r * 0.8) & (r < cap_r)
        color[ring] = accent * 0.7
    elif sku.kind == "jar":
        color[:] = accent
        color[r > 0.9] = base * 0.7
        inner = r < 0.6
        color[inner] = accent * 0.85
        height[r > 0.9] = h - 8.0
    else:  # tub: a printed foil lid carrying the whole design
        art = _artwork(sku, d, d).astype(np.float32)
        color[:] = cv2.resize(art, (n, n), interpolation=cv2.INTER_AREA)
        color[r > 0.93] = base * 0.85
    if sku.kind in ("can", "jar", "tub") or not sku.kind:
        _brand_on_lid(sku, color, n)
    return _finish(sku, "upright", np.clip(color, 0, 255).astype(np.uint8), alpha, height, (d, d), True)


def _brand_on_lid(sku: Sku, color: np.ndarray, n: int) -> None:
    if sku.kind == "can":
        return  # plain metal: the body print shows only through perspective
    tmp = np.clip(color, 0, 255).astype(np.uint8)
    _text(tmp, sku.name.split()[0].upper(), (int(n * 0.2), int(n * 0.35), int(n * 0.8), int(n * 0.6)), _contrast(sku.colors[1]))
    if sku.variant:
        _text(tmp, sku.variant, (int(n * 0.25), int(n * 0.62), int(n * 0.75), int(n * 0.78)), _contrast(sku.colors[1]))
    color[:] = tmp


def _cyl_lying(sku: Sku) -> Sprite:
    d, _, h = sku.size_mm
    color = _artwork(sku, h, d)
    ph, pw = color.shape[:2]
    alpha = _rect_alpha(ph, pw, min(ph, pw) * 0.15)
    y = (np.arange(ph, dtype=np.float32) - (ph - 1) / 2) / (ph / 2)
    profile = d / 2 + d / 2 * np.sqrt(np.clip(1 - y**2, 0, 1))
    height = np.repeat(profile[:, None], pw, axis=1).astype(np.float32)
    if sku.kind == "bottle":  # neck and cap at one end
        neck = int(pw * 0.22)
        col = np.array(sku.colors[0], np.float32) * 0.9
        color[:, :neck] = col
        color[np.abs(y) < 0.35, : int(pw * 0.06)] = sku.colors[1]
        height[:, :neck] *= np.clip(0.45 + np.abs(y)[:, None] * 0, 0, 1)
        alpha[np.abs(y) > 0.45, :neck] = 0.0
    return _finish(sku, "lying", color, alpha, height, (h, d), False)


def _bag(sku: Sku) -> Sprite:
    l, w, h = sku.size_mm
    color = _artwork(sku, l, w)
    ph, pw = color.shape[:2]
    rng = np.random.default_rng([sku.design, 0xBA6])
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    nx, ny = (xx - (pw - 1) / 2) / (pw / 2), (yy - (ph - 1) / 2) / (ph / 2)
    wobble = cv2.GaussianBlur(rng.normal(0, 1, (ph, pw)).astype(np.float32), (0, 0), max(ph, pw) / 10) * 0.6
    rr = (np.abs(nx) ** 4 + np.abs(ny) ** 4) ** 0.25 + wobble * 0.05
    alpha = np.clip((1.0 - rr) * max(ph, pw) * 0.5, 0, 1).astype(np.float32)
    dome = np.sqrt(np.clip(1 - rr**2, 0, 1))
    crinkle = cv2.GaussianBlur(rng.normal(0, 1, (ph, pw)).astype(np.float32), (0, 0), 3.0)
    height = (h * dome * (1 + 0.08 * crinkle)).astype(np.float32)
    # sealed crimp ends: a thin, flat, slightly lighter strip at both ends
    crimp = np.abs(nx) > 0.88
    height[crimp] = np.minimum(height[crimp], 6.0)
    color = color.astype(np.float32)
    color[crimp] = color[crimp] * 0.8 + 40
    return _finish(sku, "flat", np.clip(color, 0, 255).astype(np.uint8), alpha, height * (alpha > 0.01), (l, w), False)
