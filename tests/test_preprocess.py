"""caper_edge.preprocess against independent references: the OpenCV chain (cvtColor -> resize
INTER_LINEAR -> copyMakeBorder -> blobFromImage), hand-computed geometry, numpy for depth.

Our output is compared in grey levels ("pixel units", before scaling): the contract allows at
most 1 grey level, the room the reference chain's own uint8 rounding after resize needs.
"""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import caper_edge
from caper_edge import _core
from caper_edge import preprocess as pp

FMTS = ["rgb8", "bgr8", "yuyv", "gray"]
TO_RGB = {"rgb8": None, "bgr8": cv2.COLOR_BGR2RGB, "yuyv": cv2.COLOR_YUV2RGB_YUYV, "gray": cv2.COLOR_GRAY2RGB}
CHANNELS = {"rgb8": 3, "bgr8": 3, "yuyv": 2, "gray": 1}
# ImageNet-style normalisation: non-trivial per-channel mean and std
NORM = dict(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def random_image(rng: np.random.Generator, h: int, w: int, fmt: str) -> np.ndarray:
    c = CHANNELS[fmt]
    return rng.integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8)


def contract_geometry(h: int, w: int, H: int, W: int) -> tuple[int, int, int, int]:
    """new_h, new_w, pad_y, pad_x exactly as DESIGN.md writes them (Python's round is half-even)."""
    r = min(H / h, W / w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    return nh, nw, (H - nh) // 2, (W - nw) // 2


def opencv_letterbox_u8(img: np.ndarray, fmt: str, H: int, W: int, pad: int = 114) -> np.ndarray:
    """The reference chain up to the border: uint8 (H, W, 3) RGB."""
    rgb = img if TO_RGB[fmt] is None else cv2.cvtColor(img, TO_RGB[fmt])
    h, w = rgb.shape[:2]
    nh, nw, py, px = contract_geometry(h, w, H, W)
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(resized, py, H - nh - py, px, W - nw - px, cv2.BORDER_CONSTANT, value=(pad, pad, pad))


def opencv_reference_pixels(img: np.ndarray, fmt: str, H: int, W: int, pad: int = 114) -> np.ndarray:
    """(3, H, W) float32 grey levels: blobFromImage with scalefactor 1 does HWC -> CHW only."""
    return cv2.dnn.blobFromImage(opencv_letterbox_u8(img, fmt, H, W, pad), 1.0)[0]


def to_pixels(out: np.ndarray, scale: float, mean, std) -> np.ndarray:
    """Invert ((p * scale) - mean) / std in float64."""
    m = np.asarray(mean, np.float64)[:, None, None]
    s = np.asarray(std, np.float64)[:, None, None]
    return (out.astype(np.float64) * s + m) / scale


def pixel_tolerance(out: np.ndarray, scale: float, std) -> float:
    """1 grey level, plus float16's rounding of the output expressed in grey levels."""
    if out.dtype != np.float16:
        return 1.0
    half_ulp = np.abs(out.astype(np.float64)).max() * 2.0**-11
    return 1.0 + half_ulp * max(std) / scale


def assert_matches_opencv(img, fmt, size, dtype, norm=NORM, pad=114):
    out, meta = pp.letterbox(img, size, fmt, dtype=dtype, pad_value=pad, **norm)
    assert out.shape == (3, *size) and out.dtype == dtype and out.flags.c_contiguous
    ref = opencv_reference_pixels(img, fmt, *size, pad=pad)
    diff = np.abs(to_pixels(out, norm["scale"], norm["mean"], norm["std"]) - ref).max()
    tol = pixel_tolerance(out, norm["scale"], norm["std"])
    assert diff <= tol, f"{fmt} {img.shape} -> {size} {np.dtype(dtype)}: max diff {diff:.3f} grey levels > {tol:.3f}"
    return out, meta


# ---------------------------------------------------------------------------------------------
# Agreement with the OpenCV reference chain
# ---------------------------------------------------------------------------------------------

SOURCE_SIZES = [(1, 1), (1, 2), (2, 1), (3, 7), (13, 17), (17, 13), (5, 101), (480, 640), (720, 1280), (1080, 1920)]
TARGETS = [(640, 640), (320, 320), (384, 640), (640, 384), (17, 33)]


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("hw", SOURCE_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_matches_opencv_chain(rng, hw, fmt, dtype):
    h, w = hw
    if fmt == "yuyv":
        w += w % 2  # YUY2 needs pixel pairs
    img = random_image(rng, h, w, fmt)
    for size in TARGETS:
        assert_matches_opencv(img, fmt, size, dtype)


@pytest.mark.parametrize("fmt", FMTS)
def test_upscaling_and_odd_targets(rng, fmt):
    # small images blown up (r > 1 on both axes), including non-integer and exact 2x / 3x scales
    for (h, w), size in [((4, 6), (8, 12)), ((3, 4), (9, 12)), ((7, 10), (100, 61)), ((31, 46), (480, 640))]:
        assert_matches_opencv(random_image(rng, h, w, fmt), fmt, size, np.float32)


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 40),
    half_w=st.integers(1, 20),
    odd=st.booleans(),
    H=st.integers(1, 48),
    W=st.integers(1, 48),
    fmt=st.sampled_from(FMTS),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_geometry_matches_opencv(h, half_w, odd, H, W, fmt, seed):
    w = 2 * half_w - (1 if odd and fmt != "yuyv" else 0)
    img = random_image(np.random.default_rng(seed), h, w, fmt)
    assert_matches_opencv(img, fmt, (H, W), np.float32)


def test_matches_blob_from_image_normalisation(rng):
    # blobFromImage computes (input - mean) * scalefactor; with one std for all channels our
    # ((p * scale) - mean) / std is the same blob with scalefactor = scale/std, mean = mean/scale.
    img = random_image(rng, 360, 500, "rgb8")
    scale, mean, s = 1 / 255, (0.5, 0.25, 0.125), 0.5
    out, _ = pp.letterbox(img, (320, 320), "rgb8", scale=scale, mean=mean, std=(s, s, s))
    lb = opencv_letterbox_u8(img, "rgb8", 320, 320)
    blob = cv2.dnn.blobFromImage(lb, scalefactor=scale / s, mean=tuple(m / scale for m in mean))[0]
    assert np.abs(out - blob).max() <= 1.0 * scale / s + 1e-5


def test_yuyv_colour_conversion_is_bit_exact_with_opencv():
    # Every (Y, U, V) combination once: identity geometry and scale 1 expose the converted bytes.
    y = np.arange(256, dtype=np.uint8)
    for u0 in range(0, 256, 32):
        u = np.arange(u0, u0 + 32, dtype=np.uint8)
        v = np.arange(256, dtype=np.uint8)
        uu, vv, yy = np.meshgrid(u, v, y[0::2], indexing="ij")  # one pair per (u, v, even y)
        pairs = np.stack([yy, uu, yy + 1, vv], axis=-1).reshape(-1, 4)
        img = np.ascontiguousarray(pairs.reshape(1024, -1, 2))  # (1024, 2048, 2): whole pairs per row
        out, meta = pp.letterbox(img, img.shape[:2], "yuyv", scale=1.0)
        assert (meta.pad_x, meta.pad_y, meta.new_h, meta.new_w) == (0, 0, *img.shape[:2])
        ref = cv2.cvtColor(img, cv2.COLOR_YUV2RGB_YUYV).transpose(2, 0, 1)
        np.testing.assert_array_equal(out, ref.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# The fast CPU loops against the per-pixel definition (the function the CUDA kernel runs)
# ---------------------------------------------------------------------------------------------

PATH_CASES = [
    ((480, 640), (640, 640)),  # identity (r == 1): convert + pad
    ((720, 1280), (640, 640)),  # exact 2x downscale
    ((480, 640), (320, 320)),  # exact 2x downscale
    ((1080, 1920), (640, 640)),  # general downscale (1/3)
    ((480, 848), (640, 640)),  # general, RealSense 848x480
    ((13, 18), (40, 50)),  # general upscale, row cache reuse
    ((1, 2), (5, 9)),  # degenerate
    ((31, 64), (31, 1024)),  # width-only rescale
]


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("case", PATH_CASES, ids=lambda c: f"{c[0][0]}x{c[0][1]}->{c[1][0]}x{c[1][1]}")
def test_fast_paths_equal_per_pixel_definition(rng, case, fmt, dtype):
    (h, w), size = case
    img = random_image(rng, h, w, fmt)
    fast, _ = pp.letterbox(img, size, fmt, dtype=dtype, **NORM, pad_value=7)
    ref = np.empty_like(fast)
    _core.letterbox_reference_into(img, pp.FORMATS[fmt], ref, NORM["scale"], NORM["mean"], NORM["std"], 7)
    np.testing.assert_array_equal(fast.view(np.uint16 if dtype == np.float16 else np.uint32),
                                  ref.view(np.uint16 if dtype == np.float16 else np.uint32))  # fmt: skip


@pytest.mark.parametrize("case", PATH_CASES[:6], ids=lambda c: f"{c[0][0]}x{c[0][1]}->{c[1][0]}x{c[1][1]}")
def test_float16_is_float32_rounded_to_nearest_even(rng, case):
    (h, w), size = case
    img = random_image(rng, h, w, "rgb8")
    f32, _ = pp.letterbox(img, size, **NORM)
    f16, _ = pp.letterbox(img, size, dtype=np.float16, **NORM)
    np.testing.assert_array_equal(f16.view(np.uint16), f32.astype(np.float16).view(np.uint16))


def test_padding_value_and_constant_image(rng):
    img = np.full((100, 200, 3), 200, np.uint8)
    out, meta = pp.letterbox(img, (64, 64), scale=1.0, pad_value=10)
    assert (meta.pad_y, meta.new_h, meta.new_w) == (16, 32, 64)
    assert np.all(out[:, :16] == 10) and np.all(out[:, 48:] == 10)
    assert np.all(out[:, 16:48] == 200)


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        ((480, 640), (640, 640), (1.0, 0, 80, 480, 640)),
        ((720, 1280), (640, 640), (0.5, 0, 140, 360, 640)),
        ((1080, 1920), (640, 640), (1 / 3, 0, 140, 360, 640)),
        ((480, 640), (320, 320), (0.5, 0, 40, 240, 320)),
        ((2, 5), (1, 100), (0.5, 49, 0, 1, 2)),  # 2.5 rounds half to even: 2
        ((2, 7), (1, 100), (0.5, 48, 0, 1, 4)),  # 3.5 rounds half to even: 4
        ((1, 4000), (640, 640), (0.16, 0, 319, 1, 640)),  # 0.16 rows would round to 0: clamped to 1
        ((1, 1), (3, 5), (3.0, 1, 0, 3, 3)),
    ],
)
def test_geometry_hand_computed(src, dst, expected):
    r, pad_x, pad_y, nh, nw = expected
    img = np.zeros(src, np.uint8)
    _, meta = pp.letterbox(img, dst, "gray")
    assert meta.r == pytest.approx(r, rel=1e-12)
    assert (meta.pad_x, meta.pad_y, meta.new_h, meta.new_w) == (pad_x, pad_y, nh, nw)
    assert (meta.src_h, meta.src_w, meta.dst_h, meta.dst_w) == (*src, *dst)


