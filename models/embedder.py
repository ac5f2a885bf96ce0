"""Product-crop embedding network (PyTorch; training only): 64x64 crop -> 128-d unit vector.

A 4-stage residual CNN (stride 2 each: 64 -> 4), global average pooling, a linear projection
to 128 and L2 normalisation inside the graph, so the exported ONNX output is cosine-ready.
Trained with an additive angular margin (ArcFace-style) softmax over the training SKUs; the
margin pulls views of one SKU together and pushes SKUs apart on the sphere, which is what the
gallery's cosine search needs, including for SKUs enrolled later and never trained on.

Why 64x64: simulator crops are 40-200 px; packaging patterns remain legible at 64, and the
network costs ~1/2.25 of a 96x96 input, per crop, per frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .detector import Residual, conv

EMBED_DIM = 128
CROP_SIZE = 64


class EmbeddingNet(nn.Module):
    def __init__(self, dim: int = EMBED_DIM, width: tuple[int, ...] = (32, 64, 96, 160)) -> None:
        super().__init__()
        layers, c_in = [], 3
        for c in width:
            layers += [conv(c_in, c, 3, 2), Residual(c)]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body(x).mean((2, 3))
        return F.normalize(self.proj(f), dim=1)


class ArcMarginHead(nn.Module):
    """cos(theta + m) on the true class, scaled by s (Deng et al., ArcFace)."""

    def __init__(self, dim: int, classes: int, scale: float = 30.0, margin: float = 0.3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = emb @ F.normalize(self.weight, dim=1).T
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.cos(theta + self.margin)
        # Where theta + m passes pi the margin would help the wrong class; fall back (standard "easy margin" fix).
        target = torch.where(theta + self.margin < math.pi, target, cos - self.margin * math.sin(self.margin))
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        return F.cross_entropy(self.scale * torch.where(onehot, target, cos), labels)
