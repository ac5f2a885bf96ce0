"""The cart-sequence generator and the scoring wrapper (caper_edge.track_eval)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from caper_edge.track_eval import SceneConfig, generate_sequence

SHORT = dataclasses.replace(SceneConfig(), n_frames=400)


@pytest.fixture(scope="module")
def sequence():
    return generate_sequence(3, SHORT)


def test_same_seed_same_sequence(sequence):
    again = generate_sequence(3, SHORT)
    assert len(again.frames) == len(sequence.frames) == 400
    for a, b in zip(again.frames, sequence.frames):
        for field in ("xyxy", "score", "class_id", "embedding", "gt_id", "gt_xyxy"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    other = generate_sequence(4, SHORT)
    assert any(len(a.score) != len(b.score) or not np.array_equal(a.xyxy, b.xyxy)
               for a, b in zip(other.frames, sequence.frames))


def test_ground_truth_is_consistent(sequence):
    cfg = sequence.config
    for k, f in enumerate(sequence.frames):
        assert f.t_ns == round(k * 1e9 / cfg.fps)
        n = len(f.score)
        assert f.xyxy.shape == (n, 4) and f.embedding.shape == (n, cfg.embedding_dim)
        assert f.sku_similarity.shape == (n, cfg.n_skus)
        assert np.all(f.xyxy[:, 2] > f.xyxy[:, 0]) and np.all(f.xyxy[:, 3] > f.xyxy[:, 1])
        # Every real detection comes from an object in this frame's ground truth, near its box.
        for d in np.flatnonzero(f.det_gt_id >= 0):
            g = np.flatnonzero(f.gt_id == f.det_gt_id[d])
            assert g.size == 1
            assert np.abs(f.xyxy[d] - f.gt_xyxy[g[0]]).max() < 15
        np.testing.assert_allclose(np.linalg.norm(f.embedding, axis=1), 1.0, rtol=1e-5)
    items = {gid for f in sequence.frames for gid, c in zip(f.gt_id, f.gt_class) if c == 0}
    assert items <= set(sequence.sku_of)


def test_occlusions_hide_the_item(sequence):
    assert sequence.occlusions
    for occ in sequence.occlusions:
        assert sequence.config.occlusion_frames[0] - 2 <= occ.last - occ.first + 1
        for f in sequence.frames[occ.first : occ.last + 1]:
            assert occ.gt_id not in f.det_gt_id and occ.gt_id not in f.gt_id


def test_lookalikes_are_close_and_others_are_not(sequence):
    g = sequence.gallery
    sims = g @ g.T
    for a, b in sequence.lookalikes:
        assert sims[a, b] > 0.85
    others = sims[np.triu_indices(len(g), 1)]
    assert np.median(others) < 0.3


def test_scoring_against_hand_made_outputs(sequence):
    pytest.importorskip("trackers")
    from caper_edge.track_eval.evaluate import occlusions_kept, score_sequence

    def truth(f):
        keep = f.gt_class == 0
        return f.gt_id[keep].copy(), f.gt_xyxy[keep].copy()

    perfect = [truth(f) for f in sequence.frames]
    s = score_sequence(sequence, perfect)
    assert s["HOTA"]["HOTA"] == pytest.approx(1.0)
    assert s["Identity"]["IDF1"] == pytest.approx(1.0)
    assert s["CLEAR"]["MOTA"] == pytest.approx(1.0) and s["CLEAR"]["IDSW"] == 0
    assert occlusions_kept(sequence, perfect) == (len(sequence.occlusions), len(sequence.occlusions))

    # Renaming one object halfway through: exactly one ID switch, IDF1 below 1.
    gid = sequence.occlusions[0].gt_id
    half = (sequence.occlusions[0].first + sequence.occlusions[0].last) // 2
    renamed = [(np.where((ids == gid) & (k > half), 10_000, ids), boxes) for k, (ids, boxes) in enumerate(perfect)]
    s = score_sequence(sequence, renamed)
    assert s["CLEAR"]["IDSW"] == 1
    assert s["Identity"]["IDF1"] < 1.0
    kept, total = occlusions_kept(sequence, renamed)
    assert kept == total - 1

    # Dropping every output: nothing detected.
    empty = [(np.zeros(0, np.int64), np.zeros((0, 4), np.float32)) for _ in sequence.frames]
    s = score_sequence(sequence, empty)
    assert s["HOTA"]["HOTA"] == pytest.approx(0.0) and s["CLEAR"]["MOTA"] == pytest.approx(0.0)
