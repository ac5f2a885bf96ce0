"""2.5D compositor: sprites warped into the frame with a z-buffer, then the camera's flaws.

Per frame the renderer copies a cached *static layer* (the basket with every resting item,
re-rendered only when something comes to rest, is lifted or is jostled), draws the moving things
(hands, forearms, carried items) into their own regions of interest, and applies the sensor:
camera shake, motion blur, lighting and auto-exposure, colour noise, and for depth frames the
stereo depth model (disparity quantisation and noise growing with the square of the distance,
holes on glossy/dark/transparent surfaces, occlusion shadows left of near edges, the invalid band
at the left border, random speckle). Everything is whole-array NumPy/OpenCV work on regions of
interest; there is no per-pixel Python loop.

Each object is a *prism*: its sprite is the top face, drawn at the image scale of its top height
and at the projection of its centre; the walls between the top face and the footprint on the
support (visible through perspective towards the image border) are filled in the wall colour.
A z-buffer in millimetres decides occlusion; an id buffer gives each object's visible box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .geometry import Background, CartGeometry
from .packaging import PX_PER_MM

__all__ = ["Arm", "Effects", "Placed", "RenderResult", "Renderer", "StaticLayer"]

ARM_ID = 0xFFFF          # forearms occlude but are not reported as objects
STEREO_FB = 385.0 * 50.0  # depth camera focal length (px) x baseline (mm), D435-like at 640x480


@dataclass
class Arm:
    """A forearm from the wrist (on the hand) to the shoulder (outside the basket), world mm."""

    wrist: tuple[float, float, float]
    shoulder: tuple[float, float, float]
    sleeve: tuple[int, int, int]
    skin: tuple[int, int, int]


@dataclass
class Placed:
    """One object to draw: ``sprite`` centred at world (x, y), base at ``z_base``, turned by
    ``yaw`` (radians, the sprite's +x axis in the world xy-plane), moving ``velocity_px`` (image
    pixels per frame, for motion blur)."""

    obj_id: int
    cls: str                      # "item" or "hand"
    sku: str | None
    sprite: object
    x: float
    y: float
    z_base: float
    yaw: float
    velocity_px: tuple[float, float] = (0.0, 0.0)
    sides: bool = True
    in_basket: bool = True
    arm: Arm | None = None
    shadow: bool = True           # cast a contact shadow (not for items hidden under others)


@dataclass
class Effects:
    """Per-frame camera conditions."""

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # lighting x exposure, per RGB channel
    shake_px: tuple[float, float] = (0.0, 0.0)          # image translation of the camera shake
    shake_velocity_px: tuple[float, float] = (0.0, 0.0)  # for the whole-frame motion blur
    noise_sigma: float = 2.2                              # colour noise (grey levels, 1 sigma)
    seed: int = 0                                          # per-frame draw of the noise fields


@dataclass
class _Drawn:
    obj_id: int
    cls: str
    sku: str | None
    in_basket: bool
    roi: tuple[int, int, int, int]   # x0, y0, x1, y1 (exclusive)
    full_px: int                     # pixels it would cover unoccluded


@dataclass
class StaticLayer:
    color: np.ndarray
    depth: np.ndarray
    ids: np.ndarray
    hole: np.ndarray     # uint8 dropout probability x 255
    shadow: np.ndarray   # bool: stereo occlusion shadow of the static scene
    drawn: list[_Drawn]
    boxes: dict[int, tuple[list[float], int]] = field(default_factory=dict)  # id -> (xyxy, visible px)


@dataclass
class RenderResult:
    color: np.ndarray           # (H, W, 3) uint8 RGB
    depth: np.ndarray | None    # (H, W) uint16 mm, or None on colour-only frames
    objects: list[dict]         # ground truth: id, sku, class, xyxy, in_basket, visible


class Renderer:
    """Draws frames of one cart; ``seed`` fixes the noise fields and the basket's texture grain."""

    PAD = 96  # noise fields are this much larger than the frame; each frame reads a random window

    def __init__(self, geom: CartGeometry | None = None, seed: int = 0):
        self.geom = geom or CartGeometry()
        self.bg = Background(self.geom, seed)
        h, w = self.geom.height, self.geom.width
        rng = np.random.default_rng([seed, 0x5E45])
        p = self.PAD
        self._gauss = rng.standard_normal((h + p, w + p), dtype=np.float32)
        noise = rng.standard_normal((h + p, w + p, 3), dtype=np.float32)
        noise[..., :] += 0.6 * rng.standard_normal((h + p, w + p, 1), dtype=np.float32)  # luma-correlated
        self._noise_unit = noise / np.sqrt(1.36)
        self._noise_cache: tuple[float, np.ndarray, np.ndarray] | None = None
        # Static depth dropout of the empty basket: the far store floor and the slot grid edges.
        hole = np.zeros((h, w), np.uint8)  # per-pixel dropout probability x 255
        hole[self.bg.surface == 0] = 38
        self._bg_hole = hole
        self._uniform8 = rng.integers(0, 255, size=(h + p, w + p), dtype=np.uint8)
        self._u = np.arange(w, dtype=np.float32)
        self._v = np.arange(h, dtype=np.float32)

    # ------------------------------------------------------------------------------------------
    # Static layer
    # ------------------------------------------------------------------------------------------

    def render_static(self, items: list[Placed]) -> StaticLayer:
        color = self.bg.color.copy()
        depth = self.bg.depth.copy()
        ids = np.zeros(depth.shape, np.uint16)
        hole = self._bg_hole.copy()
        drawn = []
        for obj in sorted(items, key=lambda o: o.z_base):
            if obj.shadow:
                self._shadow(color, obj)
            d = self._draw(color, depth, ids, hole, obj)
            if d is not None:
                drawn.append(d)
        layer = StaticLayer(color, depth, ids, hole, _occlusion_shadow(depth), drawn)
        layer.boxes = {d.obj_id: self._box(ids, d) for d in drawn}
        return layer

    def _shadow(self, color: np.ndarray, obj: Placed, strength: float = 0.35) -> None:
        """A soft contact shadow around the footprint on the support surface."""
        g = self.geom
        sx, sy = obj.sprite.size_mm
        k = g.px_per_mm(obj.z_base)
        u, v = g.project(obj.x + 6.0, obj.y + 10.0, obj.z_base)  # light slightly from the rear-left
        rx, ry = sx * k * 0.5 + 6, sy * k * 0.5 + 6
        r = int(max(rx, ry)) + 8
        x0, y0, x1, y1 = _clip(int(u) - r, int(v) - r, int(u) + r + 1, int(v) + r + 1, g.width, g.height)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        box = ((u - x0, v - y0), (sx * k + 6, sy * k + 6), math.degrees(obj.yaw))
        if obj.sprite.round:
            cv2.ellipse(mask, box, 1.0, -1)
        else:
            cv2.fillConvexPoly(mask, cv2.boxPoints(box).astype(np.int32), 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), 5.0)
        roi = color[y0:y1, x0:x1]
        roi[:] = (roi * (1.0 - strength * mask)[..., None]).astype(np.uint8)

    # ------------------------------------------------------------------------------------------
    # Per frame
    # ------------------------------------------------------------------------------------------

    def render(self, static: StaticLayer, moving: list[Placed], fx: Effects, want_depth: bool) -> RenderResult:
        g = self.geom
        color = static.color.copy()
        depth = static.depth.copy()
        ids = static.ids.copy()
        hole = static.hole.copy() if want_depth else None
        drawn: list[_Drawn] = []
        self._arm_rois: list[tuple[int, int, int, int]] = []
        for obj in moving:
            if obj.arm is not None:
                self._draw_arm(color, depth, ids, hole, obj.arm, obj.velocity_px)
            d = self._draw(color, depth, ids, hole, obj)
            if d is not None:
                drawn.append(d)
        # Camera shake: the mast flexes; the image moves by whole pixels (sub-pixel motion shows
        # as the motion blur below), so the ground-truth boxes move by the same offset.
        sx, sy = int(round(fx.shake_px[0])), int(round(fx.shake_px[1]))
        objects = self._objects(static, drawn, ids, (sx, sy))
        if sx or sy:
            color = _shift(color, sx, sy)
        _motion_blur(color, fx.shake_velocity_px, (0, 0, g.width, g.height))
        color = self._expose(color, fx)
        depth_out = None
        if want_depth:
            shadow = static.shadow
            if drawn or self._arm_rois:
                shadow = shadow.copy()
                for obj_roi in [d.roi for d in drawn] + self._arm_rois:
                    x0, y0, x1, y1 = _clip(obj_roi[0] - 6, obj_roi[1], obj_roi[2] + 6, obj_roi[3], g.width, g.height)
                    shadow[y0:y1, x0:x1] = _occlusion_shadow(depth[y0:y1, x0:x1])
            if sx or sy:
                depth, hole, shadow = _shift(depth, sx, sy), _shift(hole, sx, sy), _shift(shadow, sx, sy)
            depth_out = self._depth_sensor(depth, hole, shadow, fx.seed)
        return RenderResult(color, depth_out, objects)

    # ------------------------------------------------------------------------------------------
    # Drawing one object
    # ------------------------------------------------------------------------------------------

    def _draw(self, color, depth, ids, hole, obj: Placed) -> _Drawn | None:
        g = self.geom
        sp = obj.sprite
        z_top = obj.z_base + sp.top_mm
        d_top = max(g.camera_height_mm - z_top, 120.0)
        d_base = g.camera_height_mm - obj.z_base
        k = g.fx / d_top / PX_PER_MM
        u0, v0 = g.project(obj.x, obj.y, g.camera_height_mm - d_top)
        c, s = math.cos(obj.yaw), math.sin(obj.yaw)
        a = np.array([[c, -s], [s, c]]) * k
        sh, sw = sp.height.shape
        centre = np.array([(sw - 1) / 2.0, (sh - 1) / 2.0])
        corners = np.array([[0, 0], [sw - 1, 0], [sw - 1, sh - 1], [0, sh - 1]], np.float64)
        top_pts = (corners - centre) @ a.T + (u0, v0)
        hull = None
        if obj.sides:
            base_pts = self._footprint(obj, obj.z_base)
            top_outline = self._footprint(obj, z_top)
            if np.abs(base_pts.mean(0) - top_outline.mean(0)).max() > 1.5:
                hull = cv2.convexHull(np.vstack([base_pts, top_outline]).astype(np.float32)).reshape(-1, 2)
        pts = top_pts if hull is None else np.vstack([top_pts, hull])
        blur = obj.velocity_px
        pad = int(abs(blur[0]) * 0.5 + abs(blur[1]) * 0.5) + 2
        x0, y0, x1, y1 = _clip(
            int(math.floor(pts[:, 0].min())) - pad, int(math.floor(pts[:, 1].min())) - pad,
            int(math.ceil(pts[:, 0].max())) + pad + 1, int(math.ceil(pts[:, 1].max())) + pad + 1, g.width, g.height,
        )
        if x1 <= x0 or y1 <= y0:
            return None
        size = (x1 - x0, y1 - y0)
        m = np.hstack([a, (np.array([u0 - x0, v0 - y0]) - a @ centre)[:, None]])
        rgba = cv2.warpAffine(sp.rgba, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        height = cv2.warpAffine(sp.height, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if hull is not None:
            walls = np.zeros(height.shape, np.uint8)
            cv2.fillConvexPoly(walls, np.round(hull - (x0, y0)).astype(np.int32), 1)
            walls = (walls > 0) & (rgba[..., 3] < 128)
            # Walls catch less of the overhead light than the top face.
            rgba[walls] = (*(int(v * 0.8) for v in sp.side_color), 255)
            height[walls] = sp.top_mm * 0.5
        alpha = rgba[..., 3]
        full_px = int(np.count_nonzero(alpha >= 128))
        if abs(blur[0]) + abs(blur[1]) > 1.5:
            _motion_blur(rgba, blur, None)
            _motion_blur(height, blur, None)
        obj_depth = np.float32(d_base) - height
        c_roi, d_roi, i_roi = color[y0:y1, x0:x1], depth[y0:y1, x0:x1], ids[y0:y1, x0:x1]
        front = (alpha > 8) & (obj_depth < d_roi)
        solid = front & (alpha >= 128)
        np.copyto(c_roi, rgba[..., :3], where=solid[..., None])
        edge = front & ~solid
        if edge.any():  # anti-aliased rims and motion-blurred fringes: blend by alpha
            wgt = alpha[edge].astype(np.float32)[:, None] * np.float32(1 / 255)
            c_roi[edge] = (rgba[..., :3][edge] * wgt + c_roi[edge] * (1 - wgt)).astype(np.uint8)
        np.copyto(d_roi, obj_depth, where=solid)
        i_roi[solid] = obj.obj_id
        if hole is not None:
            hole8 = cv2.warpAffine(sp.hole8, m, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
            np.copyto(hole[y0:y1, x0:x1], hole8, where=solid)
        return _Drawn(obj.obj_id, obj.cls, obj.sku, obj.in_basket, (x0, y0, x1, y1), full_px)

    def _footprint(self, obj: Placed, z: float) -> np.ndarray:
        """Image outline (n, 2) of the object's footprint at height ``z``."""
        g = self.geom
        sx, sy = obj.sprite.size_mm
        if obj.sprite.round:
            t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            local = np.stack([np.cos(t) * sx / 2, np.sin(t) * sy / 2], 1)
        else:
            local = np.array([[-sx / 2, -sy / 2], [sx / 2, -sy / 2], [sx / 2, sy / 2], [-sx / 2, sy / 2]])
        c, s = math.cos(obj.yaw), math.sin(obj.yaw)
        world = local @ np.array([[c, s], [-s, c]]) + (obj.x, obj.y)
        d = g.camera_height_mm - z
        return np.stack([g.cx + g.fx * world[:, 0] / d, g.cy + g.fy * world[:, 1] / d], 1)

    def _draw_arm(self, color, depth, ids, hole, arm: Arm, velocity_px) -> None:
        """The forearm as a tapered tube from the wrist to the shoulder: skin, then sleeve."""
        g = self.geom
        wx, wy, wz = arm.wrist
        sx, sy, sz = arm.shoulder
        vec = np.array([sx - wx, sy - wy, sz - wz])
        length = float(np.linalg.norm(vec))
        if length < 1:
            return
        direction = vec / length
        cuff = min(70.0, length)
        segments = (((wx, wy, wz), tuple(np.array(arm.wrist) + direction * cuff), 62.0, 72.0, arm.skin),
                    (tuple(np.array(arm.wrist) + direction * cuff), arm.shoulder, 84.0, 120.0, arm.sleeve))
        for p0, p1, w0, w1, rgb in segments:
            self._tube(color, depth, ids, hole, p0, p1, w0, w1, rgb, velocity_px)

    def _tube(self, color, depth, ids, hole, p0, p1, w0, w1, rgb, velocity_px) -> None:
        """A tapered tube from p0 to p1 (world mm, widths w0 -> w1): three segments of constant
        depth, each shaded with nested strips (dark edges, lit ridge)."""
        g = self.geom
        hc = g.camera_height_mm
        p0, p1 = np.array(p0, float), np.array(p1, float)
        if hc - p1[2] < 150:  # keep the far end in front of the camera plane
            t = (hc - 150 - p0[2]) / max(p1[2] - p0[2], 1e-6)
            p1 = p0 + (p1 - p0) * np.clip(t, 0, 1)
        axis = p1[:2] - p0[:2]
        n = np.array([-axis[1], axis[0]]) / (np.linalg.norm(axis) + 1e-9)

        def outline(t0: float, t1: float, frac: float) -> np.ndarray:
            q0, q1 = p0 + (p1 - p0) * t0, p0 + (p1 - p0) * t1
            h0, h1 = (w0 + (w1 - w0) * t0) * frac / 2, (w0 + (w1 - w0) * t1) * frac / 2
            quad = [(q0[:2] + n * h0, q0[2]), (q1[:2] + n * h1, q1[2]), (q1[:2] - n * h1, q1[2]), (q0[:2] - n * h0, q0[2])]
            return np.clip(np.array([g.project(q[0], q[1], z) for q, z in quad]), -8000, 8000)

        full = outline(0.0, 1.0, 1.0)
        x0, y0, x1, y1 = _clip(int(full[:, 0].min()) - 1, int(full[:, 1].min()) - 1, int(full[:, 0].max()) + 2, int(full[:, 1].max()) + 2, g.width, g.height)
        if x1 <= x0 or y1 <= y0:
            return
        tube_depth = np.full((y1 - y0, x1 - x0), np.inf, np.float32)
        tube_color = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        base = np.array(rgb, np.float32)
        offset = np.array([x0, y0])
        for i in range(3):
            t0, t1 = i / 3, (i + 1) / 3
            tm = (t0 + t1) / 2
            d_mid = hc - (p0[2] + (p1[2] - p0[2]) * tm)
            cv2.fillConvexPoly(tube_depth, np.round(outline(t0, t1, 1.0) - offset).astype(np.int32), float(d_mid - 15.0))
            for frac, shade in ((1.0, 0.62), (0.7, 0.86), (0.35, 1.04)):
                cv2.fillConvexPoly(tube_color, np.round(outline(t0, t1, frac) - offset).astype(np.int32),
                                   tuple(float(min(c * shade, 255)) for c in base))
        if abs(velocity_px[0]) + abs(velocity_px[1]) > 1.5:
            _motion_blur(tube_color, velocity_px, None)
        d_roi = depth[y0:y1, x0:x1]
        front = tube_depth < d_roi
        np.copyto(color[y0:y1, x0:x1], tube_color, where=front[..., None])
        np.copyto(d_roi, tube_depth, where=front)
        ids[y0:y1, x0:x1][front] = ARM_ID
        if hole is not None:
            hole[y0:y1, x0:x1][front] = 8
        self._arm_rois.append((x0, y0, x1, y1))

    # ------------------------------------------------------------------------------------------
    # Ground truth boxes
    # ------------------------------------------------------------------------------------------

    @staticmethod
    def _box(ids: np.ndarray, d: _Drawn, grow: int = 0) -> tuple[list[float], int]:
        h, w = ids.shape
        x0, y0, x1, y1 = _clip(d.roi[0] - grow, d.roi[1] - grow, d.roi[2] + grow, d.roi[3] + grow, w, h)
        m = ids[y0:y1, x0:x1] == d.obj_id
        n = int(np.count_nonzero(m))
        if n == 0:
            return [], 0
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        return [float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1)], n

    def _objects(self, static: StaticLayer, drawn: list[_Drawn], ids: np.ndarray, shift: tuple[int, int]) -> list[dict]:
        moving_rois = [d.roi for d in drawn] + self._arm_rois
        out = []
        for d in static.drawn:
            if not any(_overlap(d.roi, r) for r in moving_rois):
                box, n = static.boxes[d.obj_id]
            else:
                box, n = self._box(ids, d)
            out.append(_record(d, _shift_box(box, shift, self.geom), n))
        for d in drawn:
            box, n = self._box(ids, d)
            out.append(_record(d, _shift_box(box, shift, self.geom), n))
        return [o for o in out if o is not None]

    # ------------------------------------------------------------------------------------------
    # Sensor
    # ------------------------------------------------------------------------------------------

    def _window(self, field_: np.ndarray, seed: int, salt: int) -> np.ndarray:
        """A frame-sized window of a pre-drawn random field, at an offset chosen by ``seed``."""
        h, w = self.geom.height, self.geom.width
        oy, ox = _offset(seed, salt, self.PAD)
        return field_[oy : oy + h, ox : ox + w]

    def _expose(self, color: np.ndarray, fx: Effects) -> np.ndarray:
        gain = tuple(float(x) for x in fx.gain)
        if any(abs(x - 1.0) > 1e-3 for x in gain):
            color = cv2.transform(color, np.diag(gain).astype(np.float32))
        if fx.noise_sigma > 0:
            noise = self._noise(fx.noise_sigma)
            oy, ox = _offset(fx.seed, 7, self.PAD)
            h, w = self.geom.height, self.geom.width
            pos, neg = noise[0][oy : oy + h, ox : ox + w], noise[1][oy : oy + h, ox : ox + w]
            color = cv2.subtract(cv2.add(color, pos), neg)
        return color

    def _noise(self, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """Signed colour noise split into two saturating uint8 fields (add one, subtract one)."""
        if self._noise_cache is None or self._noise_cache[0] != sigma:
            n = np.rint(self._noise_unit * sigma)
            self._noise_cache = (sigma, np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))
        return self._noise_cache[1], self._noise_cache[2]

    def _depth_sensor(self, depth: np.ndarray, hole: np.ndarray, shadow: np.ndarray, seed: int) -> np.ndarray:
        """Stereo depth: quantised, noisy disparity; dropouts; occlusion shadows; invalid band."""
        disparity = np.float32(STEREO_FB) / depth
        disparity += self._window(self._gauss, seed, 1) * np.float32(0.07)  # matching noise, px
        steps = (disparity * np.float32(32.0) + np.float32(0.5)).astype(np.int32)  # 1/32 px subpixel
        z = np.float32(STEREO_FB * 32.0) / np.maximum(steps, 1).astype(np.float32)
        out = np.minimum(z, np.float32(65535)).astype(np.uint16)
        invalid = self._window(self._uniform8, seed, 2) < hole   # glossy, dark, transparent
        invalid |= shadow
        invalid |= self._window(self._uniform8, seed, 3) < 1      # speckle, ~0.4 %
        invalid[:, :14] = True                                    # the left invalid band of D4xx depth
        out[invalid] = 0
        return out


def _offset(seed: int, salt: int, pad: int) -> tuple[int, int]:
    r = (seed * 2654435761 + salt * 40503) & 0xFFFFFFFF
    return (r >> 8) % pad, (r >> 20) % pad


def _occlusion_shadow(depth: np.ndarray) -> np.ndarray:
    """Pixels a stereo camera cannot match: left of a near edge, the projector/left imager
    baseline hides a band about (f*B) * (1/z_near - 1/z_far) pixels wide (1-4 px here)."""
    jump = depth[:, 1:] - depth[:, :-1]  # > 0: the pixel to the left is farther
    shadow = np.zeros(depth.shape, bool)
    edge = jump > 40.0
    shadow[:, :-1] = edge
    for k in (1, 2, 3):
        shadow[:, : -1 - k] |= edge[:, k:] & (jump[:, k:] > 40.0 + 60.0 * k)
    return shadow


def _shift(a: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``a`` moved by whole pixels (dx right, dy down), edges replicated."""
    h, w = a.shape[:2]
    dx, dy = max(min(dx, w - 1), 1 - w), max(min(dy, h - 1), 1 - h)
    crop = a[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    if a.dtype == bool:
        crop = crop.view(np.uint8)
    out = cv2.copyMakeBorder(crop, max(dy, 0), max(-dy, 0), max(dx, 0), max(-dx, 0), cv2.BORDER_REPLICATE)
    return out.view(bool) if a.dtype == bool else out


def _shift_box(box: list[float], shift: tuple[int, int], geom: CartGeometry) -> list[float]:
    if not box or shift == (0, 0):
        return box
    dx, dy = shift
    return [min(max(box[0] + dx, 0.0), geom.width), min(max(box[1] + dy, 0.0), geom.height),
            min(max(box[2] + dx, 0.0), geom.width), min(max(box[3] + dy, 0.0), geom.height)]


def _clip(x0: int, y0: int, x1: int, y1: int, w: int, h: int) -> tuple[int, int, int, int]:
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _record(d: _Drawn, box: list[float], n: int) -> dict | None:
    if n < 12 or not box or box[2] <= box[0] or box[3] <= box[1]:  # fully (or all but a sliver) hidden: not an object the camera can see
        return None
    return {
        "id": d.obj_id,
        "sku": d.sku,
        "class": d.cls,
        "xyxy": box,
        "in_basket": d.in_basket,
        "visible": round(min(n / max(d.full_px, 1), 1.0), 3),
    }


def _motion_blur(img: np.ndarray, velocity_px: tuple[float, float], roi) -> None:
    """Blur ``img`` in place along ``velocity_px`` (pixels moved during one frame; the exposure
    covers about 40 % of the frame time)."""
    vx, vy = velocity_px[0] * 0.4, velocity_px[1] * 0.4
    length = math.hypot(vx, vy)
    if length < 1.0:
        return
    n = min(int(math.ceil(length)) | 1, 31)
    kernel = np.zeros((n, n), np.float32)
    c = n // 2
    ex, ey = vx / length * (n - 1) / 2, vy / length * (n - 1) / 2
    cv2.line(kernel, (int(round(c - ex)), int(round(c - ey))), (int(round(c + ex)), int(round(c + ey))), 1.0, 1, cv2.LINE_AA)
    kernel /= kernel.sum()
    if roi is None:
        img[:] = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    else:
        x0, y0, x1, y1 = roi
        img[y0:y1, x0:x1] = cv2.filter2D(img[y0:y1, x0:x1], -1, kernel, borderType=cv2.BORDER_REPLICATE)
