"""ffc's long-tail set files (docs/eval.md, "Long-tail set files"): unseen images of trained
identities, sampled per bucket of training count, and of identities never trained, for the
long-tail breakdown of a dataset on disk (the procedural identities need none).

    images        uint8 [total bytes]  encoded images (JPEG), concatenated
    offsets       int64 [2M + 1]       image i is images[offsets[i]:offsets[i + 1]]; identity k
                                       has its gallery image 2k and its probe image 2k + 1
    labels        int64 [M]            the identity's label in the training set (>= the set's
                                       classes for identities never trained)
    train_images  int64 [M]            its training images (0: never trained)
    population    int64 [5]            trained identities of the set per bucket (unseen, 1, 2-5,
                                       6-20, >20; the first is 0)
    attributes: format "ffc-longtail-set", format_version 1, name, image_size, identities, flip
    (0: mirrored images are other identities), seed, source, producer.
"""

import os

import h5py
import numpy as np

import bin2ffc

FORMAT = "ffc-longtail-set"
FORMAT_VERSION = 1
# (name, smallest training count, largest); as ffc's eval/longtail.cpp.
BUCKETS = [("unseen", 0, 0), ("1", 1, 1), ("2-5", 2, 5), ("6-20", 6, 20), (">20", 21, None)]


def bucket_of(count):
    for k, (_, lo, hi) in enumerate(BUCKETS):
        if count >= lo and (hi is None or count <= hi):
            return k
    raise ValueError(f"negative training count {count}")


def write_set(out, images, labels, train_images, population, name, source, flip=True, seed=0):
    """Writes the file atomically (a temporary name in the same folder, then a rename)."""
    if len(images) != 2 * len(labels) or len(labels) != len(train_images):
        raise ValueError("a long-tail set needs two images per identity and one count each")
    if len(population) != len(BUCKETS):
        raise ValueError(f"population needs {len(BUCKETS)} entries")
    image_size = bin2ffc.check_images(images, out)
    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            bin2ffc.write_images(f, images)
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
            f.create_dataset("train_images", data=np.asarray(train_images, dtype=np.int64))
            f.create_dataset("population", data=np.asarray(population, dtype=np.int64))
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["name"] = name
            f.attrs["image_size"] = np.int64(image_size)
            f.attrs["identities"] = np.int64(len(labels))
            f.attrs["flip"] = np.int64(1 if flip else 0)
            f.attrs["seed"] = np.int64(seed)
            f.attrs["source"] = source
            f.attrs["producer"] = "tools/ffc_longtail.py"
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
