#!/usr/bin/python3
"""Converts insightface verification sets (.bin: lfw.bin, cfp_fp.bin, agedb_30.bin, ...) into the
HDF5 verification-set files that `ffc eval --set-file` and the `val_targets` key read
(docs/eval.md), and back.

An insightface .bin is a Python pickle of (bins, issame): bins a list of 2P encoded images (bytes;
pair k is bins[2k] and bins[2k + 1]), issame a list of P booleans. Pickles written by Python 2
hold the images as str; they load with encoding='bytes', as insightface does.

The HDF5 file (h5py, no other dependency):
    images   uint8 [total bytes]   the encoded images, concatenated
    offsets  int64 [2P + 1]        image i is images[offsets[i]:offsets[i + 1]]
    issame   uint8 [P]
    attributes: format "ffc-verification-set", format_version 1, name, image_size (side of the
    images when they are all square and of one size, else 0), pairs, source, producer, and
    flip = 0 where a mirrored image is another identity (glyphs): ffc then scores the set without
    the flip test.

Usage:
    /usr/bin/python3 tools/bin2ffc.py lfw.bin cfp_fp.bin agedb_30.bin   # -> lfw.h5, ... beside them
    /usr/bin/python3 tools/bin2ffc.py lfw.bin --out sets/lfw.h5 [--name lfw]
    /usr/bin/python3 tools/bin2ffc.py --to-bin lfw.h5 --out lfw.bin    # back to insightface's .bin
    /usr/bin/python3 tools/bin2ffc.py glyphs.bin --no-flip    # never scored with the flip test

Unpickling runs only the constructors a .bin needs (bytes, bytearray, numpy arrays); anything
else in the pickle is refused.
"""

import argparse
import io
import os
import pickle
import struct
import sys

import h5py
import numpy as np

FORMAT = "ffc-verification-set"
FORMAT_VERSION = 1

