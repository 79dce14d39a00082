#!/usr/bin/python3
"""ffc's backbones as PyTorch modules, for the tools that take ffc's networks out of ffc.

Every network of ffc's registry (src/model/registry.cpp): r18, r34, r50, r100, r200 (IResNet),
mbf, mbf_large (MobileFaceNet) and ffc's small CPU nets tiny and small (IResNet structure). The
modules follow the C++ definitions (src/model/iresnet.cpp, mobilefacenet.cpp, layers.cpp) layer
for layer: the same parameter and buffer names in the same state-dict order (insightface's,
tests/model/data/*_state_dict.txt), the same initialisation drawn from the random generator in
the same order (a seeded build equals `ffc model export NAME --seed N`), and the same forward in
float32, so an eval-mode module gives ffc's embeddings for the same input. Mixed precision
(ffc's fp16 / amp_dtype) is not modelled: these modules run in the type of their parameters.

Input: [B, 3, S, S] float32 RGB images, already normalised as the network expects: (pixel -
input_mean) / input_std from the file's attributes (docs/models.md); files without those
attributes use ffc's normalisation, mean 127.5, std 128. Output: [B, D] float32, the `features`
BatchNorm1d output, not L2-normalised.

As a module (needs torch; a network from a file: tools/ffc_load.py, which reads it with
tools/ffc_h5.py, so that neither of the two imports the other):

    import ffc_nets
    net = ffc_nets.build("r50", embedding_size=512, image_size=112)   # fresh, training mode
    mean, std = ffc_nets.input_norm(attrs)[1:]        # what to apply to the pixels
    embeddings = net(images)                          # [B, D], not L2-normalised

From the command line, `ffc_nets.py` lists the networks; `ffc_nets.py NAME [--embedding-size D]
[--image-size S]` prints the state-dict listing ("key<TAB>[shape]", as tests/model/data/).
"""

import argparse
import collections
import sys

import torch
import torch.nn.functional as F
from torch import nn

# Input normalisations a network may expect: name -> (mean, std) on 0..255 RGB pixels.
INPUT_NORMS = collections.OrderedDict([("insightface", (127.5, 127.5)), ("ffc", (127.5, 128.0))])

# The registry, as src/model/registry.cpp: name -> (family, shape, natural image size).
# IResNet shape: (stem width, stage widths, blocks per stage); MobileFaceNet: (scale, blocks).
_REGISTRY = collections.OrderedDict([
    ("r18", ("iresnet", (64, (64, 128, 256, 512), (2, 2, 2, 2)), 112)),
    ("r34", ("iresnet", (64, (64, 128, 256, 512), (3, 4, 6, 3)), 112)),
    ("r50", ("iresnet", (64, (64, 128, 256, 512), (3, 4, 14, 3)), 112)),
    ("r100", ("iresnet", (64, (64, 128, 256, 512), (3, 13, 30, 3)), 112)),
    ("r200", ("iresnet", (64, (64, 128, 256, 512), (6, 26, 60, 6)), 112)),
    ("mbf", ("mobilefacenet", (2, (1, 4, 6, 2)), 112)),
    ("mbf_large", ("mobilefacenet", (4, (2, 8, 12, 4)), 112)),
    ("tiny", ("iresnet", (16, (16, 32, 64, 128), (1, 1, 1, 1)), 32)),
    ("small", ("iresnet", (32, (32, 64, 128, 256), (1, 2, 2, 1)), 64)),
])


def names():
    """The networks of ffc's registry, in its order."""
    return list(_REGISTRY)


def _entry(network):
    if network not in _REGISTRY:
        raise ValueError(f"unknown network {network!r}; known networks: {', '.join(_REGISTRY)}")
    return _REGISTRY[network]


def family(network):
    """The family: "iresnet" or "mobilefacenet"."""
    return _entry(network)[0]


def natural_image_size(network):
    """The image side the network is made for (112; tiny 32, small 64)."""
    return _entry(network)[2]


def check_sizes(network, embedding_size, image_size):
    """Raises ValueError where ffc would refuse the combination (registry.cpp's check_spec)."""
    kind = family(network)
    if embedding_size < 1:
        raise ValueError(f"embedding_size must be at least 1, got {embedding_size}")
    if kind == "iresnet" and (image_size < 16 or image_size % 16 != 0):
        raise ValueError(f"network {network} needs image_size divisible by 16, got {image_size}")
    if kind == "mobilefacenet" and image_size != 112:
        raise ValueError(f"network {network} needs image_size 112 (its GDC head is a 7x7 "
                         f"depthwise convolution), got {image_size}")


