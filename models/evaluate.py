"""Evaluate exported models through the runtime path (caper_edge engines, preprocess, decode).

    python -m models.evaluate detector --model detector.onnx --val DIR [--json out.json]
    python -m models.evaluate gallery --model embedder.onnx --enroll DIR --val DIR \
        --unknown-skus SKU034,... [--save-gallery gallery.npz] [--json out.json]

Detector: frames letterboxed to the model input, raw output decoded by caper_edge.detect.decode
(conf 0.001, IoU 0.6, 300 boxes: the usual mAP settings), COCO-style mAP50 and mAP50-95 against
the labels in letterboxed pixels (models/metrics.py).

Gallery: every SKU is enrolled from crops of the ``--enroll`` folder (other simulator seeds than
``--val``), including SKUs the embedder never trained on. Queries are the ``--val`` crops. Reports
top-1 / top-3 over all SKUs, top-1 on SKUs without a look-alike, the look-alike confusion, and the
open-set ROC: a gallery without the ``--unknown-skus`` is calibrated on half of the queries (Youden
threshold) and scored on the other half.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from caper_edge.embedding import Embedder
from caper_edge.engines import OnnxRuntimeEngine, sha256_file
from caper_edge.gallery import Gallery, SkuInfo

from .data import load_crops, load_detection_set
from .metrics import ImageDetections, detection_map, topk_accuracy


def _engine(path: Path, threads: int = 1) -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(path, intra_op_threads=threads, inter_op_threads=1, use_cuda=False)


def evaluate_detector(model: Path, val: Path, limit: int | None = None, threads: int = 1, data=None) -> dict:
    from caper_edge import detect

    engine = _engine(model, threads)
    size = int(engine.input().shape[2])
    images, targets = data if data is not None else load_detection_set(val, size, limit)
    num_classes = engine.output().shape[1] - 4
    per_image = []
    for img, tgt in zip(images, targets):
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        raw = engine.run(x)[engine.outputs[0].name]
        dets = detect.decode(raw, conf_threshold=0.001, iou_threshold=0.6, max_detections=300)
        per_image.append(ImageDetections(dets.xyxy, dets.score, dets.class_id, tgt[:, 1:5], tgt[:, 0].astype(int)))
    result = detection_map(per_image, num_classes)
    result.update(frames=len(images), model=str(model), model_sha256=sha256_file(model))
    return result


def _lookalike_groups(*roots: Path) -> dict[str, set[str]]:
    """SKU -> the other SKUs that look like it.

    From the simulator's catalog (``look_group``) when a folder was written by
    ``caper_edge.sim.dataset`` (it has ``manifest.json``), else from ``dataset.json``'s
    ``lookalike_of`` (models/synthetic.py).
    """
    groups: dict[str, set[str]] = {}

    def link(members: list[str]) -> None:
        for m in members:
            groups.setdefault(m, set()).update(x for x in members if x != m)

    for root in roots:
        if (root / "manifest.json").exists():
            from caper_edge.sim.catalog import catalog

            by_group: dict[str, list[str]] = {}
            for sku in catalog():
                if sku.look_group:
                    by_group.setdefault(sku.look_group, []).append(sku.sku)
            for members in by_group.values():
                link(members)
        elif (root / "dataset.json").exists():
            for row in json.loads((root / "dataset.json").read_text()).get("catalog", []):
                if row.get("lookalike_of"):
                    link([row["sku"], row["lookalike_of"]])
    return groups


def catalog_rows(root: Path) -> dict[str, SkuInfo]:
    """Catalog rows (name, weight, price) for a simulator folder; empty for other sources."""
    if not (root / "manifest.json").exists():
        return {}
    from caper_edge.sim.catalog import catalog

    return {s.sku: SkuInfo(s.sku, s.name, float(s.weight_g), float(s.weight_std_g), float(s.price)) for s in catalog()}


def build_gallery(embedder: Embedder, crops: Sequence[np.ndarray], labels: Sequence[str], per_sku: int, model_sha: str,
                  exclude: set[str] = frozenset(), rows: dict[str, SkuInfo] | None = None) -> Gallery:
    g = Gallery(embedder.dim, model_sha)
    for sku in sorted(set(labels) - set(exclude)):
        idx = [i for i, l in enumerate(labels) if l == sku][:per_sku]
        g.add((rows or {}).get(sku, SkuInfo(sku)), embedder.embed([crops[i] for i in idx]))
    return g


def farthest_views(embeddings: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` rows of unit ``embeddings`` that cover them: the row nearest their mean,
    then repeatedly the row furthest (cosine) from every row chosen so far. Deterministic."""
    n = len(embeddings)
    if n <= k:
        return np.arange(n)
    mean = embeddings.mean(0)
    chosen = [int(np.argmax(embeddings @ mean))]
    dist = 1.0 - embeddings @ embeddings[chosen[0]]
    for _ in range(k - 1):
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, 1.0 - embeddings @ embeddings[j])
    return np.array(chosen)


