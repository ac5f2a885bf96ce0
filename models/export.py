"""ONNX export of the trained networks (opset 17, legacy TorchScript exporter: no onnxscript
needed), with the checks every committed model must pass: onnx.checker, opset >= 17, file under
10 MB, and ONNX Runtime output equal to PyTorch's on a random input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from .detector import ExportWrapper, TinyDetector
from .embedder import EmbeddingNet

OPSET = 17
MAX_BYTES = 10 * 1024 * 1024


def _check(path: Path, module: torch.nn.Module, example: torch.Tensor, tol: float) -> None:
    import onnxruntime as ort

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < OPSET:
        raise RuntimeError(f"{path} has opset {opset}, need >= {OPSET}")
    if path.stat().st_size > MAX_BYTES:
        raise RuntimeError(f"{path} is {path.stat().st_size / 1e6:.1f} MB, over the 10 MB budget")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: example.numpy()})[0]
    with torch.no_grad():
        want = module(example).numpy()
    err = float(np.max(np.abs(got - want)))
    if err > tol:
        raise RuntimeError(f"{path}: ONNX Runtime differs from PyTorch by {err:.2e} (> {tol})")


def export_detector(model: TinyDetector, path: Path, size: int = 320) -> Path:
    """images (1, 3, size, size) float32 0..1 -> output0 (1, 4 + nc, N) (Ultralytics layout)."""
    wrapper = ExportWrapper(model.eval(), size).eval()
    example = torch.rand(1, 3, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter needs no onnxscript
        torch.onnx.export(wrapper, (example,), str(path), input_names=["images"], output_names=["output0"],
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    _check(path, wrapper, example, tol=1e-2)
    return path


def export_embedder(model: EmbeddingNet, path: Path, size: int = 64) -> Path:
    """crops (B, 3, size, size) float32 (caper_edge.embedding normalisation) -> embedding (B, 128), unit rows."""
    model = model.eval()
    example = torch.randn(2, 3, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (example,), str(path), input_names=["crops"], output_names=["embedding"],
                          opset_version=OPSET, dynamo=False, do_constant_folding=True,
                          dynamic_axes={"crops": {0: "batch"}, "embedding": {0: "batch"}})
    _check(path, model, example, tol=1e-4)
    return path
