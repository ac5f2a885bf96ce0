"""models/: metrics against hand-computed cases, the INT8 accuracy gate (it must reject a damaged
model), the committed models through the runtime, and few-step training smoke tests (PyTorch;
the training parts skip where the ``train`` extra is not installed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from caper_edge import config
from caper_edge.embedding import Embedder
from caper_edge.engines import OnnxRuntimeEngine, open_engine, packaged_model
from caper_edge.gallery import Gallery
from models.metrics import ImageDetections, average_precision, box_iou, detection_map, topk_accuracy

# ---------------------------------------------------------------------------------------------
# Metrics: hand-computed cases
# ---------------------------------------------------------------------------------------------


def test_box_iou_hand_computed():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 6], [5, 5, 15, 15], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[0.6, 25 / 175, 0.0]])


def test_average_precision_hand_computed():
    # Sorted: TP, FP, TP with 2 ground-truth boxes -> recall .5 .5 1, precision 1 .5 .667.
    # 101-point: recall 0..0.50 (51 points) -> 1.0; 0.51..1.00 (50 points) -> 2/3.
    ap = average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]), n_gt=2)
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert average_precision(np.zeros(0, bool), np.zeros(0), 3) == 0.0
    assert np.isnan(average_precision(np.zeros(0, bool), np.zeros(0), 0))


def test_detection_map_hand_computed():
    gt_a, gt_b = np.array([[100, 100, 200, 200]]), np.array([[0, 0, 10, 10]])
    images = [
        # exact hit (0.9), a false positive elsewhere (0.8), and a duplicate of the hit (0.5: FP)
        ImageDetections(np.array([[100, 100, 200, 200], [300, 300, 350, 350], [101, 101, 200, 200]]),
                        np.array([0.9, 0.8, 0.5]), np.array([0, 0, 0]), gt_a, np.array([0])),
        # IoU exactly 0.6: a true positive at IoU 0.50, 0.55, 0.60 only
        ImageDetections(np.array([[0, 0, 10, 6]]), np.array([0.7]), np.array([0]), gt_b, np.array([0])),
    ]
    result = detection_map(images, num_classes=2)  # class 1 has no ground truth: left out of the mean
    ap_hit = (51 + 50 * 2 / 3) / 101   # TP .9, FP .8, TP .7, FP .5 -> as in the AP test (the last FP changes nothing)
    ap_miss = 51 / 101                 # TP .9 then only FPs: precision 1 up to recall .5
    assert result["map50"] == pytest.approx(ap_hit)
    assert result["map50_95"] == pytest.approx((3 * ap_hit + 7 * ap_miss) / 10)
    assert np.isnan(result["ap50"][1])


def test_topk_accuracy():
    ranked = [["a", "b", "c"], ["b", "a", "c"], ["c", "b", "a"]]
    assert topk_accuracy(ranked, ["a", "a", "a"], 1) == pytest.approx(1 / 3)
    assert topk_accuracy(ranked, ["a", "a", "a"], 2) == pytest.approx(2 / 3)
    assert topk_accuracy(ranked, ["a", "a", "a"], 3) == 1.0


# ---------------------------------------------------------------------------------------------
# Quantization gate
# ---------------------------------------------------------------------------------------------

SIZE = 16


def linear_embedder(path: Path, rng) -> Path:
    """(B, 3, 16, 16) -> Flatten -> MatMul (768, 24): a small 'embedding model' the gate can evaluate."""
    w = rng.standard_normal((3 * SIZE * SIZE, 24)).astype(np.float32)
    x = helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 24])
    nodes = [helper.make_node("Flatten", ["crops"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "W"], ["embedding"])]
    model = helper.make_model(helper.make_graph(nodes, "emb", [x], [y], [numpy_helper.from_array(w, "W")]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def damage(path: Path, rng) -> Path:
    """Collapse every int8 weight tensor to one value, as a broken quantizer or scale would."""
    model = onnx.load(str(path))
    hit = 0
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.int8 and arr.size > 100:
            init.CopyFrom(numpy_helper.from_array(np.full_like(arr, 64), init.name))
            hit += 1
    assert hit, "no int8 weights found to damage"
    onnx.save(model, str(path))
    return path


@pytest.fixture
def crop_sets(rng):
    """Two sets of crops of 6 colour-pattern classes: enrollment and held-out queries."""
    def make(n, seed):
        r = np.random.default_rng(seed)
        crops, labels = [], []
        for c in range(6):
            base = np.array([(c * 40) % 256, (c * 90 + 30) % 256, (255 - c * 35) % 256], np.float32)
            for _ in range(n):
                img = np.clip(base + r.normal(0, 12, (20, 20, 3)), 0, 255).astype(np.uint8)
                img[:, : 3 + 2 * c] = 255 - img[:, : 3 + 2 * c]  # a per-class band
                crops.append(img)
                labels.append(f"C{c}")
        return crops, labels
    return make(4, 1), make(10, 2)


def test_quantization_gate_accepts_faithful_and_rejects_damaged_model(tmp_path, rng, crop_sets):
    from models.evaluate import evaluate_gallery
    from models.quantize import accuracy_gate, quantize_static_model, quantize_with_gate

    fp32 = linear_embedder(tmp_path / "emb.onnx", rng)
    calib = [np.ascontiguousarray(b) for b in np.split(
        __import__("caper_edge.embedding", fromlist=["x"]).preprocess_crops(crop_sets[0][0], SIZE), 6)]

    def top1(model: Path) -> float:
        return evaluate_gallery(model, Path("-"), Path("-"), [], per_sku=4, data=crop_sets)["top1"]

    assert top1(fp32) > 0.9  # the classes are separable for the fp32 model
    int8 = quantize_static_model(fp32, tmp_path / "emb.int8.onnx", calib)
    faithful = accuracy_gate(fp32, int8, top1, "top1", max_drop=0.05)
    assert faithful.accepted, faithful

    damaged = accuracy_gate(fp32, damage(int8, rng), top1, "top1")
    assert not damaged.accepted and damaged.drop > 0.01, damaged

    # The end-to-end path writes nothing when the gate rejects.
    out = tmp_path / "rejected.int8.onnx"
    result = quantize_with_gate(fp32, out, calib, lambda m: top1(m if m == fp32 else damage(m, rng)), "top1")
    assert not result.accepted and not out.exists()
    assert list(tmp_path.glob("tmp*.onnx")) == []


def test_release_gate_keeps_the_incumbent_unless_the_candidate_measures_better():
    from models.release import measures_better

    inc = {"top1_no_lookalike": 0.883, "top3": 0.908}
    # Strictly better primary, secondary within half a point: replace.
    assert measures_better({"top1_no_lookalike": 0.90, "top3": 0.904}, inc, "top1_no_lookalike", "top3")[0]
    # Equal primary is not better.
    assert not measures_better({"top1_no_lookalike": 0.883, "top3": 0.95}, inc, "top1_no_lookalike", "top3")[0]
    # Better primary bought with more than half a point of the secondary: keep the incumbent.
    ok, why = measures_better({"top1_no_lookalike": 0.95, "top3": 0.902}, inc, "top1_no_lookalike", "top3")
    assert not ok and "top3" in why
    # No incumbent (first release): take the candidate.
    assert measures_better({"top1_no_lookalike": 0.1, "top3": 0.1}, None, "top1_no_lookalike", "top3") == (True, "no incumbent")


# ---------------------------------------------------------------------------------------------
# Committed models, through the runtime
# ---------------------------------------------------------------------------------------------

ASSETS = Path(__file__).resolve().parents[1] / "caper_edge" / "assets"
CARD = json.loads((ASSETS / "models.json").read_text()) if (ASSETS / "models.json").exists() else None


def test_committed_models_exist_and_are_small():
    for name in ("detector", "embedder", "gallery"):
        path = packaged_model(name)
        assert path.stat().st_size < 10 * 1024 * 1024, path
    for name in ("detector.onnx", "embedder.onnx"):
        model = onnx.load(str(ASSETS / name))
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17


def _sim_frames(tmp_path, frames: int, seed: int):
    """Frames, labels and crops from the simulator's generator (seed unseen by training)."""
    dataset = pytest.importorskip("caper_edge.sim.dataset", reason="the simulator (bags/simulator issue) is not in this tree")
    out = tmp_path / "sim"
    dataset.generate(out, split="test", seed=seed, frames=frames)
    return out