def test_geometry_follows_contract_formula(rng):
    for _ in range(2000):
        h, w, H, W = (int(v) for v in rng.integers(1, 3000, 4))
        r, pad_x, pad_y, nh, nw = _core.letterbox_geometry(h, w, H, W)
        assert r == min(H / h, W / w)
        assert (nh, nw, pad_y, pad_x) == contract_geometry(h, w, H, W)


# ---------------------------------------------------------------------------------------------
# unletterbox
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), [((480, 640), (640, 640)), ((1080, 1920), (640, 640)), ((37, 91), (416, 256))])
def test_unletterbox_inverts_the_forward_mapping(rng, src, dst):
    _, meta = pp.letterbox(np.zeros(src, np.uint8), dst, "gray")
    h, w = src
    xy1 = rng.uniform(0, [w, h], (50, 2))
    xy2 = xy1 + rng.uniform(0, [w, h], (50, 2)) * 0.5
    boxes = np.concatenate([xy1, np.minimum(xy2, [w, h])], axis=1)
    # forward by hand: the resize maps source edge coordinate u to u * new_w / w, then the pad
    fwd = boxes.copy()
    fwd[:, 0::2] = boxes[:, 0::2] * meta.new_w / w + meta.pad_x
    fwd[:, 1::2] = boxes[:, 1::2] * meta.new_h / h + meta.pad_y
    back = pp.unletterbox(fwd, meta)
    assert back.dtype == np.float32 and back.shape == boxes.shape
    np.testing.assert_allclose(back, boxes, atol=1e-3)
    np.testing.assert_allclose(pp.unletterbox(fwd[0], meta), boxes[0], atol=1e-3)  # a single (4,) box


