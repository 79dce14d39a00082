#!/usr/bin/python3
"""Reads what ffc writes to HDF5 into Python: exported backbones and training checkpoints.

A backbone (`ffc model export`, `ffc ckpt export`) holds one dataset per state-dict entry at its
root, named by the PyTorch key ("layer1.0.bn1.weight"), in state-dict order, and root attributes
format = "ffc-backbone", format_version, network, embedding_size, image_size, producer
(docs/models.md). A checkpoint (`ffc train`, <output>/checkpoints/step_*.h5, format =
"ffc-checkpoint") holds the same state dicts in groups probe/ and gallery/, the optimiser's
momentum, the classification head (head/weight, head/pool/..., head/vfc/...), the configuration
(YAML text) and the last metrics record (JSON), with the run's attributes at the root
(docs/checkpoint-format.md).

As a module (needs h5py and numpy; torch only for load_state_dict):

    import ffc_h5
    arrays, attrs = ffc_h5.load_arrays("r50.h5")   # {key: numpy array}, state-dict order
    state_dict = ffc_h5.load_state_dict("r50.h5")  # OrderedDict of torch tensors
    model.load_state_dict(state_dict, strict=True) # e.g. insightface's get_model("r50")

    ckpt = ffc_h5.load_checkpoint("runs/x/checkpoints/step_000001000.h5")
    ckpt["attrs"]["step"], ckpt["config"], ckpt["metrics"]    # ints/strings, YAML text, dict
    ckpt["probe"], ckpt["gallery"]                            # state dicts of numpy arrays
    ckpt["optimizer"]["momentum"], ckpt["head"]["pool/rows"]  # numpy arrays
    state_dict = ffc_h5.load_state_dict("step_000001000.h5", net="gallery")  # torch tensors

From the command line:

    ffc_h5.py FILE                        summary (format, network, sizes, tensors, parameters;
                                          for a checkpoint also step, method, ranks and groups)
    ffc_h5.py FILE --list                 "key<TAB>[shape]" per line, in state-dict order (of
                                          --net for a checkpoint)
    ffc_h5.py FILE --check-names LISTING  compare keys, order and shapes with such a listing
                                          (e.g. tests/model/data/iresnet50_state_dict.txt);
                                          exit status 1 on any difference
    ffc_h5.py FILE --save-pt OUT.pt       torch.save() the state dict (needs torch)
    --net probe|gallery                   which network of a checkpoint (default probe)

Use Debian's interpreter (/usr/bin/python3) with python3-h5py and python3-numpy; python3-torch
is optional.
"""

import argparse
import collections
import json
import sys

import h5py
import numpy as np

FORMAT = "ffc-backbone"
FORMAT_VERSION = 1
CHECKPOINT_FORMAT = "ffc-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def dataset_names(group):
    """Names of a group's datasets in the order ffc wrote them (h5py's own order is by name)."""
    names = []

    def visit(name):
        names.append(name.decode("utf-8"))

    try:
        group.id.links.iterate(visit, idx_type=h5py.h5.INDEX_CRT_ORDER)
    except (ValueError, RuntimeError, KeyError):  # no creation-order index: name order
        names = list(group.keys())
    return [n for n in names if isinstance(group.get(n, getlink=False), h5py.Dataset)]


def _attrs(obj):
    return {k: _text(v.item() if isinstance(v, np.generic) else v) for k, v in obj.attrs.items()}


def _read_group(group):
    """{name: numpy array} of a group's datasets, in the order they were written."""
    return collections.OrderedDict((n, np.asarray(group[n][()])) for n in dataset_names(group))


def _walk(group, prefix=""):
    """{path relative to group: numpy array} of every dataset below group, depth first."""
    out = collections.OrderedDict()
    for name in dataset_names(group):
        out[prefix + name] = np.asarray(group[name][()])
    for name, item in group.items():
        if isinstance(item, h5py.Group):
            out.update(_walk(item, prefix + name + "/"))
    return out


def file_format(path):
    """The format attribute of an ffc HDF5 file ("ffc-backbone", "ffc-checkpoint"), else None."""
    with h5py.File(path, "r") as f:
        return _attrs(f).get("format")


def _check_version(path, attrs, newest):
    if int(attrs.get("format_version", 0)) > newest:
        raise ValueError(f"{path}: format_version {attrs['format_version']} is newer than "
                         f"this loader reads ({newest})")


