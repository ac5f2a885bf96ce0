"""Single-thread CPU latency of the committed models at their input sizes, INT8 against fp32.

Each case runs the INT8 model (ours) and the fp32 model it was quantized from (the peer, same
run, same input) through ONNX Runtime with one intra-op and one inter-op thread; the ratio is the
INT8 speed-up. When no INT8 model passed the accuracy gate, the fp32 model is timed alone.

One more case prices the embedder's quarter-turn views (docs/gallery.md): 8 product crops
embedded as the cart does by default (``turn_cycle``: the frame's turn, one pass each) against
four-turn queries (``embed_turns = 4``: four passes each), fp32, same crops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from caper_edge.engines import OnnxRuntimeEngine

from .harness import Case

ASSETS = Path(__file__).resolve().parents[1] / "caper_edge" / "assets"
MODELS = (("detector", {"images": (1, 3, 320, 320)}), ("embedder", {"crops": (8, 3, 64, 64)}))


def _engine(path: Path) -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(path, intra_op_threads=1, inter_op_threads=1, use_cuda=False, io_binding="off")


def cases(quick: bool) -> list[Case]:  # noqa: ARG001 - same cases either way
    out = []
    rng = np.random.default_rng(0)
    for name, shapes in MODELS:
        fp32 = ASSETS / f"{name}.onnx"
        int8 = ASSETS / f"{name}.int8.onnx"
        if not fp32.exists():
            continue
        feeds = {k: rng.random(v, dtype=np.float32) for k, v in shapes.items()}
        ref = _engine(fp32)
        shape_txt = "x".join(map(str, next(iter(shapes.values()))))
        extra = {"onnxruntime": ort.__version__, "input": shape_txt, "fp32_bytes": fp32.stat().st_size}
        if int8.exists():
            q = _engine(int8)
            extra["int8_bytes"] = int8.stat().st_size
            out.append(Case(suite="models", name=f"{name} {shape_txt} INT8", ours=lambda q=q, f=feeds: q.run(f),
                            peer=lambda r=ref, f=feeds: r.run(f), peer_name=f"{name} fp32 (onnxruntime)",
                            items=next(iter(shapes.values()))[0], item_unit="images",
                            notes="1 intra-op + 1 inter-op thread; peer = the fp32 model it was quantized from", extra=extra))
        else:
            out.append(Case(suite="models", name=f"{name} {shape_txt} fp32", ours=lambda r=ref, f=feeds: r.run(f),
                            items=next(iter(shapes.values()))[0], item_unit="images",
                            notes="1 thread; no INT8 model passed the accuracy gate", extra=extra))
    if (ASSETS / "embedder.onnx").exists():
        from caper_edge.embedding import Embedder, turn_crops

        emb = Embedder(_engine(ASSETS / "embedder.onnx"))
        crops = [rng.integers(0, 255, (48 + 4 * i, 64 - 2 * i, 3), np.uint8) for i in range(8)]
        out.append(Case(suite="models", name="embedder 8 crops, turn cycle (1 pass)",
                        ours=lambda c=crops: emb.embed(turn_crops(c, 1)),
                        peer=lambda c=crops: emb.embed(c, turns=4), peer_name="embed_turns = 4 (4 passes)",
                        items=len(crops), item_unit="crops", notes="fp32, 1 thread, crops letterboxed to 64x64",
                        extra={"onnxruntime": ort.__version__}))
    return out
