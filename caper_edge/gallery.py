"""SKU gallery: the catalog plus several L2-normalised embeddings per SKU, top-k cosine search,
and an "unknown SKU" threshold calibrated on held-out data.

A store adds products weekly; the cart recognises them by enrolling a few crops of each new SKU
here (``caper-edge gallery enroll``) instead of retraining. Search compares a crop's embedding
with every enrolled embedding (one matrix product), takes each SKU's best match (max over its
embeddings: one good view is enough, a product seen from its side must not be averaged away by
its front), and returns the k best SKUs. A query whose best score is below the calibrated
threshold is reported as unknown.

File format (one ``.npz``, written atomically): ``embeddings`` (M, D) float32 grouped by SKU,
``owner`` (M,) int32 index into the catalog, and ``meta`` (uint8 bytes of UTF-8 JSON): format
version, catalog rows, embedding dimension, the SHA-256 of the embedding model that produced the
vectors (vectors of different models are not comparable, so enrolling with another model is
refused), the unknown threshold and the statistics of its calibration.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_bytes
from .errors import InputError

__all__ = ["FORMAT_VERSION", "Gallery", "SearchResult", "SkuInfo", "UnknownCalibration", "roc_curve"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class SkuInfo:
    """One catalog row. Weights in grams, price in the store's currency units."""

    sku: str
    name: str = ""
    weight_mean_g: float = float("nan")
    weight_std_g: float = float("nan")
    price: float = float("nan")

    def __post_init__(self) -> None:
        if not isinstance(self.sku, str) or not self.sku.strip():
            raise ValueError(f"sku must be a non-empty string, got {self.sku!r}")
        for name in ("weight_mean_g", "weight_std_g", "price"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{name} of SKU {self.sku} must be a number, got {value!r}")
            if not math.isnan(value) and value < 0:
                raise ValueError(f"{name} of SKU {self.sku} must be >= 0, got {value}")

    def to_json(self) -> dict[str, Any]:
        # JSON has no NaN: an unknown value is written as null.
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SkuInfo:
        nan = float("nan")
        return cls(
            sku=d["sku"], name=d.get("name") or "",
            weight_mean_g=nan if d.get("weight_mean_g") is None else float(d["weight_mean_g"]),
            weight_std_g=nan if d.get("weight_std_g") is None else float(d["weight_std_g"]),
            price=nan if d.get("price") is None else float(d["price"]),
        )


@dataclass(frozen=True)
class UnknownCalibration:
    """How the unknown threshold was chosen, kept in the gallery file for audit."""

    threshold: float              # cosine similarity: top-1 score below it -> unknown
    method: str                   # "youden" or "false_unknown_rate=<r>"
    auc: float                    # ROC AUC of "unknown" vs "known" by 1 - top-1 score
    true_unknown_rate: float      # unknown queries flagged unknown at the threshold
    false_unknown_rate: float     # known queries wrongly flagged unknown at the threshold
    known_queries: int
    unknown_queries: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    """Top-k SKUs per query: ``index`` / ``score`` (n, k), best first; ``unknown`` (n,) bool."""

    index: np.ndarray          # (n, k) int64 catalog indices
    score: np.ndarray          # (n, k) float32 cosine similarity of the SKU's best embedding
    unknown: np.ndarray        # (n,) bool: top-1 score below the gallery's threshold
    skus: list[list[str]]      # (n, k) SKU ids

    def top1(self) -> list[str | None]:
        """Best SKU per query, or None where the query is unknown."""
        return [None if u else row[0] for row, u in zip(self.skus, self.unknown)]


class Gallery:
    """An in-memory gallery; :meth:`load` / :meth:`save` for the file."""

    def __init__(self, dim: int, embedder_sha256: str = "") -> None:
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"embedding dimension must be a positive int, got {dim!r}")
        self.dim = dim
        self.embedder_sha256 = embedder_sha256
        self.skus: list[SkuInfo] = []
        self._index: dict[str, int] = {}
        self._embeddings = np.zeros((0, dim), np.float32)
        self._owner = np.zeros(0, np.int32)
        self.calibration: UnknownCalibration | None = None

    @classmethod
    def from_arrays(cls, skus: list[SkuInfo], embeddings: np.ndarray, owner: np.ndarray, embedder_sha256: str = "") -> Gallery:
        """Bulk construction (e.g. a 10 000-SKU catalog): ``owner`` (M,) holds catalog indices."""
        g = cls(int(embeddings.shape[1]), embedder_sha256)
        owner = np.asarray(owner)
        if owner.shape != (embeddings.shape[0],) or (owner.size and (owner.min() < 0 or owner.max() >= len(skus))):
            raise ValueError(f"owner must be ({embeddings.shape[0]},) indices into {len(skus)} SKUs, got {owner.shape}")
        if len(np.unique(owner)) != len(skus):
            raise ValueError("every SKU needs at least one embedding")
        if len({s.sku for s in skus}) != len(skus):
            raise ValueError("SKU ids must be unique")
        order = np.argsort(owner, kind="stable")
        g.skus = list(skus)
        g._index = {s.sku: i for i, s in enumerate(skus)}
        g._embeddings = g._check_embeddings(embeddings, "embeddings")[order]
        g._owner = owner[order].astype(np.int32)
        return g

    # -- catalog ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.skus)

    def __contains__(self, sku: str) -> bool:
        return sku in self._index

    @property
    def num_embeddings(self) -> int:
        return int(self._owner.size)

    @property
    def unknown_threshold(self) -> float:
        """Cosine similarity below which a query is unknown (-inf until calibrated)."""
        return -math.inf if self.calibration is None else self.calibration.threshold

    def info(self, sku: str) -> SkuInfo:
        try:
            return self.skus[self._index[sku]]
        except KeyError:
            raise KeyError(f"SKU {sku!r} is not in the gallery") from None

    def embeddings_of(self, sku: str) -> np.ndarray:
        return self._embeddings[self._owner == self._index[sku]]

    def add(self, info: SkuInfo, embeddings: np.ndarray, *, replace_info: bool = True) -> None:
        """Enroll ``embeddings`` (k, D) for ``info.sku``; a known SKU gets the vectors appended.

        Rows are L2-normalised here; zero, NaN or infinite rows are refused.
        """
        emb = self._check_embeddings(embeddings, f"embeddings for SKU {info.sku}")
        idx = self._index.get(info.sku)
        if idx is None:
            idx = len(self.skus)
            self.skus.append(info)
            self._index[info.sku] = idx
        elif replace_info:
            self.skus[idx] = info
        # Keep rows grouped by owner (np.maximum.reduceat in search needs contiguous groups).
        insert_at = int(np.searchsorted(self._owner, idx, side="right"))
        self._embeddings = np.concatenate([self._embeddings[:insert_at], emb, self._embeddings[insert_at:]])
        self._owner = np.concatenate([self._owner[:insert_at], np.full(len(emb), idx, np.int32), self._owner[insert_at:]])

    def remove(self, sku: str) -> None:
        idx = self._index.pop(sku, None)
        if idx is None:
            raise KeyError(f"SKU {sku!r} is not in the gallery")
        keep = self._owner != idx
        self._embeddings = self._embeddings[keep]
        owner = self._owner[keep]
        self._owner = (owner - (owner > idx)).astype(np.int32)
        del self.skus[idx]
        self._index = {s.sku: i for i, s in enumerate(self.skus)}

    # -- search -------------------------------------------------------------------------------

    def sku_scores(self, queries: np.ndarray) -> np.ndarray:
        """(n, S) cosine similarity of each query with each SKU's best embedding."""
        q = self._check_embeddings(queries, "queries")
        if not self.skus:
            raise InputError("the gallery is empty: enroll SKUs first (caper-edge gallery enroll)")
        sims = q @ self._embeddings.T                                   # (n, M)
        return np.maximum.reduceat(sims, self._group_starts(), axis=1)  # (n, S), owners are 0..S-1 in order

    def _group_starts(self) -> np.ndarray:
        # First row of each SKU's group; cached, keyed by the owner array's identity (every
        # add/remove/load replaces that array).
        cached = getattr(self, "_starts_cache", None)
        if cached is None or cached[0] is not self._owner:
            starts = np.flatnonzero(np.r_[True, self._owner[1:] != self._owner[:-1]])
            self._starts_cache = (self._owner, starts)
        return self._starts_cache[1]

    def search(self, queries: np.ndarray, k: int = 3) -> SearchResult:
        """Top-``k`` SKUs for each row of ``queries`` (n, D) (rows are L2-normalised here)."""
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive int, got {k!r}")
        scores = self.sku_scores(queries)
        k = min(k, scores.shape[1])
        if k < scores.shape[1]:
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(k), (scores.shape[0], k))
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        index = np.take_along_axis(part, order, axis=1).astype(np.int64)
        top = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
        unknown = top[:, 0] < self.unknown_threshold
        return SearchResult(index, top, unknown, [[self.skus[i].sku for i in row] for row in index])

    # -- unknown threshold ---------------------------------------------------------------------

    def calibrate_unknown(
        self,
        known_queries: np.ndarray,
        unknown_queries: np.ndarray,
        *,
        false_unknown_rate: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> UnknownCalibration:
        """Choose the unknown threshold on held-out crops and store it with its statistics.

        ``known_queries``: embeddings of enrolled SKUs not used for enrollment; ``unknown_queries``:
        embeddings of SKUs that are not in the gallery. By default the threshold maximises
        Youden's J (true-unknown rate - false-unknown rate); with ``false_unknown_rate`` it is the
        highest threshold that rejects at most that fraction of known queries.
        """
        known_top = self.sku_scores(known_queries).max(axis=1)
        unknown_top = self.sku_scores(unknown_queries).max(axis=1)
        if known_top.size == 0 or unknown_top.size == 0:
            raise ValueError("calibration needs at least one known and one unknown query")
        # Positive class = unknown; its score is the negated similarity (higher = more unknown).
        labels = np.r_[np.zeros(known_top.size, bool), np.ones(unknown_top.size, bool)]
        fpr, tpr, thr = roc_curve(-np.r_[known_top, unknown_top].astype(np.float64), labels)
        auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        if false_unknown_rate is None:
            best = int(np.argmax(tpr - fpr))
            # ROC flags unknown when -s >= thr, i.e. s <= -thr; search flags s < threshold, so
            # the threshold is the next float32 above -thr.
            threshold = float(np.nextafter(np.float32(-thr[best]), np.float32(np.inf)))
            method = "youden"
        else:
            if not 0 <= false_unknown_rate < 1:
                raise ValueError(f"false_unknown_rate must be in [0, 1), got {false_unknown_rate}")
            threshold = float(np.quantile(known_top, false_unknown_rate, method="lower"))
            method = f"false_unknown_rate={false_unknown_rate}"
        cal = UnknownCalibration(
            threshold=threshold, method=method, auc=auc,
            true_unknown_rate=float(np.mean(unknown_top < threshold)),
            false_unknown_rate=float(np.mean(known_top < threshold)),
            known_queries=int(known_top.size), unknown_queries=int(unknown_top.size), extra=dict(extra or {}),
        )
        self.calibration = cal
        return cal

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the gallery to ``path`` atomically (a crash never leaves a torn file)."""
        meta = {
            "format_version": FORMAT_VERSION,
            "dim": self.dim,
            "embedder_sha256": self.embedder_sha256,
            "catalog": [s.to_json() for s in self.skus],
            "calibration": None if self.calibration is None else asdict(self.calibration),
        }
        buf = io.BytesIO()
        np.savez(buf, embeddings=self._embeddings, owner=self._owner,
                 meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Gallery:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"gallery file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                emb, owner, meta = z["embeddings"], z["owner"], json.loads(bytes(z["meta"]).decode())
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise InputError(f"gallery file {path} is not a valid gallery: {exc}") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise InputError(f"gallery file {path} has format version {meta.get('format_version')}, expected {FORMAT_VERSION}")
        g = cls(int(meta["dim"]), meta.get("embedder_sha256", ""))
        g.skus = [SkuInfo.from_json(row) for row in meta["catalog"]]
        g._index = {s.sku: i for i, s in enumerate(g.skus)}
        if emb.shape != (owner.size, g.dim) or emb.dtype != np.float32:
            raise InputError(f"gallery file {path}: embeddings {emb.shape} {emb.dtype} do not match dim {g.dim} float32")
        if owner.size and (np.any(np.diff(owner) < 0) or owner.min() < 0 or owner.max() >= len(g.skus)):
            raise InputError(f"gallery file {path}: embedding owners are not grouped indices into the catalog")
        if len(np.unique(owner)) != len(g.skus):
            raise InputError(f"gallery file {path}: some SKUs have no embedding")
        g._embeddings, g._owner = emb, owner.astype(np.int32)
        if meta.get("calibration"):
            g.calibration = UnknownCalibration(**meta["calibration"])
        return g

    # -- helpers ------------------------------------------------------------------------------

    def _check_embeddings(self, x: np.ndarray, what: str) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.dim or x.shape[0] == 0:
            got = f"{x.shape} {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"{what} must be (n, {self.dim}) with n >= 1, got {got}")
        x = x.astype(np.float32, copy=False)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        bad = ~np.isfinite(norms[:, 0]) | (norms[:, 0] < 1e-12)
        if bad.any():
            raise ValueError(f"{what}: row {int(np.flatnonzero(bad)[0])} is zero, NaN or infinite")
        return np.ascontiguousarray(x / norms)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of ``scores`` (higher = more positive) against boolean ``labels``.

    Returns (fpr, tpr, thresholds), starting at (0, 0) with threshold +inf; one point per distinct
    score (ties move together), thresholds decreasing. "Positive" means score >= threshold.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be equal-length 1-D arrays, got {scores.shape} and {labels.shape}")
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        raise ValueError(f"ROC needs both classes, got {pos} positive and {neg} negative")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(~y)[last_of_tie]
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos], np.r_[np.inf, s[last_of_tie]]

