"""Product-crop embeddings: the preprocessing shared by training, enrollment and the runtime.

The embedding model maps a product crop to a 128-d L2-normalised vector. The crop is
letterboxed (aspect ratio kept: a tall bottle and a flat box must not be squashed into the same
square) into ``size`` x ``size`` with grey padding, scaled to 0..1 and normalised with
``CROP_MEAN``/``CROP_STD``. ``models/`` trains with exactly :func:`preprocess_crops`, so what the
cart computes matches what the network saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .engines.base import Engine
from .errors import EngineError

__all__ = ["CROP_MEAN", "CROP_STD", "MIN_CROP_PX", "TURNS", "Embedder", "crop_box", "letterbox_square", "preprocess_crops",
           "turn_crops"]

CROP_MEAN = 0.5   # in 0..1 units, all channels
CROP_STD = 0.25
PAD_VALUE = 114
MIN_CROP_PX = 4   # boxes narrower or lower than this (after clipping) are not embedded
TURNS = (1, 2, 4)  # the test-time quarter-turn views Embedder.embed averages


def crop_box(image: np.ndarray, xyxy) -> np.ndarray | None:
    """The crop the cart embeds for one detection: the box rounded to pixels, clipped to the
    image; None when it is under ``MIN_CROP_PX`` a side. A view, not a copy."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in xyxy)
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, image.shape[1]), min(y2, image.shape[0])
    if x2 - x1 < MIN_CROP_PX or y2 - y1 < MIN_CROP_PX:
        return None
    return image[y1:y2, x1:x2]


def turn_crops(crops: Sequence[np.ndarray], quarter_turns: int) -> list[np.ndarray]:
    """``crops`` turned by ``quarter_turns`` x 90 degrees (contiguous copies; the same list when
    0 mod 4): the view ``[models] turn_cycle`` gives frame k, quarter_turns = k."""
    k = quarter_turns % 4
    return list(crops) if k == 0 else [np.ascontiguousarray(np.rot90(c, k)) for c in crops]


def letterbox_square(image: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 -> size x size x 3 uint8, aspect kept, centred, grey (114) borders."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.full((size, size, 3), PAD_VALUE, np.uint8)
    x0, y0 = (size - nw) // 2, (size - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = resized
    return out


def preprocess_crops(crops: Sequence[np.ndarray], size: int) -> np.ndarray:
    """RGB uint8 crops (each HxWx3, any size) -> (n, 3, size, size) float32 network input."""
    if len(crops) == 0:
        raise ValueError("crops is empty: expected at least one HxWx3 uint8 RGB image")
    out = np.empty((len(crops), 3, size, size), np.float32)
    for i, crop in enumerate(crops):
        if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
            got = f"{crop.shape} {crop.dtype}" if isinstance(crop, np.ndarray) else type(crop).__name__
            raise ValueError(f"crop {i} must be an HxWx3 uint8 RGB image, got {got}")
        if crop.shape[0] == 0 or crop.shape[1] == 0:
            raise ValueError(f"crop {i} is empty: shape {crop.shape}")
        square = letterbox_square(crop, size).astype(np.float32)
        out[i] = ((square * (1.0 / 255.0) - CROP_MEAN) / CROP_STD).transpose(2, 0, 1)
    return out


class Embedder:
    """Runs an embedding engine on crops: ``Embedder(engine).embed(crops) -> (n, D) float32``.

    The engine must take one (B, 3, S, S) float32 input (B may be dynamic) and give one (B, D)
    output. Fixed-batch engines are fed one crop at a time. Rows are re-normalised to unit
    length, so a model exported without its final normalisation still gives cosine-ready vectors.
    """

    def __init__(self, engine: Engine) -> None:
        spec = engine.input()
        out = engine.output()
        if len(spec.shape) != 4 or spec.shape[1] != 3 or spec.shape[2] is None or spec.shape[2] != spec.shape[3]:
            raise EngineError(
                f"embedding model {engine.path.name}: input '{spec.name}' is {spec.describe()}, expected (B, 3, S, S) float32"
            )
        if spec.dtype != np.float32 or len(out.shape) != 2:
            raise EngineError(
                f"embedding model {engine.path.name}: expected float32 (B, 3, S, S) -> (B, D), "
                f"got {spec.describe()} -> {out.describe()}"
            )
        self.engine = engine
        self.size = int(spec.shape[2])
        self.dim = out.shape[1]
        self.fixed_batch = spec.shape[0]

    def embed(self, crops: Sequence[np.ndarray], turns: int = 1) -> np.ndarray:
        """(n, D) unit embeddings of ``crops``. ``turns`` (1, 2 or 4) averages the embeddings of
        the crop turned by 0 and 180 degrees (2) or by every quarter turn (4), then re-normalises:
        test-time augmentation for a top view, which has no up (the models are trained on all four
        turns). It costs ``turns`` forward passes per crop; docs/gallery.md measures what it buys."""
        if turns not in TURNS:
            raise ValueError(f"turns must be one of {TURNS}, got {turns!r}")
        x = preprocess_crops(crops, self.size)
        if turns > 1:
            # The letterboxed square turned, not the crop re-letterboxed: the same pixels to within
            # the centring's rounding, and one preprocessing pass.
            step = 4 // turns
            x = np.concatenate([x] + [np.ascontiguousarray(np.rot90(x, k * step, axes=(2, 3))) for k in range(1, turns)])
        emb = self._forward(x)
        if turns == 1:
            return emb
        emb = emb.reshape(turns, len(crops), -1).sum(0)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """Raw (n, D) float32 outputs for a preprocessed (n, 3, S, S) batch."""
        if self.fixed_batch is None:
            rows = [self.engine.run(x)[self.engine.outputs[0].name]]
        else:
            b = self.fixed_batch
            pad = (-len(x)) % b
            xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
            rows = [self.engine.run(np.ascontiguousarray(xp[i : i + b]))[self.engine.outputs[0].name].copy() for i in range(0, len(xp), b)]
        emb = np.concatenate(rows)[: len(x)].astype(np.float32)
        # unit rows before any averaging: each turn counts the same however the model scales it
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