def test_unletterbox_recovers_a_drawn_rectangle():
    # A white rectangle drawn in the source, found again in the letterboxed tensor, maps back to
    # where it was drawn (within the half output pixel the 50% threshold can move an edge).
    img = np.zeros((1080, 1920), np.uint8)
    x1, y1, x2, y2 = 300, 120, 1500, 900
    img[y1:y2, x1:x2] = 255
    out, meta = pp.letterbox(img, (640, 640), "gray", scale=1.0, pad_value=0)
    ys, xs = np.nonzero(out[0] > 127.5)
    found = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    back = pp.unletterbox(found, meta)
    np.testing.assert_allclose(back, [x1, y1, x2, y2], atol=0.5 / meta.scale_x + 1e-3)


def test_unletterbox_clips_to_the_image():
    _, meta = pp.letterbox(np.zeros((480, 640), np.uint8), (640, 640), "gray")
    back = pp.unletterbox([[-5, 0, 700, 79]], meta)  # starts left of the image, ends in the top border
    np.testing.assert_array_equal(back, [[0, 0, 640, 0]])
    raw = pp.unletterbox([[-5, 0, 700, 79]], meta, clip=False)
    np.testing.assert_allclose(raw, [[-5, -80, 700, -1]])


# ---------------------------------------------------------------------------------------------
# Depth helpers
# ---------------------------------------------------------------------------------------------


