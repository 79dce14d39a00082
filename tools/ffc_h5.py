#!/usr/bin/python3
"""Reads a backbone that ffc wrote to HDF5 (`ffc model export`) into Python.

The file holds one dataset per state-dict entry at its root, named by the PyTorch key
("layer1.0.bn1.weight"), in state-dict order, and root attributes format = "ffc-backbone",
format_version, network, embedding_size, image_size, producer (docs/models.md).

As a module (needs h5py and numpy; torch only for load_state_dict):

    import ffc_h5
    arrays, attrs = ffc_h5.load_arrays("r50.h5")   # {key: numpy array}, state-dict order
    state_dict = ffc_h5.load_state_dict("r50.h5")  # OrderedDict of torch tensors
    model.load_state_dict(state_dict, strict=True) # e.g. insightface's get_model("r50")

From the command line:

    ffc_h5.py FILE                        summary (format, network, sizes, tensors, parameters)
    ffc_h5.py FILE --list                 "key<TAB>[shape]" per line, in state-dict order
    ffc_h5.py FILE --check-names LISTING  compare keys, order and shapes with such a listing
                                          (e.g. tests/model/data/iresnet50_state_dict.txt);
                                          exit status 1 on any difference
    ffc_h5.py FILE --save-pt OUT.pt       torch.save() the state dict (needs torch)

Use Debian's interpreter (/usr/bin/python3) with python3-h5py and python3-numpy; python3-torch
is optional.
"""

import argparse
import collections
import sys

import h5py
import numpy as np

FORMAT = "ffc-backbone"
FORMAT_VERSION = 1


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def dataset_names(f):
    """Names of the root datasets in the order ffc wrote them (h5py's own order is by name)."""
    names = []

    def visit(name):
        names.append(name.decode("utf-8"))

    try:
        f.id.links.iterate(visit, idx_type=h5py.h5.INDEX_CRT_ORDER)
    except (ValueError, RuntimeError, KeyError):  # no creation-order index: name order
        names = list(f.keys())
    return [n for n in names if isinstance(f.get(n, getlink=False), h5py.Dataset)]


def load_arrays(path):
    """Returns ({key: numpy array} in state-dict order, {attribute: value})."""
    with h5py.File(path, "r") as f:
        attrs = {k: _text(v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        if attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: not an ffc backbone file (format attribute "
                             f"{attrs.get('format')!r}, expected {FORMAT!r})")
        if int(attrs.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {attrs['format_version']} is newer than "
                             f"this loader reads ({FORMAT_VERSION})")
        arrays = collections.OrderedDict()
        for name in dataset_names(f):
            arrays[name] = np.asarray(f[name][()])
    return arrays, attrs


def load_state_dict(path):
    """The file as a PyTorch state dict (OrderedDict of tensors, float32 / int64)."""
    import torch

    arrays, _ = load_arrays(path)
    return collections.OrderedDict((k, torch.from_numpy(np.array(v))) for k, v in arrays.items())


def shape_text(shape):
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def read_listing(path):
    entries = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and "\t" in line and not line.startswith("#"):
                key, shape = line.split("\t", 1)
                entries.append((key, shape.strip()))
    return entries


def check_names(arrays, listing_path):
    """Prints every difference between the file and the listing; returns their number."""
    want = read_listing(listing_path)
    have = [(k, shape_text(v.shape)) for k, v in arrays.items()]
    want_shape, have_shape = dict(want), dict(have)
    problems = 0
    for k, shape in want:
        if k not in have_shape:
            print(f"missing in file: {k} {shape}")
            problems += 1
        elif have_shape[k] != shape:
            print(f"shape of {k}: file {have_shape[k]}, listing {shape}")
            problems += 1
    for k, shape in have:
        if k not in want_shape:
            print(f"not in listing: {k} {shape}")
            problems += 1
    if problems == 0:
        for i, ((k_have, _), (k_want, _)) in enumerate(zip(have, want)):
            if k_have != k_want:
                print(f"order: entry {i} is {k_have} in the file, {k_want} in the listing")
                problems += 1
                break
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="HDF5 file written by ffc")
    parser.add_argument("--list", action="store_true", help="print key<TAB>[shape] lines")
    parser.add_argument("--check-names", metavar="LISTING",
                        help="compare keys, order and shapes with a key<TAB>[shape] listing")
    parser.add_argument("--save-pt", metavar="OUT", help="torch.save the state dict to OUT")
    args = parser.parse_args(argv)

    try:
        arrays, attrs = load_arrays(args.file)
    except (OSError, ValueError) as e:
        print(f"ffc_h5: {e}", file=sys.stderr)
        return 1

    if args.list:
        for k, v in arrays.items():
            print(f"{k}\t{shape_text(v.shape)}")
    if args.check_names:
        problems = check_names(arrays, args.check_names)
        if problems:
            print(f"ffc_h5: {args.file} differs from {args.check_names} ({problems} problem(s))")
            return 1
        print(f"ffc_h5: {len(arrays)} keys and shapes match {args.check_names}, in order")
    if args.save_pt:
        import torch

        torch.save(load_state_dict(args.file), args.save_pt)
        print(f"ffc_h5: wrote {args.save_pt}")
    if not (args.list or args.check_names or args.save_pt):
        params = sum(int(v.size) for k, v in arrays.items()
                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        print(f"{args.file}: {attrs.get('format')} v{attrs.get('format_version')}, network "
              f"{attrs.get('network')}, embedding_size {attrs.get('embedding_size')}, image_size "
              f"{attrs.get('image_size')}, {len(arrays)} tensors, {params} parameters "
              f"(written by {attrs.get('producer')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
