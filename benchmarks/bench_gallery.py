"""SKU gallery search at catalog scale: 10 000 SKUs x 4 embeddings x 128-d (40 000 vectors).

Ours: one matrix product, per-SKU max with ``np.maximum.reduceat`` over SKU-grouped rows,
``argpartition`` for the top k (caper_edge.gallery.Gallery.search). Peer, same run and inputs:
the brute-force NumPy formulation (the same matrix product, per-SKU max by scattering with
``np.maximum.at``, full ``argsort``). faiss is not a dependency; at this size an exact search is
a few milliseconds, so an approximate index would buy little.
"""

from __future__ import annotations

import numpy as np

from caper_edge.gallery import Gallery, SkuInfo

from .harness import Case

SKUS, VIEWS, DIM, K = 10_000, 4, 128, 5


def _brute_force(emb: np.ndarray, owner: np.ndarray, num_skus: int, q: np.ndarray, k: int):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = q @ emb.T
    per_sku = np.full((q.shape[0], num_skus), -np.inf, np.float32)
    rows = np.repeat(np.arange(q.shape[0]), emb.shape[0])
    np.maximum.at(per_sku, (rows, np.tile(owner, q.shape[0])), sims.ravel())
    order = np.argsort(-per_sku, axis=1)[:, :k]
    return order, np.take_along_axis(per_sku, order, 1)


def cases(quick: bool) -> list[Case]:
    rng = np.random.default_rng(0)
    skus = SKUS // 10 if quick else SKUS
    owner = np.repeat(np.arange(skus), VIEWS)
    emb = rng.standard_normal((skus * VIEWS, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    gallery = Gallery.from_arrays([SkuInfo(f"SKU{i:05d}") for i in range(skus)], emb, owner)
    out = []
    for n in (1, 8):
        q = rng.standard_normal((n, DIM)).astype(np.float32)
        ours_idx = gallery.search(q, k=K).index
        peer_idx, _ = _brute_force(emb, owner, skus, q, K)
        assert np.array_equal(ours_idx, peer_idx), "gallery search disagrees with brute force"  # a correctness guard, not timing
        out.append(Case(
            suite="gallery", name=f"top-{K} of {skus} SKUs x {VIEWS} views, {n} crop(s)",
            ours=lambda q=q: gallery.search(q, k=K),
            peer=lambda q=q: _brute_force(emb, owner, skus, q, K), peer_name="numpy brute force",
            items=n, item_unit="queries",
            bytes_moved=emb.nbytes, notes=f"{DIM}-d float32, single thread",
        ))
    return out
