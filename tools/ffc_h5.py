#!/usr/bin/python3
"""Reads what ffc writes to HDF5 into Python (exported backbones, training checkpoints,
embeddings), and writes ffc backbone files from PyTorch state dicts (insightface's weights).

A backbone (`ffc model export`, `ffc ckpt export`, `ffc_h5.py --from-pt`) holds one dataset per
state-dict entry at its root, named by the PyTorch key ("layer1.0.bn1.weight"), in state-dict
order, and root attributes format = "ffc-backbone", format_version, network, embedding_size,
image_size, producer (docs/models.md); files written by --from-pt also carry input_norm
("insightface" or "ffc"), input_mean and input_std (float64): the network expects RGB CHW float
input (pixel - input_mean) / input_std, 127.5 / 127.5 for insightface's weights, 127.5 / 128 for
ffc's (also what a file without these attributes expects). A checkpoint (`ffc train`,
<output>/checkpoints/step_*.h5, format = "ffc-checkpoint") holds the same state dicts in groups
probe/ and gallery/, the optimiser's momentum, the classification head (head/weight,
head/pool/..., head/vfc/...), the configuration (YAML text) and the last metrics record (JSON),
with the run's attributes at the root (docs/checkpoint-format.md). An embeddings file (`ffc
embed`, format = "ffc-embeddings") holds the datasets embeddings (float32 [n, D]) and optionally
labels (int64 [n]) and paths (UTF-8 strings [n]) at its root, with the network's attributes.

As a module (needs h5py and numpy; torch only for load_state_dict and import_pt):

    import ffc_h5
    arrays, attrs = ffc_h5.load_arrays("r50.h5")   # {key: numpy array}, state-dict order
    state_dict = ffc_h5.load_state_dict("r50.h5")  # OrderedDict of torch tensors
    model.load_state_dict(state_dict, strict=True) # e.g. insightface's get_model("r50")

    ckpt = ffc_h5.load_checkpoint("runs/x/checkpoints/step_000001000.h5")
    ckpt["attrs"]["step"], ckpt["config"], ckpt["metrics"]    # ints/strings, YAML text, dict
    ckpt["probe"], ckpt["gallery"]                            # state dicts of numpy arrays
    ckpt["optimizer"]["momentum"], ckpt["head"]["pool/rows"]  # numpy arrays
    state_dict = ffc_h5.load_state_dict("step_000001000.h5", net="gallery")  # torch tensors

    e = ffc_h5.load_embeddings("lfw_emb.h5")
    e["embeddings"], e.get("labels"), e.get("paths"), e["attrs"]  # [n, D], [n], list of str

    ffc_h5.write_backbone("r50.h5", arrays, attrs)  # ffc's backbone format, atomically

From the command line:

    ffc_h5.py FILE                        summary (format, network, sizes, tensors, parameters;
                                          for a checkpoint also step, method, ranks and groups;
                                          for embeddings n, D, whether labels and paths are
                                          present)
    ffc_h5.py FILE --list                 "key<TAB>[shape]" per line, in state-dict order (of
                                          --net for a checkpoint)
    ffc_h5.py FILE --check-names LISTING  compare keys, order and shapes with such a listing
                                          (e.g. tests/model/data/iresnet50_state_dict.txt);
                                          exit status 1 on any difference
    ffc_h5.py FILE --save-pt OUT.pt       torch.save() the state dict (needs torch)
    --net probe|gallery                   which network of a checkpoint (default probe)

    ffc_h5.py --from-pt IN.pt --network NAME --out OUT.h5 [--strip-prefix P]
              [--input-norm insightface|ffc] [--embedding-size D] [--image-size S]
        writes a PyTorch state dict saved by torch.save (e.g. insightface's backbone.pth; a
        plain dict of tensors, or one wrapped as {"state_dict": ...} or {"model": ...}) as an
        ffc backbone file of network NAME (ffc's registry: r18 ... r200, mbf, mbf_large, tiny,
        small), which `ffc eval --backbone`, tools/ffc_onnx.py and ffc's other commands read.
        Strict: the keys and shapes must be exactly those of ffc's NAME (tools/ffc_nets.py);
        otherwise one error names every missing, unexpected and misshapen key (expected and
        found shape), exit status 1, nothing written. Entries are written in ffc's state-dict
        order, float32 (num_batches_tracked int64); a file without any num_batches_tracked
        (some releases) gets 0 for each, and the output says so.
        --strip-prefix P       strip P from the keys that start with it (default: "module.",
                               DistributedDataParallel's, when every key has it; "" strips
                               nothing)
        --input-norm           the normalisation the weights were trained with (default
                               insightface: mean 127.5, std 127.5; ffc: 127.5, 128)
        --embedding-size D     default: read off the file (fc.weight / features.weight)
        --image-size S         default: read off fc.weight's input width for IResNets, else
                               the network's natural size (112; tiny 32, small 64)

Exit status 0, 1 for a file that cannot be read or written or does not fit, 2 for usage errors.
Use Debian's interpreter (/usr/bin/python3) with python3-h5py and python3-numpy; python3-torch
is optional (needed by --save-pt and --from-pt).
"""

