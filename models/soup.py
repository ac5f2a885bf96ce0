"""Average the weights of embedders fine-tuned from one start ("model soup", Wortsman et al. 2022)
and export the average.

Fine-tunes of one network that start from the same weights stay in one basin of the loss, and
the mean of their weights is usually at least as good as the best of them, at no cost at run time
(one network, the same size). BatchNorm statistics do not average: the mean of two running
variances is not the variance of the averaged network's activations. So every BatchNorm's
statistics are measured again, over ``--count`` crops of ``--data`` (the cumulative mean and
variance of the training-mode batches, no gradient), before the export.

    python -m models.soup OUT.onnx A.pt B.pt [C.pt ...] --data DIR [--count 2048] [--seed 0]

writes OUT.onnx (models/export.py: checked, opset 17) and OUT.pt beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from .batches import cpu_state
from .embedder import CROP_SIZE, EmbeddingNet
from .export import export_embedder
from .recover import calibration_batch
from .trainloop import recalibrate_bn, save_checkpoint


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of state dicts with the same keys and shapes (integer counters kept from the first)."""
    keys = list(states[0])
    for k, sd in enumerate(states[1:], 1):
        if list(sd) != keys:
            raise ValueError(f"checkpoint {k} has keys {sorted(set(sd) ^ set(keys))[:4]} that checkpoint 0 does not share")
        for name in keys:
            if sd[name].shape != states[0][name].shape:
                raise ValueError(f"checkpoint {k}: {name} has shape {tuple(sd[name].shape)}, "
                                 f"checkpoint 0 {tuple(states[0][name].shape)}")
    return {name: (torch.stack([sd[name].double() for sd in states]).mean(0).to(states[0][name].dtype)
                   if states[0][name].is_floating_point() else states[0][name].clone())
            for name in keys}


def remeasure_batchnorm(net: nn.Module, batches) -> nn.Module:
    """Replace every BatchNorm's running statistics by those of ``batches`` (cumulative average);
    returns ``net`` in eval mode."""
    recalibrate_bn(net, batches)
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.soup", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the averaged embedder (.onnx; the .pt is written beside it)")
    ap.add_argument("weights", type=Path, nargs="+", help="embedder.pt checkpoints fine-tuned from one start")
    ap.add_argument("--data", type=Path, required=True, help="generated data folder whose crops/ measure the BatchNorm statistics")
    ap.add_argument("--count", type=int, default=2048, help="crops for the statistics [2048]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if len(args.weights) < 2:
        ap.error(f"{len(args.weights)} checkpoint given: a soup needs at least 2")
    if args.count < 64:
        ap.error(f"--count {args.count}: need at least 64 crops for the BatchNorm statistics")
    missing = [str(p) for p in args.weights if not p.is_file()]
    if missing:
        ap.error(f"no such checkpoint: {', '.join(missing)}")
    torch.set_num_threads(args.threads)
    try:
        net = EmbeddingNet()
        net.load_state_dict(average_states([torch.load(p, map_location="cpu") for p in args.weights]))
        calib = calibration_batch("embedder", args.data, args.count, args.seed)
    except (ValueError, RuntimeError, OSError) as e:  # RecoverError is a ValueError
        print(f"models.soup: {e}", file=sys.stderr)
        return 2
    if len(calib) < 64:
        print(f"models.soup: --data {args.data} has {len(calib)} crops; need at least 64", file=sys.stderr)
        return 2
    remeasure_batchnorm(net, torch.split(calib, 128))
    export_embedder(net, args.out, CROP_SIZE)
    save_checkpoint(cpu_state(net), args.out.with_suffix(".pt"))
    print(f"wrote {args.out}: the mean of {len(args.weights)} checkpoints, BatchNorm statistics of {len(calib)} crops")
    return 0


if __name__ == "__main__":
    sys.exit(main())
