#!/usr/bin/python3
"""Writes a PyTorch state dict of one of ffc's networks with non-trivial statistics, as a
stand-in for released weights (insightface's backbone.pth) in the import and ONNX checks.

    make_pt.py OUT.pt --network r18 --seed N [--embedding-size D] [--image-size S] [--ddp]
               [--no-num-batches-tracked] [--wrap state_dict|model]

The network is tools/ffc_nets.py's build(...) after torch.manual_seed(N); then every BatchNorm
gets random affine parameters (weight U(0.5, 1.5), bias N(0, 0.1); the IResNets' frozen
features.weight stays 1) and every PReLU random slopes U(0, 0.5); the BatchNorm running
statistics are measured on random smooth images (as training would leave them, so that
activations keep a sane scale in eval mode), then perturbed per channel (variance x U(0.8,
1.25), mean + N(0, 0.1) standard deviations) and given random counters (num_batches_tracked).
An evaluation thus depends on all of them (a fresh network has running mean 0, variance 1,
slopes 0.25). Deterministic for a seed. torch.save of the state dict; --ddp prefixes every key
with "module." (as a DistributedDataParallel model's), --no-num-batches-tracked drops those
entries (as some released files), --wrap puts the state dict under that key of a dict (as
training scripts' checkpoints).
"""

import argparse
import collections
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import ffc_nets  # noqa: E402


def perturbed(network, seed, embedding_size=512, image_size=None):
    """ffc_nets.build(network, ...) seeded with `seed`, with random BatchNorm affine parameters
    and PReLU slopes, and running statistics measured on random images, then perturbed."""
    torch.manual_seed(seed)
    net = ffc_nets.build(network, embedding_size, image_size)
    g = torch.Generator().manual_seed(seed + 1)
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    with torch.no_grad():
        for m in norms:
            c = m.num_features
            if m.weight.requires_grad:  # not the frozen features.weight
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.copy_(torch.randn(c, generator=g) * 0.1)
        for m in net.modules():
            if isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5)
        # Running statistics as after training: the average over two batches of smooth random
        # images (cumulative averages: momentum None), so that eval-mode activations keep their
        # scale through the layers (the fresh weights' statistics would not).
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        side = image_size or ffc_nets.natural_image_size(network)
        net.train()
        for _ in range(2):
            x = torch.randn(8, 3, side, side, generator=g)
            net(F.avg_pool2d(x, 5, 1, 2) * 2)
        # Then perturbed, per channel: variance x U(0.8, 1.25), mean + N(0, 0.1) std.
        for m in norms:
            c = m.num_features
            m.momentum = 0.1
            m.running_var.mul_(torch.rand(c, generator=g) * 0.45 + 0.8)
            m.running_mean.add_(torch.randn(c, generator=g) * 0.1 * m.running_var.sqrt())
            m.num_batches_tracked.fill_(int(torch.randint(1, 100000, (), generator=g)))
    return net.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the .pt file to write")
    parser.add_argument("--network", required=True, choices=ffc_nets.names())
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--embedding-size", type=int, default=512)
    parser.add_argument("--image-size", type=int, help="default: the network's natural size")
    parser.add_argument("--ddp", action="store_true", help='prefix the keys with "module."')
    parser.add_argument("--no-num-batches-tracked", action="store_true",
                        help="leave out the num_batches_tracked entries")
    parser.add_argument("--wrap", choices=("state_dict", "model"),
                        help="save {WRAP: state_dict, 'epoch': 1} instead of the state dict")
    args = parser.parse_args(argv)
    try:
        net = perturbed(args.network, args.seed, args.embedding_size, args.image_size)
    except ValueError as e:
        parser.error(str(e))
    state = collections.OrderedDict()
    for k, v in net.state_dict().items():
        if args.no_num_batches_tracked and k.endswith("num_batches_tracked"):
            continue
        state[("module." if args.ddp else "") + k] = v
    obj = {args.wrap: state, "epoch": 1} if args.wrap else state
    torch.save(obj, args.out)
    print(f"make_pt: wrote {args.out}: {args.network}, {len(state)} entries, seed {args.seed}"
          f"{', module. prefix' if args.ddp else ''}"
          f"{', no num_batches_tracked' if args.no_num_batches_tracked else ''}"
          f"{f', under {args.wrap!r}' if args.wrap else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
