#!/usr/bin/python3
"""Writes a verification set in insightface's .bin layout from synthetic, face-like images, for
checking ffc's verification against tests/eval/insightface_reference.py.

    make_bin.py OUT.bin [--pairs P] [--size S] [--seed N]

The .bin is a pickle of (bins, issame): bins the 2P JPEG-encoded images (PIL, quality 95, RGB),
pair k being bins[2k] and bins[2k + 1]; issame P booleans, genuine for even k. An identity's
base image is a smooth random picture (a vertical colour gradient and a dozen soft Gaussian
blobs of random colour, place and size); a genuine pair shows two views of one base image, an
impostor pair views of two; each view is shifted by up to 8 pixels, scaled in brightness by up
to 15 %, overlaid with a random picture of half strength and noised (variant()). Deterministic
for a seed (numpy's PCG64).
"""

import argparse
import io
import pickle
import sys

import numpy as np
from PIL import Image


def base_image(rng, size):
    """A smooth random S x S x 3 float picture in 0..255."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    top, bottom = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    img = top + (bottom - top) * y[..., None]
    for _ in range(12):
        cy, cx = rng.uniform(0.1, 0.9, 2)
        radius = rng.uniform(0.05, 0.25)
        weight = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius ** 2))
        img += weight[..., None] * rng.uniform(-120, 120, 3)
    return img


def variant(rng, img):
    """One view of a base image, as uint8: shifted by up to 8 pixels (edges repeated), brightness
    x U(0.85, 1.15), a nuisance picture of half strength laid over it (lighting, background),
    pixel noise N(0, 12). Genuine pairs are thus far from identical and some impostor pairs
    close: accuracy stays below 1."""
    dy, dx = (int(d) for d in rng.integers(-8, 9, 2))
    out = np.roll(img, (dy, dx), axis=(0, 1))
    if dy > 0:
        out[:dy] = out[dy]
    elif dy < 0:
        out[dy:] = out[dy - 1]
    if dx > 0:
        out[:, :dx] = out[:, dx:dx + 1]
    elif dx < 0:
        out[:, dx:] = out[:, dx - 1:dx]
    out = out * rng.uniform(0.85, 1.15) + 0.5 * base_image(rng, img.shape[0]) - 60
    out += rng.normal(0, 12, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def jpeg(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_set(pairs, size, seed):
    """(bins, issame) of `pairs` pairs of size x size images."""
    rng = np.random.default_rng(seed)
    bins, issame = [], []
    for k in range(pairs):
        genuine = k % 2 == 0
        a = base_image(rng, size)
        b = a if genuine else base_image(rng, size)
        bins += [jpeg(variant(rng, a)), jpeg(variant(rng, b))]
        issame.append(genuine)
    return bins, issame


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the .bin file to write")
    parser.add_argument("--pairs", type=int, default=600, help="number of pairs (default 600)")
    parser.add_argument("--size", type=int, default=112, help="image side (default 112)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.size < 8:
        parser.error("--pairs must be at least 1 and --size at least 8")
    bins, issame = make_set(args.pairs, args.size, args.seed)
    with open(args.out, "wb") as f:
        pickle.dump((bins, issame), f, protocol=4)
    print(f"make_bin: wrote {args.out}: {args.pairs} pairs ({sum(issame)} genuine) of "
          f"{args.size}x{args.size} JPEG images, seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
