"""Cart geometry: the top-mounted camera, the basket, and the empty-basket background.

World frame (millimetres): origin at the centre of the basket floor, ``x`` to the right of the
image, ``y`` towards the bottom of the image (the front of the basket, where the shopper stands
at the handle), ``z`` up. The camera looks straight down from ``camera_height_mm`` above the
floor centre, so the depth of a point (distance along the optical axis) is ``camera_height - z``
and a point projects to ``u = cx + f x / depth``, ``v = cy + f y / depth``.

The basket is a tapered plastic tub: a floor rectangle, four walls flaring out to the rim at
``rim_height_mm``; beyond the rim the camera sees the store floor about a metre further down.
Its four load cells sit under the floor corners; :meth:`CartGeometry.floor_uv` gives the
normalised floor position the load-cell model (:mod:`caper_edge.scale.loadcell`) expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Background", "CartGeometry"]


@dataclass(frozen=True)
class CartGeometry:
    width: int = 640
    height: int = 480
    fx: float = 600.0
    fy: float = 600.0
    cx: float = 319.5
    cy: float = 239.5
    camera_height_mm: float = 920.0
    floor_half_mm: tuple[float, float] = (245.0, 185.0)  # half extents (x, y) of the basket floor
    rim_half_mm: tuple[float, float] = (285.0, 225.0)    # half extents of the rim opening
    rim_height_mm: float = 300.0
    store_floor_mm: float = -950.0                        # z of the store floor under the cart

    # Projection -----------------------------------------------------------------------------

    def depth_of(self, z_mm: float) -> float:
        return self.camera_height_mm - z_mm

    def px_per_mm(self, z_mm: float) -> float:
        """Image scale of a horizontal surface at height ``z_mm``."""
        return self.fx / (self.camera_height_mm - z_mm)

    def project(self, x: float, y: float, z: float) -> tuple[float, float]:
        d = self.camera_height_mm - z
        return self.cx + self.fx * x / d, self.cy + self.fy * y / d

    def floor_uv(self, x: float, y: float) -> tuple[float, float]:
        """Normalised floor position (u left->right, v front->rear) clipped to [0, 1]."""
        hx, hy = self.floor_half_mm
        u = (x + hx) / (2 * hx)
        v = (hy - y) / (2 * hy)  # front (image bottom, +y) is v = 0
        return float(np.clip(u, 0.0, 1.0)), float(np.clip(v, 0.0, 1.0))

    def inside_rim(self, x: float, y: float) -> bool:
        hx, hy = self.rim_half_mm
        return abs(x) < hx and abs(y) < hy

    def wall_half_at(self, z: float) -> tuple[float, float]:
        """Half extents of the basket's inner outline at height ``z``."""
        f = np.clip(z / self.rim_height_mm, 0.0, 1.0)
        (fx, fy), (rx, ry) = self.floor_half_mm, self.rim_half_mm
        return fx + (rx - fx) * f, fy + (ry - fy) * f


class Background:
    """The empty basket as the camera sees it: colour (RGB uint8), depth (float32 mm), and a
    mask of where it is the basket (not the store floor), computed once by ray casting."""

    def __init__(self, geom: CartGeometry, seed: int = 0):
        self.geom = geom
        h, w = geom.height, geom.width
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        dx, dy = (u - geom.cx) / geom.fx, (v - geom.cy) / geom.fy  # ray direction per mm of depth
        hc = geom.camera_height_mm
        depth = np.full((h, w), np.inf)
        surface = np.zeros((h, w), np.int8)  # 0 store floor, 1 basket floor, 2 side walls, 3 end walls, 4 rim
        # Basket floor.
        fxh, fyh = geom.floor_half_mm
        on_floor = (np.abs(dx * hc) <= fxh) & (np.abs(dy * hc) <= fyh)
        depth[on_floor], surface[on_floor] = hc, 1
        # Walls: x = s (fxh + kx z) with z = hc - D  ->  D = (fxh + kx hc) / (s dx + kx).
        kx = (geom.rim_half_mm[0] - fxh) / geom.rim_height_mm
        ky = (geom.rim_half_mm[1] - fyh) / geom.rim_height_mm
        for s in (-1.0, 1.0):
            for axis, (k, half, ray, other_ray, other_k, other_half) in enumerate(
                ((kx, fxh, dx, dy, ky, fyh), (ky, fyh, dy, dx, kx, fxh))
            ):
                with np.errstate(divide="ignore", invalid="ignore"):
                    d_wall = (half + k * hc) / (s * ray + k)
                z = hc - d_wall
                other = np.abs(other_ray * d_wall)
                hit = (d_wall > 0) & (z >= 0) & (z <= geom.rim_height_mm) & (other <= other_half + other_k * z) & (d_wall < depth)
                depth[hit], surface[hit] = d_wall[hit], 2 + axis
        # The rim: a 22 mm tube around the opening at rim height.
        rim_d = hc - geom.rim_height_mm
        rx, ry = np.abs(dx * rim_d), np.abs(dy * rim_d)
        (rhx, rhy) = geom.rim_half_mm
        on_rim = (((rx >= rhx) & (rx <= rhx + 22) & (ry <= rhy + 22)) | ((ry >= rhy) & (ry <= rhy + 22) & (rx <= rhx + 22)))
        depth[on_rim], surface[on_rim] = rim_d - 8, 4
        store = ~np.isfinite(depth)
        depth[store] = hc - geom.store_floor_mm
        self.depth = depth.astype(np.float32)
        self.surface = surface
        self.basket_mask = surface > 0
        self.color = self._paint(surface, dx * depth, dy * depth, hc - depth, seed)

    @staticmethod
    def _paint(surface: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng([seed, 0xB6])
        h, w = surface.shape
        col = np.zeros((h, w, 3), np.float32)
        plastic = np.array([62, 66, 74], np.float32)
        # Floor: ribs every 25 mm along x; walls: a grid of slots; rim: lighter moulded plastic.
        ribs = (np.mod(x, 25.0) < 4.0).astype(np.float32)
        col[surface == 1] = plastic * (1.0 - 0.18 * ribs[surface == 1])[:, None]
        slots = ((np.mod(x + y, 30.0) < 12.0) & (np.mod(z, 30.0) < 14.0)).astype(np.float32)
        for s in (2, 3):
            m = surface == s
            shade = 0.9 if s == 2 else 1.05
            col[m] = plastic * shade * (1.0 - 0.35 * slots[m])[:, None]
        col[surface == 4] = (96, 100, 110)
        # Store floor: large light tiles with grout lines, far below.
        store = surface == 0
        tiles = (np.mod(x, 300.0) < 6.0) | (np.mod(y, 300.0) < 6.0)
        col[store] = (176, 172, 164)
        col[store & tiles] = (120, 118, 112)
        # Overhead light: brighter in the middle, walls self-shadow towards the floor corners.
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        light = 1.05 - 0.35 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
        col *= light[..., None]
        grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2)
        col *= (1.0 + 0.04 * grain)[..., None]
        return np.clip(col, 0, 255).astype(np.uint8)
