"""Inference engines: one interface over ONNX Runtime and TensorRT.

>>> from caper_edge.engines import open_engine
>>> engine = open_engine("detector.onnx")                 # a path: backend from the suffix/config
>>> engine = open_engine(config.load(), model="detector")  # a Config: [models] + [engines]
>>> out = engine.run({"images": x})                       # inputs checked by name, shape, dtype

Backends: ``onnxruntime`` (everywhere; CPU threads configurable, CUDA EP when present) and
``tensorrt`` (Jetson / NVIDIA GPUs; built offline with ``caper-edge engine build``; not run in CI).
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import EngineError
from .base import Engine, TensorSpec, format_shape
from .cache import EngineCache, EngineKey, sha256_arrays, sha256_file
from .onnxruntime_backend import OnnxRuntimeEngine

__all__ = [
    "Engine",
    "EngineCache",
    "EngineKey",
    "OnnxRuntimeEngine",
    "TensorSpec",
    "format_shape",
    "open_engine",
    "packaged_model",
    "sha256_arrays",
    "sha256_file",
]

log = logging.getLogger("caper_edge.engines")

ONNX_SUFFIXES = (".onnx",)
TENSORRT_SUFFIXES = (".engine", ".plan", ".trt")
PACKAGED = {"detector": "detector.onnx", "embedder": "embedder.onnx", "gallery": "gallery.npz"}


def packaged_model(name: str) -> Path:
    """Path of a model shipped in ``caper_edge/assets`` (``detector``, ``embedder``, ``gallery``)."""
    if name not in PACKAGED:
        raise EngineError(f"no packaged model named {name!r} (have {', '.join(PACKAGED)})")
    path = Path(str(resources.files("caper_edge").joinpath("assets", PACKAGED[name])))
    if not path.is_file():
        raise EngineError(f"the packaged {name} {path} is missing from this installation")
    return path


def open_engine(path_or_config: Any, *, model: str | None = None, options: Any = None, backend: str | None = None) -> Engine:
    """Open a model as an :class:`Engine`.

    Parameters
    ----------
    path_or_config:
        A model file (``.onnx``; ``.engine``/``.plan`` for TensorRT), or a
        :class:`caper_edge.config.Config`, in which case ``model`` names the ``[models]`` key
        (``"detector"`` or ``"embedder"``) and ``[engines]`` gives the options.
    options:
        An :class:`caper_edge.config.EnginesConfig`; defaults to the documented defaults.
    backend:
        Override of ``options.backend``: ``"auto"``, ``"onnxruntime"`` or ``"tensorrt"``.
    """
    from .. import config as config_mod

    if isinstance(path_or_config, config_mod.Config):
        if model not in ("detector", "embedder"):
            raise EngineError(f"open_engine(config) needs model='detector' or 'embedder', got {model!r}")
        options = path_or_config.engines
        configured = getattr(path_or_config.models, model)
        path = Path(os.path.expanduser(configured)) if configured else packaged_model(model)
    elif isinstance(path_or_config, (str, os.PathLike)):
        path = Path(path_or_config)
        options = options if options is not None else config_mod.load().engines
    else:
        raise EngineError(f"open_engine expects a model path or a Config, got {type(path_or_config).__name__}")
    chosen = backend or options.backend
    if chosen not in ("auto", "onnxruntime", "tensorrt"):
        raise EngineError(f"engine backend must be 'auto', 'onnxruntime' or 'tensorrt', got {chosen!r}")
    return _open_path(path, options, chosen)


def _open_path(path: Path, options: Any, backend: str) -> Engine:
    suffix = path.suffix.lower()
    if suffix in TENSORRT_SUFFIXES:
        if backend == "onnxruntime":
            raise EngineError(f"{path.name} is a TensorRT engine; ONNX Runtime cannot run it (give the .onnx file)")
        from .tensorrt_backend import TensorRTEngine

        return TensorRTEngine(path, device=options.tensorrt.device, warmup_runs=options.warmup_runs)
    if suffix not in ONNX_SUFFIXES:
        raise EngineError(
            f"model file {path} has suffix {suffix or '(none)'!r}: expected {', '.join(ONNX_SUFFIXES + TENSORRT_SUFFIXES)}"
        )
    if backend in ("auto", "tensorrt"):
        from .tensorrt_backend import tensorrt_unavailable_reason

        reason = tensorrt_unavailable_reason()
        if reason is None:
            return _open_tensorrt_from_onnx(path, options)
        if backend == "tensorrt":
            raise EngineError(f"engines.backend = 'tensorrt' but {reason}")
        log.info("using ONNX Runtime for %s: %s", path.name, reason)
    return OnnxRuntimeEngine(
        path,
        intra_op_threads=options.intra_op_threads,
        inter_op_threads=options.inter_op_threads,
        use_cuda=options.use_cuda,
        io_binding=options.io_binding,
        warmup_runs=options.warmup_runs,
    )


def _open_tensorrt_from_onnx(path: Path, options: Any) -> Engine:
    from .tensorrt_backend import TensorRTEngine, ensure_engine

    if not path.is_file():
        raise EngineError(f"model file {path} does not exist")
    trt = options.tensorrt
    engine_path = ensure_engine(
        path, cache_dir=trt.cache_dir, precision=trt.precision, allow_build=trt.allow_build,
        workspace_mib=trt.workspace_mib, device=trt.device,
    )
    return TensorRTEngine(engine_path, device=trt.device, warmup_runs=options.warmup_runs)