import argparse
import collections
import collections.abc
import importlib.util
import json
import os
import sys

import h5py
import numpy as np

FORMAT = "ffc-backbone"
FORMAT_VERSION = 1
CHECKPOINT_FORMAT = "ffc-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
EMBEDDINGS_FORMAT = "ffc-embeddings"
EMBEDDINGS_FORMAT_VERSION = 1
IMPORT_PRODUCER = "tools/ffc_h5.py --from-pt"


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


def _format_attrs(f, path, what, fmt, newest):
    """The root attributes of an open file, checked to be of format `fmt` and a version this
    module reads."""
    attrs = _attrs(f)
    if attrs.get("format") != fmt:
        raise ValueError(f"{path}: not an ffc {what} (format attribute "
                         f"{attrs.get('format')!r}, expected {fmt!r})")
    _check_version(path, attrs, newest)
    return attrs


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
        attrs = _format_attrs(f, path, "checkpoint", CHECKPOINT_FORMAT,
                              CHECKPOINT_FORMAT_VERSION)
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
        if fmt == EMBEDDINGS_FORMAT:
            raise ValueError(f"{path}: an ffc embeddings file, not a backbone or checkpoint "
                             "(ffc_h5.load_embeddings reads it)")
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


def load_embeddings(path):
    """An embeddings file (`ffc embed`) as a dict: "embeddings" (float32 [n, D]), "labels"
    (int64 [n]) and "paths" (list of str) where the file has them, and "attrs" (root attributes:
    format, format_version and the network's network, embedding_size, image_size, ...)."""
    with h5py.File(path, "r") as f:
        attrs = _format_attrs(f, path, "embeddings file", EMBEDDINGS_FORMAT,
                              EMBEDDINGS_FORMAT_VERSION)
        if "embeddings" not in f:
            raise ValueError(f"{path}: no dataset 'embeddings'")
        emb = np.asarray(f["embeddings"][()], dtype=np.float32)
        if emb.ndim != 2:
            raise ValueError(f"{path}: 'embeddings' has shape {shape_text(emb.shape)}, "
                             "expected [n, D]")
        out = {"embeddings": emb, "attrs": attrs}
        if "labels" in f:
            out["labels"] = np.asarray(f["labels"][()], dtype=np.int64).reshape(-1)
        if "paths" in f:
            out["paths"] = [_text(p) for p in np.asarray(f["paths"][()]).reshape(-1)]
        for name in ("labels", "paths"):
            if name in out and len(out[name]) != emb.shape[0]:
                raise ValueError(f"{path}: {len(out[name])} {name} for {emb.shape[0]} "
                                 "embeddings")
        return out


def embeddings_summary(path):
    e = load_embeddings(path)
    a = e["attrs"]
    n, d = e["embeddings"].shape
    yes = {True: "yes", False: "no"}
    return (f"{path}: {a.get('format')} v{a.get('format_version')}, {n} embeddings of dimension "
            f"{d}, labels {yes['labels' in e]}, paths {yes['paths' in e]}, network "
            f"{a.get('network')}, embedding_size {a.get('embedding_size')}, image_size "
            f"{a.get('image_size')} (written by {a.get('producer')})")


