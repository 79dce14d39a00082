#!/usr/bin/python3
"""A PyTorch reference of insightface's verification protocol, to check `ffc eval` against.

    insightface_reference.py SET.bin NET.h5 [--input-norm insightface|ffc] [--batch N]
                             [--folds 10] [--net probe|gallery]

SET.bin is an insightface verification set (a pickle of (bins, issame): 2P JPEG-encoded images,
pair k being bins[2k] and bins[2k + 1], and P booleans); NET.h5 an ffc backbone file or
checkpoint (tools/ffc_nets.py rebuilds its network in PyTorch). Independently of ffc's C++:

- every image is decoded by PIL to RGB uint8 (it must be of the network's image size), its
  horizontal mirror made, both normalised (pixel - mean) / std in float32 (mean and std of
  --input-norm, else of the file's input_norm attributes, else ffc's 127.5 and 128), laid out
  CHW and run through the network in eval mode without autograd;
- xnorm: the mean L2 norm of all raw embeddings, images and mirrors (each view counted once);
- accuracy: per image, embedding + mirror's embedding, L2-normalised; per pair, the squared
  Euclidean distance; thresholds numpy.arange(0, 4, 0.01), a pair predicted genuine when its
  distance is below the threshold; --folds consecutive folds (no shuffling; the first P mod k
  folds hold one pair more, as sklearn's KFold); on each fold, the threshold with the best
  accuracy on the other folds (the first of equal maxima) gives the fold's accuracy; reported
  are the mean and the standard deviation (ddof 0) over the folds.

Prints one line: `xnorm X accuracy A std S` (%.10g). Compare with `ffc eval --backbone NET.h5
--set-file SET.h5` (SET.h5 from tools/bin2ffc.py), XNorm and Accuracy-Flip; ffc normalises with
its own (x - 127.5) / 128, so compare with --input-norm ffc where the file says otherwise.
Needs Debian's /usr/bin/python3 with python3-torch, python3-h5py, python3-numpy and python3-pil.
"""

import argparse
import io
import os
import pickle
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import ffc_load  # noqa: E402
import ffc_nets  # noqa: E402


class _SetUnpickler(pickle.Unpickler):
    """Unpickles (bins, issame) and numpy arrays only: a pickle can otherwise run any code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
               ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("_codecs", "encode"),
               ("builtins", "bytearray")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a .bin")


def load_bin(path):
    """([encoded image bytes] * 2P, [bool] * P) of an insightface .bin."""
    with open(path, "rb") as f:
        bins, issame = _SetUnpickler(f, encoding="bytes").load()
    issame = [bool(x) for x in issame]
    if len(bins) < 2 * len(issame):
        raise ValueError(f"{path}: {len(bins)} images for {len(issame)} pairs")
    images = []
    for b in bins[:2 * len(issame)]:
        images.append(b.tobytes() if isinstance(b, np.ndarray) else bytes(b))
    return images, issame


def decode(images, size, path):
    """[n, size, size, 3] uint8 RGB."""
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, data in enumerate(images):
        with Image.open(io.BytesIO(data)) as img:
            rgb = np.asarray(img.convert("RGB"))
        if rgb.shape[:2] != (size, size):
            raise ValueError(f"{path}: image {i} is {rgb.shape[1]}x{rgb.shape[0]}, the network "
                             f"takes {size}x{size}")
        out[i] = rgb
    return out


def embed(net, pixels, mean, std, batch):
    """Raw embeddings (float32 numpy [n, D]) of the images and of their mirrors."""
    plain, mirror = [], []
    with torch.no_grad():
        for start in range(0, len(pixels), batch):
            hwc = torch.from_numpy(pixels[start:start + batch])
            x = ((hwc.to(torch.float32) - mean) / std).permute(0, 3, 1, 2)
            # The batch and its mirrors (flipped along the width) in one forward.
            e = net(torch.cat([x, x.flip(3)]).contiguous()).to(torch.float32)
            plain.append(e[:len(hwc)].numpy())
            mirror.append(e[len(hwc):].numpy())
    return np.concatenate(plain), np.concatenate(mirror)


def fold_slices(n, k):
    """sklearn KFold(n_splits=k, shuffle=False) test folds: consecutive, the first n % k one
    element longer."""
    out, start = [], 0
    for f in range(k):
        size = n // k + (1 if f < n % k else 0)
        out.append(slice(start, start + size))
        start += size
    return out


def kfold_accuracy(dist, issame, folds):
    """(mean, std) of the fold accuracies, each at the threshold best on the other folds."""
    thresholds = np.arange(0, 4, 0.01)
    n = len(dist)
    if n < folds:
        raise ValueError(f"{n} pairs for {folds} folds")
    # correct[t, i]: pair i is classified correctly at threshold t.
    correct = (dist[None, :] < thresholds[:, None]) == issame[None, :]
    accs = []
    for test in fold_slices(n, folds):
        train = np.ones(n, dtype=bool)
        train[test] = False
        best = int(np.argmax(correct[:, train].mean(axis=1)))  # the first of equal maxima
        accs.append(correct[best, test].mean())
    return float(np.mean(accs)), float(np.std(accs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", help="insightface verification set (.bin)")
    parser.add_argument("network", help="ffc backbone file or checkpoint (.h5)")
    parser.add_argument("--input-norm", choices=list(ffc_nets.INPUT_NORMS),
                        help="pixel normalisation (default: the file's, else ffc's)")
    parser.add_argument("--batch", type=int, default=64, help="images per forward (default 64)")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--net", default="probe", choices=("probe", "gallery"),
                        help="the network of a checkpoint")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.folds < 2:
        parser.error("--batch must be at least 1 and --folds at least 2")
    try:
        net, attrs = ffc_load.from_h5(args.network, args.net)
        if args.input_norm:
            mean, std = ffc_nets.INPUT_NORMS[args.input_norm]
        else:
            mean, std = ffc_nets.input_norm(attrs)[1:]
        images, issame = load_bin(args.set)
        pixels = decode(images, int(attrs["image_size"]), args.set)
        plain, mirror = embed(net, pixels, mean, std, args.batch)
        norms = np.linalg.norm(np.concatenate([plain, mirror]).astype(np.float64), axis=1)
        xnorm = float(norms.mean())
        emb = (plain + mirror).astype(np.float64)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        dist = np.sum((emb[0::2] - emb[1::2]) ** 2, axis=1)
        accuracy, std_acc = kfold_accuracy(dist, np.asarray(issame), args.folds)
    except (OSError, ValueError, pickle.UnpicklingError) as e:
        print(f"insightface_reference: {e}", file=sys.stderr)
        return 1
    print(f"xnorm {xnorm:.10g} accuracy {accuracy:.10g} std {std_acc:.10g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
