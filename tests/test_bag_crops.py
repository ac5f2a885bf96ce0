"""models.bag_crops: detector crops labelled by a bag's ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from caper_edge.evaluation.metrics import box_ioa, box_iou
from models.bag_crops import main, match_crops


def test_box_iou_against_hand_computed_values():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    want = np.array([[1.0, 50 / 150, 0.0], [25 / 175, 50 / 150, 0.0]])
    np.testing.assert_allclose(box_iou(a, b), want)


def test_box_ioa_is_the_share_of_each_box_inside_the_other():
    a = np.array([[2, 2, 4, 4], [5, 5, 15, 15], [3, 3, 3, 9]], float)   # inside, a quarter in, degenerate
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    want = np.array([[1.0, 0.0], [25 / 100, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(box_ioa(a, b), want)


def test_match_crops_labels_by_best_overlap_and_crops_like_the_runtime():
    image = np.arange(480 * 640 * 3, dtype=np.uint32).reshape(480, 640, 3).astype(np.uint8)
    objects = [
        {"id": 1, "sku": "SKU-A", "class": "item", "xyxy": [100, 100, 200, 200]},
        {"id": 2, "sku": "SKU-B", "class": "item", "xyxy": [300, 300, 400, 380]},
        {"id": 3, "class": "hand", "xyxy": [0, 0, 50, 50]},
    ]
    xyxy = np.array([[102.4, 98.6, 199.5, 203.2],   # SKU-A, IoU ~0.93
                     [300, 300, 330, 330],          # overlaps SKU-B too little
                     [0, 0, 50, 50],                # a hand detection
                     [-20.0, 290.0, 2.0, 300.0],    # clipped to 2 px wide: skipped
                     [598.0, 300.0, 700.0, 400.0]], np.float32)  # no ground truth near
    cls = np.array([0, 0, 1, 0, 0])
    out = match_crops(image, xyxy, cls, objects, min_iou=0.5)
    assert [(row, obj["sku"]) for row, obj, _, _ in out] == [(0, "SKU-A")]
    row, obj, iou, crop = out[0]
    assert iou == pytest.approx(box_iou(xyxy[:1], np.array([[100, 100, 200, 200]]))[0, 0])
    np.testing.assert_array_equal(crop, image[99:203, 102:200])  # round, then slice [y1:y2, x1:x2]
    # a lower threshold takes the weak SKU-B overlap; no item ground truth: nothing
    assert {o["sku"] for _, o, _, _ in match_crops(image, xyxy, cls, objects, min_iou=0.05)} == {"SKU-A", "SKU-B"}
    assert match_crops(image, xyxy, cls, [objects[2]]) == []


def test_crops_from_a_simulator_bag(sim_bag, tmp_path):
    out = tmp_path / "crops"
    assert main([str(out), str(sim_bag), "--every", "6"]) == 0
    meta = json.loads((out / "crops.json").read_text())
    assert meta["crops"], "the packaged detector finds the bag's products"
    for row in meta["crops"]:
        assert (out / "crops" / row["file"]).is_file()
        assert row["iou"] >= 0.5 and row["file"].startswith(row["sku"] + "/")
    from caper_edge.sources import BagSource
    from caper_edge.sources.messages import Frame

    with BagSource(sim_bag, speed="max", decode=False) as src:
        truth = {o["sku"] for m in src if isinstance(m, Frame) for o in (m.objects or []) if o.get("class") == "item"}
    assert {r["sku"] for r in meta["crops"]} <= truth


def test_bad_arguments_and_a_bag_without_truth(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "o"), str(tmp_path), "--every", "0"])
    assert "--every 0" in capsys.readouterr().err
    assert main([str(tmp_path / "o"), str(tmp_path / "missing_bag")]) == 2
    assert "missing_bag" in capsys.readouterr().err