def test_depth_to_meters_matches_numpy(rng):
    raw = rng.integers(0, 8000, (48, 64), dtype=np.uint16)
    raw[rng.random(raw.shape) < 0.2] = 0
    m = pp.depth_to_meters(raw, 0.001)
    np.testing.assert_array_equal(m, np.where(raw > 0, raw.astype(np.float32) * np.float32(0.001), 0.0))
    nan_holes = pp.depth_to_meters(raw, 0.00025, invalid_value=np.nan)
    assert np.array_equal(np.isnan(nan_holes), raw == 0)
    np.testing.assert_array_equal(nan_holes[raw > 0], raw[raw > 0].astype(np.float32) * np.float32(0.00025))
    out = np.empty(raw.shape, np.float32)
    assert pp.depth_to_meters(raw, out=out) is out


def numpy_median_depth(depth, box, scale, fraction=1.0):
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2 * fraction, (y2 - y1) / 2 * fraction
    u0, u1 = (int(np.clip(math.floor(cx - hw), 0, depth.shape[1])), int(np.clip(math.ceil(cx + hw), 0, depth.shape[1])))
    v0, v1 = (int(np.clip(math.floor(cy - hh), 0, depth.shape[0])), int(np.clip(math.ceil(cy + hh), 0, depth.shape[0])))
    vals = depth[v0:v1, u0:u1]
    vals = vals[vals > 0]
    return math.nan if vals.size == 0 else float(np.median(vals)) * scale


