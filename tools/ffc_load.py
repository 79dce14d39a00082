#!/usr/bin/python3
"""ffc's networks from its files as PyTorch modules: a backbone file or a checkpoint's net, read
with tools/ffc_h5.py and built with tools/ffc_nets.py. The one module that uses both (neither of
them imports the other). Needs torch, h5py and numpy.

    import ffc_load
    net, attrs = ffc_load.from_h5("r50.h5")          # ffc backbone file, eval mode, strict load
    net, attrs = ffc_load.from_h5("step_000001000.h5", net="gallery")  # a checkpoint's net
"""

import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ffc_h5  # noqa: E402
import ffc_nets  # noqa: E402


def from_h5(path, net="probe"):
    """(module in eval mode with the file's weights, loaded strictly; the file's root
    attributes) of an ffc backbone file, or of a checkpoint's `net` ("probe" or "gallery").
    Raises ValueError (not an ffc file, unknown network, tensors that do not fit) or OSError."""
    arrays, attrs = ffc_h5.load_arrays(path, net)
    state_dict = collections.OrderedDict((k, torch.from_numpy(v)) for k, v in arrays.items())
    for key in ("network", "embedding_size", "image_size"):
        if key not in attrs:
            raise ValueError(f"{path}: root attribute {key!r} is missing")
    network = str(attrs["network"])
    try:
        module = ffc_nets.build(network, int(attrs["embedding_size"]), int(attrs["image_size"]))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: the tensors do not fit network {network} "
                         f"(embedding_size {attrs['embedding_size']}, image_size "
                         f"{attrs['image_size']}): {e}") from None
    module.eval()
    return module, attrs
