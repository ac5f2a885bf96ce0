"""``caper-edge gallery enroll SKU IMAGES...`` and ``caper-edge gallery info``.

Enrolling runs the embedding model ([models] embedder, on the [engines] backend) on product crops
and adds the vectors to the gallery file without retraining anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from ..errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file (partial; overrides the defaults)")
    parser.add_argument("--gallery", type=Path, help="gallery file (default: [models] gallery)")
    # The same options are accepted after the action too (`gallery info --gallery F`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML config file")
    common.add_argument("--gallery", type=Path, default=argparse.SUPPRESS, help="gallery file")
    sub = parser.add_subparsers(dest="gallery_command", metavar="ACTION", required=True)
    enroll = sub.add_parser("enroll", parents=[common], help="add a SKU (or more views of one) from product-crop images")
    enroll.add_argument("sku", help="SKU identifier")
    enroll.add_argument("images", nargs="+", type=Path, help="product crops (PNG/JPEG), one product filling each")
    enroll.add_argument("--name", help="product name")
    enroll.add_argument("--weight-g", type=float, help="mean weight in grams")
    enroll.add_argument("--weight-std-g", type=float, help="weight standard deviation in grams")
    enroll.add_argument("--price", type=float, help="price in the store's currency units")
    info = sub.add_parser("info", parents=[common], help="print the gallery's SKUs, embeddings and unknown threshold")
    info.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from .. import config

    cfg = config.load(args.config)
    path = _gallery_path(args.gallery, cfg.models.gallery, writing=args.gallery_command == "enroll")
    if args.gallery_command == "enroll":
        return _enroll(args, cfg, path)
    return _info(path, args.json)


def _gallery_path(given: Path | None, configured: str, *, writing: bool) -> Path:
    if given is not None:
        return given
    if configured:
        return Path(os.path.expanduser(configured))
    if writing:
        raise InputError("no gallery file to write: pass --gallery FILE or set [models] gallery in the config")
    from ..engines import packaged_model

    return packaged_model("gallery")


def _enroll(args: argparse.Namespace, cfg, path: Path) -> int:
    import cv2

    from ..embedding import Embedder
    from ..engines import open_engine, sha256_file
    from ..gallery import Gallery, SkuInfo

    crops = []
    for image in args.images:
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR) if image.is_file() else None
        if bgr is None:
            raise InputError(f"image {image} {'cannot be decoded' if image.is_file() else 'does not exist'}")
        crops.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    engine = open_engine(cfg, model="embedder")
    model_sha = sha256_file(engine.path) if engine.path.suffix == ".onnx" else ""
    embedder = Embedder(engine)
    gallery = Gallery.load(path) if path.exists() else Gallery(embedder.dim, model_sha)
    if gallery.dim != embedder.dim:
        raise InputError(f"gallery {path} holds {gallery.dim}-d embeddings; model {engine.path.name} gives {embedder.dim}-d")
    if model_sha and gallery.embedder_sha256 and gallery.embedder_sha256 != model_sha:
        raise InputError(
            f"gallery {path} was built with another embedding model (sha256 {gallery.embedder_sha256[:12]}…, "
            f"this one {model_sha[:12]}…): vectors of different models are not comparable; re-enroll every SKU"
        )
    old = gallery.info(args.sku) if args.sku in gallery else None
    info = SkuInfo(
        sku=args.sku,
        name=args.name if args.name is not None else (old.name if old else ""),
        weight_mean_g=_pick(args.weight_g, old and old.weight_mean_g),
        weight_std_g=_pick(args.weight_std_g, old and old.weight_std_g),
        price=_pick(args.price, old and old.price),
    )
    embeddings = embedder.embed(crops)
    gallery.add(info, embeddings)
    gallery.save(path)
    verb = "added views to" if old else "enrolled"
    print(f"{verb} SKU {args.sku}: {len(crops)} embedding(s); {path} now has {len(gallery)} SKUs, "
          f"{gallery.num_embeddings} embeddings")
    return 0


def _pick(given: float | None, old: float | None) -> float:
    if given is not None:
        return given
    return old if isinstance(old, float) else math.nan


def _info(path: Path, as_json: bool) -> int:
    from dataclasses import asdict

    from ..gallery import Gallery

    g = Gallery.load(path)
    facts = {
        "path": str(path),
        "skus": len(g),
        "embeddings": g.num_embeddings,
        "dim": g.dim,
        "embedder_sha256": g.embedder_sha256,
        "unknown_threshold": None if g.calibration is None else g.calibration.threshold,
        "calibration": None if g.calibration is None else asdict(g.calibration),
    }
    if as_json:
        facts["catalog"] = [s.to_json() for s in g.skus]
        print(json.dumps(facts))
        return 0
    for key in ("path", "skus", "embeddings", "dim", "embedder_sha256", "unknown_threshold"):
        print(f"{key:18s} {facts[key]}")
    if g.calibration is not None:
        c = g.calibration
        print(f"{'calibration':18s} {c.method}: AUC {c.auc:.4f}, unknown flagged {c.true_unknown_rate:.1%}, "
              f"known rejected {c.false_unknown_rate:.1%} ({c.known_queries} known / {c.unknown_queries} unknown queries)")
    for s in g.skus[:50]:
        print(f"  {s.sku:14s} {s.name[:28]:28s} {s.weight_mean_g:8.1f} g ± {s.weight_std_g:5.1f}  price {s.price:7.2f}"
              f"  views {len(g.embeddings_of(s.sku))}")
    if len(g) > 50:
        print(f"  … {len(g) - 50} more (use --json)")
    return 0