def test_committed_detector_loads_with_the_documented_layout():
    engine = open_engine(config.load(), model="detector", backend="onnxruntime")
    assert engine.input().describe() == "(1, 3, 320, 320) float32"
    assert engine.output().describe() == "(1, 6, 2100) float32"  # cx, cy, w, h, item, hand; 40^2 + 20^2 + 10^2 points
    raw = engine.run(np.zeros((1, 3, 320, 320), np.float32))["output0"]
    assert np.all((raw[0, 4:] >= 0) & (raw[0, 4:] <= 1))  # sigmoid scores


def test_committed_detector_finds_simulated_items(tmp_path):
    from caper_edge import detect
    from models.data import load_detection_set

    root = _sim_frames(tmp_path, 8, seed=424242)
    images, targets = load_detection_set(root, 320)
    engine = open_engine(config.load(), model="detector", backend="onnxruntime")
    hits = total = 0
    for img, tgt in zip(images, targets):
        raw = engine.run(np.ascontiguousarray(img.transpose(2, 0, 1)[None], np.float32) / 255.0)["output0"]
        dets = detect.decode(raw, conf_threshold=0.25)
        items = dets.xyxy[dets.class_id == 0]
        for row in tgt[tgt[:, 0] == 0]:
            total += 1
            hits += bool(len(items)) and box_iou(row[None, 1:5], items).max() >= 0.5
    assert total > 0 and hits / total >= 0.6, (hits, total)