def test_median_depth_matches_numpy(rng):
    depth = rng.integers(300, 3000, (120, 160), dtype=np.uint16)
    depth[rng.random(depth.shape) < 0.3] = 0
    xy = rng.uniform(-20, 170, (200, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.2, 60, (200, 2))], axis=1).astype(np.float32)
    for fraction in (1.0, 0.5):
        got = pp.median_depth(depth, boxes, 0.001, inner_fraction=fraction)
        assert got.shape == (200,) and got.dtype == np.float32
        want = [numpy_median_depth(depth, b, 0.001, fraction) for b in boxes]
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("low,high", [(250, 262), (1, 3), (65000, 65536), (0, 65536)])
def test_median_depth_across_byte_boundaries(rng, low, high):
    # the selection works on the high byte first: values straddling a multiple of 256 and the
    # extremes of the 16-bit range must still give numpy's median
    depth = rng.integers(low, high, (64, 64), dtype=np.uint16)
    depth[rng.random(depth.shape) < 0.25] = 0
    boxes = np.array([[0, 0, 64, 64], [3, 5, 40, 33], [10, 10, 11, 12], [0, 0, 64, 1]], np.float32)
    got = pp.median_depth(depth, boxes, 1.0)
    want = [numpy_median_depth(depth, b, 1.0) for b in boxes]
    np.testing.assert_allclose(got, want, rtol=1e-7, equal_nan=True)


def test_median_depth_hand_cases():
    depth = np.zeros((10, 10), np.uint16)
    depth[2, 2], depth[2, 3] = 1000, 2000  # even count: numpy.median averages -> 1.5 m
    assert pp.median_depth(depth, [2, 2, 4, 3]) == pytest.approx(1.5)
    depth[2, 4] = 5000  # odd count: the middle value
    assert pp.median_depth(depth, [2.5, 2.1, 4.2, 2.9]) == pytest.approx(2.0)
    assert math.isnan(pp.median_depth(depth, [6, 6, 9, 9]))  # only zeros: the NaN sentinel
    assert math.isnan(pp.median_depth(depth, [20, 20, 30, 30]))  # outside the image
    assert math.isnan(pp.median_depth(depth, [5, 5, 5, 5]))  # empty box
    assert pp.median_depth(depth, np.zeros((0, 4))).shape == (0,)


# ---------------------------------------------------------------------------------------------
# Memory behaviour and threading
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16"])
def test_out_is_written_in_place(rng, dtype):
    img = random_image(rng, 480, 640, "yuyv")
    out = np.full((3, 320, 320), np.nan, dtype)
    ptr = out.__array_interface__["data"][0]
    res, _ = pp.letterbox(img, (320, 320), "yuyv", dtype=dtype, out=out)
    assert res is out and res.__array_interface__["data"][0] == ptr
    assert not np.isnan(out).any()  # every element written
    again, _ = pp.letterbox(img, (320, 320), "yuyv", dtype=dtype)
    np.testing.assert_array_equal(out, again)


def test_image_is_not_copied_or_modified(rng):
    img = random_image(rng, 64, 64, "rgb8")
    before = img.copy()
    pp.letterbox(img, (32, 48))
    np.testing.assert_array_equal(img, before)


def test_gil_is_released_during_the_call(rng):
    # One long call (the per-pixel reference path, same binding template as letterbox) in a
    # worker: with the GIL held the main thread could not count at all while it runs.
    img = random_image(rng, 1080, 1920, "rgb8")
    out = np.empty((3, 1400, 1400), np.float32)
    started = threading.Event()

    def work():
        started.set()
        _core.letterbox_reference_into(img, 0, out, 1.0, (0, 0, 0), (1, 1, 1), 114)

    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    count = 0
    while worker.is_alive():
        count += 1
    worker.join()
    assert count > 10_000, f"main thread made only {count} steps while letterbox ran: is the GIL held?"


