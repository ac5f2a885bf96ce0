"""Recover a training checkpoint from an exported ONNX model (models/export.py), for a
fine-tune when the ``.pt`` file is gone.

The exporter folds every BatchNorm into the convolution before it (eval mode), so the ONNX holds a
convolution weight and a bias per conv-BN pair and no normalisation statistics. Loading the folded
weights into the PyTorch network with an identity BatchNorm gives the same eval output, but in
training mode the BatchNorm would normalise by batch statistics the folded network never had, and
the first steps would wreck it. So the statistics are measured: the crops or frames given are run
through the network (eval mode, the folded weights in place) and every BatchNorm gets the mean and
variance ``m``, ``v`` of its convolution's output (without the bias ``b``), its scale
``sqrt(v + eps)`` and its shift ``m + b``. The eval output stays exactly the ONNX one,
``(Wx - m) / sqrt(v + eps) * sqrt(v + eps) + m + b = Wx + b``, and a training batch like the
calibration data is normalised by statistics close to ``m``, ``v``: the fine-tune starts where the
exported model is.

Weights are matched by use: the ONNX Conv and Gemm nodes, in graph order, name their weight
initialisers (a shared head used at three strides names the same ones three times); the PyTorch
network's Conv2d and Linear modules are taken in the order a forward pass first calls them. Both
lists must agree in length and in every shape, or the recovery is refused.

    python -m models.recover embedder caper_edge/assets/embedder.onnx OUT.pt --data DIR [--count 512]

writes OUT.pt (a state dict that ``train_embedder --init`` / ``train_detector --init`` loads) and
prints the largest difference between ONNX Runtime and the recovered network on the calibration
batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from .detector import ExportWrapper, TinyDetector
from .embedder import CROP_SIZE, EmbeddingNet
from .batches import cpu_state
from .trainloop import save_checkpoint


class RecoverError(ValueError):
    pass


def _onnx_weights(path: Path) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(op, weight, bias) per distinct weight initialiser of the Conv/Gemm nodes, in first-use order."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # A weight shared by several nodes (one head at three strides) is exported once and reached
    # through Identity nodes; name it by its initialiser.
    alias = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity"}
    seen, out = set(), []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2:
            continue
        w = node.input[1]
        while w in alias:
            w = alias[w]
        if w in seen:
            continue
        if w not in inits:
            raise RecoverError(f"{path}: {node.op_type} node {node.name!r} takes its weight {w!r} from a computed "
                               "tensor, not an initialiser: not an export of models/export.py")
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if not attrs.get("transB", 0):
                raise RecoverError(f"{path}: Gemm node {node.name!r} without transB: not a torch.nn.Linear export")
        seen.add(w)
        b = inits.get(alias.get(node.input[2], node.input[2])) if len(node.input) > 2 and node.input[2] else None
        out.append((node.op_type, inits[w], b))
    return out


def _call_order(net: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The Conv2d and Linear modules of ``net`` in the order a forward pass first calls them."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m) if m not in order else None)
             for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            net.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    return order


def _following_bn(net: nn.Module) -> dict[nn.Module, nn.BatchNorm2d]:
    """Conv2d -> the BatchNorm2d right after it in the same Sequential (the conv-BN-SiLU blocks)."""
    out = {}
    for m in net.modules():
        if isinstance(m, nn.Sequential):
            kids = list(m)
            for a, b in zip(kids, kids[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    out[a] = b
    return out


def recover(onnx_path: Path, net: nn.Module, graph: nn.Module | None, calib: torch.Tensor) -> nn.Module:
    """Load ``onnx_path``'s weights into ``net`` (the trainable network; ``graph`` is what was
    exported: a wrapper around ``net``, or None for ``net`` itself) and measure its BatchNorm
    statistics on ``calib`` (a batch in the exported input's layout). Returns ``net``, in eval mode."""
    graph = net if graph is None else graph
    weights = _onnx_weights(onnx_path)
    modules = _call_order(graph, calib[:1])
    if len(weights) != len(modules):
        raise RecoverError(f"{onnx_path}: {len(weights)} Conv/Gemm weights in the ONNX graph but "
                           f"{len(modules)} Conv2d/Linear modules in {type(net).__name__}: not this network's export")
    bns = _following_bn(net)
    folded: list[tuple[nn.Conv2d, nn.BatchNorm2d, torch.Tensor]] = []
    with torch.no_grad():
        for k, ((op, w, b), m) in enumerate(zip(weights, modules)):
            if tuple(w.shape) != tuple(m.weight.shape):
                raise RecoverError(f"{onnx_path}: weight {k} ({op}) has shape {tuple(w.shape)} but "
                                   f"{type(net).__name__}'s module {k} ({type(m).__name__}) expects {tuple(m.weight.shape)}")
            m.weight.copy_(torch.from_numpy(np.array(w)))
            bias = torch.from_numpy(np.array(b)) if b is not None else torch.zeros(m.weight.shape[0])
            bn = bns.get(m)
            if bn is not None:
                # Identity normalisation for the measuring pass; the bias moves to the BatchNorm.
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
                folded.append((m, bn, bias))
            elif m.bias is not None:
                m.bias.copy_(bias)
            elif b is not None and np.any(b != 0):
                raise RecoverError(f"{onnx_path}: weight {k} ({op}) has a bias but {type(m).__name__} {k} "
                                   "has neither a bias nor a BatchNorm after it")
        stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

        def measure(m, inputs, output):
            y = output.transpose(0, 1).reshape(output.shape[1], -1).double()
            stats[m] = (y.mean(1).float(), y.var(1, unbiased=False).float())

        hooks = [m.register_forward_hook(measure) for m, _, _ in folded]
        try:
            graph.eval()(calib)
        finally:
            for h in hooks:
                h.remove()
        for m, bn, bias in folded:
            mean, var = stats[m]
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.copy_(mean + bias)
    return net.eval()


def max_difference(onnx_path: Path, graph: nn.Module, x: torch.Tensor) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name, batch = sess.get_inputs()[0].name, sess.get_inputs()[0].shape[0]
    if isinstance(batch, int):  # a fixed batch (the detector's 1): run it piece by piece
        x = x[: max(batch, len(x) // batch * batch)]
        got = np.concatenate([sess.run(None, {name: x[i:i + batch].numpy()})[0] for i in range(0, len(x), batch)])
    else:
        got = sess.run(None, {name: x.numpy()})[0]
    with torch.no_grad():
        want = graph.eval()(x).numpy()
    return float(np.max(np.abs(got - want)))


def calibration_batch(kind: str, data: Path, count: int, seed: int = 0) -> torch.Tensor:
    """Up to ``count`` inputs of the exported network's layout from a generated data folder: crops
    drawn at random (``seed``) for the embedder, the first frames, letterboxed, for the detector."""
    if kind == "embedder":
        from .data import crop_batch, load_crops

        crops, _ = load_crops(data)
        if not crops:
            raise RecoverError(f"--data {data}: no crops under {data}/crops")
        pick = np.random.default_rng(seed).choice(len(crops), size=min(count, len(crops)), replace=False)
        return torch.from_numpy(crop_batch([crops[i] for i in pick], CROP_SIZE))
    from .data import load_detection_set

    images, _ = load_detection_set(data, 320, limit=count)
    if not len(images):
        raise RecoverError(f"--data {data}: no frames under {data}/images")
    return torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.recover", description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=["embedder", "detector"])
    ap.add_argument("onnx", type=Path, help="an fp32 export of models/export.py")
    ap.add_argument("out", type=Path, help="the state dict to write (.pt)")
    ap.add_argument("--data", type=Path, required=True,
                    help="a generated data folder (caper_edge.sim.dataset): crops/ for the embedder, images/ for the detector")
    ap.add_argument("--count", type=int, default=512, help="calibration crops or frames [512]")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.onnx.is_file():
        ap.error(f"{args.onnx}: no such file")
    if args.count < 8:
        ap.error(f"--count {args.count}: need at least 8 calibration samples")
    try:
        calib = calibration_batch(args.kind, args.data, args.count, args.seed)
        if args.kind == "embedder":
            net = graph = EmbeddingNet()
        else:
            net = TinyDetector()
            graph = ExportWrapper(net, 320)
        recover(args.onnx, net, graph, calib)
    except (RecoverError, onnx.onnx_cpp2py_export.checker.ValidationError, OSError) as e:
        print(f"models.recover: {e}", file=sys.stderr)
        return 2
    diff = max_difference(args.onnx, graph, calib[: min(16, len(calib))])
    save_checkpoint(cpu_state(net), args.out)
    print(f"wrote {args.out} ({len(calib)} calibration samples); ONNX Runtime vs recovered network: "
          f"max |difference| {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