# --- Writing ffc backbone files ----------------------------------------------------------------

# The HDF5 types ffc writes (src/h5/h5.cpp): little-endian float32, float64 and int64.
_FILE_TYPES = {np.dtype(np.float32): h5py.h5t.IEEE_F32LE,
               np.dtype(np.float64): h5py.h5t.IEEE_F64LE,
               np.dtype(np.int64): h5py.h5t.STD_I64LE}


def _utf8_string_type():
    """Variable-length, null-terminated UTF-8 strings: the type of ffc's string attributes."""
    t = h5py.h5t.C_S1.copy()
    t.set_size(h5py.h5t.VARIABLE)
    t.set_cset(h5py.h5t.CSET_UTF8)
    return t


def _write_attribute(obj_id, name, value):
    """A scalar attribute as ffc writes it: str -> UTF-8 string, int -> int64, float ->
    float64."""
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    if isinstance(value, str):
        tid = _utf8_string_type()
        data = np.array(value, dtype=h5py.string_dtype("utf-8"))
    elif isinstance(value, (bool, np.bool_)):
        raise ValueError(f"attribute {name!r}: booleans are not part of ffc's formats")
    elif isinstance(value, (int, np.integer)):
        tid, data = h5py.h5t.STD_I64LE, np.array(value, dtype=np.int64)
    elif isinstance(value, (float, np.floating)):
        tid, data = h5py.h5t.IEEE_F64LE, np.array(value, dtype=np.float64)
    else:
        raise ValueError(f"attribute {name!r}: {type(value).__name__} is not a string, an "
                         "integer or a float")
    attr = h5py.h5a.create(obj_id, name.encode("utf-8"), tid, space)
    attr.write(data)  # the memory type follows data's dtype
    attr.close()


def write_backbone(path, arrays, attrs):
    """Writes {key: numpy array} (float32, float64 or int64; in the order given) and root
    attributes {name: str | int | float} in the layout of `ffc model export`: datasets at the
    root named by their key, contiguous, the root tracking link creation order, then the
    attributes. Atomic: a temporary file in the same folder, then os.replace."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OSError(f"cannot write {path}: folder {directory} does not exist")
    for key, value in arrays.items():
        if np.asarray(value).dtype not in _FILE_TYPES:
            raise ValueError(f"tensor {key!r} is {np.asarray(value).dtype}; ffc's files hold "
                             "float32, float64 and int64 only")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp.{os.getpid()}")
    try:
        fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
        fcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
        fid = h5py.h5f.create(tmp.encode("utf-8"), h5py.h5f.ACC_TRUNC, fcpl=fcpl)
        try:
            root = h5py.h5g.open(fid, b"/")
            for key, value in arrays.items():
                data = np.asarray(value, order="C")  # 0-dim stays 0-dim
                space = (h5py.h5s.create(h5py.h5s.SCALAR) if data.ndim == 0
                         else h5py.h5s.create_simple(data.shape))
                ds = h5py.h5d.create(root, key.encode("utf-8"), _FILE_TYPES[data.dtype], space)
                ds.write(h5py.h5s.ALL, h5py.h5s.ALL, data)
                ds.close()
            for name, value in attrs.items():
                _write_attribute(root, name, value)
            root.close()
        finally:
            fid.close()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# --- Importing PyTorch state dicts (--from-pt) -------------------------------------------------


def _ffc_nets():
    """tools/ffc_nets.py, beside this file (it needs torch)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import ffc_nets

    return ffc_nets