def test_threads_give_the_same_result(rng):
    imgs = [random_image(rng, 720, 1280, "bgr8") for _ in range(4)]
    expected = [pp.letterbox(im, (416, 416), "bgr8")[0] for im in imgs]
    results: list = [None] * 4

    def work(i):
        results[i] = pp.letterbox(imgs[i], (416, 416), "bgr8")[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------------------------
# Bad input: ValueError naming what was expected and what was given
# ---------------------------------------------------------------------------------------------

RGB = np.zeros((8, 10, 3), np.uint8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(image=RGB.astype(np.float32)), r"image must be uint8, got float32"),
        (dict(image=RGB.tolist()), r"image must be a numpy.ndarray, got list"),
        (dict(image=np.zeros((8, 10), np.uint8)), r"fmt='rgb8' must have shape \(H, W, 3\), got \(8, 10\)"),
        (dict(image=np.zeros((8, 10, 4), np.uint8)), r"must have shape \(H, W, 3\), got \(8, 10, 4\)"),
        (dict(image=RGB, fmt="gray"), r"fmt='gray' must have shape \(H, W\), got \(8, 10, 3\)"),
        (dict(image=np.zeros((8, 7, 2), np.uint8), fmt="yuyv"), r"yuyv image width must be even .* got width 7"),
        (dict(image=np.zeros((0, 10, 3), np.uint8)), r"image must not be empty, got shape \(0, 10, 3\)"),
        (dict(image=np.zeros((8, 20, 3), np.uint8)[:, ::2]), r"image must be C-contiguous, got strides .*ascontiguousarray"),
        (dict(image=RGB, fmt="rgba"), r"fmt must be one of 'rgb8', 'bgr8', 'yuyv', 'gray', got 'rgba'"),
        (dict(image=RGB, size=(0, 640)), r"size must be \(H, W\), two integers in 1..32767, got \(0, 640\)"),
        (dict(image=RGB, size=(640,)), r"size must be \(H, W\).*got \(640,\)"),
        (dict(image=RGB, size=(64.0, 64)), r"size must be \(H, W\).*got \(64.0, 64\)"),
        (dict(image=RGB, std=(1, 0, 1)), r"std must be three finite non-zero numbers \(R, G, B\), got \(1, 0, 1\)"),
        (dict(image=RGB, mean=(0, 0)), r"mean must be three finite numbers \(R, G, B\), got \(0, 0\)"),
        (dict(image=RGB, scale=float("nan")), r"scale must be a finite number, got nan"),
        (dict(image=RGB, pad_value=300), r"pad_value must be an integer grey level in 0..255, got 300"),
        (dict(image=RGB, dtype=np.float64), r"dtype must be numpy.float32 or numpy.float16"),
        (dict(image=RGB, size=(4, 4), out=np.zeros((3, 4, 5), np.float32)), r"out must have shape \(3, 4, 4\), got \(3, 4, 5\)"),
        (dict(image=RGB, size=(4, 4), out=np.zeros((3, 4, 4), np.float16)), r"out must have dtype float32 .*got float16"),
        (dict(image=RGB, size=(4, 4), out=np.zeros((3, 4, 8), np.float32)[:, :, ::2]), r"out must be C-contiguous"),
        (dict(image=RGB, size=(4, 4), out=np.zeros((3, 4, 4), np.float32).view()), None),  # fine: control case
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    if match is None:
        pp.letterbox(**kwargs)
        return
    with pytest.raises(ValueError, match=match):
        pp.letterbox(**kwargs)


def test_read_only_and_overlapping_out_are_rejected():
    ro = np.zeros((3, 4, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable, got a read-only array"):
        pp.letterbox(RGB, (4, 4), out=ro)
    buf = np.zeros(4096, np.uint8)
    img = buf[: 8 * 10 * 3].reshape(8, 10, 3)
    out = buf[:192].view(np.float32).reshape(3, 4, 4)
    with pytest.raises(ValueError, match="out must not overlap the image"):
        pp.letterbox(img, (4, 4), out=out)


def test_raw_binding_rejects_bad_arrays_too():
    with pytest.raises(ValueError, match="image must be a C-contiguous uint8 array, got float32"):
        _core.letterbox_into(RGB.astype(np.float32), 0, np.zeros((3, 4, 4), np.float32), 1.0, (0, 0, 0), (1, 1, 1), 0)
    with pytest.raises(ValueError, match=r"out must be a writeable C-contiguous \(3, H, W\) array, got shape \(4, 4\)"):
        _core.letterbox_into(RGB, 0, np.zeros((4, 4), np.float32), 1.0, (0, 0, 0), (1, 1, 1), 0)
    with pytest.raises(ValueError, match="output height must be in 1..32767, got 40000"):
        _core.letterbox_geometry(10, 10, 40000, 10)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: pp.depth_to_meters(np.zeros((4, 4), np.float32)), r"depth must be a uint16 numpy.ndarray .*got float32"),
        (lambda: pp.depth_to_meters(np.zeros((4, 4), np.uint16), 0.0), r"depth_scale must be a positive number .*got 0.0"),
        (lambda: pp.depth_to_meters(np.zeros((4, 4), np.uint16), out=np.zeros((4, 5), np.float32)),
         r"out must be float32 with shape \(4, 4\), got float32 \(4, 5\)"),
        (lambda: pp.median_depth(np.zeros((4, 4, 1), np.uint16), [0, 0, 1, 1]), r"depth must be \(H, W\), got shape \(4, 4, 1\)"),
        (lambda: pp.median_depth(np.zeros((4, 4), np.uint16), [0, 0, 1]), r"xyxy must be \(4,\) or \(n, 4\), got shape \(3,\)"),
        (lambda: pp.median_depth(np.zeros((4, 4), np.uint16), [0, 0, 1, 1], inner_fraction=0),
         r"inner_fraction must be in \(0, 1\], got 0"),
        (lambda: pp.median_depth(np.zeros((8, 8), np.uint16)[:, ::2], [0, 0, 1, 1]), r"depth must be C-contiguous"),
        (lambda: pp.unletterbox([0, 0, 1], pp.letterbox(RGB, (4, 4))[1]), r"xyxy must have shape \(\.\.\., 4\), got \(3,\)"),
        (lambda: pp.unletterbox([0, 0, 1, 1], (1.0, 0, 0)), r"meta must be the LetterboxMeta returned by letterbox, got tuple"),
    ],
)  # fmt: skip
def test_bad_depth_and_box_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_meta_is_frozen():
    _, meta = pp.letterbox(RGB, (4, 4))
    with pytest.raises(AttributeError):
        meta.r = 2.0  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


