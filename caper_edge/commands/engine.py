"""``caper-edge engine build MODEL.onnx [--fp16 | --int8 --calib BAG_OR_DIR]`` and ``engine list``.

Builds a TensorRT engine offline into the content-addressed cache ([engines.tensorrt] cache_dir),
so that the cart never builds one on its first frame. Needs TensorRT 10, cuda-python and a GPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import EngineError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file (partial; overrides the defaults)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML config file")
    sub = parser.add_subparsers(dest="engine_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", parents=[common], help="build a TensorRT engine from an ONNX model into the cache")
    build.add_argument("model", type=Path, help="ONNX model file")
    prec = build.add_mutually_exclusive_group()
    prec.add_argument("--fp16", dest="precision", action="store_const", const="fp16", help="FP16 kernels allowed (default)")
    prec.add_argument("--fp32", dest="precision", action="store_const", const="fp32", help="FP32 only")
    prec.add_argument("--int8", dest="precision", action="store_const", const="int8", help="INT8 with entropy calibration (needs --calib)")
    build.add_argument("--calib", type=Path, help="calibration images: a folder of images or a sensor bag (colour frames)")
    build.add_argument("--calib-preprocess", choices=("letterbox", "crop"), default="letterbox",
                       help="letterbox frames (detector, default) or product crops (embedding model)")
    build.add_argument("--calib-images", type=int, default=256, help="images used for calibration (default %(default)s)")
    build.add_argument("--shape", action="append", default=[], metavar="NAME:1x3x320x320",
                       help="optimisation shape of a dynamic input (repeatable)")
    build.add_argument("--max-batch", type=int, default=1, help="largest batch of a dynamic batch dimension")
    build.add_argument("--force", action="store_true", help="rebuild even when the cache has the engine")
    build.set_defaults(precision=None)
    lst = sub.add_parser("list", parents=[common], help="list the engines in the cache with their keys")
    lst.add_argument("--json", action="store_true", help="one JSON object per engine")


def run(args: argparse.Namespace) -> int:
    from .. import config

    cfg = config.load(args.config)
    trt_cfg = cfg.engines.tensorrt
    if args.engine_command == "list":
        return _list(trt_cfg.cache_dir, args.json)
    return _build(args, trt_cfg)


def _list(cache_dir: str, as_json: bool) -> int:
    from ..engines import EngineCache

    cache = EngineCache(cache_dir)
    entries = cache.entries()
    for path, meta in entries:
        if as_json:
            print(json.dumps({"path": str(path), **meta}))
        else:
            key = meta.get("key", {})
            print(f"{path.name}  {key.get('precision')}  TensorRT {key.get('tensorrt_version')}  "
                  f"{key.get('gpu_name')} sm {key.get('compute_capability')}  {meta.get('bytes', 0) / 1e6:.1f} MB")
    if not entries and not as_json:
        print(f"no engines in {cache.directory}")
    return 0


def _build(args: argparse.Namespace, trt_cfg) -> int:
    from ..engines.tensorrt_backend import build_engine, resolve_profile, tensorrt_unavailable_reason

    reason = tensorrt_unavailable_reason()
    if reason:
        raise EngineError(f"cannot build TensorRT engines here: {reason}")
    precision = args.precision or trt_cfg.precision
    if not args.model.is_file():
        raise EngineError(f"model file {args.model} does not exist")
    if precision == "int8" and args.calib is None:
        raise EngineError("--int8 needs --calib FOLDER_OR_BAG (images the cart really sees)")
    if precision != "int8" and args.calib is not None:
        raise EngineError("--calib is only used with --int8")
    shapes = dict(_parse_shape(s) for s in args.shape)
    calibration = None
    if precision == "int8":
        from ..engines.calibration import calibration_tensors

        profile = resolve_profile(args.model, shapes, args.max_batch)
        if len(profile) != 1:
            raise EngineError(f"INT8 calibration supports one-input models; {args.model.name} has {len(profile)} inputs")
        (_, opt, _), = profile.values()
        calibration = calibration_tensors(args.calib, tuple(opt), args.calib_preprocess, args.calib_images)
        print(f"calibrating on {sum(len(b) for b in calibration)} images from {args.calib}")
    print(f"building {precision} TensorRT engine for {args.model} (1-10 minutes on a Jetson Orin) ...", flush=True)
    result = build_engine(
        args.model, cache_dir=trt_cfg.cache_dir, precision=precision, shapes=shapes, max_batch=args.max_batch,
        calibration=calibration, workspace_mib=trt_cfg.workspace_mib, device=trt_cfg.device, force=args.force,
    )
    verb = f"built in {result.seconds:.0f} s" if result.built else "already in the cache"
    print(f"{result.path} ({verb}; key {result.key.digest()[:20]})")
    return 0


def _parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d <= 0 for d in shape):
        raise EngineError(f"--shape {text!r}: expected NAME:DIMS like images:1x3x320x320")
    return name, shape