def infer_sizes(network, shapes):
    """(embedding_size, image_size) read off a state dict's shapes ({key: shape}), each None
    where the shapes do not tell: D from fc.weight or features.weight (IResNet) or
    features.layers.2.weight (MobileFaceNet); S from fc.weight's input width for IResNets
    (width * (S/16)^2)."""
    kind, shape, _ = _entry(network)
    d = s = None
    if kind == "iresnet":
        if "fc.weight" in shapes and len(shapes["fc.weight"]) == 2:
            d, inputs = (int(x) for x in shapes["fc.weight"])
            width = shape[1][3]
            side = int(round((inputs / width) ** 0.5)) if inputs % width == 0 else 0
            if side > 0 and width * side * side == inputs:
                s = 16 * side
        elif "features.weight" in shapes and len(shapes["features.weight"]) == 1:
            d = int(shapes["features.weight"][0])
    elif "features.layers.2.weight" in shapes and len(shapes["features.layers.2.weight"]) == 2:
        d = int(shapes["features.layers.2.weight"][0])
    return d, s


def guess_network(shapes):
    """The registry network whose structure a state dict's shapes ({key: shape}) show, else
    None: an IResNet by its stem, stage widths and blocks per stage, a MobileFaceNet by its
    scale and blocks."""
    if "conv1.weight" in shapes:
        blocks, widths = [], []
        for i in range(1, 5):
            indices = {int(k.split(".")[1]) for k in shapes
                       if k.startswith(f"layer{i}.") and k.split(".")[1].isdigit()}
            key = f"layer{i}.0.conv1.weight"
            if not indices or key not in shapes:
                return None
            blocks.append(max(indices) + 1)
            widths.append(int(shapes[key][0]))
        found = (int(shapes["conv1.weight"][0]), tuple(widths), tuple(blocks))
        kind = "iresnet"
    elif "layers.0.layers.0.weight" in shapes:
        scale = int(shapes["layers.0.layers.0.weight"][0]) // 64
        # layers.1 is one grouped ConvBlock (keys layers.1.layers.0.weight) or a Residual group.
        counts = []
        for i in (1, 3, 5, 7):
            indices = {int(k.split(".")[3]) for k in shapes
                       if k.startswith(f"layers.{i}.layers.") and k.split(".")[3].isdigit()}
            counts.append(max(indices) + 1 if i != 1 or "layers.1.layers.0.weight" not in shapes
                          else 1)
        found = (scale, tuple(counts))
        kind = "mobilefacenet"
    else:
        return None
    for name, (family_, shape, _) in _REGISTRY.items():
        if family_ == kind and tuple(shape) == found:
            return name
    return None


def input_norm(attrs):
    """(name, mean, std) of the input normalisation a file's network expects: its input_norm,
    input_mean and input_std attributes, or ffc's (127.5, 128) where it has none."""
    name = attrs.get("input_norm")
    mean, std = INPUT_NORMS.get(name, INPUT_NORMS["ffc"])
    mean = float(attrs.get("input_mean", mean))
    std = float(attrs.get("input_std", std))
    return (name or "ffc"), mean, std


# --- Building blocks: the structure of src/model/layers.h --------------------------------------


def _conv(inputs, outputs, kernel, stride=1, padding=0, groups=1):
    """nn.Conv2d without bias (layers.h Conv2d)."""
    return nn.Conv2d(inputs, outputs, kernel, stride, padding, groups=groups, bias=False)


class _Block(nn.Module):
    """A module whose only child is the Sequential `layers` (mobilefacenet.cpp Block); with
    `residual`, x + layers(x)."""

    def __init__(self, layers, residual=False):
        super().__init__()
        self.layers = layers
        self.residual = residual

    def forward(self, x):
        return x + self.layers(x) if self.residual else self.layers(x)


# --- IResNet (src/model/iresnet.cpp) -----------------------------------------------------------