def test_letterbox_cuda_without_gpu_says_why():
    if caper_edge.cuda_device_count()[0] > 0:
        pytest.skip("a CUDA GPU is present: the no-GPU error path does not apply")
    with pytest.raises(RuntimeError, match="built without CUDA|needs a usable CUDA GPU"):
        pp.letterbox_cuda(RGB, (4, 4))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("case", PATH_CASES, ids=lambda c: f"{c[0][0]}x{c[0][1]}->{c[1][0]}x{c[1][1]}")
def test_cuda_matches_cpu(rng, case, fmt, dtype):
    cp = pytest.importorskip("cupy", reason="the GPU tests move arrays with CuPy (pip install cupy-cuda12x)")
    (h, w), size = case
    img = random_image(rng, h, w, fmt)
    cpu, meta = pp.letterbox(img, size, fmt, dtype=dtype, **NORM)
    gpu, gmeta = pp.letterbox_cuda(cp.asarray(img), size, fmt, dtype=dtype, **NORM)
    cp.cuda.get_current_stream().synchronize()
    assert gmeta == meta
    # Same per-pixel functions, IEEE float without contraction on both sides: expected bit-equal;
    # one ulp of slack keeps a toolchain rounding surprise from hiding behind a generic failure.
    np.testing.assert_array_max_ulp(cp.asnumpy(gpu), cpu, maxulp=1)


@pytest.mark.gpu
def test_cuda_stream_and_out_reuse(rng):
    cp = pytest.importorskip("cupy", reason="the GPU tests move arrays with CuPy (pip install cupy-cuda12x)")
    img = random_image(rng, 480, 640, "yuyv")
    cpu, _ = pp.letterbox(img, (320, 320), "yuyv", dtype=np.float16)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        dev = cp.asarray(img)
        out = cp.full((3, 320, 320), cp.nan, dtype=cp.float16)
    ptr = out.data.ptr
    res, _ = pp.letterbox_cuda(dev, (320, 320), "yuyv", dtype=np.float16, out=out, stream=stream)
    assert res is out and res.data.ptr == ptr
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(out).view(np.uint16), cpu.view(np.uint16))
    res2, _ = pp.letterbox_cuda(dev, (320, 320), "yuyv", dtype=np.float16, out=out, stream=stream.ptr)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(res2).view(np.uint16), cpu.view(np.uint16))


@pytest.mark.gpu
def test_cuda_rejects_host_arrays():
    with pytest.raises(ValueError, match="must be a device array exposing __cuda_array_interface__"):
        pp.letterbox_cuda(RGB, (4, 4))