def test_committed_embedder_and_gallery_agree(tmp_path):
    from caper_edge.engines import sha256_file
    from models.data import load_crops

    engine = open_engine(config.load(), model="embedder", backend="onnxruntime")
    embedder = Embedder(engine)
    assert embedder.dim == 128 and embedder.size == 64
    gallery = Gallery.load(packaged_model("gallery"))
    assert len(gallery) >= 40 and gallery.dim == 128 and gallery.calibration is not None
    assert gallery.embedder_sha256 == sha256_file(packaged_model("embedder"))
    emb = embedder.embed([np.zeros((40, 30, 3), np.uint8), np.full((20, 50, 3), 200, np.uint8)])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    crops, truth = load_crops(_sim_frames(tmp_path, 6, seed=515151))
    top3 = gallery.search(embedder.embed(crops), k=3).skus
    assert topk_accuracy(top3, truth, 3) >= 0.8


def test_embedding_with_turns_averages_the_turned_crops(tmp_path):
    from models.data import load_crops

    embedder = Embedder(open_engine(config.load(), model="embedder", backend="onnxruntime"))
    crops, _ = load_crops(_sim_frames(tmp_path, 2, seed=727272))
    crops = crops[:6]
    views = [embedder.embed([np.ascontiguousarray(np.rot90(c, k)) for c in crops]) for k in range(4)]

    def mean(*rows):
        m = np.sum(rows, axis=0)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    np.testing.assert_array_equal(embedder.embed(crops, turns=1), views[0])
    for turns, ref in ((4, mean(*views)), (2, mean(views[0], views[2]))):
        got = embedder.embed(crops, turns=turns)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        # the letterboxed square is turned rather than the crop: equal up to the centring's rounding
        assert np.min(np.sum(got * ref, axis=1)) > 0.98, turns
    # four turns make the embedding (nearly) independent of how the product lies
    turned = embedder.embed([np.ascontiguousarray(np.rot90(c)) for c in crops], turns=4)
    assert np.min(np.sum(turned * embedder.embed(crops, turns=4), axis=1)) > 0.98
    with pytest.raises(ValueError, match="turns must be one of .* got 3"):
        embedder.embed(crops, turns=3)


def test_wrong_shape_into_committed_detector_is_named():
    engine = OnnxRuntimeEngine(packaged_model("detector"))
    with pytest.raises(Exception, match=r"input 'images' must be \(1, 3, 320, 320\) float32, got \(1, 3, 640, 640\) float32"):
        engine.run(np.zeros((1, 3, 640, 640), np.float32))


# ---------------------------------------------------------------------------------------------
# PyTorch parts (the `train` extra): shapes, export layout, few-step training
# ---------------------------------------------------------------------------------------------


