"""ONNX Runtime backend: the engine everywhere TensorRT is absent (CI, laptops, x86 rigs).

Thread counts are explicit (the cart shares its cores with preprocessing, tracking and fusion;
ORT's default of one thread per core would fight them). The CUDA execution provider is used when
the installed onnxruntime has it and asked for; otherwise, or when it fails to initialise, the
session runs on the CPU and the reason is logged once. With IO binding, fixed-shape outputs are
written into buffers allocated once at load, which saves an allocation per call and, on CUDA,
lets ORT copy straight into them; those buffers are then reused by the next call.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import EngineError
from .base import Engine, TensorSpec

__all__ = ["OnnxRuntimeEngine"]

log = logging.getLogger("caper_edge.engines")

# ORT's element type names -> NumPy. Anything else (strings, sequences, maps) is refused at load.
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class OnnxRuntimeEngine(Engine):
    """An ONNX model run by ONNX Runtime.

    Parameters
    ----------
    path:
        ``.onnx`` file.
    intra_op_threads:
        Threads inside one operator (0: ORT's default, one per core). 1 keeps latency
        predictable beside other stages; more lowers latency of a large model on an idle machine.
    inter_op_threads:
        Threads running independent operators in parallel (0: ORT's default).
    use_cuda:
        Try the CUDA execution provider first when the installed onnxruntime has it.
    io_binding:
        ``"auto"`` binds preallocated outputs when the session runs on CUDA; ``"on"`` always
        (outputs are then reused between calls); ``"off"`` never.
    warmup_runs:
        Runs on zero inputs at load, so the first real frame does not pay for lazy initialisation.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        use_cuda: bool = True,
        io_binding: Literal["auto", "on", "off"] = "auto",
        warmup_runs: int = 1,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        _check_readable(self.path)
        if intra_op_threads < 0 or inter_op_threads < 0:
            raise EngineError(
                f"thread counts must be >= 0 (0: ORT default), got intra {intra_op_threads}, inter {inter_op_threads}"
            )
        if io_binding not in ("auto", "on", "off"):
            raise EngineError(f"io_binding must be 'auto', 'on' or 'off', got {io_binding!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if inter_op_threads <= 1 else ort.ExecutionMode.ORT_PARALLEL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: ORT's warnings go to stderr, not our log
        # ORT caches a memory plan per input shape; with a dynamic batch (the embedder's crops per
        # frame) every new batch size adds one that is never freed: RSS grew ~15 MB over the first
        # 32 sizes and kept creeping as a basket filled. Without it, RSS stays flat across sizes
        # and a batch of 8 crops runs in the same time (9.8 ms here).
        options.enable_mem_pattern = False
        self.session = self._create_session(ort, options, _providers(ort, use_cuda))
        self.providers = tuple(self.session.get_providers())
        self.on_cuda = self.providers[0] == "CUDAExecutionProvider"
        self.inputs = tuple(_spec(self.path, "input", a) for a in self.session.get_inputs())
        self.outputs = tuple(_spec(self.path, "output", a) for a in self.session.get_outputs())
        self._binding = None
        if io_binding == "on" or (io_binding == "auto" and self.on_cuda):
            self._setup_binding()
        self.warmup(warmup_runs)
        log.info("loaded %s on %s", self.describe(), ",".join(self.providers))

    # -- loading ----------------------------------------------------------------------------

    def _create_session(self, ort, options, providers):
        try:
            return ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind types; all mean "cannot load"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "CUDAExecutionProvider" in providers:
                log.warning("CUDA execution provider failed for %s (%s); using the CPU", self.path.name, reason)
                return self._create_session(ort, options, ["CPUExecutionProvider"])
            raise EngineError(f"cannot load ONNX model {self.path}: {reason}") from None

    def _setup_binding(self) -> None:
        if any(s.is_dynamic for s in self.outputs):
            log.info("%s: outputs have dynamic shapes; IO binding without preallocated outputs", self.path.name)
            self._out_buffers = None
        else:
            self._out_buffers = {s.name: np.empty(s.shape, s.dtype) for s in self.outputs}
        self._binding = self.session.io_binding()

    @property
    def concurrent_runs_safe(self) -> bool:
        # ONNX Runtime's InferenceSession.run is thread-safe; an IO binding is not (shared buffers).
        return self._binding is None

    def warmup(self, runs: int = 1) -> None:
        """Run ``runs`` times on zeros; skipped when an input has a dynamic non-batch dimension."""
        if runs <= 0:
            return
        feeds = {}
        for spec in self.inputs:
            if any(d is None for d in spec.shape[1:]):
                log.debug("%s: no warm-up, input '%s' has dynamic dims %s", self.path.name, spec.name, spec.describe())
                return
            shape = tuple(1 if d is None else d for d in spec.shape)
            feeds[spec.name] = np.zeros(shape, spec.dtype)
        for _ in range(runs):
            self.run(feeds)

    # -- running ----------------------------------------------------------------------------

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._binding is None:
            try:
                values = self.session.run(None, feeds)
            except Exception as exc:  # noqa: BLE001
                raise EngineError(f"onnxruntime failed running {self.path.name}: {exc}") from None
            return {spec.name: value for spec, value in zip(self.outputs, values)}
        return self._run_bound(feeds)

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        binding = self._binding
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        if self._out_buffers is not None:
            for name, buf in self._out_buffers.items():
                binding.bind_output(name, "cpu", 0, buf.dtype, buf.shape, buf.ctypes.data)
        else:
            for spec in self.outputs:
                binding.bind_output(spec.name, "cpu")
        try:
            self.session.run_with_iobinding(binding)
        except Exception as exc:  # noqa: BLE001
            raise EngineError(f"onnxruntime failed running {self.path.name}: {exc}") from None
        if self._out_buffers is not None:
            return dict(self._out_buffers)
        return {spec.name: value for spec, value in zip(self.outputs, binding.copy_outputs_to_cpu())}

    def close(self) -> None:
        self._binding = None
        self.session = None


def _providers(ort, use_cuda: bool) -> list[str]:
    available = ort.get_available_providers()
    if use_cuda and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if use_cuda:
        log.info("onnxruntime has no CUDA execution provider (available: %s); using the CPU", ", ".join(available))
    return ["CPUExecutionProvider"]


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise EngineError(f"model file {path} does not exist")
    if not path.is_file():
        raise EngineError(f"model path {path} is not a file")
    if path.stat().st_size == 0:
        raise EngineError(f"model file {path} is empty")


def _spec(path: Path, role: str, arg) -> TensorSpec:
    dtype = _ORT_DTYPES.get(arg.type)
    if dtype is None:
        raise EngineError(f"{path.name}: {role} '{arg.name}' has element type {arg.type}, which the engine layer does not support")
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
    return TensorSpec(arg.name, shape, dtype)