def load_checkpoint(path):
    """Everything of an ffc checkpoint as numpy: a dict with
    attrs      root attributes (step, epoch, method, world_size, num_classes, seed, ...)
    config     the resolved configuration, YAML text
    metrics    the last metrics.jsonl record (dict), or None
    probe      state dict of the probe (trained) network, OrderedDict of arrays
    gallery    state dict of the FFC gallery network (empty for the other methods)
    optimizer  {"momentum": OrderedDict, "started": array or None}
    head       {"weight": ..., "momentum": ..., "pool/rows": ..., "pool/labels": ..., ...}:
               the classification head in its global layout (whichever the method has)"""
    with h5py.File(path, "r") as f:
        attrs = _attrs(f)
        if attrs.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not an ffc checkpoint (format attribute "
                             f"{attrs.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
        _check_version(path, attrs, CHECKPOINT_FORMAT_VERSION)
        if int(attrs.get("complete", 0)) != 1:
            raise ValueError(f"{path}: incomplete checkpoint (its writer did not finish)")

        def text(name):
            if name not in f:
                return None
            return np.asarray(f[name][()]).tobytes().decode("utf-8", errors="replace")

        # raw_decode: checkpoints of earlier ffc versions may carry a few stray bytes after the
        # record (written into a dataset sized by another rank's text).
        metrics = text("metrics/last")
        metrics = json.JSONDecoder().raw_decode(metrics)[0] if metrics else None
        optimizer = f.get("optimizer")
        return {
            "attrs": attrs,
            "config": text("config"),
            "metrics": metrics,
            "probe": _read_group(f["probe"]) if "probe" in f else collections.OrderedDict(),
            "gallery": _read_group(f["gallery"]) if "gallery" in f else collections.OrderedDict(),
            "optimizer": {
                "momentum": (_read_group(optimizer["momentum"])
                             if optimizer is not None and "momentum" in optimizer
                             else collections.OrderedDict()),
                "started": (np.asarray(optimizer["started"][()])
                            if optimizer is not None and "started" in optimizer else None),
            },
            "head": _walk(f["head"]) if "head" in f else collections.OrderedDict(),
        }


def load_arrays(path, net="probe"):
    """Returns ({key: numpy array} in state-dict order, {attribute: value}): the backbone of a
    backbone file, or the `net` ("probe" or "gallery") of a checkpoint."""
    with h5py.File(path, "r") as f:
        attrs = _attrs(f)
        fmt = attrs.get("format")
        if fmt == CHECKPOINT_FORMAT:
            _check_version(path, attrs, CHECKPOINT_FORMAT_VERSION)
            if net not in f or not dataset_names(f[net]):
                raise ValueError(f"{path}: no {net} network in this {attrs.get('method')} "
                                 "checkpoint")
            return _read_group(f[net]), attrs
        if fmt != FORMAT:
            raise ValueError(f"{path}: not an ffc backbone or checkpoint file (format attribute "
                             f"{fmt!r}, expected {FORMAT!r} or {CHECKPOINT_FORMAT!r})")
        _check_version(path, attrs, FORMAT_VERSION)
        return _read_group(f), attrs


def load_state_dict(path, net="probe"):
    """The backbone (or a checkpoint's `net`) as a PyTorch state dict (OrderedDict of tensors,
    float32 / int64)."""
    import torch

    arrays, _ = load_arrays(path, net)
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


def _parameters(arrays):
    return sum(int(v.size) for k, v in arrays.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


def checkpoint_summary(path):
    ckpt = load_checkpoint(path)
    a = ckpt["attrs"]
    lines = [f"{path}: {a.get('format')} v{a.get('format_version')}, step {a.get('step')} "
             f"(epoch {a.get('epoch')}), method {a.get('method')}, {a.get('world_size')} rank(s), "
             f"network {a.get('network')}, embedding_size {a.get('embedding_size')}, image_size "
             f"{a.get('image_size')}, {a.get('num_classes')} classes (written by ffc "
             f"{a.get('ffc_version')}, git {a.get('git_revision')}, {a.get('saved_at')})"]
    for net in ("probe", "gallery"):
        if ckpt[net]:
            lines.append(f"  {net}: {len(ckpt[net])} tensors, {_parameters(ckpt[net])} parameters")
    if ckpt["optimizer"]["momentum"]:
        lines.append(f"  optimizer: {len(ckpt['optimizer']['momentum'])} momentum buffers")
    for name, v in ckpt["head"].items():
        lines.append(f"  head/{name}: {shape_text(v.shape)} {v.dtype}")
    if ckpt["metrics"]:
        m = ckpt["metrics"]
        lines.append(f"  last metrics: step {m.get('step')}, loss {m.get('loss')}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="HDF5 file written by ffc (backbone or checkpoint)")
    parser.add_argument("--list", action="store_true", help="print key<TAB>[shape] lines")
    parser.add_argument("--check-names", metavar="LISTING",
                        help="compare keys, order and shapes with a key<TAB>[shape] listing")
    parser.add_argument("--save-pt", metavar="OUT", help="torch.save the state dict to OUT")
    parser.add_argument("--net", default="probe", choices=("probe", "gallery"),
                        help="the network of a checkpoint (default probe)")
    args = parser.parse_args(argv)

    try:
        fmt = file_format(args.file)
        arrays, attrs = load_arrays(args.file, args.net)
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

        torch.save(load_state_dict(args.file, args.net), args.save_pt)
        print(f"ffc_h5: wrote {args.save_pt}")
    if not (args.list or args.check_names or args.save_pt):
        if fmt == CHECKPOINT_FORMAT:
            try:
                print(checkpoint_summary(args.file))
            except (OSError, ValueError) as e:
                print(f"ffc_h5: {e}", file=sys.stderr)
                return 1
        else:
            print(f"{args.file}: {attrs.get('format')} v{attrs.get('format_version')}, network "
                  f"{attrs.get('network')}, embedding_size {attrs.get('embedding_size')}, "
                  f"image_size {attrs.get('image_size')}, {len(arrays)} tensors, "
                  f"{_parameters(arrays)} parameters (written by {attrs.get('producer')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