def test_detector_export_layout_and_decode(tmp_path):
    torch = pytest.importorskip("torch")
    from caper_edge import detect
    from models.detector import TinyDetector, anchor_points
    from models.export import export_detector

    torch.manual_seed(0)
    model = TinyDetector(2).eval()
    points, strides = anchor_points(64, 64)
    assert points.shape == (8 * 8 + 4 * 4 + 2 * 2, 2)
    np.testing.assert_allclose(points[0].numpy(), [4, 4])   # first stride-8 cell centre
    np.testing.assert_allclose(points[-1].numpy(), [48, 48])  # last stride-32 cell centre
    path = export_detector(model, tmp_path / "det.onnx", size=64)  # also checks ORT == PyTorch
    engine = OnnxRuntimeEngine(path)
    assert engine.output().shape == (1, 6, 84)
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    raw = engine.run(x)["output0"]
    with torch.no_grad():
        ltrb, logits = model(torch.from_numpy(x))
    # Independent decode of the layout: cx = px + (r - l) / 2, w = l + r, score = sigmoid(logit).
    l, t, r, b = ltrb[0].numpy().T
    px, py = points.numpy().T
    np.testing.assert_allclose(raw[0, 0], px + (r - l) / 2, atol=1e-3)
    np.testing.assert_allclose(raw[0, 3], t + b, atol=1e-3)
    np.testing.assert_allclose(raw[0, 4:].T, 1 / (1 + np.exp(-logits[0].numpy())), atol=1e-5)
    detect.decode(raw, conf_threshold=0.0)  # the runtime decoder accepts the layout


def test_assignment_picks_smallest_box_inside_its_centre_region():
    torch = pytest.importorskip("torch")
    from models.detector import anchor_points, assign

    points, strides = anchor_points(64, 64)
    boxes = torch.tensor([[0.0, 0.0, 60.0, 60.0], [8.0, 8.0, 24.0, 24.0]])
    idx = assign(points, strides, boxes)
    # stride-8 point (12, 12) lies in both; the small box wins.
    k = int(((points[:, 0] == 12) & (points[:, 1] == 12) & (strides == 8)).nonzero()[0])
    assert idx[k] == 1
    # a 60-px box (every ltrb distance <= 64 px) belongs to the stride-8 level only
    assert set(strides[idx == 0].tolist()) <= {8.0}
    assert (idx == -1).any()


def _per_image_assign(points, strides, boxes, center_radius=2.5):
    """The FCOS assignment of one image as it was written before it was batched (the reference)."""
    import torch

    from models.detector import LEVEL_RANGES

    if boxes.numel() == 0:
        return torch.full((points.shape[0],), -1, dtype=torch.long)
    px, py = points[:, 0:1], points[:, 1:2]
    l, t = px - boxes[None, :, 0], py - boxes[None, :, 1]
    r, b = boxes[None, :, 2] - px, boxes[None, :, 3] - py
    ltrb = torch.stack([l, t, r, b], -1)
    inside = ltrb.min(-1).values > 0
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    rad = strides[:, None] * center_radius
    central = ((px - cx[None]).abs() < rad) & ((py - cy[None]).abs() < rad)
    m = ltrb.max(-1).values
    level = (strides.log2() - 3).long()
    lo = torch.tensor([r[0] for r in LEVEL_RANGES])[level]
    hi = torch.tensor([r[1] for r in LEVEL_RANGES])[level]
    ok = inside & central & (m >= lo[:, None]) & (m <= hi[:, None])
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand_as(ok)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(1)
    best[torch.isinf(best_area)] = -1
    return best