def _torch_load(path):
    """torch.load on the CPU, refusing pickled code where this torch can (weights_only)."""
    import torch

    if not os.path.isfile(path):
        raise OSError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        raise ValueError(f"{path}: an HDF5 file, not a torch.save file (an ffc backbone "
                         "already? `ffc_h5.py FILE` summarises it)")
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise ValueError(f"{path}: not a file of torch.save (neither its zip format nor its "
                         "older pickle format)")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # a torch without weights_only (before 1.13)
            return torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many kinds here: pickle, zip, runtime errors
        text = str(e)
        if "WeightsUnpickler error" in text:  # torch's safe loader met a non-tensor object
            why = text[text.index("WeightsUnpickler error"):].splitlines()[0]
            raise ValueError(f"{path}: holds objects that torch's weights-only loader refuses "
                             f"({why}): a pickled module, or a checkpoint with other entries "
                             "(this torch's loader takes tensors, ints, strings and dicts). If "
                             "you trust the file, re-save its state dict alone: "
                             "torch.save(torch.load(IN)[KEY], OUT.pt)") from None
        why = text.splitlines()[0] if text else ""
        why = why if len(why) <= 160 else why[:160] + "..."
        raise ValueError(f"{path}: cannot be loaded as a PyTorch state dict saved by "
                         f"torch.save ({type(e).__name__}: {why})") from None


def _as_state_dict(obj, path, notes):
    """The {key: tensor} mapping inside what torch.load returned: the object itself, or the
    mapping under "state_dict" or "model"."""
    import torch

    def tensors_only(m):
        return isinstance(m, collections.abc.Mapping) and len(m) > 0 and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in m.items())

    if tensors_only(obj):
        return obj
    if isinstance(obj, collections.abc.Mapping):
        for key in ("state_dict", "model"):
            if tensors_only(obj.get(key)):
                notes.append(f"took the state dict under the key {key!r}")
                return obj[key]
        odd = [f"{k!r} ({type(v).__name__})" for k, v in obj.items()
               if not isinstance(v, torch.Tensor)][:5]
        raise ValueError(f"{path}: not a state dict of tensors (entries {', '.join(odd)}); "
                         "pass the file of model.state_dict(), or one that holds it under "
                         "'state_dict' or 'model'")
    raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state dict (a mapping of "
                     "names to tensors)")


def _strip_prefix(state_dict, prefix, path, notes):
    """Keys without `prefix` (None: "module." when every key has it)."""
    keys = list(state_dict)
    if prefix is None:
        prefix = "module." if all(k.startswith("module.") for k in keys) else ""
    if not prefix:
        return collections.OrderedDict(state_dict)
    out = collections.OrderedDict()
    stripped = 0
    for k, v in state_dict.items():
        if k.startswith(prefix):
            k = k[len(prefix):]
            stripped += 1
        if k in out:
            raise ValueError(f"{path}: key {k!r} occurs twice once the prefix {prefix!r} is "
                             "stripped")
        out[k] = v
    notes.append(f"stripped the prefix {prefix!r} from {stripped} of {len(keys)} keys")
    return out


def _import_hints(given, expected, network):
    """Lines suggesting a fix for a state dict that does not fit: a prefix to strip, the
    network the shapes show."""
    hints = []
    unexpected = [k for k in given if k not in expected]
    if unexpected and not any(k in expected for k in given):
        k = unexpected[0]
        for i in range(len(k)):
            if k[i] == "." and k[i + 1:] in expected:
                hints.append(f"hint: the keys start with {k[:i + 1]!r}: --strip-prefix "
                             f"{k[:i + 1]}")
                break
    guess = _ffc_nets().guess_network({k: tuple(v.shape) for k, v in given.items()})
    if guess is not None and guess != network:
        hints.append(f"hint: the shapes are those of ffc's {guess}: --network {guess}")
    return hints