def embed_all(embedder: Embedder, crops: Sequence[np.ndarray], chunk: int = 256, turns: int = 1) -> np.ndarray:
    """(n, D) embeddings of any number of crops, ``chunk`` at a time (bounded input memory);
    ``turns`` as in :meth:`Embedder.embed`."""
    if not len(crops):
        return np.zeros((0, embedder.dim), np.float32)
    return np.concatenate([embedder.embed(crops[a:a + chunk], turns=turns) for a in range(0, len(crops), chunk)])


def add_views(gallery: Gallery, embeddings: np.ndarray, labels: Sequence[str], per_sku: int) -> int:
    """Enroll up to ``per_sku`` more views of every SKU already in ``gallery``, chosen among the
    crops' ``embeddings`` by :func:`farthest_views` (e.g. detector crops from recorded sessions,
    models/bag_crops.py: the looks the cart meets, such as products cut by the image edge).
    Returns the views added."""
    added = 0
    labels = np.asarray(labels)
    for sku in sorted({s.sku for s in gallery.skus} & set(labels.tolist())):
        e = embeddings[labels == sku]
        pick = farthest_views(e, per_sku)
        gallery.add(gallery.info(sku), e[pick], replace_info=False)
        added += len(pick)
    return added


def _ranked_metrics(ranked: list[list[str]], truth: list[str], twins: dict[str, set[str]]) -> dict:
    plain = [j for j, t in enumerate(truth) if t not in twins]
    alike = [j for j, t in enumerate(truth) if t in twins]

    def acc(rows: list[int], k: int) -> float | None:
        return topk_accuracy([ranked[j] for j in rows], [truth[j] for j in rows], k) if rows else None

    return {"queries": len(truth), "top1": topk_accuracy(ranked, truth, 1), "top3": topk_accuracy(ranked, truth, 3),
            "top1_no_lookalike": acc(plain, 1), "top3_no_lookalike": acc(plain, 3),
            "top1_lookalike": acc(alike, 1), "top3_lookalike": acc(alike, 3)}


def view_options(extra_views: Path | None, extra_per_sku: int, runtime_val: Path | None) -> dict:
    """The keyword arguments of :func:`evaluate_gallery` for the ``--extra-views``,
    ``--extra-per-sku`` and ``--runtime-val`` options (crops folders read once)."""
    return {"extra_views": load_crops(extra_views) if extra_views else None,
            "extra_per_sku": extra_per_sku if extra_views else 0,
            "runtime_queries": load_crops(runtime_val) if runtime_val else None}


def evaluate_gallery(model: Path, enroll: Path, val: Path, unknown_skus: Sequence[str], per_sku: int = 8,
                     threads: int = 1, save_gallery: Path | None = None, data=None, *,
                     extra_views: tuple[Sequence[np.ndarray], Sequence[str]] | None = None, extra_per_sku: int = 0,
                     runtime_queries: tuple[Sequence[np.ndarray], Sequence[str]] | None = None,
                     query_turns: int = 1) -> dict:
    """Gallery metrics of one embedder (see the module docstring). ``extra_views`` (crops,
    labels) adds up to ``extra_per_sku`` views per SKU to the enrolled gallery (:func:`add_views`);
    ``runtime_queries`` (crops, labels), e.g. detector crops of held-out sessions, are scored on
    the same gallery and reported under ``"runtime"``. The main figures embed each query once,
    as the cart does per frame; ``query_turns`` 2 or 4 also scores queries embedded as the mean of
    their turned views (:meth:`Embedder.embed`), under ``"turns"`` (the gallery is enrolled from
    single views either way, and the open-set threshold is calibrated on single views)."""
    engine = _engine(model, threads)
    embedder = Embedder(engine)
    model_sha = sha256_file(model)
    (e_crops, e_labels), (q_crops, q_labels) = data if data is not None else (load_crops(enroll), load_crops(val))
    gallery = build_gallery(embedder, e_crops, e_labels, per_sku, model_sha, rows=catalog_rows(enroll))
    # the extra views as (embeddings, labels, per SKU): embedded once, for this gallery and the open-set one
    extra = ((embed_all(embedder, extra_views[0]), extra_views[1], extra_per_sku)
             if extra_views is not None and extra_per_sku > 0 else None)
    added = add_views(gallery, *extra) if extra else 0
    enrolled = set(s.sku for s in gallery.skus)
    twins = _lookalike_groups(enroll, val)

    def queries(crops: Sequence[np.ndarray], labels: Sequence[str],
                turns: int = 1) -> tuple[np.ndarray, list[str], list[list[str]]]:
        keep = [i for i, label in enumerate(labels) if label in enrolled]
        emb = embed_all(embedder, [crops[i] for i in keep], turns=turns)
        return emb, [labels[i] for i in keep], (gallery.search(emb, k=3).skus if keep else [])

    q_emb, truth, ranked = queries(q_crops, list(q_labels))
    alike = [j for j, t in enumerate(truth) if t in twins]
    unknown = set(unknown_skus)
    result = {"model": str(model), "model_sha256": model_sha, "skus": len(gallery), "enrolled_per_sku": per_sku,
              **_ranked_metrics(ranked, truth, twins),
              "lookalike_confused_with_twin": (float(np.mean([ranked[j][0] in twins[truth[j]] for j in alike]))
                                               if alike else None),
              "top1_never_trained_skus": (topk_accuracy([ranked[j] for j, t in enumerate(truth) if t in unknown],
                                                        [t for t in truth if t in unknown], 1)
                                          if unknown & set(truth) else None),
              "extra_views": {"per_sku": extra_per_sku, "added": added}}
    if runtime_queries is not None:
        _, r_truth, r_ranked = queries(*runtime_queries)
        result["runtime"] = _ranked_metrics(r_ranked, r_truth, twins)
    if query_turns > 1:
        _, t_truth, t_ranked = queries(q_crops, list(q_labels), query_turns)
        result["turns"] = {"turns": query_turns, **_ranked_metrics(t_ranked, t_truth, twins)}
        if runtime_queries is not None:
            _, r_truth, r_ranked = queries(*runtime_queries, turns=query_turns)
            result["turns"]["runtime"] = _ranked_metrics(r_ranked, r_truth, twins)
    if unknown:
        result["open_set"] = _open_set(embedder, e_crops, e_labels, q_emb, truth, unknown, per_sku, model_sha, gallery,
                                       extra if added else None)
    if save_gallery is not None:
        gallery.save(save_gallery)
        result["gallery"] = str(save_gallery)
    return result


