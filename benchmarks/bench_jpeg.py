"""JPEG decode of camera frames, and the whole frame-to-tensor step on the GPU.

CPU: ``caper_edge.jpeg.decode_jpeg`` (marker check + OpenCV / libjpeg-turbo, RGB out) against the
bare ``cv2.imdecode`` + BGR->RGB that a pipeline would otherwise call: the ratio is the price of
the structure check that turns a truncated frame into a named error (expected just under 1).

GPU (where a GPU, CuPy and an nvJPEG build exist): ``decode_jpeg_cuda`` against decoding on the
CPU and uploading the frame, and nvJPEG + ``letterbox_cuda`` (the engine's input tensor, on the
device) against CPU decode + CPU letterbox + upload. Frames are smooth gradients plus noise at
quality 85, which compress like the simulator's camera frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from caper_edge import jpeg
from caper_edge import preprocess as pp

from .harness import Case, gpu_cupy

SUITE = "jpeg"
SIZES = [(480, 640), (720, 1280)]


def photo(rng, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=2)
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def _encode(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def _opencv_rgb(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _cuda_cases(frames: dict) -> list[Case]:
    import caper_edge

    cp = gpu_cupy()
    if cp is None or not caper_edge.build_info().get("nvjpeg_compiled"):
        return []
    stream = cp.cuda.get_current_stream()
    out = []
    for (h, w), data in frames.items():

        def gpu_decode(data=data):
            jpeg.decode_jpeg_cuda(data, stream=stream)
            stream.synchronize()

        def cpu_decode_upload(data=data):
            cp.asarray(jpeg.decode_jpeg(data))
            stream.synchronize()

        out.append(Case(suite=SUITE, name=f"nvJPEG {w}x{h}", ours=gpu_decode, peer=cpu_decode_upload,
                        peer_name="decode_jpeg on CPU + upload", items=w * h, item_unit="px",
                        notes="Huffman on the calling thread, IDCT/colour on the GPU; synchronised"))
        tensor = cp.empty((3, 640, 640), cp.float16)

        def gpu_tensor(data=data, tensor=tensor):
            pp.letterbox_cuda(jpeg.decode_jpeg_cuda(data, stream=stream), (640, 640), "rgb8",
                              dtype=np.float16, out=tensor, stream=stream)
            stream.synchronize()

        def cpu_tensor(data=data):
            cp.asarray(pp.letterbox(jpeg.decode_jpeg(data), (640, 640), "rgb8", dtype=np.float16)[0])
            stream.synchronize()

        out.append(Case(suite=SUITE, name=f"JPEG {w}x{h} -> 640x640 f16 tensor on GPU", ours=gpu_tensor,
                        peer=cpu_tensor, peer_name="CPU decode + CPU letterbox + upload", items=1,
                        item_unit="frame", notes="nvJPEG + letterbox_cuda, device-resident output"))
    return out


def cases(quick: bool) -> list[Case]:
    rng = np.random.default_rng(3)
    frames = {hw: _encode(photo(rng, *hw)) for hw in SIZES}
    result = [
        Case(suite=SUITE, name=f"decode_jpeg {w}x{h} q85", ours=lambda d=data: jpeg.decode_jpeg(d),
             peer=lambda d=data: _opencv_rgb(d), peer_name="cv2.imdecode + cvtColor", items=w * h, item_unit="px",
             notes="ours adds the marker-structure check (truncated frame -> named error)")
        for (h, w), data in frames.items()
    ]
    return result + _cuda_cases(frames)
