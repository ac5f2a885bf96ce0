"""The replay loop and the evaluation harness end to end on a short simulated bag, and the model
vision stage on tiny hand-built ONNX models (the product path's plumbing, independent of any
trained weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caper_edge.cli import main
from caper_edge.config import load
from caper_edge.evaluation.report import CONTRACT_KEYS
from caper_edge.gallery import Gallery, SkuInfo
from caper_edge.replay import ModelVision
from caper_edge.sources.messages import Frame

SIM_CART = Path(__file__).resolve().parents[1] / "deploy" / "sim-cart.toml"


def test_replay_is_byte_identical_and_finds_the_items(sim_bag, tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        assert main(["replay", str(sim_bag), "--vision", "oracle", "--config", str(SIM_CART), "--events", str(out)]) == 0
    assert a.read_bytes() == b.read_bytes()
    events = [json.loads(line) for line in a.read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    added = [e for e in events if e["type"] == "item_added"]
    assert len(added) >= 1
    # Every item event's weight change is the scale's, in grams, positive for an addition.
    assert all(e["weight_delta_g"] > 0 for e in added)
    assert "DIAGNOSTIC" in capsys.readouterr().err


def test_eval_reports_the_contract(sim_bag, tmp_path):
    report, md = tmp_path / "r.json", tmp_path / "r.md"
    rc = main(["eval", str(sim_bag), "--vision", "oracle", "--config", str(SIM_CART), "--json", str(report),
               "--markdown", str(md), "--by-scenario", "--quiet"])
    assert rc == 0
    r = json.loads(report.read_text())
    for key in CONTRACT_KEYS:
        assert key in r, key
    assert r["vision"] == "oracle" and "DIAGNOSTIC" in r["warning"]
    assert r["bags"][0]["scenario"] == "simple" and r["bags"][0]["seed"] == "7"
    assert set(r["by_scenario"]) == {"simple"}
    assert r["frames"] == 14 * 30
    # The ground truth's receipt and ours are in the report; the metrics agree with them.
    bag = r["bags"][0]
    exact = bag["final_basket"] == bag["gt_basket"]
    assert (bag["final_basket_exact_match"] == 1.0) == exact
    assert "DIAGNOSTIC" in md.read_text()


def test_eval_ablation_and_bad_input(sim_bag, tmp_path, capsys):
    report = tmp_path / "w.json"
    assert main(["eval", str(sim_bag), "--vision", "oracle", "--config", str(SIM_CART), "--json", str(report),
                 "--ablation", "weight-only", "--quiet"]) == 0
    r = json.loads(report.read_text())
    assert r["mode"] == "weight_only" and r["settings"]["fusion.mode"] == "weight_only"
    assert main(["eval", str(tmp_path / "missing"), "--json", str(report)]) != 0
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Model vision on hand-built ONNX models
# ---------------------------------------------------------------------------------------------


def _detector_onnx(path: Path, raw: np.ndarray) -> None:
    """images (1, 3, 320, 320) -> output0 = raw (1, 4 + nc, N), whatever the image."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0),
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["z", "raw"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "det", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(raw.shape))],
        [numpy_helper.from_array(np.array(0.0, np.float32), "zero"), numpy_helper.from_array(raw, "raw")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _embedder_onnx(path: Path, w: np.ndarray) -> None:
    """crops (B, 3, 32, 32) -> embedding (B, D) = mean colour per channel @ w (3, D)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("GlobalAveragePool", ["crops"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "emb", [helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["B", 3, 32, 32])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", w.shape[1]])],
        [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_model_vision_plumbing(tmp_path):
    from caper_edge.embedding import CROP_MEAN, CROP_STD
    from caper_edge.engines import open_engine

    # Two candidates in the 320x320 letterbox of a 640x480 frame (r = 0.5, pad_y = 40):
    # an item at (140..180, 140..180) -> (280..360, 200..280) in the frame, score 0.9;
    # a hand at (20..60, 100..140) -> (40..120, 120..200), score 0.8.
    raw = np.zeros((1, 6, 2), np.float32)
    raw[0, :, 0] = [160, 160, 40, 40, 0.9, 0.05]
    raw[0, :, 1] = [40, 120, 40, 40, 0.1, 0.8]
    _detector_onnx(tmp_path / "det.onnx", raw)
    w = np.array([[1, 0, 0, 0.2], [0, 1, 0, 0.2], [0, 0, 1, 0.2]], np.float32)
    _embedder_onnx(tmp_path / "emb.onnx", w)
    cfg = load()
    det = open_engine(tmp_path / "det.onnx", backend="onnxruntime")
    emb = open_engine(tmp_path / "emb.onnx", backend="onnxruntime")

    def unit(rgb):  # the embedding the model gives a crop of one flat colour
        x = (np.asarray(rgb, np.float32) / 255.0 - CROP_MEAN) / CROP_STD
        v = x @ w
        return v / np.linalg.norm(v)

    red, blue = (220, 30, 30), (30, 30, 220)
    gallery = Gallery.from_arrays([SkuInfo("RED", weight_mean_g=100.0), SkuInfo("BLUE", weight_mean_g=200.0)],
                                  np.stack([unit(red), unit(blue)]), np.array([0, 1]))
    vision = ModelVision(cfg, det, emb, gallery)
    image = np.full((480, 640, 3), 128, np.uint8)
    image[200:280, 280:360] = red
    obs = vision(Frame(0, 0, image))
    order = np.argsort(obs.class_id)
    np.testing.assert_allclose(obs.xyxy[order], [[280, 200, 360, 280], [40, 120, 120, 200]], atol=1e-3)
    assert obs.class_id[order].tolist() == [0, 1]
    item = order[0]
    assert obs.sku_similarity[item].argmax() == 0                      # RED
    assert obs.sku_similarity[item, 0] == pytest.approx(1.0, abs=1e-3)  # the crop is all red
    assert not obs.sku_similarity[order[1]].any() and not obs.embedding[order[1]].any()  # hands: no look


@pytest.mark.parametrize("turns, cycle", [(1, False), (4, False), (1, True), (2, True)])
def test_model_vision_turns_crops_as_configured(tmp_path, turns, cycle):
    from caper_edge.engines import open_engine

    raw = np.zeros((1, 6, 1), np.float32)
    raw[0, :, 0] = [160, 160, 40, 60, 0.9, 0.05]        # one item, (280..360, 180..300) in the frame
    _detector_onnx(tmp_path / "det.onnx", raw)
    _embedder_onnx(tmp_path / "emb.onnx", np.eye(3, 4, dtype=np.float32))
    env = {"CAPER_EDGE__MODELS__EMBED_TURNS": str(turns), "CAPER_EDGE__MODELS__TURN_CYCLE": str(cycle).lower()}
    cfg = load(environ=env)
    gallery = Gallery.from_arrays([SkuInfo("A")], np.eye(1, 4, dtype=np.float32), np.array([0]))
    vision = ModelVision(cfg, open_engine(tmp_path / "det.onnx", backend="onnxruntime"),
                         open_engine(tmp_path / "emb.onnx", backend="onnxruntime"), gallery)
    seen = []

    class Recorder:  # what the embedder is handed
        def embed(self, crops, turns=1):
            seen.append(([c.copy() for c in crops], turns))
            return np.tile(np.eye(1, 4, dtype=np.float32), (len(crops), 1))

    vision.embedder = Recorder()
    image = np.random.default_rng(3).integers(0, 255, (480, 640, 3), np.uint8)
    for index in range(5):
        vision(Frame(index * 1000, index, image))
    upright = image[180:300, 280:360]
    for index, (crops, got_turns) in enumerate(seen):
        assert got_turns == turns
        expect = np.rot90(upright, index % 4) if cycle else upright   # frame k: k quarter turns
        np.testing.assert_array_equal(crops[0], expect)
