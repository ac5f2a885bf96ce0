"""A small anchor-free detector for ``item`` and ``hand`` at 320x320 (PyTorch; training only).

Why 320: the camera looks down into the basket from ~0.5 m, so products cover 40-200 px of a
640x480 frame; at 320 (scale 0.5) the smallest are still ~20 px, which stride-8 cells resolve,
and the network costs a quarter of a 640 input on the Jetson and on the CPU.

Layout: a 5-stage stride-2 backbone (conv-BN-SiLU blocks with residual 3x3 pairs), a light
top-down FPN merging strides 32 -> 16 -> 8, and one decoupled head shared across the three levels
(a box branch regressing distances left/top/right/bottom in stride units, DFL-free, through
softplus; a class branch with one logit per class). 40x40 + 20x20 + 10x10 = 2100 points.

Export (``ExportWrapper``) decodes inside the graph, so the ONNX output is the Ultralytics
YOLOv8 layout that ``caper_edge.detect.decode`` reads: (1, 4 + nc, 2100) with cx, cy, w, h in
input pixels and sigmoid class scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STRIDES = (8, 16, 32)


def conv(c_in: int, c_out: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.SiLU(inplace=True))


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(c, c), conv(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TinyDetector(nn.Module):
    def __init__(self, num_classes: int = 2, width: tuple[int, ...] = (16, 24, 48, 80, 128), head: int = 48) -> None:
        super().__init__()
        self.num_classes = num_classes
        c1, c2, c3, c4, c5 = width
        self.stem = conv(3, c1, 3, 2)                                  # /2
        self.s2 = nn.Sequential(conv(c1, c2, 3, 2), Residual(c2))      # /4
        self.s3 = nn.Sequential(conv(c2, c3, 3, 2), Residual(c3))      # /8
        self.s4 = nn.Sequential(conv(c3, c4, 3, 2), Residual(c4))      # /16
        self.s5 = nn.Sequential(conv(c4, c5, 3, 2), Residual(c5))      # /32
        self.lat3, self.lat4, self.lat5 = conv(c3, head, 1), conv(c4, head, 1), conv(c5, head, 1)
        self.smooth3, self.smooth4 = conv(head, head), conv(head, head)
        self.box_branch = nn.Sequential(conv(head, head), conv(head, head), nn.Conv2d(head, 4, 1))
        self.cls_branch = nn.Sequential(conv(head, head), conv(head, head), nn.Conv2d(head, num_classes, 1))
        # Start with a low object prior (focal-loss style init) so early training is not swamped by negatives.
        nn.init.constant_(self.cls_branch[-1].bias, -4.6)
        self.register_buffer("scales", torch.ones(3), persistent=False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.s3(self.s2(self.stem(x)))
        p4 = self.s4(p3)
        p5 = self.s5(p4)
        f5 = self.lat5(p5)
        f4 = self.smooth4(self.lat4(p4) + F.interpolate(f5, scale_factor=2.0, mode="nearest"))
        f3 = self.smooth3(self.lat3(p3) + F.interpolate(f4, scale_factor=2.0, mode="nearest"))
        return [f3, f4, f5]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> ltrb distances (B, N, 4) in pixels and class logits (B, N, nc)."""
        dists, logits = [], []
        for f, s in zip(self.features(x), STRIDES):
            d = F.softplus(self.box_branch(f)) * s
            dists.append(d.flatten(2).transpose(1, 2))
            logits.append(self.cls_branch(f).flatten(2).transpose(1, 2))
        return torch.cat(dists, 1), torch.cat(logits, 1)


