"""Evaluate, quantize (with the accuracy gate) and package trained models into caper_edge/assets.

    python -m models.release --detector OUT/detector/detector.onnx --embedder OUT/embedder/embedder.onnx \
        --train TRAIN_DIR --val VAL_DIR --unknown-skus SKU034,... --assets caper_edge/assets

Steps: detector mAP on VAL; INT8 detector through the gate (calibrated on TRAIN frames); gallery
enrolled from TRAIN crops, queried with VAL crops, unknown threshold calibrated (open-set ROC);
INT8 embedder through the gate. Accepted files are copied to ASSETS with the gallery and
``models.json`` (every metric, the gate decisions, hashes and versions) for the model card.

Release gate: the models already in ASSETS (the incumbents) are evaluated on the same held-out
data, and a candidate replaces its incumbent only when it measures better (:func:`measures_better`:
detector by item AP50, embedder by top-1 on SKUs without a look-alike, neither losing more than
half a point of its second metric); otherwise the incumbent is kept, re-quantized and re-packaged.
``--no-incumbent`` packages the candidates unconditionally (a first release).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import onnxruntime as ort

from caper_edge.atomic import atomic_write_bytes
from caper_edge.engines import sha256_file
from caper_edge.engines.calibration import calibration_tensors

from . import evaluate as ev
from .data import load_crops, load_detection_set
from .quantize import quantize_with_gate

# (primary, secondary) metric of each model for the release gate; see measures_better.
RELEASE_METRICS = {"detector": ("item_ap50", "map50_95"), "embedder": ("top1_no_lookalike", "top3")}
SECONDARY_TOLERANCE = 0.005


def measures_better(candidate: dict, incumbent: dict | None, primary: str, secondary: str,
                    tolerance: float = SECONDARY_TOLERANCE) -> tuple[bool, str]:
    """Whether ``candidate`` should replace ``incumbent`` (metric dicts measured on the same data).

    It must be strictly better in ``primary`` and lose at most ``tolerance`` (fraction) of
    ``secondary``. No incumbent: the candidate is taken. Returns (decision, reason).
    """
    if incumbent is None:
        return True, "no incumbent"
    c1, i1, c2, i2 = (float(d[k]) for d, k in ((candidate, primary), (incumbent, primary),
                                                (candidate, secondary), (incumbent, secondary)))
    if not c1 > i1:
        return False, f"{primary} {c1:.4f} is not above the incumbent's {i1:.4f}"
    if c2 < i2 - tolerance:
        return False, f"{primary} {c1:.4f} > {i1:.4f} but {secondary} {c2:.4f} < {i2:.4f} - {tolerance}"
    return True, f"{primary} {c1:.4f} > {i1:.4f}, {secondary} {c2:.4f} vs {i2:.4f}"


def _with_item_ap50(det: dict, item_class: int = 0) -> dict:
    return {**det, "item_ap50": float(det["ap50"][item_class])}


def _incumbent(assets: Path, name: str, work: Path) -> Path | None:
    """A copy (in ``work``) of the packaged ``name``.onnx, or None when there is none."""
    src = assets / f"{name}.onnx"
    if not src.exists():
        return None
    dst = work / f"incumbent_{name}.onnx"
    shutil.copyfile(src, dst)
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.release", description=__doc__.split("\n\n")[0])
    ap.add_argument("--detector", type=Path, required=True)
    ap.add_argument("--embedder", type=Path, required=True)
    ap.add_argument("--train", type=Path, required=True, help="training folder: INT8 calibration and gallery enrollment")
    ap.add_argument("--val", type=Path, required=True, help="held-out folder (other simulator seeds)")
    ap.add_argument("--unknown-skus", default="", help="SKUs left out of the gallery for the open-set ROC")
    ap.add_argument("--per-sku", type=int, default=8)
    ap.add_argument("--assets", type=Path, default=Path("caper_edge/assets"))
    ap.add_argument("--work", type=Path, default=Path("models/out/release"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra-views", type=Path,
                    help="detector crops of recorded sessions (models/bag_crops.py) to enroll more gallery views from")
    ap.add_argument("--extra-per-sku", type=int, default=40, help="gallery views per SKU taken from --extra-views")
    ap.add_argument("--runtime-val", type=Path,
                    help="detector crops of held-out sessions (models/bag_crops.py), reported as gallery 'runtime' metrics")
    ap.add_argument("--query-turns", type=int, choices=(1, 2, 4), default=4,
                    help="also report gallery metrics with queries embedded as the mean of this many quarter turns")
    ap.add_argument("--no-incumbent", action="store_true",
                    help="package the candidates even if the models already in --assets measure better")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    unknown = [s for s in args.unknown_skus.split(",") if s]
    report: dict = {"onnxruntime": ort.__version__, "train": str(args.train), "val": str(args.val), "created_unix": time.time(),
                    "extra_views": str(args.extra_views) if args.extra_views else None, "extra_per_sku": args.extra_per_sku,
                    "runtime_val": str(args.runtime_val) if args.runtime_val else None}
    incumbents = {} if args.no_incumbent else {n: _incumbent(args.assets, n, args.work) for n in ("detector", "embedder")}
    release: dict = {}

    # 1. Detector: fp32 metrics of the candidate and the incumbent, the better one's INT8 through the gate.
    det_data = load_detection_set(args.val, 320)
    det = _with_item_ap50(ev.evaluate_detector(args.detector, args.val, threads=args.threads, data=det_data))
    inc_det = None
    if incumbents.get("detector") is not None:
        inc_det = _with_item_ap50(ev.evaluate_detector(incumbents["detector"], args.val, threads=args.threads, data=det_data))
    take, why = measures_better(det, inc_det, *RELEASE_METRICS["detector"])
    release["detector"] = {"candidate": str(args.detector), "replaced": take, "reason": why,
                           "candidate_metrics": {k: det[k] for k in ("item_ap50", "map50", "map50_95")},
                           "incumbent_metrics": None if inc_det is None else {k: inc_det[k] for k in ("item_ap50", "map50", "map50_95")}}
    print(f"detector: {'candidate replaces the incumbent' if take else 'incumbent kept'} ({why})", flush=True)
    if not take:
        args.detector, det = incumbents["detector"], inc_det
    report["detector"] = {"fp32": det}
    print("detector fp32:", json.dumps({k: det[k] for k in ("map50", "map50_95", "ap50", "frames")}), flush=True)
    det_int8 = args.work / "detector.int8.onnx"
    batches = calibration_tensors(args.train / "images", (1, 3, 320, 320), "letterbox", 200)
    int8_eval: dict = {}

    def det_metric(m: Path) -> float:
        r = ev.evaluate_detector(m, args.val, threads=args.threads, data=det_data)
        if m != args.detector:
            int8_eval.update(r)
        return r["map50"]

    gate = quantize_with_gate(args.detector, det_int8, batches, det_metric, "map50")
    report["detector"]["int8_gate"] = gate.to_json()
    report["detector"]["int8"] = int8_eval
    print("detector int8 gate:", json.dumps(gate.to_json()), flush=True)

    # 2. Embedder + gallery: fp32 metrics (saving the calibrated gallery), INT8 through the gate.
    crop_data = (load_crops(args.train), load_crops(args.val))
    views = ev.view_options(args.extra_views, args.extra_per_sku, args.runtime_val)
    gallery_path = args.work / "gallery.npz"
    gal = ev.evaluate_gallery(args.embedder, args.train, args.val, unknown, args.per_sku, args.threads,
                              save_gallery=gallery_path, data=crop_data, **views, query_turns=args.query_turns)
    inc_gal = None
    if incumbents.get("embedder") is not None:
        inc_gallery_path = args.work / "incumbent_gallery.npz"
        inc_gal = ev.evaluate_gallery(incumbents["embedder"], args.train, args.val, unknown, args.per_sku, args.threads,
                                      save_gallery=inc_gallery_path, data=crop_data, **views,
                                      query_turns=args.query_turns)
    take, why = measures_better(gal, inc_gal, *RELEASE_METRICS["embedder"])
    keys = ("top1", "top3", "top1_no_lookalike", "top1_lookalike") + (("runtime",) if args.runtime_val else ())
    release["embedder"] = {"candidate": str(args.embedder), "replaced": take, "reason": why,
                           "candidate_metrics": {k: gal[k] for k in keys},
                           "incumbent_metrics": None if inc_gal is None else {k: inc_gal[k] for k in keys}}
    print(f"embedder: {'candidate replaces the incumbent' if take else 'incumbent kept'} ({why})", flush=True)
    if not take:
        args.embedder, gal, gallery_path = incumbents["embedder"], inc_gal, inc_gallery_path
    report["gallery"] = {"fp32": gal}
    print("gallery fp32:", json.dumps({k: v for k, v in gal.items() if k != "open_set"}), flush=True)
    emb_int8 = args.work / "embedder.int8.onnx"
    crops_dir = args.train / "crops"
    crop_size = int(ev._engine(args.embedder).input().shape[2])
    emb_batches = calibration_tensors(crops_dir, (8, 3, crop_size, crop_size), "crop", 400)
    emb_eval: dict = {}

    def emb_metric(m: Path) -> float:
        r = ev.evaluate_gallery(m, args.train, args.val, [], args.per_sku, args.threads, data=crop_data, **views)
        if m != args.embedder:
            emb_eval.update(r)
        return r["top1"]

    gate = quantize_with_gate(args.embedder, emb_int8, emb_batches, emb_metric, "top1")
    report["gallery"]["int8_gate"] = gate.to_json()
    report["gallery"]["int8"] = emb_eval
    print("embedder int8 gate:", json.dumps(gate.to_json()), flush=True)

    # 3. Package.
    args.assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.detector, args.assets / "detector.onnx")
    shutil.copyfile(args.embedder, args.assets / "embedder.onnx")
    shutil.copyfile(gallery_path, args.assets / "gallery.npz")
    for name, accepted in (("detector", report["detector"]["int8_gate"]["accepted"]),
                           ("embedder", report["gallery"]["int8_gate"]["accepted"])):
        target = args.assets / f"{name}.int8.onnx"
        if accepted:
            shutil.copyfile(args.work / f"{name}.int8.onnx", target)
        else:
            target.unlink(missing_ok=True)
    report["release"] = release
    report["files"] = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                       for p in sorted(args.assets.iterdir()) if p.suffix in (".onnx", ".npz")}
    atomic_write_bytes(args.assets / "models.json", (json.dumps(report, indent=1) + "\n").encode())
    print(f"packaged into {args.assets}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