class IBasicBlock(nn.Module):
    """bn1 -> conv1 (3x3) -> bn2 -> prelu -> conv2 (3x3, stride) -> bn3, plus the identity or
    downsample(x); no activation after the sum. The downsample is built by the caller, before
    the block (the order of random draws)."""

    def __init__(self, inplanes, planes, stride, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = _conv(inplanes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv(planes, planes, 3, stride, 1)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    """3x3 stem (stride 1), bn1, prelu, four stages of IBasicBlocks (stride 2 and a downsample
    in the first block of each), bn2, flatten, [dropout], fc, BatchNorm1d `features`."""

    def __init__(self, embedding_size, image_size, stem, widths, blocks, dropout=0.0):
        super().__init__()
        self.conv1 = _conv(3, stem, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(stem, eps=1e-5)
        self.prelu = nn.PReLU(stem)
        inplanes = stem
        for i, (planes, n) in enumerate(zip(widths, blocks)):
            setattr(self, f"layer{i + 1}", self._stage(inplanes, planes, n))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(widths[3], eps=1e-5)
        self.dropout = dropout  # no module: ffc applies dropout only when it is set
        side = image_size // 16
        self.fc = nn.Linear(widths[3] * side * side, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)

    @staticmethod
    def _stage(inplanes, planes, n):
        downsample = nn.Sequential(_conv(inplanes, planes, 1, 2, 0),
                                   nn.BatchNorm2d(planes, eps=1e-5))
        layers = [IBasicBlock(inplanes, planes, 2, downsample)]
        layers += [IBasicBlock(planes, planes, 1) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        if self.dropout > 0:
            x = F.dropout(x, self.dropout, self.training)
        return self.features(self.fc(x))


# --- MobileFaceNet (src/model/mobilefacenet.cpp) -----------------------------------------------


def _conv_block(inputs, outputs, kernel, stride, padding, groups=1):
    """ConvBlock: conv -> BatchNorm2d -> PReLU."""
    return _Block(nn.Sequential(_conv(inputs, outputs, kernel, stride, padding, groups),
                                nn.BatchNorm2d(outputs), nn.PReLU(outputs)))


def _linear_block(inputs, outputs, kernel, stride, padding, groups=1):
    """LinearBlock: conv -> BatchNorm2d."""
    return _Block(nn.Sequential(_conv(inputs, outputs, kernel, stride, padding, groups),
                                nn.BatchNorm2d(outputs)))


def _depth_wise(inputs, outputs, residual, stride, hidden):
    """DepthWise: 1x1 in -> hidden, depthwise 3x3 (stride), 1x1 hidden -> out (linear)."""
    return _Block(nn.Sequential(_conv_block(inputs, hidden, 1, 1, 0),
                                _conv_block(hidden, hidden, 3, stride, 1, hidden),
                                _linear_block(hidden, outputs, 1, 1, 0)), residual)


def _residual(channels, n, hidden):
    """Residual: n residual DepthWise units channels -> channels, stride 1."""
    return _Block(nn.Sequential(*[_depth_wise(channels, channels, True, 1, hidden)
                                  for _ in range(n)]))


class MobileFaceNet(nn.Module):
    """`layers` (stem, DepthWise units and Residual groups), `conv_sep` (1x1 to 512),
    `features` = GDC: 7x7 depthwise LinearBlock, flatten, Linear(512, D, no bias), BatchNorm1d."""

    def __init__(self, embedding_size, scale, blocks):
        super().__init__()
        s, b = scale, blocks
        layers = [_conv_block(3, 64 * s, 3, 2, 1)]
        if b[0] == 1:
            layers.append(_conv_block(64 * s, 64 * s, 3, 1, 1, 64))  # grouped, not depthwise
        else:
            layers.append(_residual(64 * s, b[0], 128))
        layers += [_depth_wise(64 * s, 64 * s, False, 2, 128), _residual(64 * s, b[1], 128),
                   _depth_wise(64 * s, 128 * s, False, 2, 256), _residual(128 * s, b[2], 256),
                   _depth_wise(128 * s, 128 * s, False, 2, 512), _residual(128 * s, b[3], 256)]
        self.layers = nn.Sequential(*layers)
        self.conv_sep = _conv_block(128 * s, 512, 1, 1, 0)
        self.features = _Block(nn.Sequential(_linear_block(512, 512, 7, 1, 0, 512), nn.Flatten(),
                                             nn.Linear(512, embedding_size, bias=False),
                                             nn.BatchNorm1d(embedding_size)))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.features(self.conv_sep(self.layers(x)))


# --- Construction and loading ------------------------------------------------------------------


def build(network, embedding_size=512, image_size=None, dropout=0.0):
    """A freshly initialised `network` (training mode, float32, CPU), drawing from torch's
    generator as ffc does: after torch.manual_seed(N) its state dict equals that of `ffc model
    export NAME --seed N` with the same sizes. image_size None: the network's natural size."""
    kind, shape, natural = _entry(network)
    image_size = natural if image_size is None else int(image_size)
    embedding_size = int(embedding_size)
    check_sizes(network, embedding_size, image_size)
    if kind == "iresnet":
        stem, widths, blocks = shape
        return IResNet(embedding_size, image_size, stem, widths, blocks, dropout)
    if dropout > 0:
        raise ValueError(f"network {network} has no dropout")
    scale, blocks = shape
    return MobileFaceNet(embedding_size, scale, blocks)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", nargs="?", help="print this network's state-dict listing")
    parser.add_argument("--embedding-size", type=int, default=512)
    parser.add_argument("--image-size", type=int, help="default: the network's natural size")
    args = parser.parse_args(argv)
    if args.network is None:
        for name in names():
            print(f"{name}\t{family(name)}\timage {natural_image_size(name)}")
        return 0
    try:
        module = build(args.network, args.embedding_size, args.image_size)
    except ValueError as e:
        print(f"ffc_nets: {e}", file=sys.stderr)
        return 2
    for key, value in module.state_dict().items():
        print(f"{key}\t[{', '.join(str(d) for d in value.shape)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
