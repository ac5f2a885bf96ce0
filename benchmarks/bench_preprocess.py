"""Preprocessing: the fused letterbox against the OpenCV chain an engineer would write, and the
depth helpers against numpy. Single thread on both sides (the harness pins OpenCV to 1 thread;
ours is single-threaded by design).

The OpenCV peer is cvtColor (when the input is not RGB) -> resize INTER_LINEAR -> copyMakeBorder
-> dnn.blobFromImage (-> astype(float16) for half output): four or five passes with full-image
intermediates. Ours allocates its output like the peer does (passing ``out=`` measures the same
here, because the allocator reuses the block).

The contract's chain ends in ``blobFromImage``, whose full-image float intermediates make it
swing from under 1 ms to several ms when other processes compete for the caches. The
"(vs cv2 + numpy)" cases add a hand-tuned peer that avoids it:
the same OpenCV geometry (cvtColor, resize, copyMakeBorder) followed by one numpy
``multiply`` that writes the CHW float planes directly (a transposed view, no blob call).
"""

from __future__ import annotations

import numpy as np

from caper_edge import preprocess as pp

from .harness import Case, gpu_cupy

SUITE = "preprocess"
_TO_RGB = {"rgb8": None, "yuyv": "COLOR_YUV2RGB_YUYV"}


def _opencv_chain(img: np.ndarray, fmt: str, size: tuple[int, int], half: bool):
    import cv2

    code = getattr(cv2, _TO_RGB[fmt]) if _TO_RGB[fmt] else None
    H, W = size
    h, w = img.shape[:2]
    r = min(H / h, W / w)
    nw, nh = round(w * r), round(h * r)
    px, py = (W - nw) // 2, (H - nh) // 2

    def run():
        rgb = img if code is None else cv2.cvtColor(img, code)
        resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        boxed = cv2.copyMakeBorder(resized, py, H - nh - py, px, W - nw - px, cv2.BORDER_CONSTANT, value=(114, 114, 114))
        blob = cv2.dnn.blobFromImage(boxed, 1 / 255)
        return blob.astype(np.float16) if half else blob

    return run


def _opencv_numpy_chain(img: np.ndarray, fmt: str, size: tuple[int, int], half: bool):
    import cv2

    code = getattr(cv2, _TO_RGB[fmt]) if _TO_RGB[fmt] else None
    H, W = size
    h, w = img.shape[:2]
    r = min(H / h, W / w)
    nw, nh = round(w * r), round(h * r)
    px, py = (W - nw) // 2, (H - nh) // 2
    out = np.empty((3, H, W), np.float16 if half else np.float32)

    def run():
        rgb = img if code is None else cv2.cvtColor(img, code)
        resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        boxed = cv2.copyMakeBorder(resized, py, H - nh - py, px, W - nw - px, cv2.BORDER_CONSTANT, value=(114, 114, 114))
        np.multiply(boxed.transpose(2, 0, 1), np.float32(1 / 255), out=out, casting="unsafe")
        return out

    return run


def _letterbox_case(rng, name: str, hw: tuple[int, int], fmt: str, size: tuple[int, int], dtype, notes: str,
                    peer=_opencv_chain) -> Case:
    channels = {"rgb8": 3, "yuyv": 2}[fmt]
    img = rng.integers(0, 256, (*hw, channels), dtype=np.uint8)
    half = np.dtype(dtype) == np.float16
    out_bytes = 3 * size[0] * size[1] * np.dtype(dtype).itemsize
    return Case(
        suite=SUITE,
        name=name,
        ours=lambda: pp.letterbox(img, size, fmt, dtype=dtype),
        peer=peer(img, fmt, size, half),
        peer_name="opencv chain" if peer is _opencv_chain else "cv2 geometry + numpy CHW normalise",
        bytes_moved=img.nbytes + out_bytes,
        items=size[0] * size[1],
        item_unit="px",
        notes=notes,
    )


def _median_depth_case(rng) -> Case:
    depth = rng.integers(300, 4000, (480, 848), dtype=np.uint16)
    depth[rng.random(depth.shape) < 0.15] = 0
    xy = rng.uniform(0, [748, 380], (40, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, 100, (40, 2))], axis=1).astype(np.float32)
    ints = [(int(x1), int(y1), int(np.ceil(x2)), int(np.ceil(y2))) for x1, y1, x2, y2 in boxes]

    def numpy_medians():
        res = np.empty(len(ints), np.float32)
        for k, (x1, y1, x2, y2) in enumerate(ints):
            v = depth[y1:y2, x1:x2]
            v = v[v > 0]
            res[k] = np.median(v) * 0.001 if v.size else np.nan
        return res

    return Case(
        suite=SUITE,
        name="median depth, 40 boxes in 848x480",
        ours=lambda: pp.median_depth(depth, boxes),
        peer=numpy_medians,
        peer_name="numpy median",
        items=len(ints),
        item_unit="box",
    )


