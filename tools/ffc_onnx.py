#!/usr/bin/python3
"""Exports an ffc network (backbone file or checkpoint) to ONNX, with insightface's conventions.

    ffc_onnx.py F.h5 --out model.onnx [--net probe|gallery] [--opset N] [--dynamic-batch]
                [--batch N]

F.h5 is a backbone file (`ffc model export`, `ffc ckpt export`, `tools/ffc_h5.py --from-pt`) or
a checkpoint (`ffc train`; --net picks the probe or the gallery network). tools/ffc_nets.py
rebuilds the network in PyTorch, loads the weights strictly and exports it in eval mode
(BatchNorm running statistics) with torch.onnx.export:

- input "input": [N, 3, S, S] float32, RGB, CHW, normalised (pixel - mean) / std with the mean
  and std the file records (input_norm, input_mean, input_std: insightface's weights 127.5 /
  127.5; files without them are ffc's, 127.5 / 128), as insightface's ONNX models;
- output "embedding": [N, D] float32, raw (not L2-normalised), the network's `features` output;
- N is --batch (default 1), or a dynamic axis "batch" with --dynamic-batch;
- --opset (default 13).

The output is written atomically (a temporary file in the same folder, then renamed). One line
says what was written and which normalisation the caller must apply. Exit status 0, 1 for a file
that cannot be read or exported, 2 for usage errors. Needs Debian's /usr/bin/python3 with
python3-torch, python3-h5py and python3-numpy.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _fail(message):
    print(f"ffc_onnx: {message}", file=sys.stderr)
    return 1


def _check_input(path):
    """None, or what is wrong with `path` as an ffc network file and how to fix it."""
    if not os.path.exists(path):
        return f"{path}: no such file; give a backbone file (ffc model export, ffc_h5.py " \
               "--from-pt) or a checkpoint (.h5)"
    if not os.path.isfile(path):
        return f"{path}: not a file"
    with open(path, "rb") as f:
        head = f.read(8)
    if head != b"\x89HDF\r\n\x1a\n":
        torch_file = head[:2] == b"PK" or head[:1] == b"\x80"  # zip or legacy pickle
        hint = (" (a PyTorch file? import it first: tools/ffc_h5.py --from-pt IN.pt --network "
                "NAME --out F.h5)" if torch_file else "; give a backbone file (ffc model "
                "export, tools/ffc_h5.py --from-pt) or a checkpoint")
        return f"{path}: not an HDF5 file{hint}"
    return None


def export(path, out, net="probe", opset=13, dynamic_batch=False, batch=1):
    """Exports; returns the summary line. Raises ValueError / OSError / RuntimeError."""
    import torch

    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import ffc_load
    import ffc_nets

    module, attrs = ffc_load.from_h5(path, net)
    norm, mean, std = ffc_nets.input_norm(attrs)
    s, d = int(attrs["image_size"]), int(attrs["embedding_size"])
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise OSError(f"cannot write {out}: folder {directory} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(out)}.tmp.{os.getpid()}")
    dummy = torch.zeros(batch, 3, s, s, dtype=torch.float32)
    axes = {"input": {0: "batch"}, "embedding": {0: "batch"}} if dynamic_batch else None
    try:
        with torch.no_grad():
            torch.onnx.export(module, dummy, tmp, input_names=["input"],
                              output_names=["embedding"], dynamic_axes=axes,
                              opset_version=opset, do_constant_folding=True,
                              training=torch.onnx.TrainingMode.EVAL)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    n = "N" if dynamic_batch else str(batch)
    source = f"{path}" + (f" ({net})" if attrs.get("format") == "ffc-checkpoint" else "")
    return (f"ffc_onnx: wrote {out}: network {attrs['network']} from {source}, D {d}, S {s}, "
            f"opset {opset}, input \"input\" [{n}, 3, {s}, {s}] float32 RGB = (pixel - {mean:g})"
            f" / {std:g} ({norm}), output \"embedding\" [{n}, {d}] (not L2-normalised)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="ffc backbone file or checkpoint (.h5)")
    parser.add_argument("--out", required=True, help="the ONNX file to write")
    parser.add_argument("--net", default="probe", choices=("probe", "gallery"),
                        help="the network of a checkpoint (default probe)")
    parser.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    parser.add_argument("--dynamic-batch", action="store_true",
                        help="make the batch axis of input and embedding dynamic")
    parser.add_argument("--batch", type=int, default=1,
                        help="batch size of the exported graph (default 1; with "
                             "--dynamic-batch only the size traced)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    try:
        import torch
    except ImportError:
        return _fail("needs PyTorch: install python3-torch (apt-get install python3-torch) and "
                     "run Debian's /usr/bin/python3")
    low, high = _opset_range(torch)
    if not low <= args.opset <= high:
        parser.error(f"--opset {args.opset}: this PyTorch ({torch.__version__}) exports opsets "
                     f"{low} to {high} (13, insightface's, is the default)")
    problem = _check_input(args.file)
    if problem:
        return _fail(problem)
    try:
        print(export(args.file, args.out, args.net, args.opset, args.dynamic_batch, args.batch))
    except OSError as e:
        return _fail(e)
    except ValueError as e:  # not an ffc network file, or tensors that do not fit
        text = str(e)
        if "no gallery network" in text:
            text += "; --net probe exports its probe network"
        elif "not an ffc" in text or "embeddings file" in text:
            text += ("; ffc_onnx.py takes a backbone file (ffc model export, ffc ckpt export, "
                     "tools/ffc_h5.py --from-pt) or a checkpoint (ffc train)")
        return _fail(text)
    except (RuntimeError, TypeError) as e:  # torch.onnx's own errors
        return _fail(f"torch.onnx.export of {args.file} failed: {str(e).splitlines()[0]}"
                     f"{'' if args.opset == 13 else '; try --opset 13'}")
    return 0


def _opset_range(torch):
    """(lowest, highest) opset this torch.onnx exports; (7, 17) where it does not say."""
    try:
        from torch.onnx import _constants

        return int(_constants.ONNX_MIN_OPSET), int(_constants.ONNX_MAX_OPSET)
    except (ImportError, AttributeError):
        return 7, 17


if __name__ == "__main__":
    sys.exit(main())
