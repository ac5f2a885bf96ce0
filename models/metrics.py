"""Detector and retrieval metrics, written here (NumPy only, no pycocotools).

Detection AP follows COCO: per class and IoU threshold, detections of all images are sorted by
score, greedily matched to the unmatched ground-truth box of highest IoU >= threshold in the same
image (a detection matching nothing, or only already-matched boxes, is a false positive); the
precision envelope is made monotone and sampled at 101 recall points 0, 0.01, ..., 1. mAP50 is
the mean over classes at IoU 0.5; mAP50-95 averages over IoU 0.50:0.05:0.95. A class without
ground truth is left out of the mean (COCO does the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from caper_edge.evaluation.metrics import box_iou  # the one pairwise IoU; re-exported here

__all__ = ["ImageDetections", "average_precision", "box_iou", "detection_map", "topk_accuracy"]

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)


@dataclass
class ImageDetections:
    """One image: predictions and ground truth, boxes (n, 4) xyxy in the same pixel frame."""

    pred_xyxy: np.ndarray
    pred_score: np.ndarray
    pred_class: np.ndarray
    gt_xyxy: np.ndarray
    gt_class: np.ndarray



def average_precision(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> float:
    """COCO 101-point AP from per-detection true-positive flags and scores."""
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.asarray(tp, bool)[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    samples = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, samples, side="left")
    return float(np.mean(np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)))


def _match(img: ImageDetections, cls: int, thr: float) -> tuple[np.ndarray, np.ndarray, int]:
    pm = img.pred_class == cls
    gm = img.gt_class == cls
    scores = np.asarray(img.pred_score)[pm]
    preds = np.asarray(img.pred_xyxy).reshape(-1, 4)[pm]
    gts = np.asarray(img.gt_xyxy).reshape(-1, 4)[gm]
    order = np.argsort(-scores, kind="stable")
    tp = np.zeros(len(scores), bool)
    if len(gts) and len(preds):
        iou = box_iou(preds[order], gts)
        taken = np.zeros(len(gts), bool)
        for rank in range(len(order)):
            cand = np.where(taken, -1.0, iou[rank])
            j = int(np.argmax(cand))
            if cand[j] >= thr:
                taken[j] = True
                tp[order[rank]] = True
    return tp, scores, int(gm.sum())


def detection_map(images: Sequence[ImageDetections], num_classes: int) -> dict[str, object]:
    """``{"map50", "map50_95", "ap50" (per class), "ap50_95" (per class)}`` over ``images``."""
    ap = np.full((num_classes, len(IOU_THRESHOLDS)), np.nan)
    for c in range(num_classes):
        for t, thr in enumerate(IOU_THRESHOLDS):
            tps, scs, n_gt = [], [], 0
            for img in images:
                tp, sc, n = _match(img, c, float(thr))
                tps.append(tp)
                scs.append(sc)
                n_gt += n
            ap[c, t] = average_precision(np.concatenate(tps) if tps else np.zeros(0, bool),
                                         np.concatenate(scs) if scs else np.zeros(0), n_gt)
    per50 = ap[:, 0]
    # A class without ground truth is NaN at every threshold; its mean stays NaN (no warning).
    per5095 = np.array([np.mean(row) if not np.isnan(row).all() else np.nan for row in ap])
    return {
        "map50": float(np.nanmean(per50)),
        "map50_95": float(np.nanmean(per5095)),
        "ap50": [float(x) for x in per50],
        "ap50_95": [float(x) for x in per5095],
    }


def topk_accuracy(ranked: Sequence[Sequence[str]], truth: Sequence[str], k: int) -> float:
    """Fraction of queries whose true label is among the first ``k`` ranked labels."""
    if len(ranked) != len(truth) or not truth:
        raise ValueError(f"need equal, non-empty ranked ({len(ranked)}) and truth ({len(truth)}) lists")
    return float(np.mean([t in list(r)[:k] for r, t in zip(ranked, truth)]))
