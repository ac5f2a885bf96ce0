"""TensorRT 10 backend and engine builder (Python API + ``cuda-python``).

NOT exercised by CI: neither ``tensorrt`` nor a GPU exist on the CI machines, so this module is
written against the documented TensorRT 10 API (name-based I/O tensors, ``execute_async_v3``,
``build_serialized_network``) and its tests carry the ``tensorrt`` marker. The cache key and the
atomic writes it relies on live in :mod:`caper_edge.engines.cache` and are tested everywhere.

Runtime: the engine is deserialised once; each I/O tensor gets a pinned host buffer
(``cudaMallocHost``) and a device buffer (``cudaMalloc``), grown when a dynamic shape needs
more. A call copies inputs into the pinned buffers, enqueues host->device copies, the network
(``execute_async_v3``) and device->host copies on one CUDA stream, and synchronises once.

Build: ONNX -> network via ``OnnxParser``; FP16 and INT8 (entropy calibration over real frames)
flags; one optimisation profile covering the dynamic input shapes; the serialised plan is stored
in the content-addressed cache. Building takes minutes on a Jetson, so at run time it happens only
when the config allows it, and then it is announced loudly.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EngineError
from .base import Engine, TensorSpec
from .cache import EngineCache, EngineKey, Profile, sha256_arrays, sha256_file

__all__ = [
    "BuildResult",
    "TensorRTEngine",
    "build_engine",
    "ensure_engine",
    "gpu_identity",
    "tensorrt_unavailable_reason",
]

log = logging.getLogger("caper_edge.engines")


# ---------------------------------------------------------------------------------------------
# Imports behind a check: the package must work without tensorrt / cuda-python / a GPU
# ---------------------------------------------------------------------------------------------


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def tensorrt_unavailable_reason() -> str | None:
    """None when TensorRT, cuda-python and a GPU are usable; otherwise why not, in words."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return f"the tensorrt Python package does not import ({exc}); install the 'tensorrt' extra on a CUDA machine"
    try:
        cudart = _import_cudart()
    except ImportError as exc:
        return f"cuda-python does not import ({exc})"
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count == 0:
        return f"no CUDA device ({_err_name(cudart, err)})"
    return None


def _require():
    reason = tensorrt_unavailable_reason()
    if reason:
        raise EngineError(f"TensorRT backend unavailable: {reason}")
    import tensorrt as trt

    return trt, _import_cudart()


def _err_name(cudart, err) -> str:
    try:
        return cudart.cudaGetErrorName(err)[1].decode()
    except Exception:  # noqa: BLE001
        return str(err)


