"""Reads insightface's dataset layout (train.rec, train.idx, property), as ffc writes it and as
insightface's own sets are (docs/data.md, "RecordIO, byte for byte"): enough for looking at a set
(tools/ffc_plot.py sheet), not for training.

    ds = Dataset("DIR")
    ds.num_classes, ds.image_size
    ds.class_keys(label)   # record keys of the class's images (identity records, else a scan)
    ds.image(key)          # (label, JPEG bytes)
"""

import os
import struct

MAGIC = 0xCED7230A
HEADER = struct.Struct("<IfQQ")  # flag, label, id, id2
EXACT_LABEL_BIT = 1 << 63


class RecordError(Exception):
    pass


class Dataset:
    def __init__(self, folder):
        self.folder = folder
        self.rec_path = os.path.join(folder, "train.rec")
        prop = os.path.join(folder, "property")
        try:
            with open(prop, encoding="ascii") as f:
                n, h, w = (int(x) for x in f.readline().strip().split(","))
        except (OSError, ValueError) as e:
            raise RecordError(f"{prop}: not 'num_classes,height,width' ({e})") from None
        self.num_classes, self.image_size = n, h
        self.offsets = {}
        idx = os.path.join(folder, "train.idx")
        try:
            with open(idx, encoding="ascii") as f:
                for line in f:
                    key, _, off = line.strip().partition("\t")
                    self.offsets[int(key)] = int(off)
        except (OSError, ValueError) as e:
            raise RecordError(f"{idx}: {e}") from None
        self._rec = open(self.rec_path, "rb")
        self._ranges = None

    def close(self):
        self._rec.close()

    def record(self, key):
        """The payload of record `key`, its split parts joined."""
        if key not in self.offsets:
            raise RecordError(f"{self.rec_path}: no record {key} in train.idx")
        self._rec.seek(self.offsets[key])
        parts = []
        while True:
            head = self._rec.read(8)
            if len(head) < 8:
                raise RecordError(f"{self.rec_path}: record {key} is truncated")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise RecordError(f"{self.rec_path}: record {key}: bad magic {magic:#010x}")
            cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            data = self._rec.read(length)
            self._rec.read((4 - length % 4) % 4)
            parts.append(data)
            if cflag in (0, 3):
                break
        return struct.pack("<I", MAGIC).join(parts)

    def header(self, key):
        payload = self.record(key)
        flag, label, id1, id2 = HEADER.unpack_from(payload)
        labels = list(struct.unpack_from(f"<{flag}f", payload, HEADER.size)) if flag else []
        return flag, label, id1, id2, labels, payload[HEADER.size + 4 * flag :]

    def image(self, key):
        flag, label, _, id2, labels, jpeg = self.header(key)
        if id2 & EXACT_LABEL_BIT:
            y = id2 & ~EXACT_LABEL_BIT
        else:
            y = int(labels[0] if flag else label)
        return y, jpeg

    def class_keys(self, label):
        """The record keys of the images of class `label`."""
        if self._ranges is None:
            self._ranges = self._class_ranges()
        return self._ranges[label]

    def _class_ranges(self):
        flag, _, id1, id2, labels, _ = self.header(0) if 0 in self.offsets else (0, 0, 0, 0, [], b"")
        if flag >= 2:
            begin = int(id1) if id2 & EXACT_LABEL_BIT else int(labels[0])
            end = int(id2 & ~EXACT_LABEL_BIT) if id2 & EXACT_LABEL_BIT else int(labels[1])
            out = []
            for key in range(begin, end):
                f2, _, a, b, ls, _ = self.header(key)
                lo = int(a) if b & EXACT_LABEL_BIT else int(ls[0])
                hi = int(b & ~EXACT_LABEL_BIT) if b & EXACT_LABEL_BIT else int(ls[1])
                out.append(range(lo, hi))
            return out
        groups = [[] for _ in range(self.num_classes)]
        for key in sorted(self.offsets):
            groups[self.image(key)[0]].append(key)
        return groups
