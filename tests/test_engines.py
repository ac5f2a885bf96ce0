"""Engine layer: ONNX Runtime backend on hand-made ONNX graphs, spec checks, errors, the
TensorRT cache key and atomic writes (plain Python), and TensorRT itself (marker ``tensorrt``)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from caper_edge import config
from caper_edge.atomic import atomic_write_bytes, atomic_writer
from caper_edge.engines import EngineCache, EngineKey, OnnxRuntimeEngine, TensorSpec, open_engine, sha256_arrays, sha256_file
from caper_edge.errors import EngineError

# ---------------------------------------------------------------------------------------------
# hand-made models
# ---------------------------------------------------------------------------------------------


def affine_model(path, shape=(1, 3, 8, 8), a=2.0, b=1.0, dtype=TensorProto.FLOAT):
    """y = a * x + b, with a dim_param where ``shape`` holds a string."""
    x = helper.make_tensor_value_info("images", dtype, list(shape))
    y = helper.make_tensor_value_info("out", dtype, list(shape))
    np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
    inits = [numpy_helper.from_array(np.array(a, np_dtype), "a"), numpy_helper.from_array(np.array(b, np_dtype), "b")]
    nodes = [helper.make_node("Mul", ["images", "a"], ["ax"]), helper.make_node("Add", ["ax", "b"], ["out"])]
    graph = helper.make_graph(nodes, "affine", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def ultralytics_model(path, raw: np.ndarray, size=32):
    """An ONNX model with the YOLOv8 export layout: images (1,3,S,S) -> output0 = raw (1, 4+nc, N).

    The output does not depend on the pixels (0 * mean(images) + raw), so the decoded boxes are
    known by hand; the graph still consumes its input like a real detector.
    """
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(raw.shape))
    inits = [numpy_helper.from_array(raw.astype(np.float32), "raw"), numpy_helper.from_array(np.array(0, np.float32), "zero")]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["raw", "z"], ["output0"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "yolo", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def opts():
    return config.load().engines


# ---------------------------------------------------------------------------------------------
# ONNX Runtime backend
# ---------------------------------------------------------------------------------------------


def test_onnxruntime_runs_and_matches_numpy(tmp_path, rng, opts):
    path = affine_model(tmp_path / "affine.onnx", a=3.0, b=-0.5)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    with open_engine(path, options=opts, backend="onnxruntime") as engine:
        assert engine.backend == "onnxruntime"
        assert engine.inputs == (TensorSpec("images", (1, 3, 8, 8), np.float32),)
        assert engine.outputs[0].name == "out"
        y = engine.run({"images": x})["out"]
        np.testing.assert_allclose(y, 3.0 * x - 0.5, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(engine(x)["out"], y)  # bare array for a one-input model


def test_auto_backend_falls_back_to_onnxruntime_without_tensorrt(tmp_path, opts):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    engine = open_engine(affine_model(tmp_path / "m.onnx"), options=opts)
    assert engine.backend == "onnxruntime"


def test_io_binding_gives_same_result_and_reuses_buffers(tmp_path, rng):
    path = affine_model(tmp_path / "affine.onnx")
    plain = OnnxRuntimeEngine(path, io_binding="off")
    bound = OnnxRuntimeEngine(path, io_binding="on")
    x1 = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    x2 = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    y1 = bound.run(x1)["out"]
    np.testing.assert_array_equal(y1, plain.run(x1)["out"])
    first_ptr = y1.ctypes.data
    y2 = bound.run(x2)["out"]
    np.testing.assert_array_equal(y2, plain.run(x2)["out"])
    assert y2.ctypes.data == first_ptr  # the documented buffer reuse is real


def test_dynamic_batch_accepts_any_batch(tmp_path, rng):
    path = affine_model(tmp_path / "dyn.onnx", shape=("batch", 3, 8, 8))
    engine = OnnxRuntimeEngine(path)
    assert engine.input().shape == (None, 3, 8, 8)
    assert engine.input().describe() == "(?, 3, 8, 8) float32"
    for n in (1, 5):
        x = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
        np.testing.assert_allclose(engine.run(x)["out"], 2 * x + 1, rtol=1e-6)


def test_thread_options_are_applied(tmp_path):
    engine = OnnxRuntimeEngine(affine_model(tmp_path / "m.onnx"), intra_op_threads=2, inter_op_threads=1)
    # ORT keeps the options on the session; reading them back shows they were passed through.
    assert engine.session.get_session_options().intra_op_num_threads == 2
    # No per-shape memory plans: with a dynamic crop batch they pile up for every batch size seen.
    assert engine.session.get_session_options().enable_mem_pattern is False


def test_cuda_request_without_cuda_provider_logs_reason(tmp_path, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with caplog.at_level(logging.INFO, logger="caper_edge.engines"):
        engine = OnnxRuntimeEngine(affine_model(tmp_path / "m.onnx"), use_cuda=True)
    assert engine.providers == ("CPUExecutionProvider",)
    assert "no CUDA execution provider" in caplog.text


@pytest.mark.parametrize(
    "feed, message",
    [
        (np.zeros((1, 3, 16, 16), np.float32), "input 'images' must be (1, 3, 8, 8) float32, got (1, 3, 16, 16) float32"),
        (np.zeros((1, 3, 8, 8), np.float64), "input 'images' must be (1, 3, 8, 8) float32, got (1, 3, 8, 8) float64"),
        (np.zeros((3, 8, 8), np.float32), "input 'images' must be (1, 3, 8, 8) float32, got (3, 8, 8) float32"),
        ({"image": np.zeros((1, 3, 8, 8), np.float32)}, "has no input 'image' (inputs: images)"),
        ({}, "input 'images' (1, 3, 8, 8) float32 of m.onnx is missing"),
        ({"images": [[1.0]]}, "input 'images' must be a numpy.ndarray (1, 3, 8, 8) float32, got list"),
    ],
)
def test_wrong_inputs_are_named(tmp_path, feed, message):
    engine = OnnxRuntimeEngine(affine_model(tmp_path / "m.onnx"))
    with pytest.raises(EngineError) as info:
        engine.run(feed)
    assert message in str(info.value)


def test_missing_file_is_named(tmp_path, opts):
    with pytest.raises(EngineError, match=r"model file .*nothere.onnx does not exist"):
        open_engine(tmp_path / "nothere.onnx", options=opts, backend="onnxruntime")


def test_corrupt_onnx_is_named(tmp_path, opts):
    path = tmp_path / "corrupt.onnx"
    good = affine_model(tmp_path / "good.onnx").read_bytes()
    path.write_bytes(good[: len(good) // 2] + b"\x00garbage\xff" * 7)
    with pytest.raises(EngineError) as info:
        open_engine(path, options=opts, backend="onnxruntime")
    assert "cannot load ONNX model" in str(info.value) and "corrupt.onnx" in str(info.value)


def test_empty_file_and_wrong_suffix_are_named(tmp_path, opts):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(EngineError, match="empty.onnx is empty"):
        open_engine(tmp_path / "empty.onnx", options=opts, backend="onnxruntime")
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(EngineError, match=r"suffix '.pt'"):
        open_engine(tmp_path / "model.pt", options=opts)


def test_tensorrt_engine_file_is_refused_by_onnxruntime(tmp_path, opts):
    (tmp_path / "m.engine").write_bytes(b"x")
    with pytest.raises(EngineError, match="ONNX Runtime cannot run it"):
        open_engine(tmp_path / "m.engine", options=opts, backend="onnxruntime")


def test_tensorrt_backend_requested_without_tensorrt_is_clear(tmp_path, opts):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    with pytest.raises(EngineError, match="engines.backend = 'tensorrt' but the tensorrt Python package does not import"):
        open_engine(affine_model(tmp_path / "m.onnx"), options=opts, backend="tensorrt")


def test_open_engine_from_config_uses_models_section(tmp_path):
    path = affine_model(tmp_path / "det.onnx")
    toml = tmp_path / "c.toml"
    toml.write_text(f'[engines]\nbackend = "onnxruntime"\n[models]\ndetector = "{path}"\n')
    engine = open_engine(config.load(toml), model="detector")
    assert engine.path == path
    with pytest.raises(EngineError, match="model='detector' or 'embedder'"):
        open_engine(config.load(toml), model="tracker")


def test_unsupported_element_type_refused_at_load(tmp_path):
    x = helper.make_tensor_value_info("s", TensorProto.STRING, [1])
    y = helper.make_tensor_value_info("t", TensorProto.STRING, [1])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["s"], ["t"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "str.onnx"))
    with pytest.raises(EngineError, match="input 's' has element type tensor\\(string\\)"):
        OnnxRuntimeEngine(tmp_path / "str.onnx")


# ---------------------------------------------------------------------------------------------
# End to end: Ultralytics layout -> engine -> caper_edge.detect.decode
# ---------------------------------------------------------------------------------------------


def test_ultralytics_layout_decodes_end_to_end(tmp_path):
    detect = pytest.importorskip("caper_edge.detect", reason="caper_edge.detect (foundation issue) not built yet")
    # 5 candidates, 2 classes: (cx, cy, w, h, score_item, score_hand) per column.
    cands = np.array(
        [
            [100, 100, 40, 60, 0.90, 0.05],   # item A
            [102, 101, 40, 60, 0.80, 0.05],   # duplicate of A (IoU ~0.9): suppressed
            [200, 150, 30, 30, 0.10, 0.70],   # hand
            [300, 200, 20, 20, 0.20, 0.10],   # below the 0.25 threshold
            [250, 60, 50, 20, 0.60, 0.00],    # item B
        ],
        np.float32,
    )
    raw = cands.T[None].copy()  # (1, 6, 5)
    engine = OnnxRuntimeEngine(ultralytics_model(tmp_path / "yolo.onnx", raw))
    assert engine.output().shape == (1, 6, 5)
    out = engine.run(np.zeros((1, 3, 32, 32), np.float32))["output0"]
    dets = detect.decode(out, conf_threshold=0.25, iou_threshold=0.45)
    expected_xyxy = np.array([[80, 70, 120, 130], [185, 135, 215, 165], [225, 50, 275, 70]], np.float32)
    np.testing.assert_allclose(dets.xyxy, expected_xyxy, atol=1e-4)
    np.testing.assert_allclose(dets.score, [0.90, 0.70, 0.60], atol=1e-6)
    np.testing.assert_array_equal(dets.class_id, [0, 1, 0])


# ---------------------------------------------------------------------------------------------
# TensorRT cache key and atomic writes (plain Python, run in CI)
# ---------------------------------------------------------------------------------------------

PROFILE = {"images": ((1, 3, 320, 320), (1, 3, 320, 320), (1, 3, 320, 320))}


def make_key(**changes):
    base = dict(
        onnx_sha256="a" * 64, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
        precision="fp16", profile=PROFILE, calibration_sha256="",
    )
    base.update(changes)
    return EngineKey.make(**base)


def test_cache_key_changes_with_every_field():
    base = make_key()
    assert base.digest() == make_key().digest()
    variants = [
        make_key(onnx_sha256="b" * 64),
        make_key(tensorrt_version="10.4.0"),
        make_key(gpu_name="NVIDIA H100 80GB HBM3"),
        make_key(compute_capability="9.0"),
        make_key(precision="fp32"),
        make_key(precision="int8", calibration_sha256="c" * 64),
        make_key(precision="int8", calibration_sha256="d" * 64),
        make_key(profile={"images": ((1, 3, 320, 320), (2, 3, 320, 320), (4, 3, 320, 320))}),
        make_key(profile={"input": PROFILE["images"]}),
    ]
    digests = {v.digest() for v in variants}
    assert base.digest() not in digests and len(digests) == len(variants)


def test_cache_key_is_canonical_and_round_trips():
    two = {"a": ((1,), (1,), (1,)), "b": ((2,), (2,), (2,))}
    k1 = make_key(profile=two)
    k2 = make_key(profile=dict(reversed(list(two.items()))))
    assert k1 == k2 and k1.digest() == k2.digest()
    assert EngineKey.from_json(json.loads(json.dumps(k1.to_json()))) == k1


def test_cache_key_validation():
    with pytest.raises(EngineError, match="precision must be one of fp32, fp16, int8, got 'bf16'"):
        make_key(precision="bf16")
    with pytest.raises(EngineError, match="int8 engine key needs the calibration"):
        make_key(precision="int8")
    with pytest.raises(EngineError, match="onnx_sha256 must be 64"):
        make_key(onnx_sha256="xyz")


def test_cache_store_lookup_and_mismatch(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    key = make_key()
    assert cache.lookup(key, "detector") is None
    path = cache.store(key, "detector", b"PLAN" * 10, info={"build_seconds": 3})
    assert path.name.startswith("detector-") and path.suffix == ".engine"
    assert cache.lookup(key, "detector") == path
    assert path.read_bytes() == b"PLAN" * 10
    # Another TensorRT version is a miss, never a reuse.
    assert cache.lookup(make_key(tensorrt_version="10.0.1"), "detector") is None
    # A sidecar edited to disagree with the file name makes the entry a miss too.
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["key"]["gpu_name"] = "other"
    meta_path.write_text(json.dumps(meta))
    assert cache.lookup(key, "detector") is None
    # An engine without its sidecar (crash between the two writes) is never returned.
    meta_path.unlink()
    assert cache.lookup(key, "detector") is None and cache.entries() == []


def test_cache_find_ignoring_calibration(tmp_path):
    cache = EngineCache(tmp_path)
    built = make_key(precision="int8", calibration_sha256="c" * 64)
    path = cache.store(built, "det", b"x")
    runtime = make_key(precision="int8", calibration_sha256="unknown")
    assert cache.lookup(runtime, "det") is None
    assert cache.find(runtime, "det", ignore=("calibration_sha256",)) == path
    assert cache.find(make_key(precision="int8", calibration_sha256="u", gpu_name="x"), "det", ignore=("calibration_sha256",)) is None


def test_sha256_helpers_against_hashlib(tmp_path):
    import hashlib

    f = tmp_path / "blob"
    data = bytes(range(256)) * 5000
    f.write_bytes(data)
    assert sha256_file(f) == hashlib.sha256(data).hexdigest()
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert sha256_arrays([a]) == sha256_arrays([a.copy()])
    assert sha256_arrays([a]) != sha256_arrays([a.reshape(3, 2)])  # shape is part of the identity
    assert sha256_arrays([a]) != sha256_arrays([a + 1])


def test_atomic_write_replaces_or_leaves_untouched(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"old")
    assert target.read_bytes() == b"old"
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as f:
            f.write(b"half-written new conte")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]  # no temp file left behind
    atomic_write_bytes(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"


def test_tensorspec_describe_and_dataclass_frozen():
    spec = TensorSpec("x", (None, 3), "float16")
    assert spec.describe() == "(?, 3) float16"
    assert TensorSpec("v", (5,), np.int64).describe() == "(5,) int64"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "y"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# TensorRT (marker: skipped unless tensorrt and a GPU are present; CI has neither)
# ---------------------------------------------------------------------------------------------


@pytest.mark.tensorrt
def test_tensorrt_build_cache_and_run_matches_onnxruntime(tmp_path, rng):
    from caper_edge.engines.tensorrt_backend import TensorRTEngine, build_engine

    onnx_path = affine_model(tmp_path / "affine.onnx", a=2.0, b=1.0)
    first = build_engine(onnx_path, cache_dir=tmp_path / "cache", precision="fp32")
    again = build_engine(onnx_path, cache_dir=tmp_path / "cache", precision="fp32")
    assert first.built and not again.built and again.path == first.path
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    with TensorRTEngine(first.path) as engine:
        np.testing.assert_allclose(engine.run(x)["out"], OnnxRuntimeEngine(onnx_path).run(x)["out"], rtol=1e-5, atol=1e-5)
        with pytest.raises(EngineError, match="must be"):
            engine.run(np.zeros((1, 3, 9, 9), np.float32))


@pytest.mark.tensorrt
def test_tensorrt_missing_engine_is_an_error_unless_build_allowed(tmp_path):
    from caper_edge.engines.tensorrt_backend import ensure_engine

    onnx_path = affine_model(tmp_path / "affine.onnx")
    with pytest.raises(EngineError, match="caper-edge engine build"):
        ensure_engine(onnx_path, cache_dir=tmp_path / "c", precision="fp16", allow_build=False)
    built = ensure_engine(onnx_path, cache_dir=tmp_path / "c", precision="fp16", allow_build=True)
    assert built.is_file()


def test_engine_build_cli_without_tensorrt_is_one_clear_line(tmp_path, capsys):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    from caper_edge import cli

    model = affine_model(tmp_path / "m.onnx")
    assert cli.main(["engine", "build", str(model), "--fp16"]) == EngineError.exit_code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot build TensorRT engines here: the tensorrt Python package does not import" in err
    assert cli.main(["engine", "list", "--config", str(_cache_config(tmp_path))]) == 0
    assert "no engines in" in capsys.readouterr().out


def _cache_config(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(f'[engines.tensorrt]\ncache_dir = "{tmp_path / "cache"}"\n')
    return f