def anchor_points(h: int, w: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres (N, 2) in input pixels and their strides (N,), level by level, row-major."""
    pts, strides = [], []
    for s in STRIDES:
        ys, xs = torch.meshgrid(torch.arange(h // s, device=device), torch.arange(w // s, device=device), indexing="ij")
        pts.append(torch.stack([xs, ys], -1).reshape(-1, 2).float().add(0.5).mul(s))
        strides.append(torch.full(((h // s) * (w // s),), float(s), device=device))
    return torch.cat(pts), torch.cat(strides)


def dist_to_xyxy(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    return torch.cat([points - ltrb[..., :2], points + ltrb[..., 2:]], -1)


class ExportWrapper(nn.Module):
    """images (1, 3, H, W) float32 0..1 -> output0 (1, 4 + nc, N): cx, cy, w, h, sigmoid scores."""

    def __init__(self, model: TinyDetector, size: int = 320) -> None:
        super().__init__()
        self.model = model
        points, _ = anchor_points(size, size)
        self.register_buffer("points", points)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        ltrb, logits = self.model(images)
        xyxy = dist_to_xyxy(self.points[None], ltrb)
        cxcy = (xyxy[..., :2] + xyxy[..., 2:]) * 0.5
        wh = xyxy[..., 2:] - xyxy[..., :2]
        return torch.cat([cxcy, wh, torch.sigmoid(logits)], -1).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# Training target assignment and loss
# ---------------------------------------------------------------------------------------------


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1) + (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1) - inter
    return inter / union.clamp(min=1e-9)


def giou_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - generalised IoU of paired xyxy boxes (..., 4)."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1) + (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1) - inter
    union = union.clamp(min=1e-9)
    hull = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp(min=0).prod(-1).clamp(min=1e-9)
    return 1 - (inter / union - (hull - union) / hull)


LEVEL_RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, 1e9))  # max(ltrb) in pixels handled per level


def assign(points: torch.Tensor, strides: torch.Tensor, boxes: torch.Tensor, center_radius: float = 2.5):
    """FCOS-style assignment for one image: each point -> index of its GT box, or -1.

    A point is a candidate for a box when it lies inside the box and within ``center_radius``
    strides of its centre, and the box's size fits the point's level; among candidates the
    smallest box wins (small items lying on big ones keep their own points). One image of
    :func:`assign_batch`.
    """
    if boxes.numel() == 0:
        return torch.full((points.shape[0],), -1, dtype=torch.long, device=points.device)
    valid = torch.ones((1, boxes.shape[0]), dtype=torch.bool, device=boxes.device)
    return assign_batch(points, strides, boxes[None], valid, center_radius)[0]


def assign_batch(points: torch.Tensor, strides: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor,
                 center_radius: float = 2.5) -> torch.Tensor:
    """:func:`assign` for a batch at once: ``boxes`` (B, G, 4) padded, ``valid`` (B, G) bool marks
    the real ones. Returns (B, N) box index per point, -1 for background, without a host
    synchronisation (a GPU step with a per-image loop waits ~3 times per image)."""
    px, py = points[None, :, 0:1], points[None, :, 1:2]                         # (1, N, 1)
    l, t = px - boxes[:, None, :, 0], py - boxes[:, None, :, 1]                  # (B, N, G)
    r, b = boxes[:, None, :, 2] - px, boxes[:, None, :, 3] - py
    ltrb = torch.stack([l, t, r, b], -1)
    inside = ltrb.min(-1).values > 0
    cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
    rad = (strides * center_radius)[None, :, None]
    central = ((px - cx[:, None]).abs() < rad) & ((py - cy[:, None]).abs() < rad)
    m = ltrb.max(-1).values
    level = (strides.log2() - 3).long()
    lo = torch.tensor([r[0] for r in LEVEL_RANGES], device=strides.device)[level][None, :, None]
    hi = torch.tensor([r[1] for r in LEVEL_RANGES], device=strides.device)[level][None, :, None]
    ok = inside & central & (m >= lo) & (m <= hi) & valid[:, None, :]
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))[:, None, :].expand_as(ok)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(-1)
    return torch.where(torch.isinf(best_area), torch.full_like(best, -1), best)


def pad_targets(targets: list[torch.Tensor], device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (G_i, 5) targets -> (B, G, 5) zero-padded and a (B, G) mask of real rows (G >= 1)."""
    g = max([1] + [int(t.shape[0]) for t in targets])
    device = device if device is not None else (targets[0].device if targets else None)
    out = torch.zeros((len(targets), g, 5), device=device)
    valid = torch.zeros((len(targets), g), dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        out[i, : t.shape[0]] = t
        valid[i, : t.shape[0]] = True
    return out, valid


def detection_loss(ltrb: torch.Tensor, logits: torch.Tensor, targets: list[torch.Tensor], points: torch.Tensor, strides: torch.Tensor):
    """Quality-focal classification (target = IoU of the predicted box on positives) + GIoU box loss.

    ``targets[i]``: (G, 5) rows ``class, x0, y0, x1, y1`` in input pixels for image i. Computed for
    the whole batch at once (``assign_batch``); ``parts`` are tensors (no host synchronisation).
    """
    B, N, C = logits.shape
    padded, valid = pad_targets(targets, logits.device)
    idx = assign_batch(points, strides, padded[..., 1:5], valid)                 # (B, N)
    pos = idx >= 0
    gt = torch.gather(padded, 1, idx.clamp(min=0)[..., None].expand(B, N, 5))      # (B, N, 5)
    pred = dist_to_xyxy(points[None], ltrb)
    posf = pos.float()
    npos = posf.sum().clamp(min=1.0)
    box_loss = (giou_loss(pred, gt[..., 1:5]) * posf).sum() / npos
    with torch.no_grad():
        iou = box_iou_pairs(pred, gt[..., 1:5]).clamp(min=0.05) * posf
        cls_target = F.one_hot(gt[..., 0].long().clamp(0, C - 1), C).to(logits.dtype) * iou[..., None]
    prob = logits.sigmoid()
    # Quality focal loss (Li et al., GFL): BCE to a soft target, weighted by |target - p|^2.
    weight = (cls_target - prob).abs().pow(2.0)
    cls_loss = (F.binary_cross_entropy_with_logits(logits, cls_target, reduction="none") * weight).sum() / npos
    return cls_loss + 2.0 * box_loss, {"cls": cls_loss.detach(), "box": box_loss.detach(), "pos": pos.sum()}