def _depth_to_meters_case(rng) -> Case:
    depth = rng.integers(0, 4000, (480, 848), dtype=np.uint16)
    out = np.empty(depth.shape, np.float32)
    peer_out = np.empty(depth.shape, np.float32)
    return Case(
        suite=SUITE,
        name="depth to metres 848x480 (out=)",
        ours=lambda: pp.depth_to_meters(depth, 0.001, out=out),
        peer=lambda: np.multiply(depth, np.float32(0.001), out=peer_out, dtype=np.float32),
        peer_name="numpy multiply",
        bytes_moved=depth.nbytes + out.nbytes,
    )


def _cuda_cases(rng) -> list[Case]:
    """Kernel figures where a GPU and CuPy exist: device input, synchronised per call."""
    cp = gpu_cupy()
    if cp is None:
        return []
    cases = []
    for name, hw, fmt, size, dtype in [
        ("cuda 1280x720 rgb8 -> 640x640 f32", (720, 1280), "rgb8", (640, 640), np.float32),
        ("cuda 640x480 yuyv -> 320x320 f16", (480, 640), "yuyv", (320, 320), np.float16),
    ]:
        img = rng.integers(0, 256, (*hw, 3 if fmt == "rgb8" else 2), dtype=np.uint8)
        dev = cp.asarray(img)
        out = cp.empty((3, *size), dtype=dtype)
        stream = cp.cuda.get_current_stream()

        def ours(dev=dev, out=out, fmt=fmt, size=size, dtype=dtype, stream=stream):
            pp.letterbox_cuda(dev, size, fmt, dtype=dtype, out=out, stream=stream)
            stream.synchronize()

        cases.append(
            Case(
                suite=SUITE,
                name=name,
                ours=ours,
                peer=lambda img=img, fmt=fmt, size=size, dtype=dtype: pp.letterbox(img, size, fmt, dtype=dtype),
                peer_name="ours on CPU",
                bytes_moved=img.nbytes + 3 * size[0] * size[1] * np.dtype(dtype).itemsize,
                notes="device-resident input and output; includes launch and stream sync",
            )
        )
    return cases


def cases(quick: bool) -> list[Case]:
    rng = np.random.default_rng(7)
    result = [
        _letterbox_case(rng, "640x480 rgb8 -> 640x640 f32", (480, 640), "rgb8", (640, 640), np.float32,
                        "r = 1: convert + pad loop"),
        _letterbox_case(rng, "1280x720 rgb8 -> 640x640 f32", (720, 1280), "rgb8", (640, 640), np.float32,
                        "exact 2x downscale loop"),
        _letterbox_case(rng, "640x480 yuyv -> 320x320 f16", (480, 640), "yuyv", (320, 320), np.float16,
                        "exact 2x downscale loop, YUYV -> RGB fused"),
    ]  # fmt: skip
    if not quick:
        result += [
            _letterbox_case(rng, "1920x1080 rgb8 -> 640x640 f32", (1080, 1920), "rgb8", (640, 640), np.float32,
                            "general loop (r = 1/3)"),
            _letterbox_case(rng, "848x480 rgb8 -> 640x640 f32", (480, 848), "rgb8", (640, 640), np.float32,
                            "general loop (RealSense colour size)"),
        ]  # fmt: skip
    result += [
        _letterbox_case(rng, "640x480 rgb8 -> 640x640 f32 (vs cv2 + numpy)", (480, 640), "rgb8", (640, 640),
                        np.float32, "stronger peer", peer=_opencv_numpy_chain),
        _letterbox_case(rng, "1280x720 rgb8 -> 640x640 f32 (vs cv2 + numpy)", (720, 1280), "rgb8", (640, 640),
                        np.float32, "stronger peer", peer=_opencv_numpy_chain),
        _letterbox_case(rng, "640x480 yuyv -> 320x320 f16 (vs cv2 + numpy)", (480, 640), "yuyv", (320, 320),
                        np.float16, "stronger peer", peer=_opencv_numpy_chain),
    ]  # fmt: skip
    result += [_median_depth_case(rng), _depth_to_meters_case(rng)]
    result += _cuda_cases(rng)
    return result