def import_pt(in_path, network, out_path, strip_prefix=None, input_norm="insightface",
              embedding_size=None, image_size=None):
    """Writes the PyTorch state dict in `in_path` (torch.save) as an ffc backbone file of
    `network` (--from-pt). Returns the lines to print. Raises ValueError naming every missing,
    unexpected or misshapen key when the file does not fit, OSError when a file cannot be read
    or written; nothing is written then."""
    import torch

    ffc_nets = _ffc_nets()
    if input_norm not in ffc_nets.INPUT_NORMS:
        raise ValueError(f"input_norm must be one of {', '.join(ffc_nets.INPUT_NORMS)}, got "
                         f"{input_norm!r}")
    notes = []
    given = _as_state_dict(_torch_load(in_path), in_path, notes)
    given = _strip_prefix(given, strip_prefix, in_path, notes)

    shapes = {k: tuple(v.shape) for k, v in given.items()}
    found_d, found_s = ffc_nets.infer_sizes(network, shapes)
    d = embedding_size or found_d or 512
    s = image_size or found_s or ffc_nets.natural_image_size(network)
    with torch.random.fork_rng(devices=[]):  # building draws from the generator; not the caller's
        expected = ffc_nets.build(network, d, s).state_dict()

    if not any(k.endswith("num_batches_tracked") for k in given):
        count = sum(1 for k in expected if k.endswith("num_batches_tracked"))
        if count:
            for k in expected:
                if k.endswith("num_batches_tracked"):
                    given[k] = torch.zeros((), dtype=torch.int64)
            notes.append(f"the file has no num_batches_tracked entries: wrote 0 for each of "
                         f"the {count}")

    problems = []
    converted = collections.Counter()
    arrays = collections.OrderedDict()
    for k, want in expected.items():
        if k not in given:
            problems.append(f"missing: {k} (expected {shape_text(want.shape)})")
            continue
        have = given[k]
        if tuple(have.shape) != tuple(want.shape):
            problems.append(f"shape of {k}: expected {shape_text(want.shape)}, found "
                            f"{shape_text(have.shape)}")
            continue
        if want.dtype == torch.int64:
            if have.is_floating_point() or have.is_complex() or have.dtype == torch.bool:
                problems.append(f"type of {k}: expected an integer, found {have.dtype}")
                continue
        elif not have.is_floating_point():
            problems.append(f"type of {k}: expected a floating-point tensor, found {have.dtype}")
            continue
        if have.dtype != want.dtype:
            converted[str(have.dtype).replace("torch.", "")] += 1
        arrays[k] = have.detach().to("cpu", want.dtype).contiguous().numpy()
    for k, have in given.items():
        if k not in expected:
            problems.append(f"unexpected: {k} (found {shape_text(have.shape)})")
    if problems:
        raise ValueError(f"{in_path}: does not fit ffc's {network} (embedding_size {d}, "
                         f"image_size {s}), {len(problems)} problem(s); nothing written:\n  " +
                         "\n  ".join(problems + _import_hints(given, expected, network)))
    for dtype, count in sorted(converted.items()):
        notes.append(f"converted {count} {dtype} tensor(s) to ffc's type (float32 / int64)")

    mean, std = ffc_nets.INPUT_NORMS[input_norm]
    attrs = collections.OrderedDict([
        ("format", FORMAT), ("format_version", FORMAT_VERSION), ("network", network),
        ("embedding_size", int(d)), ("image_size", int(s)), ("producer", IMPORT_PRODUCER),
        ("input_norm", input_norm), ("input_mean", float(mean)), ("input_std", float(std)),
    ])
    write_backbone(out_path, arrays, attrs)
    sizes = (f"embedding_size {d}{'' if embedding_size else ' (from the file)'}, image_size "
             f"{s}{'' if image_size else (' (from fc.weight)' if found_s else ' (natural)')}")
    return [f"ffc_h5: {in_path}: {n}" for n in notes] + [
        f"ffc_h5: wrote {out_path}: network {network}, {sizes}, {len(arrays)} tensors, "
        f"{_parameters(arrays)} parameters, input_norm {input_norm} (mean {mean:g}, std "
        f"{std:g})"]


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
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="ffc_h5.py --from-pt IN.pt --network NAME --out OUT.h5 imports a PyTorch state "
               "dict; the modes are documented at the top of tools/ffc_h5.py")
    parser.add_argument("file", nargs="?",
                        help="HDF5 file written by ffc (backbone, checkpoint or embeddings)")
    parser.add_argument("--list", action="store_true", help="print key<TAB>[shape] lines")
    parser.add_argument("--check-names", metavar="LISTING",
                        help="compare keys, order and shapes with a key<TAB>[shape] listing")
    parser.add_argument("--save-pt", metavar="OUT", help="torch.save the state dict to OUT")
    parser.add_argument("--net", default="probe", choices=("probe", "gallery"),
                        help="the network of a checkpoint (default probe)")
    imp = parser.add_argument_group("import a PyTorch state dict (needs torch)")
    imp.add_argument("--from-pt", metavar="IN.pt",
                     help="state dict saved by torch.save (e.g. insightface's backbone.pth)")
    imp.add_argument("--network", help="ffc's name of its network: r18 ... r200, mbf, "
                                       "mbf_large, tiny, small")
    imp.add_argument("--out", metavar="OUT.h5", help="the ffc backbone file to write")
    imp.add_argument("--strip-prefix", metavar="P",
                     help="strip P from the keys that have it (default: 'module.' when every "
                          "key has it; '' strips nothing)")
    imp.add_argument("--input-norm", choices=("insightface", "ffc"), default="insightface",
                     help="normalisation the weights expect: insightface (pixel - 127.5) / "
                          "127.5 (default) or ffc (pixel - 127.5) / 128")
    imp.add_argument("--embedding-size", type=int, metavar="D",
                     help="default: read off the file")
    imp.add_argument("--image-size", type=int, metavar="S",
                     help="default: read off fc.weight (IResNets), else the network's own")
    args = parser.parse_args(argv)

    if args.from_pt is not None:
        return _main_import(parser, args)
    if args.file is None:
        parser.error("give an HDF5 file, or --from-pt IN.pt --network NAME --out OUT.h5")
    for flag, value in (("--network", args.network), ("--out", args.out),
                        ("--strip-prefix", args.strip_prefix),
                        ("--embedding-size", args.embedding_size),
                        ("--image-size", args.image_size)):
        if value is not None:
            parser.error(f"{flag} goes with --from-pt")

    try:
        fmt = file_format(args.file)
        if fmt == EMBEDDINGS_FORMAT:
            if args.list or args.check_names or args.save_pt:
                raise ValueError(f"{args.file}: an embeddings file; --list, --check-names and "
                                 "--save-pt apply to backbones and checkpoints")
            print(embeddings_summary(args.file))
            return 0
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
            norm = ""
            if "input_norm" in attrs:
                norm = (f", input_norm {attrs['input_norm']} (mean {attrs.get('input_mean')}, "
                        f"std {attrs.get('input_std')})")
            print(f"{args.file}: {attrs.get('format')} v{attrs.get('format_version')}, network "
                  f"{attrs.get('network')}, embedding_size {attrs.get('embedding_size')}, "
                  f"image_size {attrs.get('image_size')}, {len(arrays)} tensors, "
                  f"{_parameters(arrays)} parameters{norm} (written by {attrs.get('producer')})")
    return 0