def _check(cudart, result, what: str):
    """cuda-python returns (err, *values); raise on error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise EngineError(f"CUDA {what} failed: {_err_name(cudart, err)}")
    return values[0] if len(values) == 1 else values


def gpu_identity(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of ``device``, for the cache key."""
    _, cudart = _require()
    prop = _check(cudart, cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
    return name, f"{prop.major}.{prop.minor}"


# ---------------------------------------------------------------------------------------------
# Buffers
# ---------------------------------------------------------------------------------------------


class _Buffer:
    """A pinned host buffer and a device buffer of the same capacity, grown on demand."""

    def __init__(self, cudart) -> None:
        self.cudart = cudart
        self.capacity = 0
        self.host = 0
        self.device = 0

    def ensure(self, nbytes: int) -> None:
        if nbytes <= self.capacity:
            return
        self.free()
        self.host = _check(self.cudart, self.cudart.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes})")
        self.device = _check(self.cudart, self.cudart.cudaMalloc(nbytes), f"cudaMalloc({nbytes})")
        self.capacity = nbytes

    def host_view(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = int(np.prod(shape)) * dtype.itemsize
        raw = (ctypes.c_ubyte * nbytes).from_address(int(self.host))
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def free(self) -> None:
        if self.host:
            self.cudart.cudaFreeHost(self.host)
        if self.device:
            self.cudart.cudaFree(self.device)
        self.host = self.device = 0
        self.capacity = 0


# ---------------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------------


class TensorRTEngine(Engine):
    """A serialised TensorRT 10 engine (``.engine`` / ``.plan``) run on one CUDA stream.

    Outputs are returned as fresh arrays (copied out of the pinned buffers), so they stay valid
    after the next call.
    """

    backend = "tensorrt"

    def __init__(self, path: str | os.PathLike[str], *, device: int = 0, warmup_runs: int = 1) -> None:
        trt, cudart = _require()
        self.trt, self.cudart = trt, cudart
        self.path = Path(path)
        if not self.path.is_file():
            raise EngineError(f"TensorRT engine {self.path} does not exist")
        _check(cudart, cudart.cudaSetDevice(device), f"cudaSetDevice({device})")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise EngineError(
                f"cannot deserialize TensorRT engine {self.path}: built by another TensorRT version "
                f"({trt.__version__} here) or for another GPU, or the file is damaged; rebuild it with caper-edge engine build"
            )
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"TensorRT could not create an execution context for {self.path} (out of GPU memory?)")
        self.inputs, self.outputs = self._read_specs()
        self._buffers = {s.name: _Buffer(cudart) for s in (*self.inputs, *self.outputs)}
        self._stream = _check(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
        for _ in range(warmup_runs):
            self._warmup()
        log.info("loaded %s (TensorRT %s)", self.describe(), trt.__version__)

    def _read_specs(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        trt, engine = self.trt, self._engine
        inputs, outputs = [], []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            try:
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            except TypeError:
                raise EngineError(f"{self.path.name}: tensor '{name}' has a TensorRT type with no NumPy equivalent") from None
            shape = tuple(None if d < 0 else int(d) for d in engine.get_tensor_shape(name))
            spec = TensorSpec(name, shape, dtype)
            (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(spec)
        return tuple(inputs), tuple(outputs)

    def _warmup(self) -> None:
        feeds = {}
        for spec in self.inputs:
            if spec.is_dynamic:
                # The profile's opt shape is what the engine was tuned for.
                shape = tuple(self._engine.get_tensor_profile_shape(spec.name, 0)[1])
            else:
                shape = spec.shape
            feeds[spec.name] = np.zeros(shape, spec.dtype)
        self.run(feeds)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, ctx, stream = self.cudart, self._context, self._stream
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        # 1. Shapes and input copies.
        for spec in self.inputs:
            array = feeds[spec.name]
            if not ctx.set_input_shape(spec.name, array.shape):
                raise EngineError(f"input '{spec.name}' shape {array.shape} is outside the profile {self.path.name} was built for")
            buf = self._buffers[spec.name]
            buf.ensure(array.nbytes)
            np.copyto(buf.host_view(array.shape, array.dtype), array)
            _check(cudart, cudart.cudaMemcpyAsync(buf.device, buf.host, array.nbytes, h2d, stream), "cudaMemcpyAsync H2D")
            ctx.set_tensor_address(spec.name, buf.device)
        # 2. Output buffers sized from the shapes the inputs imply.
        out_shapes = {}
        for spec in self.outputs:
            shape = tuple(ctx.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise EngineError(f"{self.path.name}: output '{spec.name}' has data-dependent shape {shape}; not supported")
            out_shapes[spec.name] = shape
            buf = self._buffers[spec.name]
            buf.ensure(max(1, int(np.prod(shape))) * spec.dtype.itemsize)
            ctx.set_tensor_address(spec.name, buf.device)
        # 3. Network, copies back, one synchronisation.
        if not ctx.execute_async_v3(stream):
            raise EngineError(f"TensorRT execute_async_v3 failed for {self.path.name} (see the TensorRT log above)")
        for spec in self.outputs:
            buf = self._buffers[spec.name]
            nbytes = int(np.prod(out_shapes[spec.name])) * spec.dtype.itemsize
            _check(cudart, cudart.cudaMemcpyAsync(buf.host, buf.device, nbytes, d2h, stream), "cudaMemcpyAsync D2H")
        _check(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return {s.name: self._buffers[s.name].host_view(out_shapes[s.name], s.dtype).copy() for s in self.outputs}

    def close(self) -> None:
        for buf in getattr(self, "_buffers", {}).values():
            buf.free()
        if getattr(self, "_stream", None) is not None:
            self.cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = None
        self._engine = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildResult:
    path: Path
    key: EngineKey
    built: bool            # False: taken from the cache
    seconds: float


def _onnx_input_shapes(onnx_path: Path) -> dict[str, tuple[int | None, ...]]:
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise EngineError(f"cannot read ONNX model {onnx_path}: {exc}") from None
    initializers = {i.name for i in model.graph.initializer}
    shapes = {}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        dims = inp.type.tensor_type.shape.dim
        shapes[inp.name] = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
    return shapes


def resolve_profile(onnx_path: Path, shapes: Mapping[str, Sequence[int]] | None = None, max_batch: int = 1) -> Profile:
    """(min, opt, max) per input: fixed inputs as they are; dynamic ones from ``shapes`` (opt),
    with a dynamic batch dimension spanning 1..max_batch."""
    profile = {}
    given = dict(shapes or {})
    for name, dims in _onnx_input_shapes(onnx_path).items():
        if name in given:
            opt = tuple(int(d) for d in given.pop(name))
            if len(opt) != len(dims):
                raise EngineError(f"shape for input '{name}' has rank {len(opt)}, the model's has rank {len(dims)}")
        elif any(d is None for d in dims[1:]):
            raise EngineError(f"input '{name}' of {onnx_path.name} has dynamic dims {dims}: give its shape (--shape {name}:1x3x320x320)")
        else:
            opt = tuple(1 if d is None else d for d in dims)
        lo, hi = list(opt), list(opt)
        if dims and dims[0] is None:
            lo[0], hi[0] = 1, max(max_batch, opt[0])
        profile[name] = (tuple(lo), opt, tuple(hi))
    if given:
        raise EngineError(f"{onnx_path.name} has no input named {sorted(given)[0]!r}")
    return profile


def build_engine(
    onnx_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str],
    precision: str = "fp16",
    shapes: Mapping[str, Sequence[int]] | None = None,
    max_batch: int = 1,
    calibration: Sequence[np.ndarray] | None = None,
    workspace_mib: int = 1024,
    device: int = 0,
    force: bool = False,
) -> BuildResult:
    """Build (or find in the cache) the engine for ``onnx_path`` on this GPU and TensorRT."""
    trt, _ = _require()
    onnx_path = Path(onnx_path)
    if precision == "int8" and not calibration:
        raise EngineError("an int8 build needs calibration batches (--calib FOLDER_OR_BAG)")
    profile = resolve_profile(onnx_path, shapes, max_batch)
    gpu_name, cc = gpu_identity(device)
    key = EngineKey.make(
        onnx_sha256=sha256_file(onnx_path),
        tensorrt_version=trt.__version__,
        gpu_name=gpu_name,
        compute_capability=cc,
        precision=precision,
        profile=profile,
        calibration_sha256=sha256_arrays(calibration) if precision == "int8" else "",
    )
    cache = EngineCache(cache_dir)
    hit = None if force else cache.lookup(key, onnx_path.stem)
    if hit is not None:
        log.info("engine cache hit: %s", hit)
        return BuildResult(hit, key, False, 0.0)
    t0 = time.monotonic()
    data = _build_serialized(trt, onnx_path, precision, profile, calibration, workspace_mib)
    seconds = time.monotonic() - t0
    path = cache.store(
        key, onnx_path.stem, data,
        info={"onnx": str(onnx_path), "build_seconds": round(seconds, 1), "workspace_mib": workspace_mib,
              "built_unix": time.time()},
    )
    log.warning("built TensorRT engine %s in %.0f s", path, seconds)
    return BuildResult(path, key, True, seconds)


def _build_serialized(trt, onnx_path: Path, precision: str, profile: Profile, calibration, workspace_mib: int) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path}: {errors or 'unknown parser error'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    calibrator = None
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8 builds fall back to fp16, not fp32, per layer
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        calibrator = _make_calibrator(trt, list(calibration), onnx_path.with_suffix(".calib.cache"))
        config.int8_calibrator = calibrator
        config.set_calibration_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    return bytes(serialized)


def _make_calibrator(trt, batches: list[np.ndarray], cache_path: Path):
    """An IInt8EntropyCalibrator2 feeding ``batches`` (each the full input tensor) from device memory."""
    cudart = _import_cudart()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.nbytes = max(b.nbytes for b in batches)
            self.device = _check(cudart, cudart.cudaMalloc(self.nbytes), "cudaMalloc (calibration)")

        def get_batch_size(self) -> int:
            return int(batches[0].shape[0])

        def get_batch(self, names):  # noqa: ARG002 - one input
            if self.index >= len(batches):
                return None
            batch = np.ascontiguousarray(batches[self.index], dtype=np.float32)
            self.index += 1
            _check(cudart, cudart.cudaMemcpy(self.device, batch.ctypes.data, batch.nbytes,
                                             cudart.cudaMemcpyKind.cudaMemcpyHostToDevice), "cudaMemcpy (calibration)")
            return [int(self.device)]

        def read_calibration_cache(self):
            # Deliberately never reused: the engine cache key already covers the calibration set,
            # and a stale table from other images is exactly the silent-INT8 failure to avoid.
            return None

        def write_calibration_cache(self, cache) -> None:
            try:
                from ..atomic import atomic_write_bytes

                atomic_write_bytes(cache_path, bytes(cache))
            except OSError:
                pass

        def __del__(self) -> None:
            if getattr(self, "device", 0):
                cudart.cudaFree(self.device)

    return EntropyCalibrator()


def ensure_engine(
    onnx_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str],
    precision: str,
    allow_build: bool,
    workspace_mib: int = 1024,
    device: int = 0,
) -> Path:
    """The cached engine for ``onnx_path``; builds it only when ``allow_build``, announcing it loudly."""
    trt, _ = _require()
    onnx_path = Path(onnx_path)
    profile = resolve_profile(onnx_path)
    gpu_name, cc = gpu_identity(device)
    key = EngineKey.make(
        onnx_sha256=sha256_file(onnx_path), tensorrt_version=trt.__version__, gpu_name=gpu_name,
        compute_capability=cc, precision=precision, profile=profile,
        calibration_sha256="" if precision != "int8" else "runtime-build-not-allowed",
    )
    cache = EngineCache(cache_dir)
    # An int8 engine's key includes its calibration set, which the runtime does not know: any
    # cached int8 build of this exact model, TensorRT, GPU and profile is acceptable.
    ignore = ("calibration_sha256",) if precision == "int8" else ()
    hit = cache.find(key, onnx_path.stem, ignore=ignore)
    if hit is not None:
        return hit
    command = f"caper-edge engine build {onnx_path} --{precision}" + (" --calib FOLDER_OR_BAG" if precision == "int8" else "")
    if not allow_build or precision == "int8":
        raise EngineError(
            f"no TensorRT engine for {onnx_path.name} ({precision}, TensorRT {trt.__version__}, {gpu_name} sm {cc}) "
            f"in {cache.directory}; build it offline with: {command}"
            + ("" if precision != "int8" else " (int8 engines are never built at run time: they need calibration data)")
        )
    banner = (
        f"BUILDING TensorRT engine for {onnx_path.name} ({precision}) on {gpu_name}: this takes 1-10 minutes "
        f"on a Jetson Orin and the cart is not perceiving meanwhile. Build offline next time: {command}"
    )
    log.warning(banner)
    print(banner, flush=True)
    return build_engine(onnx_path, cache_dir=cache_dir, precision=precision, workspace_mib=workspace_mib, device=device).path
