"""SKU gallery: search equals a brute-force loop, persistence, unknown calibration, ROC against a
hand-computed case, enrollment through the CLI with a hand-made embedding model, bad inputs."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from caper_edge import cli
from caper_edge.embedding import preprocess_crops
from caper_edge.errors import InputError
from caper_edge.gallery import Gallery, SkuInfo, roc_curve


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def random_gallery(rng, skus=40, dim=16, views=(1, 5)):
    g = Gallery(dim)
    for i in range(skus):
        n = int(rng.integers(views[0], views[1] + 1))
        g.add(SkuInfo(f"SKU{i:03d}", f"product {i}", 100.0 + i, 2.0, 1.5), rng.standard_normal((n, dim)))
    return g


def brute_force_topk(g: Gallery, queries, k):
    """Per query, per SKU: max over its vectors of the dot product of unit vectors; sort all SKUs."""
    out = []
    for q in unit(queries.astype(np.float64)):
        per_sku = []
        for info in g.skus:
            vecs = unit(g.embeddings_of(info.sku).astype(np.float64))
            per_sku.append((max(float(v @ q) for v in vecs), info.sku))
        per_sku.sort(key=lambda t: -t[0])
        out.append(per_sku[:k])
    return out


@pytest.mark.parametrize("k", [1, 3, 40])
def test_search_equals_brute_force(rng, k):
    g = random_gallery(rng)
    queries = rng.standard_normal((25, 16))
    result = g.search(queries, k=k)
    expected = brute_force_topk(g, queries, k)
    assert result.index.shape == (25, k)
    for row_skus, row_scores, exp in zip(result.skus, result.score, expected):
        assert row_skus == [sku for _, sku in exp]
        np.testing.assert_allclose(row_scores, [s for s, _ in exp], atol=1e-5)


def test_add_keeps_groups_and_remove_reindexes(rng):
    g = random_gallery(rng, skus=5)
    extra = rng.standard_normal((3, 16))
    g.add(SkuInfo("SKU001"), extra)  # more views of an existing SKU, added after others
    assert len(g) == 5
    np.testing.assert_allclose(g.embeddings_of("SKU001")[-3:], unit(extra).astype(np.float32), atol=1e-6)
    g.remove("SKU002")
    assert "SKU002" not in g and len(g) == 4
    queries = rng.standard_normal((10, 16))
    assert g.search(queries, k=4).skus == [[s for _, s in row] for row in brute_force_topk(g, queries, 4)]


def test_save_load_round_trip(tmp_path, rng):
    g = random_gallery(rng, skus=6)
    g.skus[0] = SkuInfo("SKU000", "no weight yet")  # NaNs survive as JSON nulls
    g.calibrate_unknown(rng.standard_normal((20, 16)), rng.standard_normal((20, 16)))
    path = tmp_path / "g.npz"
    g.save(path)
    h = Gallery.load(path)
    assert [s.sku for s in h.skus] == [s.sku for s in g.skus]
    assert h.skus[1] == g.skus[1] and math.isnan(h.skus[0].weight_mean_g)
    assert h.calibration == g.calibration
    q = rng.standard_normal((5, 16))
    np.testing.assert_array_equal(h.search(q).index, g.search(q).index)


def test_unknown_threshold_calibration_separates_clusters(rng):
    dim = 32
    centers = unit(rng.standard_normal((12, dim)))
    g = Gallery(dim)
    for i in range(8):  # SKUs 8..11 are never enrolled: they are the unknowns
        g.add(SkuInfo(f"S{i}"), centers[i] + 0.05 * rng.standard_normal((3, dim)))
    known = np.concatenate([centers[i] + 0.05 * rng.standard_normal((10, dim)) for i in range(8)])
    unknown = np.concatenate([centers[i] + 0.05 * rng.standard_normal((10, dim)) for i in range(8, 12)])
    cal = g.calibrate_unknown(known, unknown)
    assert cal.auc > 0.99 and cal.true_unknown_rate > 0.95 and cal.false_unknown_rate < 0.05
    assert g.search(unknown).unknown.mean() == cal.true_unknown_rate
    assert g.search(known).unknown.mean() == cal.false_unknown_rate
    top1 = g.search(known).top1()
    assert sum(t == f"S{i // 10}" for i, t in enumerate(top1)) >= 76
    cal2 = g.calibrate_unknown(known, unknown, false_unknown_rate=0.0)
    assert cal2.false_unknown_rate == 0.0  # rejects no known query, by construction


def test_roc_curve_hand_computed():
    # scores: 0.9(P) 0.8(N) 0.8(P) 0.3(N) -> thresholds inf, 0.9, 0.8 (tie moves together), 0.3
    fpr, tpr, thr = roc_curve(np.array([0.9, 0.8, 0.8, 0.3]), np.array([True, False, True, False]))
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.8, 0.3])
    with pytest.raises(ValueError, match="both classes"):
        roc_curve(np.array([0.1, 0.2]), np.array([True, True]))


@pytest.mark.parametrize(
    "queries, message",
    [
        (np.zeros((2, 8)), r"queries must be \(n, 16\) with n >= 1, got \(2, 8\)"),
        (np.zeros((0, 16)), r"queries must be \(n, 16\)"),
        (np.zeros((2, 16)), "queries: row 0 is zero, NaN or infinite"),
        (np.full((1, 16), np.nan), "queries: row 0 is zero, NaN or infinite"),
    ],
)
def test_bad_queries_are_named(rng, queries, message):
    g = random_gallery(rng, skus=3)
    with pytest.raises(ValueError, match=message):
        g.search(queries)


def test_bad_catalog_and_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="sku must be a non-empty string"):
        SkuInfo("")
    with pytest.raises(ValueError, match="weight_mean_g of SKU A must be >= 0, got -3"):
        SkuInfo("A", weight_mean_g=-3)
    with pytest.raises(InputError, match="gallery is empty"):
        Gallery(4).search(np.ones((1, 4)))
    with pytest.raises(InputError, match="nothere.npz does not exist"):
        Gallery.load(tmp_path / "nothere.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="bad.npz is not a valid gallery"):
        Gallery.load(tmp_path / "bad.npz")


# ---------------------------------------------------------------------------------------------
# Enrollment through the CLI with a hand-made embedding model
# ---------------------------------------------------------------------------------------------

SIZE, DIM = 16, 8


def embedding_model(path, weights):
    """(B, 3, 16, 16) -> Flatten -> MatMul W (768, 8): a linear 'embedding' computable in numpy."""
    x = helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIM])
    nodes = [helper.make_node("Flatten", ["crops"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "W"], ["embedding"])]
    graph = helper.make_graph(nodes, "emb", [x], [y], [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def write_crops(folder, rng, n, tint):
    paths = []
    for i in range(n):
        img = np.clip(rng.normal(tint, 20, (24 + i, 20, 3)), 0, 255).astype(np.uint8)
        p = folder / f"crop{i}.png"
        cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        paths.append(p)
    return paths


def test_enroll_adds_and_persists(tmp_path, rng, capsys):
    weights = rng.standard_normal((3 * SIZE * SIZE, DIM)).astype(np.float32)
    model = embedding_model(tmp_path / "emb.onnx", weights)
    cfg = tmp_path / "c.toml"
    gallery = tmp_path / "gallery.npz"
    cfg.write_text(f'[engines]\nbackend = "onnxruntime"\n[models]\nembedder = "{model}"\ngallery = "{gallery}"\n')
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    crops_a = write_crops(tmp_path / "a", rng, 3, (200, 40, 40))
    crops_b = write_crops(tmp_path / "b", rng, 2, (40, 40, 200))

    argv = ["gallery", "--config", str(cfg), "enroll", "COLA-330", *map(str, crops_a), "--name", "Cola can",
            "--weight-g", "345", "--weight-std-g", "4", "--price", "1.2"]
    assert cli.main(argv) == 0
    assert cli.main(["gallery", "--config", str(cfg), "enroll", "SOAP-1", *map(str, crops_b), "--weight-g", "120"]) == 0
    g = Gallery.load(gallery)
    assert [s.sku for s in g.skus] == ["COLA-330", "SOAP-1"]
    assert g.info("COLA-330") == SkuInfo("COLA-330", "Cola can", 345.0, 4.0, 1.2)
    # Independent reference: same preprocessing, numpy matmul, normalisation.
    rgb = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in crops_a]
    ref = unit(preprocess_crops(rgb, SIZE).reshape(3, -1) @ weights)
    np.testing.assert_allclose(g.embeddings_of("COLA-330"), ref, atol=1e-5)
    # A query made from an enrolled crop finds its SKU.
    assert g.search(ref[:1]).skus[0][0] == "COLA-330"

    # More views of a known SKU keep its catalog fields.
    assert cli.main(["gallery", "--config", str(cfg), "enroll", "COLA-330", str(crops_a[0])]) == 0
    g = Gallery.load(gallery)
    assert len(g.embeddings_of("COLA-330")) == 4 and g.info("COLA-330").weight_mean_g == 345.0

    capsys.readouterr()
    assert cli.main(["gallery", "--config", str(cfg), "info", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["skus"] == 2 and facts["embeddings"] == 6 and facts["dim"] == DIM


def test_enroll_bad_inputs_are_named(tmp_path, rng, capsys):
    model = embedding_model(tmp_path / "emb.onnx", rng.standard_normal((3 * SIZE * SIZE, DIM)).astype(np.float32))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[engines]\nbackend = "onnxruntime"\n[models]\nembedder = "{model}"\n')
    (tmp_path / "broken.png").write_bytes(b"not an image")
    gallery = str(tmp_path / "g.npz")
    cases = [
        (["--gallery", gallery, "enroll", "X", str(tmp_path / "missing.png")], "missing.png does not exist"),
        (["--gallery", gallery, "enroll", "X", str(tmp_path / "broken.png")], "broken.png cannot be decoded"),
        (["enroll", "X", str(tmp_path / "broken.png")], "pass --gallery FILE or set [models] gallery"),
    ]
    for args, message in cases:
        assert cli.main(["gallery", "--config", str(cfg), *args]) != 0
        assert message in capsys.readouterr().err

    # A gallery made with another embedding model is refused.
    (tmp_path / "c").mkdir()
    crop = write_crops(tmp_path / "c", rng, 1, (90, 90, 90))[0]
    assert cli.main(["gallery", "--config", str(cfg), "--gallery", gallery, "enroll", "X", str(crop)]) == 0
    embedding_model(tmp_path / "emb.onnx", rng.standard_normal((3 * SIZE * SIZE, DIM)).astype(np.float32))
    assert cli.main(["gallery", "--config", str(cfg), "--gallery", gallery, "enroll", "Y", str(crop)]) != 0
    assert "built with another embedding model" in capsys.readouterr().err