def _main_import(parser, args):
    """--from-pt: checks the arguments (exit status 2), imports (1 on failure)."""
    if args.file is not None:
        parser.error("--from-pt takes no HDF5 file argument (the output is --out)")
    if args.network is None or args.out is None:
        parser.error("--from-pt needs --network NAME and --out OUT.h5")
    if args.list or args.check_names or args.save_pt:
        parser.error("--list, --check-names and --save-pt do not go with --from-pt")
    if importlib.util.find_spec("torch") is None:
        print("ffc_h5: --from-pt needs PyTorch: apt-get install python3-torch (Debian), then "
              "run /usr/bin/python3", file=sys.stderr)
        return 1
    ffc_nets = _ffc_nets()
    if args.network not in ffc_nets.names():
        parser.error(f"unknown network {args.network!r}; known networks: "
                     f"{', '.join(ffc_nets.names())}")
    try:
        ffc_nets.check_sizes(args.network, args.embedding_size or 512,
                             args.image_size or ffc_nets.natural_image_size(args.network))
    except ValueError as e:
        parser.error(str(e))
    try:
        lines = import_pt(args.from_pt, args.network, args.out, args.strip_prefix,
                          args.input_norm, args.embedding_size, args.image_size)
    except (OSError, ValueError) as e:
        print(f"ffc_h5: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