def _per_image_loss(ltrb, logits, targets, points, strides):
    """The loss image by image with the per-image assignment (how it was computed before it was batched)."""
    import torch
    import torch.nn.functional as F

    from models.detector import box_iou_pairs, dist_to_xyxy, giou_loss

    assign = _per_image_assign

    cls_target = torch.zeros_like(logits)
    box_losses, npos = [], 0
    for i, t in enumerate(targets):
        idx = assign(points, strides, t[:, 1:5])
        pos = idx >= 0
        if pos.any():
            gt = t[idx[pos]]
            pred = dist_to_xyxy(points[pos], ltrb[i, pos])
            box_losses.append(giou_loss(pred, gt[:, 1:5]))
            cls_target[i, pos.nonzero()[:, 0], gt[:, 0].long()] = box_iou_pairs(pred, gt[:, 1:5]).detach().clamp(min=0.05)
            npos += int(pos.sum())
    weight = (cls_target - logits.sigmoid()).abs().pow(2.0)
    cls = (F.binary_cross_entropy_with_logits(logits, cls_target, reduction="none") * weight).sum() / max(npos, 1)
    box = torch.cat(box_losses).sum() / max(npos, 1) if box_losses else ltrb.sum() * 0
    return cls + 2.0 * box, npos


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_assignment_and_loss_equal_the_per_image_computation(seed):
    torch = pytest.importorskip("torch")
    from models.detector import TinyDetector, anchor_points, assign, assign_batch, detection_loss, pad_targets

    g = torch.Generator().manual_seed(seed)
    points, strides = anchor_points(320, 320)
    targets = []
    for n in (0, 1, 7, 3):  # an image without boxes, and different counts (padding)
        xy = torch.rand((n, 2), generator=g) * 280
        wh = 8 + torch.rand((n, 2), generator=g) * 180
        cls = torch.randint(0, 2, (n, 1), generator=g).float()
        targets.append(torch.cat([cls, xy, (xy + wh).clamp(max=320)], 1))
    padded, valid = pad_targets(targets)
    batch_idx = assign_batch(points, strides, padded[..., 1:5], valid)
    for i, t in enumerate(targets):
        assert torch.equal(batch_idx[i], _per_image_assign(points, strides, t[:, 1:5]))
        assert torch.equal(assign(points, strides, t[:, 1:5]), batch_idx[i])
    torch.manual_seed(seed)
    model = TinyDetector()
    ltrb, logits = model(torch.rand((4, 3, 320, 320), generator=g))
    loss, parts = detection_loss(ltrb, logits, targets, points, strides)
    want, npos = _per_image_loss(ltrb, logits, targets, points, strides)
    assert int(parts["pos"]) == npos > 0
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    want_grads = torch.autograd.grad(want, list(model.parameters()))
    for a, b in zip(grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _square(task):
    if task == 3:
        raise ValueError("bad task 3")
    return task * task


def test_prefetcher_gives_the_inline_results_in_order_and_reraises():
    pytest.importorskip("torch")
    from models.batches import Prefetcher

    with Prefetcher(_square, workers=2, depth=3) as p:
        assert list(p.map(range(3))) == [0, 1, 4]
        it = p.map(iter([5, 3, 6]))
        assert next(it) == 25
        with pytest.raises(ValueError, match="bad task 3"):
            next(it)
    assert list(Prefetcher(_square, workers=0).map([2, 4])) == [4, 16]
    with pytest.raises(ValueError, match="workers must be >= 0"):
        Prefetcher(_square, workers=-1)


def test_batches_made_by_workers_equal_inline_ones(tmp_path):
    pytest.importorskip("torch")
    from models import train_detector, train_embedder
    from models.synthetic import write_dataset

    data = write_dataset(tmp_path / "data", images=6, seed=4)
    reports = [train_detector.train(train_detector.parse(
        ["--data", str(data), "--epochs", "2", "--seed", "2", "--out", str(tmp_path / f"det{w}"), "--batch", "3",
         "--threads", "1", "--workers", str(w)])) for w in (0, 2)]
    # the BatchNorm re-estimation (step 4 of 4) draws its batches from the workers too
    assert reports[0]["bn_frozen"] and reports[1]["bn_frozen"]
    for a, b in zip(reports[0]["history"], reports[1]["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert reports[1]["workers"] == 2 and reports[1]["device"] == "cpu"
    reports = [train_embedder.train(train_embedder.parse(
        ["--data", str(data), "--epochs", "1", "--seed", "2", "--out", str(tmp_path / f"emb{w}"), "--p", "3", "--k", "2",
         "--workers", str(w)])) for w in (0, 2)]
    assert reports[0]["history"][0]["loss"] == pytest.approx(reports[1]["history"][0]["loss"], rel=1e-4)
    with pytest.raises(SystemExit, match="--device must be"):
        train_detector.train(train_detector.parse(["--data", str(data), "--out", str(tmp_path / "x"), "--device", "tpu"]))


def test_few_step_training_reduces_loss_and_scripts_run(tmp_path):
    torch = pytest.importorskip("torch")
    from models import train_detector, train_embedder
    from models.synthetic import write_dataset

    data = write_dataset(tmp_path / "data", images=8, seed=3)
    report = train_detector.train(train_detector.parse(
        ["--data", str(data), "--epochs", "8", "--seed", "0", "--out", str(tmp_path / "det"), "--batch", "8", "--threads", "1",
         "--lr", "3e-3", "--freeze-bn-at", "1"]))
    assert (tmp_path / "det" / "detector.onnx").is_file() and report["epochs_run"] == 8
    # one step per epoch, the same 8 frames (random flips and light): the loss falls
    first, last = (np.mean([h["loss"] for h in rows]) for rows in (report["history"][:2], report["history"][-2:]))
    assert last < first - 0.1
    OnnxRuntimeEngine(tmp_path / "det" / "detector.onnx").run(np.zeros((1, 3, 320, 320), np.float32))

    report = train_embedder.train(train_embedder.parse(
        ["--data", str(data), "--epochs", "2", "--seed", "0", "--out", str(tmp_path / "emb"), "--p", "4", "--k", "2"]))
    emb = Embedder(OnnxRuntimeEngine(tmp_path / "emb" / "embedder.onnx")).embed([np.zeros((30, 20, 3), np.uint8)] * 3)
    assert emb.shape == (3, 128)
    assert torch.get_num_threads() >= 1


def test_embedder_trains_beside_distractor_identities(tmp_path):
    # Simulator frames with products from outside the store: their crops are extra identities
    # (crops/RND-*); the store's SKUs keep --store-share of each batch.
    pytest.importorskip("torch")
    from caper_edge.sim.dataset import generate
    from models import train_embedder

    generate(tmp_path / "data", split="train", seed=5, frames=6, distractors=8, distractor_share=0.5)
    report = train_embedder.train(train_embedder.parse(
        ["--data", str(tmp_path / "data"), "--epochs", "1", "--seed", "0", "--out", str(tmp_path / "emb"), "--p", "4",
         "--k", "2", "--store-share", "0.7"]))
    assert report["distractor_identities"] > 0 and report["store_share"] == 0.7
    assert report["train_skus"] and all(s.startswith("SKU-") for s in report["train_skus"])
    assert (tmp_path / "emb" / "embedder.onnx").is_file()
    with pytest.raises(SystemExit):
        train_embedder.parse(["--data", "x", "--out", "y", "--store-share", "1.0"])


def test_shared_training_loop_schedule_hand_computed():
    pytest.importorskip("torch")
    from models.trainloop import LR_FLOOR, lr_factor

    assert lr_factor(0, 100, 10) == pytest.approx(0.1)                     # warm-up 1/10, cosine at 1
    assert lr_factor(50, 100, 0) == pytest.approx(LR_FLOOR + (1 - LR_FLOOR) * 0.5)
    assert lr_factor(10, 100, 0, time_progress=1.0) == pytest.approx(LR_FLOOR)   # budget spent first
    assert lr_factor(100, 100, 10) == pytest.approx(LR_FLOOR)
    with pytest.raises(ValueError, match="total"):
        lr_factor(0, 0, 0)


def test_detector_edge_frames_are_weighted(tmp_path):
    pytest.importorskip("torch")
    from models.train_detector import frame_weights

    for name, rows in (("a", ["0 0.5 0.5 0.2 0.2"]),            # item in the middle
                       ("b", ["1 0.05 0.5 0.1 0.2"]),           # a hand cut by the edge: not an item
                       ("c", ["0 0.5 0.5 0.2 0.2", "0 0.95 0.5 0.1 0.2"]),  # an item cut by the right edge
                       ("d", ["0 0.5 0.1 0.2 0.2"])):           # an item cut by the top edge
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "images" / f"{name}.png").write_bytes(b"")
        (tmp_path / "labels" / f"{name}.txt").write_text("\n".join(rows) + "\n")
    assert frame_weights(tmp_path, None, 3.0).tolist() == [1.0, 1.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="edge_weight"):
        frame_weights(tmp_path, None, 0.0)


def test_arcface_head_loss_falls_when_embeddings_align():
    torch = pytest.importorskip("torch")
    from models.embedder import ArcMarginHead

    torch.manual_seed(0)
    head = ArcMarginHead(8, 3)
    labels = torch.tensor([0, 1, 2])
    w = torch.nn.functional.normalize(head.weight.detach(), dim=1)
    aligned = head(w, labels)                  # each embedding on its class centre
    misaligned = head(w[[1, 2, 0]], labels)    # on another class's centre
    assert float(aligned.detach()) < float(misaligned.detach())


def test_farthest_views_start_at_the_mean_and_cover_the_spread():
    from models.evaluate import farthest_views

    e = np.array([[1, 0, 0], [0.995, 0.0998, 0], [0, 1, 0], [0, 0, 1], [0.7071, 0.7071, 0]], np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    first = int(np.argmax(e @ e.mean(0)))
    pick = farthest_views(e, 3).tolist()
    assert pick[0] == first and len(set(pick)) == 3
    # the two near-duplicates of [1, 0, 0] are never both taken before the far rows
    assert not {0, 1} <= set(pick)
    assert farthest_views(e, 9).tolist() == [0, 1, 2, 3, 4]
    assert farthest_views(e, 3).tolist() == pick  # deterministic


def test_extra_views_and_runtime_queries(tmp_path, rng, crop_sets):
    """Extra views are enrolled for known SKUs only; runtime queries are scored on the same
    gallery, and brute force (nearest of every enrolled view) agrees with the reported top-1."""
    from caper_edge.embedding import Embedder
    from caper_edge.engines import OnnxRuntimeEngine
    from models.evaluate import evaluate_gallery

    model = linear_embedder(tmp_path / "emb.onnx", rng)
    (e_crops, e_labels), (q_crops, q_labels) = crop_sets
    extra = (q_crops[::2] + e_crops[:2], q_labels[::2] + ["NEW"] * 2)   # "NEW" is not enrolled: ignored
    runtime = (q_crops[1::2], q_labels[1::2])
    r = evaluate_gallery(model, Path("-"), Path("-"), [], per_sku=2, data=crop_sets, extra_views=extra,
                         extra_per_sku=3, runtime_queries=runtime, save_gallery=tmp_path / "g.npz", query_turns=4)
    assert r["extra_views"] == {"per_sku": 3, "added": 6 * 3}
    assert "turns" not in evaluate_gallery(model, Path("-"), Path("-"), [], per_sku=2, data=crop_sets)
    from caper_edge.gallery import Gallery

    g = Gallery.load(tmp_path / "g.npz")
    assert g.num_embeddings == 6 * (2 + 3) and "NEW" not in g
    emb = Embedder(OnnxRuntimeEngine(model, use_cuda=False))
    q = emb.embed(runtime[0])
    own = [g.skus[i].sku for i in g._owner]
    nearest = [own[int(np.argmax(g._embeddings @ v))] for v in q]
    assert r["runtime"]["queries"] == len(runtime[1])
    assert r["runtime"]["top1"] == pytest.approx(np.mean([a == b for a, b in zip(nearest, runtime[1])]))
    # the same brute force with queries embedded from their four turns
    q4 = emb.embed(runtime[0], turns=4)
    nearest4 = [own[int(np.argmax(g._embeddings @ v))] for v in q4]
    assert r["turns"]["turns"] == 4 and r["turns"]["runtime"]["queries"] == len(runtime[1])
    assert r["turns"]["runtime"]["top1"] == pytest.approx(np.mean([a == b for a, b in zip(nearest4, runtime[1])]))


def test_gpu_training_script_parses():
    import shutil
    import subprocess

    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = Path(__file__).resolve().parents[1] / "models" / "gpu_train.sh"
    out = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def _trained_bn_stats(torch, net):
    """Give every BatchNorm statistics and an affine map far from the identity, as training would."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.2)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.3)


def test_recovered_embedder_equals_its_onnx_and_starts_training_where_it_is(tmp_path):
    torch = pytest.importorskip("torch")
    from models.embedder import EmbeddingNet
    from models.export import export_embedder
    from models.recover import max_difference, recover

    torch.manual_seed(0)
    original = EmbeddingNet()
    _trained_bn_stats(torch, original)
    path = export_embedder(original, tmp_path / "emb.onnx")
    assert not any(n.op_type == "BatchNormalization" for n in onnx.load(str(path)).graph.node)  # folded
    calib = torch.randn(64, 3, 64, 64)
    net = recover(path, EmbeddingNet(), None, calib)
    assert max_difference(path, net, calib[:8]) < 1e-4
    with torch.no_grad():
        want = original.eval()(calib)
        np.testing.assert_allclose(net(calib).numpy(), want.numpy(), atol=1e-4)
        # training mode normalises by this batch's statistics, which the recovery measured
        cos = (net.train()(calib) * want).sum(1)
    assert float(cos.min()) > 0.999
    # the checkpoint loads where train_embedder --init loads it
    EmbeddingNet().load_state_dict(net.state_dict())


def test_recovered_detector_with_a_shared_head_equals_its_onnx(tmp_path):
    torch = pytest.importorskip("torch")
    from models.detector import ExportWrapper, TinyDetector
    from models.export import export_detector
    from models.recover import max_difference, recover

    torch.manual_seed(1)
    original = TinyDetector(2)
    _trained_bn_stats(torch, original)
    path = export_detector(original, tmp_path / "det.onnx", size=64)
    net = TinyDetector(2)
    recover(path, net, ExportWrapper(net, 64), torch.rand(4, 3, 64, 64))
    x = torch.rand(2, 3, 64, 64)
    assert max_difference(path, ExportWrapper(net, 64), x) < 1e-3
    with torch.no_grad():
        for a, b in zip(net.eval()(x), original.eval()(x)):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-3)


def test_recovery_refuses_another_networks_onnx(tmp_path):
    torch = pytest.importorskip("torch")
    from models.embedder import EmbeddingNet
    from models.export import export_embedder
    from models.recover import RecoverError, main, recover

    path = export_embedder(EmbeddingNet(width=(16, 32, 48, 80)), tmp_path / "narrow.onnx")
    with pytest.raises(RecoverError, match=r"weight 0 \(Conv\) has shape \(16, 3, 3, 3\).*expects \(32, 3, 3, 3\)"):
        recover(path, EmbeddingNet(), None, torch.randn(8, 3, 64, 64))
    (tmp_path / "data" / "crops").mkdir(parents=True)
    assert main(["embedder", str(path), str(tmp_path / "x.pt"), "--data", str(tmp_path / "data")]) == 2
    assert not (tmp_path / "x.pt").exists()


def test_soup_averages_weights_and_remeasures_batchnorm(tmp_path):
    torch = pytest.importorskip("torch")
    from models.embedder import EmbeddingNet
    from models.soup import average_states, main, remeasure_batchnorm

    torch.manual_seed(0)
    a, b = EmbeddingNet(), EmbeddingNet()
    _trained_bn_stats(torch, a)
    avg = average_states([a.state_dict(), b.state_dict()])
    name = "proj.weight"
    np.testing.assert_allclose(avg[name].numpy(), (a.state_dict()[name] + b.state_dict()[name]).numpy() / 2, atol=1e-7)
    assert avg["body.0.1.num_batches_tracked"].dtype == torch.int64
    net = EmbeddingNet()
    net.load_state_dict(avg)
    x = torch.randn(40, 3, 64, 64)
    remeasure_batchnorm(net, [x[:20], x[20:]])
    # the first BatchNorm now holds the statistics of its convolution's output over the 40 inputs
    with torch.no_grad():
        y = net.body[0][0](x).transpose(0, 1).reshape(32, -1)
    bn = net.body[0][1]
    np.testing.assert_allclose(bn.running_mean.numpy(), y.mean(1).numpy(), atol=1e-4)
    assert not net.training and bn.momentum == 0.1
    with pytest.raises(ValueError, match="proj.weight has shape"):
        average_states([a.state_dict(), EmbeddingNet(dim=64).state_dict()])
    torch.save(a.state_dict(), tmp_path / "a.pt")
    torch.save(b.state_dict(), tmp_path / "b.pt")
    (tmp_path / "d" / "crops" / "SKU-1").mkdir(parents=True)
    assert main([str(tmp_path / "s.onnx"), str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--data", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "s.onnx").exists()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "s.onnx"), str(tmp_path / "a.pt"), "--data", str(tmp_path / "d")])
