"""Reproject a depth image into the colour camera (what ``rs2::align`` does on the device).

Used for librealsense recordings, whose depth stream is stored in the depth sensor's own
geometry. Each valid depth pixel is back-projected with the depth intrinsics, moved by the
depth-to-colour extrinsics and projected with the colour intrinsics; where several land on one
colour pixel the nearest wins (a z-buffer), and colour pixels no depth pixel reaches stay 0.
Unlike librealsense, which splats each depth pixel over its whole footprint, this writes one
colour pixel per depth pixel, so upsampling to a larger colour image leaves pinholes.
"""

from __future__ import annotations

import numpy as np

from .messages import CameraInfo

__all__ = ["align_depth_to_color", "is_identity"]


def is_identity(depth_cam: CameraInfo, color_cam: CameraInfo, rotation: np.ndarray, translation_m: np.ndarray) -> bool:
    same_k = (depth_cam.width, depth_cam.height, depth_cam.fx, depth_cam.fy, depth_cam.cx, depth_cam.cy) == (
        color_cam.width, color_cam.height, color_cam.fx, color_cam.fy, color_cam.cx, color_cam.cy)
    return same_k and np.allclose(rotation, np.eye(3), atol=1e-9) and np.allclose(translation_m, 0.0, atol=1e-9)


def align_depth_to_color(
    depth_mm: np.ndarray,
    depth_cam: CameraInfo,
    color_cam: CameraInfo,
    rotation: np.ndarray | None = None,
    translation_m: np.ndarray | None = None,
) -> np.ndarray:
    """Depth (uint16 mm, depth camera geometry) -> uint16 mm (colour H, W), 0 where unknown.

    ``rotation`` (3x3) and ``translation_m`` (3,) map a point from the depth camera frame into the
    colour camera frame (p_color = R p_depth + t); both default to identity.
    """
    rotation = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    translation_m = np.zeros(3) if translation_m is None else np.asarray(translation_m, dtype=np.float64).reshape(3)
    if depth_mm.dtype != np.uint16 or depth_mm.ndim != 2:
        raise ValueError(f"depth must be (H, W) uint16, got {depth_mm.shape} {depth_mm.dtype}")
    if is_identity(depth_cam, color_cam, rotation, translation_m):
        return depth_mm
    v, u = np.nonzero(depth_mm)
    z = depth_mm[v, u].astype(np.float64) * 1e-3
    pts = np.stack([(u - depth_cam.cx) / depth_cam.fx * z, (v - depth_cam.cy) / depth_cam.fy * z, z])
    pts = rotation @ pts + translation_m[:, None]
    zc = pts[2]
    front = zc > 1e-6
    uc = np.rint(pts[0, front] / zc[front] * color_cam.fx + color_cam.cx).astype(np.int64)
    vc = np.rint(pts[1, front] / zc[front] * color_cam.fy + color_cam.cy).astype(np.int64)
    mm = np.clip(np.rint(zc[front] * 1000.0), 1, 65535).astype(np.uint16)
    inside = (uc >= 0) & (uc < color_cam.width) & (vc >= 0) & (vc < color_cam.height)
    flat = vc[inside] * color_cam.width + uc[inside]
    out = np.full(color_cam.width * color_cam.height, np.iinfo(np.uint16).max, dtype=np.uint16)
    np.minimum.at(out, flat, mm[inside])  # z-buffer: the nearest surface wins
    out[out == np.iinfo(np.uint16).max] = 0
    return out.reshape(color_cam.height, color_cam.width)


def parse_librealsense_extrinsics(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``"rotation=r0,...,r8;translation=tx,ty,tz"`` (librealsense ROS 2 recordings) -> (R, t).

    librealsense stores ``rs2_extrinsics.rotation`` column-major.
    """
    fields = dict(part.split("=", 1) for part in text.strip().strip(";").split(";") if "=" in part)
    rot = np.array([float(x) for x in fields["rotation"].split(",")], dtype=np.float64)
    trans = np.array([float(x) for x in fields["translation"].split(",")], dtype=np.float64)
    if rot.size != 9 or trans.size != 3:
        raise ValueError(f"extrinsics need 9 rotation and 3 translation values, got {rot.size} and {trans.size}")
    return rot.reshape(3, 3).T, trans


def transform_from_msg(msg: object) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) from a geometry_msgs Transform (librealsense ROS 1 recordings)."""
    q = msg.rotation
    x, y, z, w = float(q.x), float(q.y), float(q.z), float(q.w)
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    t = msg.translation
    return rot, np.array([float(t.x), float(t.y), float(t.z)])
