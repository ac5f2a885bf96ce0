"""Detection decode + NMS: caper_edge.detect.decode against numpy + cv2.dnn.NMSBoxes.

Input: a realistic YOLOv8/YOLO11 head for a 640x640 image, (1, 4 + nc, 8400) float32: most
candidates score low (sigmoid outputs, mostly < 0.05), a few hundred above the 0.25 threshold,
clustered around 40 objects so NMS has work to do. Both sides run single-threaded.

The peer is the strongest honest numpy + OpenCV version rather than the common tutorial one:
it reduces over the class rows in place (no transpose copy), takes the arg-max only for the
survivors of the threshold, and then runs NMS per class either with cv2.dnn.NMSBoxesBatched (one
call, class offsets) or with a loop of cv2.dnn.NMSBoxes over the classes present, whichever is
faster on this input (picked by timing both once; the case's notes say which).
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from caper_edge import detect

from .harness import Case, gpu_cupy

CONF, IOU, MAX_DET = 0.25, 0.45, 300
N = 8400  # 80x80 + 40x40 + 20x20 anchors of a 640x640 input


def realistic_head(nc: int, *, seed: int = 0, objects: int = 40, per_object: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = np.empty((1, 4 + nc, N), np.float32)
    head = raw[0]
    head[0] = rng.uniform(0, 640, N)
    head[1] = rng.uniform(0, 640, N)
    head[2] = rng.uniform(4, 200, N)
    head[3] = rng.uniform(4, 200, N)
    head[4:] = 0.2 * rng.random((nc, N), dtype=np.float32) ** 4  # mostly ~0.001 .. 0.05
    centers = rng.uniform(40, 600, (objects, 2))
    sizes = rng.uniform(20, 160, (objects, 2))
    classes = rng.integers(0, nc, objects)
    cols = rng.choice(N, objects * per_object, replace=False)
    for k, col in enumerate(cols):
        o = k % objects
        head[0:2, col] = centers[o] + rng.normal(0, 0.08, 2) * sizes[o]
        head[2:4, col] = sizes[o] * np.exp(rng.normal(0, 0.1, 2))
        head[4 + classes[o], col] = rng.uniform(0.3, 0.95)
    return raw


def _threshold(raw: np.ndarray):
    head = raw[0]
    scores = head[4:]
    best = scores.max(axis=0)
    keep = np.flatnonzero(best > CONF)
    cls = scores[:, keep].argmax(axis=0).astype(np.int32)
    cx, cy, w, h = head[:4, keep].astype(np.float32, copy=False)
    xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    return xywh, best[keep].astype(np.float32, copy=False), cls


def _finish(xywh, score, cls, kept):
    kept = np.asarray(kept, dtype=np.int64).ravel()
    kept = kept[np.argsort(-score[kept], kind="stable")][:MAX_DET]
    b = xywh[kept]
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1), score[kept], cls[kept]


def reference_batched(raw: np.ndarray):
    xywh, score, cls = _threshold(raw)
    kept = cv2.dnn.NMSBoxesBatched(xywh, score, cls, CONF, IOU)
    return _finish(xywh, score, cls, kept)


def reference_per_class(raw: np.ndarray):
    xywh, score, cls = _threshold(raw)
    kept = []
    for c in np.unique(cls):
        idx = np.flatnonzero(cls == c)
        k = cv2.dnn.NMSBoxes(xywh[idx], score[idx], CONF, IOU)
        kept.append(idx[np.asarray(k, dtype=np.int64).ravel()])
    return _finish(xywh, score, cls, np.concatenate(kept) if kept else [])


def _widened(fn):
    return lambda raw: fn(raw.astype(np.float32))


def _faster_reference(raw: np.ndarray, variants):
    """The fastest of `variants` ((callable, name) pairs) on `raw`, timed over 30 calls each."""
    timings = []
    for fn, name in variants:
        fn(raw)
        t0 = time.perf_counter()
        for _ in range(30):
            fn(raw)
        timings.append((time.perf_counter() - t0, fn, name))
    _, fn, name = min(timings, key=lambda t: t[0])
    return fn, name


REFERENCES = [
    (reference_batched, "numpy + cv2.dnn.NMSBoxesBatched"),
    (reference_per_class, "numpy + cv2.dnn.NMSBoxes per class"),
]


def cases(quick: bool) -> list[Case]:
    out = []
    for nc in (1, 80):
        raw = realistic_head(nc, seed=nc)
        ref, ref_name = _faster_reference(raw, REFERENCES)
        survivors = int((raw[0, 4:].max(axis=0) > CONF).sum())
        kept = len(detect.decode(raw, CONF, IOU, MAX_DET))
        out.append(
            Case(
                suite="detect",
                name=f"decode+NMS {N} cand, {nc} class{'es' if nc > 1 else ''}, f32",
                ours=lambda raw=raw: detect.decode(raw, CONF, IOU, MAX_DET),
                peer=lambda raw=raw, ref=ref: ref(raw),
                peer_name=ref_name,
                bytes_moved=raw.nbytes,
                items=N,
                item_unit="candidates",
                notes=f"{survivors} candidates above {CONF}, {kept} kept; peer = {ref_name} (the faster of two)",
            )
        )
    # FP16 engine output. numpy has no fast float16 arithmetic, so the peer either reduces in
    # float16 directly or widens the whole head with astype first, whichever is faster.
    raw16 = realistic_head(80, seed=80).astype(np.float16)
    variants16 = REFERENCES + [(_widened(fn), name + " after astype(float32)") for fn, name in REFERENCES]
    ref16, ref16_name = _faster_reference(raw16, variants16)
    out.append(
        Case(
            suite="detect",
            name=f"decode+NMS {N} cand, 80 classes, f16",
            ours=lambda: detect.decode(raw16, CONF, IOU, MAX_DET),
            peer=lambda: ref16(raw16),
            peer_name=ref16_name,
            bytes_moved=raw16.nbytes,
            items=N,
            item_unit="candidates",
            notes=f"float16 head widened on the fly by ours; peer = {ref16_name} (the fastest of four)",
        )
    )
    return out + _cuda_cases()


def _cuda_cases() -> list[Case]:
    """decode_cuda on a device-resident head (threshold + compact on the GPU, NMS on the CPU)
    against ours on the CPU after the head is copied back, which is what a TensorRT engine's
    output would otherwise cost. Only where a GPU and CuPy exist."""
    cp = gpu_cupy()
    if cp is None:
        return []
    out = []
    for nc, dtype in [(1, np.float32), (80, np.float32), (80, np.float16)]:
        raw = realistic_head(nc, seed=nc).astype(dtype)
        dev = cp.asarray(raw)
        stream = cp.cuda.get_current_stream()
        out.append(
            Case(
                suite="detect",
                name=f"cuda decode+NMS {N} cand, {nc} class{'es' if nc > 1 else ''}, f{np.dtype(dtype).itemsize * 8}",
                ours=lambda dev=dev, stream=stream: detect.decode_cuda(dev, CONF, IOU, MAX_DET, stream=stream),
                peer=lambda dev=dev: detect.decode(cp.asnumpy(dev), CONF, IOU, MAX_DET),
                peer_name="copy head to host + ours on CPU",
                items=N,
                item_unit="candidates",
                notes="device-resident head; results on the host when the call returns",
            )
        )
    return out