# (module, name) pairs a .bin pickle may construct: Python 3's protocol-2 bytes
# (_codecs.encode), bytearray, numpy arrays and scalars.
_ALLOWED = {
    ("_codecs", "encode"),
    ("codecs", "encode"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
    ("builtins", "bytes"),
    ("__builtin__", "bytes"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


class ConvertError(Exception):
    pass


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise ConvertError(
                f"the pickle wants to construct {module}.{name}, which a verification .bin "
                "does not hold; refusing to load it"
            )
        return super().find_class(module, name)


def _unpickle(data, **kwargs):
    return _SafeUnpickler(io.BytesIO(data), **kwargs).load()


def load_bin(path):
    """(list of bytes, list of bool) from an insightface .bin (Python 2 or 3 pickle)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        try:
            obj = _unpickle(data)
        except UnicodeDecodeError:
            # A Python 2 pickle: its str objects are the image bytes.
            obj = _unpickle(data, encoding="bytes")
    except ConvertError as e:
        raise ConvertError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a .bin"
        raise ConvertError(f"{path}: not a Python pickle of (bins, issame): {e}") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise ConvertError(f"{path}: the pickle holds {type(obj).__name__}, not (bins, issame)")
    bins, issame = obj
    images = [_as_bytes(b, i, path) for i, b in enumerate(bins)]
    same = [bool(x) for x in issame]
    if not same:
        raise ConvertError(f"{path}: issame is empty")
    if len(images) < 2 * len(same):
        raise ConvertError(
            f"{path}: {len(same)} pairs need {2 * len(same)} images, the file has {len(images)}"
        )
    if len(images) > 2 * len(same):
        print(
            f"bin2ffc: {path}: {len(images)} images for {len(same)} pairs; the last "
            f"{len(images) - 2 * len(same)} are ignored (as insightface does)",
            file=sys.stderr,
        )
        images = images[: 2 * len(same)]
    return images, same


def _as_bytes(b, i, path):
    if isinstance(b, bytes):
        return b
    if isinstance(b, (bytearray, memoryview)):
        return bytes(b)
    if isinstance(b, np.ndarray):
        return b.astype(np.uint8, copy=False).tobytes()
    if isinstance(b, str):  # a Python 2 str loaded as text
        return b.encode("latin1")
    raise ConvertError(f"{path}: image {i} is a {type(b).__name__}, not encoded image bytes")


def jpeg_size(data):
    """(width, height) from a JPEG's frame header, or None if it has none."""
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def check_images(images, path):
    """The common side of square images of one size, else 0. Raises for non-JPEG images."""
    sizes = set()
    for i, b in enumerate(images):
        if b[:8] == b"\x89PNG\r\n\x1a\n":
            raise ConvertError(
                f"{path}: image {i} is a PNG; ffc reads JPEG images (re-encode the set as JPEG)"
            )
        if b[:2] != b"\xff\xd8":
            raise ConvertError(
                f"{path}: image {i} is not a JPEG (it starts with {b[:4].hex(' ') or 'nothing'})"
            )
        size = jpeg_size(b)
        if size is None:
            raise ConvertError(f"{path}: image {i}: no JPEG frame header (truncated?)")
        sizes.add(size)
    if len(sizes) == 1:
        w, h = next(iter(sizes))
        if w == h:
            return w
    return 0


def write_images(f, images):
    """The encoded images of a set file, concatenated ("images", uint8), and where each starts
    ("offsets", int64, one more than the images); shared with tools/ffc_longtail.py."""
    offsets = np.zeros(len(images) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in images])
    f.create_dataset("images", data=np.frombuffer(b"".join(images), dtype=np.uint8))
    f.create_dataset("offsets", data=offsets)


def write_set(out, images, same, name, source, flip=True):
    """Writes the set file; flip=False records that mirrored images are other identities (a
    glyph set), so that ffc scores the set without the flip test."""
    image_size = check_images(images, source)
    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            write_images(f, images)
            f.create_dataset("issame", data=np.array(same, dtype=np.uint8))
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["name"] = name
            f.attrs["image_size"] = np.int64(image_size)
            f.attrs["pairs"] = np.int64(len(same))
            f.attrs["source"] = os.path.basename(source)
            f.attrs["producer"] = "tools/bin2ffc.py"
            if not flip:
                f.attrs["flip"] = np.int64(0)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return image_size


def read_set(path):
    """(list of bytes, list of bool, attributes) from a verification-set file."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ConvertError(f"{path}: not an ffc verification set (attribute format)")
        data = f["images"][()].tobytes()
        offsets = f["offsets"][()]
        same = [bool(x) for x in f["issame"][()]]
        attrs = dict(f.attrs)
    if len(offsets) != 2 * len(same) + 1 or offsets[0] != 0 or offsets[-1] != len(data):
        raise ConvertError(f"{path}: offsets do not match the images and pairs")
    images = [data[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    return images, same, attrs


def main(argv=None):
    p = argparse.ArgumentParser(
        description="insightface .bin verification sets <-> ffc HDF5 verification sets"
    )
    p.add_argument("inputs", nargs="+", help=".bin files (or .h5 files with --to-bin)")
    p.add_argument("--out", help="output file (one input only); default: the input beside itself")
    p.add_argument("--name", help="set name (default: the input's file name without extension)")
    p.add_argument("--to-bin", action="store_true", help="convert .h5 sets back to .bin pickles")
    p.add_argument("--no-flip", action="store_true",
                   help="mark the set as not mirror-invariant (glyphs): scored without flip")
    args = p.parse_args(argv)
    if args.out and len(args.inputs) != 1:
        p.error("--out takes one input")
    if args.name and len(args.inputs) != 1:
        p.error("--name takes one input")
    try:
        for path in args.inputs:
            stem = os.path.splitext(path)[0]
            if args.to_bin:
                out = args.out or stem + ".bin"
                images, same, _ = read_set(path)
                with open(out + ".tmp", "wb") as f:
                    pickle.dump((images, same), f, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(out + ".tmp", out)
                print(f"wrote {out}: {len(same)} pairs")
                continue
            out = args.out or stem + ".h5"
            name = args.name or os.path.basename(stem)
            images, same = load_bin(path)
            size = write_set(out, images, same, name, path, flip=not args.no_flip)
            genuine = sum(same)
            total = sum(len(b) for b in images)
            side = f"{size}x{size}" if size else "mixed sizes"
            print(
                f"wrote {out}: set '{name}', {len(same)} pairs ({genuine} genuine, "
                f"{len(same) - genuine} impostor), {len(images)} JPEG images of {side}, "
                f"{total / 1e6:.1f} MB"
            )
    except (ConvertError, OSError) as e:
        print(f"bin2ffc: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