def _open_set(embedder, e_crops, e_labels, q_emb, truth, unknown, per_sku, model_sha, full_gallery, extra=None) -> dict:
    known_gallery = build_gallery(embedder, e_crops, e_labels, per_sku, model_sha, exclude=unknown)
    if extra is not None:  # the same extra views as the shipped gallery: the same score scale
        add_views(known_gallery, *extra)
    is_unknown = np.array([t in unknown for t in truth])
    halves = np.arange(len(truth)) % 2 == 0            # calibrate on even queries, test on odd
    cal = known_gallery.calibrate_unknown(q_emb[halves & ~is_unknown], q_emb[halves & is_unknown],
                                          extra={"unknown_skus": sorted(unknown), "split": "even queries"})
    test_known = known_gallery.search(q_emb[~halves & ~is_unknown]).unknown
    test_unknown = known_gallery.search(q_emb[~halves & is_unknown]).unknown
    # Ship the calibration with the full gallery too (same model, same score scale).
    full_gallery.calibration = cal
    known_top = known_gallery.sku_scores(q_emb[~halves & ~is_unknown]).max(1)
    unknown_top = known_gallery.sku_scores(q_emb[~halves & is_unknown]).max(1)
    from caper_edge.gallery import roc_curve

    fpr, tpr, _ = roc_curve(-np.r_[known_top, unknown_top].astype(np.float64),
                            np.r_[np.zeros(known_top.size, bool), np.ones(unknown_top.size, bool)])
    return {
        "unknown_skus": sorted(unknown), "threshold": cal.threshold, "calibration_auc": cal.auc,
        "test_auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)),
        "test_true_unknown_rate": float(test_unknown.mean()), "test_false_unknown_rate": float(test_known.mean()),
        "test_known_queries": int(test_known.size), "test_unknown_queries": int(test_unknown.size),
        "roc_test": {"fpr": [round(float(v), 4) for v in fpr[:: max(1, len(fpr) // 50)]],
                     "tpr": [round(float(v), 4) for v in tpr[:: max(1, len(tpr) // 50)]]},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("detector")
    d.add_argument("--model", type=Path, required=True)
    d.add_argument("--val", type=Path, required=True)
    d.add_argument("--limit", type=int)
    g = sub.add_parser("gallery")
    g.add_argument("--model", type=Path, required=True)
    g.add_argument("--enroll", type=Path, required=True, help="folder whose crops are enrolled")
    g.add_argument("--val", type=Path, required=True, help="held-out folder whose crops are the queries")
    g.add_argument("--unknown-skus", default="", help="comma-separated SKUs left out for the open-set ROC")
    g.add_argument("--per-sku", type=int, default=8, help="crops enrolled per SKU")
    g.add_argument("--save-gallery", type=Path)
    g.add_argument("--extra-views", type=Path, help="crops folder (e.g. models/bag_crops.py output) to enroll more views from")
    g.add_argument("--extra-per-sku", type=int, default=40, help="views per SKU taken from --extra-views")
    g.add_argument("--runtime-val", type=Path, help="held-out detector crops (models/bag_crops.py) scored as well")
    g.add_argument("--query-turns", type=int, choices=(1, 2, 4), default=4,
                   help="also score queries embedded as the mean of this many quarter-turned views (1: off)")
    for p in (d, g):
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.what == "detector":
        result = evaluate_detector(args.model, args.val, args.limit, args.threads)
    else:
        result = evaluate_gallery(args.model, args.enroll, args.val, [s for s in args.unknown_skus.split(",") if s],
                                  args.per_sku, args.threads, args.save_gallery,
                                  **view_options(args.extra_views, args.extra_per_sku, args.runtime_val),
                                  query_turns=args.query_turns)
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
