"""The shopper's hand and forearm, drawn once as a sprite and warped per frame.

The hand is seen from above, back of the hand up, fingers pointing away from the shopper along
the sprite's +x axis (the wrist is at -x). Skin tones and sleeve colours vary per hand; a
right and a left hand are mirror images.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .packaging import PX_PER_MM

__all__ = ["HAND_LENGTH_MM", "HAND_WIDTH_MM", "PALM_CENTRE_MM", "SKIN_TONES", "SLEEVES", "WRIST_MM", "HandSprite", "hand_sprite"]

SKIN_TONES = ((232, 190, 160), (205, 150, 115), (160, 110, 75), (110, 72, 50), (240, 205, 180))
SLEEVES = ((40, 60, 120), (180, 40, 40), (50, 50, 55), (200, 200, 195), (60, 110, 60), (230, 180, 60), (120, 80, 140))
HAND_LENGTH_MM = 185.0   # wrist to finger tips
HAND_WIDTH_MM = 100.0    # across the knuckles with the thumb
PALM_THICK_MM = 34.0
#: Palm centre and wrist in sprite millimetres (x from the wrist end, y from the top edge), right hand.
PALM_CENTRE_MM = (62.0, 52.0)
WRIST_MM = (8.0, 52.0)


@dataclass(frozen=True)
class HandSprite:
    color: np.ndarray   # (h, w, 3) uint8 RGB
    alpha: np.ndarray   # (h, w) float32
    height: np.ndarray  # (h, w) float32 mm above the palm's underside
    hole: np.ndarray    # (h, w) float32 depth dropout probability
    size_mm: tuple[float, float]
    top_mm: float
    rgba: np.ndarray    # (h, w, 4) uint8 colour + alpha
    hole8: np.ndarray   # (h, w) uint8
    palm_centre_mm: tuple[float, float]
    side_color: tuple[int, int, int] = (0, 0, 0)
    round: bool = False


@lru_cache(maxsize=32)
def hand_sprite(skin: int, left: bool) -> HandSprite:
    """Hand sprite for skin tone index ``skin``; ``left`` mirrors it (thumb on the other side)."""
    w, h = int(HAND_LENGTH_MM * PX_PER_MM), int(HAND_WIDTH_MM * PX_PER_MM)
    s = 4  # draw at 4x and shrink: smooth edges
    mask = np.zeros((h * s, w * s), np.uint8)
    thick = np.zeros((h * s, w * s), np.float32)

    def mm(v: float) -> int:
        return int(v * PX_PER_MM * s)

    # Palm: an ellipse from the wrist to the knuckles.
    palm_c = (mm(62), mm(52))
    cv2.ellipse(mask, palm_c, (mm(52), mm(40)), 0, 0, 360, 255, -1)
    cv2.ellipse(thick, palm_c, (mm(52), mm(40)), 0, 0, 360, PALM_THICK_MM, -1)
    # Four fingers, slightly fanned, and the thumb along the side.
    for i, (dy, length) in enumerate(((-27, 72), (-9, 80), (9, 76), (26, 62))):
        x0, y0 = mm(100), mm(52 + dy)
        ang = np.deg2rad(dy * 0.25)
        x1, y1 = int(x0 + mm(length) * np.cos(ang)), int(y0 + mm(length) * np.sin(ang))
        width = mm(17 - 0.5 * i)
        cv2.line(mask, (x0, y0), (x1, y1), 255, width)
        cv2.circle(mask, (x1, y1), width // 2, 255, -1)
        cv2.line(thick, (x0, y0), (x1, y1), 22.0, width)
        cv2.circle(thick, (x1, y1), width // 2, 20.0, -1)
    tx0, ty0 = mm(55), mm(90)
    tx1, ty1 = mm(100), mm(99)
    cv2.line(mask, (tx0, ty0), (tx1, ty1), 255, mm(21))
    cv2.line(thick, (tx0, ty0), (tx1, ty1), 26.0, mm(21))
    alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    height = cv2.resize(thick, (w, h), interpolation=cv2.INTER_AREA)
    height = cv2.GaussianBlur(height, (0, 0), 2.0) * (alpha > 0.05)
    # Skin shading: knuckle ridges, a darker outline, the overhead light on the rounded back.
    rng = np.random.default_rng([skin, 0x4A])
    base = np.array(SKIN_TONES[skin % len(SKIN_TONES)], np.float32)
    gy, gx = np.gradient(height)
    shade = np.clip(1.0 - 0.08 * gy - 0.03 * gx, 0.7, 1.15)
    mottle = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3.0)
    color = base * (shade * (1 + 0.04 * mottle))[..., None]
    edge = cv2.erode((alpha > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
    color[edge] *= 0.85
    color = np.clip(color, 0, 255).astype(np.uint8)
    if left:
        color, alpha, height = color[::-1].copy(), alpha[::-1].copy(), height[::-1].copy()
    hole = np.full((h, w), 0.02, np.float32)
    height = height.astype(np.float32)
    palm = (PALM_CENTRE_MM[0], HAND_WIDTH_MM - PALM_CENTRE_MM[1] if left else PALM_CENTRE_MM[1])
    sprite = HandSprite(color, alpha, height, hole, (HAND_LENGTH_MM, HAND_WIDTH_MM), float(height.max()),
                        np.ascontiguousarray(np.dstack([color, np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)])),
                        np.full((h, w), 5, np.uint8), palm)
    for a in (sprite.color, sprite.alpha, sprite.height, sprite.hole, sprite.rgba, sprite.hole8):
        a.flags.writeable = False
    return sprite
