#!/usr/bin/python3
"""A long-tailed image set of real designs from the CJK fonts a Debian machine ships: one identity
per code point, its images renderings of that character in the fonts that draw it (docs/data.md,
"Glyph identities").

    ffc_glyphs.py build --out DIR [--classes 20000] [--heldout 2000] [--size 32] [--seed 2048]
                        [--blocks uro:0.5,a:0.2,b:0.3] [--min-images 2] [--max-images 100]
                        [--power 1.2] [--impostors 10000] [--hard-share 0.5]
                        [--longtail-per-bucket 1000] [--font-dir DIR]... [--workers N]
                        [--ffc build/bin/ffc] [--keep-folder]
        Writes DIR as `ffc pack --from-folder ... --no-flip` packs it (train.rec, train.idx,
        property, train.ffcidx, dataset.json saying "flip": false), and beside it:
          glyph_heldout.bin   insightface's verification pickle of pairs of held-out code points
          glyph_heldout.h5    the same pairs as ffc's verification set file (attribute flip = 0)
          glyph_longtail.h5   unseen images of trained identities per training-count bucket, and
                              of held-out ones (ffc's long-tail set file, docs/eval.md)
          glyphs.json         what was built: arguments, fonts and their packages, histograms
          identities.tsv      label, code point, character, block, designs, training images

    ffc_glyphs.py fonts [--font-dir DIR]... [--blocks ...]
        The font faces found, their coverage of each block, and which of them draw the same
        design (kept once).

Everything is a function of --seed and the fonts installed (their packages and versions are
recorded in glyphs.json): the same command on a machine with the same font packages writes the
same files. Needs Debian's python3-pil (FreeType), python3-fonttools, python3-numpy, python3-h5py
and, for hard impostors that share a radical, unicode-data (Unihan); `tools/bootstrap --glyphs`
installs them and the fonts. Use /usr/bin/python3.
"""

import argparse
import bz2
import collections
import json
import math
import multiprocessing
import os
import pickle
import random
import shutil
import subprocess
import sys
import time

import logging

import numpy as np
from fontTools.ttLib import TTCollection, TTFont
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bin2ffc  # noqa: E402  (the verification-set writer, beside this file)
import ffc_longtail  # noqa: E402  (the long-tail set writer)

# Unicode blocks of Han ideographs, by short name: (first, last, name).
BLOCKS = {
    "uro": (0x4E00, 0x9FFF, "CJK Unified Ideographs"),
    "a": (0x3400, 0x4DBF, "CJK Unified Ideographs Extension A"),
    "b": (0x20000, 0x2A6DF, "CJK Unified Ideographs Extension B"),
    "c": (0x2A700, 0x2B73F, "CJK Unified Ideographs Extension C"),
    "d": (0x2B740, 0x2B81F, "CJK Unified Ideographs Extension D"),
    "e": (0x2B820, 0x2CEAF, "CJK Unified Ideographs Extension E"),
    "f": (0x2CEB0, 0x2EBEF, "CJK Unified Ideographs Extension F"),
    "g": (0x30000, 0x3134F, "CJK Unified Ideographs Extension G"),
}
FONT_EXTENSIONS = (".ttf", ".ttc", ".otf", ".otc")
# Common characters whose renderings tell whether two font files draw the same design.
SIGNATURE_CHARS = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对"
    "可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公"
)
CHECK_SIZE = 24  # pixels of the renderings that detect empty and missing glyphs
SUPERSAMPLE = 4  # renderings are drawn at SUPERSAMPLE x the image size, then reduced
JPEG_QUALITY = 95
UNIHAN = "/usr/share/unicode/Unihan_IRGSources.txt.bz2"


class GlyphError(Exception):
    pass


logging.getLogger("fontTools").setLevel(logging.ERROR)  # its notes on odd name tables


def log(message):
    print(f"ffc_glyphs: {message}", flush=True)


# --- fonts -----------------------------------------------------------------------------------


class Face:
    """One face of a font file: its path, index in a collection, name and the code points of the
    chosen blocks it maps (code point -> glyph name)."""

    def __init__(self, path, index, name, cmap):
        self.path = path
        self.index = index
        self.name = name
        self.cmap = cmap
        self.id = f"{path}#{index}"

    def short(self):
        return f"{os.path.basename(self.path)}[{self.index}] {self.name}"


def in_blocks(cp, ranges):
    return any(a <= cp <= b for a, b in ranges)


def font_files(dirs):
    files = set()
    for d in dirs:
        for root, _, names in os.walk(d):
            for n in names:
                if n.lower().endswith(FONT_EXTENSIONS):
                    files.add(os.path.realpath(os.path.join(root, n)))
    return sorted(files)


FONT_LIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "glyph-fonts.txt")


def font_set_packages(font_set):
    """The packages of tools/glyph-fonts.txt in a set ("full": every line; "ci": the small set)."""
    out = []
    with open(FONT_LIST, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if font_set == "full" or fields[1] == font_set:
                out.append(fields[0])
    return out


def package_font_files(font_set):
    """The font files the font packages of a set install (dpkg -L); GlyphError naming the
    packages that are missing."""
    pkgs = [p for p in font_set_packages(font_set) if p.startswith("fonts-")]
    files, missing = set(), []
    for pkg in pkgs:
        res = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
        if res.returncode != 0:
            missing.append(pkg)
            continue
        for line in res.stdout.splitlines():
            if line.lower().endswith(FONT_EXTENSIONS) and os.path.isfile(line):
                files.add(os.path.realpath(line))
    if missing:
        flag = "--glyphs" if font_set == "full" else f"--glyphs={font_set}"
        raise GlyphError(f"font set '{font_set}': {len(missing)} package(s) not installed "
                         f"({', '.join(missing)}); run tools/bootstrap {flag} (or pass "
                         "--font-dir to use the fonts of a folder instead)")
    return sorted(files)


def discover_faces(files, ranges, min_glyphs):
    faces = []
    for path in files:
        try:
            if path.lower().endswith((".ttc", ".otc")):
                fonts = TTCollection(path, lazy=True).fonts
            else:
                fonts = [TTFont(path, lazy=True)]
        except Exception as e:  # noqa: BLE001 - a font fontTools cannot read is skipped, said
            log(f"{path}: not readable as a font ({e}); skipped")
            continue
        for index, font in enumerate(fonts):
            try:
                best = font.getBestCmap() or {}
                name = font["name"].getDebugName(4) or os.path.basename(path)
            except Exception as e:  # noqa: BLE001
                log(f"{path}[{index}]: no usable character map ({e}); skipped")
                continue
            cmap = {cp: g for cp, g in best.items() if in_blocks(cp, ranges) and g != ".notdef"}
            if len(cmap) >= min_glyphs:
                faces.append(Face(path, index, name, cmap))
    return faces


_FONT_CACHE = {}


def pil_font(face_path, index, px):
    key = (face_path, index, px)
    f = _FONT_CACHE.get(key)
    if f is None:
        if len(_FONT_CACHE) > 4096:
            _FONT_CACHE.clear()
        f = ImageFont.truetype(face_path, px, index=index)
        _FONT_CACHE[key] = f
    return f


def check_mask(face_path, index, cp):
    """The character's bitmap at CHECK_SIZE as bytes (with its size), or None when it has no ink
    or FreeType cannot draw it (a broken glyph program: "invalid opcode")."""
    try:
        m = pil_font(face_path, index, CHECK_SIZE).getmask(chr(cp))
    except OSError:
        return None
    if m.getbbox() is None:
        return None
    return (m.size, bytes(m))


_NOTDEF = {}


def notdef_mask(face_path, index):
    key = (face_path, index)
    if key not in _NOTDEF:
        # A code point no font maps (a noncharacter) renders as the face's missing glyph.
        _NOTDEF[key] = check_mask(face_path, index, 0x10FFFE)
    return _NOTDEF[key]


def signature(face, chars):
    out = {}
    for ch in chars:
        cp = ord(ch)
        if cp not in face.cmap:
            continue
        img = Image.new("L", (32, 32), 0)
        f = pil_font(face.path, face.index, 28)
        d = ImageDraw.Draw(img)
        try:
            left, top, right, bottom = d.textbbox((0, 0), ch, font=f)
            if right <= left:
                continue
            d.text((16 - (right + left) / 2, 16 - (bottom + top) / 2), ch, font=f, fill=255)
        except OSError:  # a glyph FreeType cannot draw; designs_of() leaves it out too
            continue
        a = np.asarray(img, dtype=np.float32)
        if a.max() > 0:  # an empty glyph says nothing of the design
            out[cp] = a
    return out


def design_groups(faces):
    """Faces of different files that draw the same design (the same outlines under another name,
    e.g. proportional and fixed-width variants) form one group, kept once: for each group, its
    members ordered by coverage. Faces of one collection file are never grouped here; they share
    glyphs, which designs_of() tells apart by glyph name."""
    sigs = [signature(f, SIGNATURE_CHARS) for f in faces]
    groups = []  # lists of face indices
    for i, f in enumerate(faces):
        placed = False
        for g in groups:
            j = g[0]
            if faces[j].path == f.path:
                continue
            shared = [cp for cp in sigs[i] if cp in sigs[j]]
            if len(shared) < 24:
                continue
            same = sum(1 for cp in shared if np.abs(sigs[i][cp] - sigs[j][cp]).mean() < 4.0)
            if same >= 0.9 * len(shared):
                g.append(i)
                placed = True
                break
        if not placed:
            groups.append([i])
    for g in groups:
        g.sort(key=lambda k: (-len(faces[k].cmap), faces[k].id))
    return groups


def designs_of(cp, faces, groups):
    """The distinct designs of one code point: (path, index) of the faces that draw it, one per
    group of duplicate faces and one per distinct glyph of a collection file, leaving out empty
    glyphs and glyphs that are the face's missing-glyph box."""
    out = []
    seen_glyphs = set()
    for g in groups:
        for k in g:
            face = faces[k]
            glyph = face.cmap.get(cp)
            if glyph is None:
                continue
            key = (face.path, glyph)
            if key in seen_glyphs:
                break  # the same outline of the same file under another face of it
            m = check_mask(face.path, face.index, cp)
            if m is None or m == notdef_mask(face.path, face.index):
                continue  # empty or missing here; another member of the group may draw it
            seen_glyphs.add(key)
            out.append((face.path, face.index))
            break
    return out


# --- rendering -------------------------------------------------------------------------------


def jitter_rng(seed, *parts):
    return random.Random(":".join(str(p) for p in (seed,) + parts))


def render(cp, design, size, rng, jitter=True):
    """One grey image (size x size, dark glyph on a light ground) of code point cp in a design,
    with small random scale, shift, rotation, stroke weight, blur, contrast and noise."""
    try:
        return _render(cp, design, size, rng, jitter)
    except OSError as e:
        raise GlyphError(f"U+{cp:04X} in {design[0]}[{design[1]}]: FreeType cannot draw it "
                         f"({e}); leave the font out (--font-dir) and report it") from None


def _render(cp, design, size, rng, jitter):
    path, index = design
    big = size * SUPERSAMPLE
    scale = rng.uniform(0.72, 0.92) if jitter else 0.84
    f = pil_font(path, index, max(8, int(big * scale)))
    canvas = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(canvas)
    ch = chr(cp)
    left, top, right, bottom = d.textbbox((0, 0), ch, font=f)
    if right <= left or bottom <= top:
        raise GlyphError(f"U+{cp:04X} renders empty in {path}[{index}]")
    dx = rng.uniform(-0.06, 0.06) * big if jitter else 0.0
    dy = rng.uniform(-0.06, 0.06) * big if jitter else 0.0
    d.text((big / 2 - (left + right) / 2 + dx, big / 2 - (top + bottom) / 2 + dy), ch, font=f,
           fill=255)
    if jitter:
        canvas = canvas.rotate(rng.uniform(-8.0, 8.0), resample=Image.BILINEAR)
        weight = rng.choice((-1, 0, 0, 1, 1, 2))  # erode once, keep, dilate by 1 or 2
        if weight > 0:
            canvas = canvas.filter(ImageFilter.MaxFilter(2 * weight + 1))
        elif weight < 0:
            canvas = canvas.filter(ImageFilter.MinFilter(3))
    small = canvas.resize((size, size), Image.BOX)
    if jitter:
        small = small.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.7)))
    ink = np.asarray(small, dtype=np.float32) / 255.0
    if jitter:
        ground = rng.uniform(170.0, 255.0)
        stroke = rng.uniform(0.0, 100.0)
        noise = np.random.default_rng(rng.getrandbits(64)).normal(0.0, rng.uniform(0.0, 6.0),
                                                                  ink.shape)
    else:
        ground, stroke, noise = 255.0, 0.0, 0.0
    px = ground + (stroke - ground) * ink + noise
    return Image.fromarray(np.clip(np.rint(px), 0, 255).astype(np.uint8), "L")


def jpeg(img):
    import io

    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


# The faces and their groups, set before the worker processes fork (they inherit them).
_FACES = []
_GROUPS = []


def _designs_task(cps):
    return [(cp, designs_of(cp, _FACES, _GROUPS)) for cp in cps]


def _train_task(args):
    folder, size, seed, items = args
    written = 0
    for label, cp, designs, count in items:
        d = os.path.join(folder, f"{label:07d}")
        os.makedirs(d, exist_ok=True)
        order = list(range(len(designs)))
        jitter_rng(seed, "fonts", cp).shuffle(order)
        for j in range(count):
            design = designs[order[j % len(order)]]
            img = render(cp, design, size, jitter_rng(seed, "train", cp, j))
            with open(os.path.join(d, f"{j:04d}.jpg"), "wb") as f:
                f.write(jpeg(img))
            written += 1
    return written


def _encode_task(args):
    size, seed, items = args  # items: (tag, cp, design)
    return [jpeg(render(cp, design, size, jitter_rng(seed, *tag))) for tag, cp, design in items]


def chunks(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


# --- counts, pairs ---------------------------------------------------------------------------


def count_of_rank(rank, n, lo, hi, power):
    """ffc's procedural law (docs/data.md): the share of identities with at least k images falls
    as k^-power between lo and hi; rank r gets the quantile at (r + 0.5) / n."""
    if lo == hi:
        return lo
    u = (rank + 0.5) / n
    x = (u * (lo**-power - hi**-power) + hi**-power) ** (-1.0 / power)
    return min(max(int(math.floor(x)), lo), hi)


def load_radicals(path=UNIHAN):
    """Code point -> radical number (Unihan kRSUnicode, its first value), or {} without Unihan."""
    if not os.path.isfile(path):
        return {}
    out = {}
    with bz2.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if "\tkRSUnicode\t" not in line:
                continue
            code, _, value = line.rstrip("\n").split("\t")
            radical = value.split()[0].split(".")[0].rstrip("'\"")
            out[int(code[2:], 16)] = int(radical)
    return out


def pick_two_designs(designs, rng):
    """Two different designs, of different font files where the character has such."""
    a = rng.randrange(len(designs))
    others = [k for k in range(len(designs)) if k != a and designs[k][0] != designs[a][0]]
    if not others:
        others = [k for k in range(len(designs)) if k != a] or [a]
    return designs[a], designs[rng.choice(others)]


def pair_designs(designs_a, designs_b, rng):
    """A design of each of two characters, of different font files where possible."""
    da = designs_a[rng.randrange(len(designs_a))]
    other = [d for d in designs_b if d[0] != da[0]] or designs_b
    return da, other[rng.randrange(len(other))]


def reference_vectors(cps, designs, size):
    vecs = np.zeros((len(cps), size * size), dtype=np.float32)
    for i, cp in enumerate(cps):
        img = render(cp, designs[cp][0], size, None, jitter=False)
        v = 255.0 - np.asarray(img, dtype=np.float32).reshape(-1)
        v -= v.mean()
        vecs[i] = v / max(np.linalg.norm(v), 1e-6)
    return vecs


def hard_partners(cps, designs, size, radicals, wanted):
    """Pairs of held-out characters that look alike: each character with its nearest others in
    pixels (cosine of reference renderings), among those sharing its radical where Unihan knows
    it and the radical has others, else among all. Returns up to `wanted` unordered pairs, the
    nearest first for each character, and how many share a radical."""
    vecs = reference_vectors(cps, designs, size)
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    by_radical = collections.defaultdict(list)
    for i, cp in enumerate(cps):
        if cp in radicals:
            by_radical[radicals[cp]].append(i)
    ranked = []
    for i, cp in enumerate(cps):
        pool = [j for j in by_radical.get(radicals.get(cp), []) if j != i]
        if pool:
            order = sorted(pool, key=lambda j: -sims[i, j])
            members = set(pool)
            rest = [int(j) for j in np.argsort(-sims[i])[:16] if j not in members and j != i]
            ranked.append(order + rest[: max(0, 8 - len(order))])
        else:
            ranked.append([int(j) for j in np.argsort(-sims[i])[:8]])
    pairs, seen, same_radical = [], set(), 0
    for depth in range(8):
        for i in range(len(cps)):
            if len(pairs) >= wanted:
                break
            if depth >= len(ranked[i]):
                continue
            j = int(ranked[i][depth])
            key = (min(i, j), max(i, j))
            if key in seen:
                continue
            seen.add(key)
            pairs.append((cps[i], cps[j]))
            if radicals.get(cps[i]) is not None and radicals.get(cps[i]) == radicals.get(cps[j]):
                same_radical += 1
    return pairs, same_radical


# --- the build -------------------------------------------------------------------------------


def parse_blocks(text):
    out = []
    for part in text.split(","):
        name, _, share = part.partition(":")
        name = name.strip().lower()
        if name not in BLOCKS:
            raise GlyphError(f"--blocks: unknown block '{name}' (known: {', '.join(BLOCKS)})")
        try:
            w = float(share) if share else 1.0
        except ValueError:
            raise GlyphError(f"--blocks: '{part}': the share must be a number") from None
        if w <= 0:
            raise GlyphError(f"--blocks: '{part}': the share must be positive")
        out.append((name, w))
    total = sum(w for _, w in out)
    return [(n, w / total) for n, w in out]


def split_counts(total, shares):
    """Integers summing to total, proportional to the shares (largest remainders)."""
    raw = [total * s for s in shares]
    out = [int(math.floor(r)) for r in raw]
    for k in sorted(range(len(raw)), key=lambda k: -(raw[k] - out[k]))[: total - sum(out)]:
        out[k] += 1
    return out


def font_packages(paths):
    """Debian package and version of each font file (dpkg), where dpkg knows it."""
    out = {}
    try:
        res = subprocess.run(["dpkg", "-S"] + sorted(paths), capture_output=True, text=True)
    except OSError:
        return out
    for line in res.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        out[path.strip()] = pkg.split(":")[0]
    versions = {}
    pkgs = sorted(set(out.values()))
    if pkgs:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\n"] + pkgs,
                             capture_output=True, text=True)
        for line in res.stdout.splitlines():
            p, _, v = line.partition(" ")
            versions[p] = v
    return {path: f"{pkg} {versions.get(pkg, '?')}" for path, pkg in out.items()}


def histogram(values, edges):
    """Counts per bucket [edges[i], edges[i+1]); the last bucket is open."""
    counts = [0] * len(edges)
    for v in values:
        k = max(i for i, e in enumerate(edges) if v >= e)
        counts[k] += 1
    return counts


def bucket_label(edges, i):
    if i == len(edges) - 1:
        return f">={edges[i]}"
    lo, hi = edges[i], edges[i + 1] - 1
    return str(lo) if lo == hi else f"{lo}-{hi}"


def print_histogram(title, values, edges):
    counts = histogram(values, edges)
    width = max(counts) or 1
    log(title)
    for i, c in enumerate(counts):
        bar = "#" * int(round(40 * c / width))
        print(f"  {bucket_label(edges, i):>7} {c:>8,} {100 * c / max(len(values), 1):6.2f}% {bar}")
    return {bucket_label(edges, i): c for i, c in enumerate(counts)}


def select_code_points(args, faces, groups, pool):
    """Per block: its share of the identities, drawn at random among the code points some face
    maps; held-out ones need two designs (a genuine pair is one character in two fonts)."""
    blocks = parse_blocks(args.blocks)
    n_train = split_counts(args.classes, [s for _, s in blocks])
    n_held = split_counts(args.heldout, [s for _, s in blocks])
    rng = random.Random(f"{args.seed}:select")
    designs, trained, heldout = {}, [], []
    for (name, _), want_t, want_h in zip(blocks, n_train, n_held):
        lo, hi, title = BLOCKS[name]
        cands = sorted({cp for f in faces for cp in f.cmap if lo <= cp <= hi})
        rng.shuffle(cands)
        got_t, got_h, pos = [], [], 0
        batch = int(1.1 * (want_t + want_h)) + 256
        while (len(got_t) < want_t or len(got_h) < want_h) and pos < len(cands):
            part = cands[pos : pos + batch]
            pos += len(part)
            for result in pool.map(_designs_task, list(chunks(part, 200))):
                for cp, ds in result:
                    designs[cp] = ds
                    if len(ds) >= 2 and len(got_h) < want_h:
                        got_h.append(cp)
                    elif ds and len(got_t) < want_t:
                        got_t.append(cp)
        if len(got_t) < want_t or len(got_h) < want_h:
            raise GlyphError(
                f"block {name} ({title}): the fonts found draw {len(got_t)} usable code points "
                f"for the {want_t} trained identities asked and {len(got_h)} with two designs for "
                f"the {want_h} held-out ones; install more fonts (tools/bootstrap --glyphs), "
                "lower --classes/--heldout or give this block a smaller share in --blocks"
            )
        trained += got_t
        heldout += got_h
        log(f"block {name}: {want_t:,} trained and {want_h:,} held-out code points "
            f"(looked at {pos:,} of the {len(cands):,} the fonts map)")
    return designs, trained, heldout, blocks


def block_of(cp):
    for name, (lo, hi, _) in BLOCKS.items():
        if lo <= cp <= hi:
            return name
    return "?"


def build(args):
    t0 = time.time()
    if os.path.exists(os.path.join(args.out, "train.rec")) and not args.force:
        raise GlyphError(f"{args.out} already holds a dataset; remove it or pass --force")
    ffc = args.ffc or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                   "bin", "ffc")
    if not os.access(ffc, os.X_OK):
        raise GlyphError(f"{ffc}: no ffc executable (build it, or pass --ffc PATH)")
    ranges = [BLOCKS[n][:2] for n, _ in parse_blocks(args.blocks)]
    files = selected_font_files(args)
    faces = discover_faces(files, ranges, args.min_face_glyphs)
    if not faces:
        raise GlyphError(
            f"no CJK font with {args.min_face_glyphs}+ glyphs in the chosen blocks among the "
            f"{len(files)} font files of {font_source(args)}; install the fonts with "
            "tools/bootstrap --glyphs"
        )
    groups = design_groups(faces)
    log(f"{len(faces)} font faces in {len(files)} files of {font_source(args)}; "
        f"{len(groups)} distinct designs after leaving out faces that repeat another's outlines")
    workers = args.workers or os.cpu_count() or 1
    _FACES[:] = faces
    _GROUPS[:] = groups
    os.makedirs(args.out, exist_ok=True)
    folder = os.path.join(args.out, "images.partial")
    shutil.rmtree(folder, ignore_errors=True)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        designs, trained, heldout, blocks = select_code_points(args, faces, groups, pool)
        # Counts: the largest go to the characters drawn in the most designs.
        counts = [count_of_rank(r, len(trained), args.min_images, args.max_images, args.power)
                  for r in range(len(trained))]
        rng = random.Random(f"{args.seed}:counts")
        by_designs = sorted(trained, key=lambda cp: (-len(designs[cp]), rng.random()))
        count_of = dict(zip(by_designs, counts))
        labels = list(trained)
        random.Random(f"{args.seed}:labels").shuffle(labels)
        items = [(label, cp, designs[cp], count_of[cp]) for label, cp in enumerate(labels)]
        total = sum(count_of.values())
        log(f"rendering {total:,} training images of {len(items):,} identities at "
            f"{args.size}x{args.size} on {workers} worker(s)")
        done = 0
        tasks = [(folder, args.size, args.seed, c) for c in chunks(items, 64)]
        for n in pool.imap_unordered(_train_task, tasks):
            done += n
        t_render = time.time() - t0

        # Held-out verification pairs.
        prng = random.Random(f"{args.seed}:pairs")
        genuine = []
        for k in range(args.impostors):
            cp = heldout[k % len(heldout)]
            genuine.append((cp, cp) + pick_two_designs(designs[cp], prng))
        radicals = load_radicals()
        if not radicals:
            log(f"{UNIHAN} not found (Debian's unicode-data): hard impostors are the nearest "
                "characters in pixels, without the radical")
        n_hard = int(round(args.hard_share * args.impostors))
        hard, same_radical = hard_partners(heldout, designs, args.size, radicals, n_hard)
        impostors = [(a, b) + pair_designs(designs[a], designs[b], prng) for a, b in hard]
        kinds = ["hard"] * len(impostors)
        while len(impostors) < args.impostors:
            a, b = prng.sample(heldout, 2)
            impostors.append((a, b) + pair_designs(designs[a], designs[b], prng))
            kinds.append("random")
        pairs = [(g, 1, "genuine") for g in genuine] + [
            (imp, 0, kind) for imp, kind in zip(impostors, kinds)
        ]
        prng.shuffle(pairs)
        enc = []
        for k, ((a, b, da, db), _, _) in enumerate(pairs):
            enc.append((("pair", k, 0), a, da))
            enc.append((("pair", k, 1), b, db))
        images = [img for part in pool.map(_encode_task, [(args.size, args.seed, c)
                                                           for c in chunks(enc, 500)])
                  for img in part]
        issame = [bool(s) for _, s, _ in pairs]
        bin_path = os.path.join(args.out, "glyph_heldout.bin")
        with open(bin_path + ".tmp", "wb") as f:
            pickle.dump((images, issame), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(bin_path + ".tmp", bin_path)
        bin2ffc.write_set(os.path.join(args.out, "glyph_heldout.h5"), images, issame,
                          "glyph_heldout", bin_path, flip=False)
        log(f"held-out pairs: {len(genuine):,} genuine, {len(impostors):,} impostor "
            f"({len(hard):,} hard, {same_radical:,} of them sharing a radical) over "
            f"{len(heldout):,} code points never trained")

        # The long-tail set: unseen images of trained identities by training count, and of
        # held-out ones.
        lrng = random.Random(f"{args.seed}:longtail")
        per_bucket = args.longtail_per_bucket
        buckets = ffc_longtail.BUCKETS
        population = [0] * len(buckets)
        members = [[] for _ in buckets]
        for label, cp, _, count in items:
            b = ffc_longtail.bucket_of(count)
            population[b] += 1
            if len(members[b]) < per_bucket:
                members[b].append((label, cp, count))
        members[0] = [(len(items) + i, cp, 0) for i, cp in enumerate(heldout[:per_bucket])]
        sample = [m for b in members for m in b]
        enc = []
        for label, cp, _ in sample:
            g, p = pick_two_designs(designs[cp], lrng)
            enc.append((("longtail", cp, 0), cp, g))
            enc.append((("longtail", cp, 1), cp, p))
        lt_images = [img for part in pool.map(_encode_task, [(args.size, args.seed, c)
                                                              for c in chunks(enc, 500)])
                     for img in part]
        ffc_longtail.write_set(
            os.path.join(args.out, "glyph_longtail.h5"), lt_images,
            [m[0] for m in sample], [m[2] for m in sample], population, "glyph_longtail",
            f"ffc_glyphs.py seed {args.seed}", flip=False, seed=args.seed)
        log("long-tail set: " + ", ".join(
            f"{b[0]} {len(m):,} of {population[k]:,}" if k else f"unseen {len(m):,}"
            for k, (b, m) in enumerate(zip(buckets, members))))

    # Pack.
    cmd = [ffc, "pack", "--from-folder", folder, "--out", args.out, "--no-flip"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise GlyphError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr}")
    print(res.stdout, end="")
    if not args.keep_folder:
        shutil.rmtree(folder)
    else:
        os.replace(folder, os.path.join(args.out, "images"))

    # What was built.
    with open(os.path.join(args.out, "identities.tsv"), "w", encoding="utf-8") as f:
        f.write("label\tcode_point\tcharacter\tblock\tdesigns\ttraining_images\n")
        for label, cp, ds, count in items:
            f.write(f"{label}\tU+{cp:04X}\t{chr(cp)}\t{block_of(cp)}\t{len(ds)}\t{count}\n")
    edges_images = [1, 2, 3, 4, 6, 11, 21, 51, 101]
    edges_designs = [1, 2, 3, 5, 9, 17, 33]
    hist_images = print_histogram("training images per identity:", list(count_of.values()),
                                  edges_images)
    hist_designs = print_histogram("designs (fonts) per trained identity:",
                                   [len(designs[cp]) for cp in trained], edges_designs)
    used = sorted({d for cp in trained + heldout for d in designs[cp]})
    packages = font_packages({p for p, _ in used})
    face_by_id = {(f.path, f.index): f for f in faces}
    per_face = collections.Counter(d for cp in trained + heldout for d in designs[cp])
    manifest = {
        "format": "ffc-glyph-set",
        "format_version": 1,
        "command": " ".join(sys.argv),
        "font_set": font_source(args),
        "seed": args.seed,
        "image_size": args.size,
        "identities": len(items),
        "images": total,
        "heldout_code_points": len(heldout),
        "law": {"min_images": args.min_images, "max_images": args.max_images,
                "power": args.power,
                "text": "share of identities with at least k images falls as k^-power; the "
                        "largest counts go to the characters drawn in the most designs"},
        "blocks": {n: {"share": s, "name": BLOCKS[n][2],
                       "trained": sum(1 for cp in trained if block_of(cp) == n),
                       "heldout": sum(1 for cp in heldout if block_of(cp) == n)}
                   for n, s in blocks},
        "histogram_images": hist_images,
        "histogram_designs": hist_designs,
        "verification": {"pairs": len(pairs), "genuine": len(genuine),
                         "impostor": len(impostors), "hard": len(hard),
                         "hard_same_radical": same_radical},
        "longtail": {"per_bucket": per_bucket,
                     "identities": {b[0]: len(m) for b, m in zip(buckets, members)},
                     "population": {b[0]: population[k] for k, b in enumerate(buckets)}},
        "flip": False,
        "fonts": [{"file": p, "index": i, "name": face_by_id[(p, i)].name,
                   "package": packages.get(p, "?"), "code_points": per_face[(p, i)]}
                  for p, i in used],
        "seconds": round(time.time() - t0, 1),
        "render_seconds": round(t_render, 1),
    }
    tmp = os.path.join(args.out, "glyphs.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, os.path.join(args.out, "glyphs.json"))
    log(f"wrote {args.out}: {len(items):,} identities, {total:,} images, {len(used)} designs "
        f"from {len(set(packages.values()))} package(s), in {time.time() - t0:.0f} s")
    return 0


def selected_font_files(args):
    return font_files(args.font_dir) if args.font_dir else package_font_files(args.font_set)


def font_source(args):
    return ", ".join(args.font_dir) if args.font_dir else f"font set '{args.font_set}'"


def list_fonts(args):
    ranges = [BLOCKS[n][:2] for n, _ in parse_blocks(args.blocks)]
    faces = discover_faces(selected_font_files(args), ranges, args.min_face_glyphs)
    groups = design_groups(faces)
    packages = font_packages({f.path for f in faces})
    names = [n for n, _ in parse_blocks(args.blocks)]
    print("design  " + "  ".join(f"{n:>6}" for n in names) + "  face (package)")
    for k, g in enumerate(groups):
        for rank, i in enumerate(g):
            f = faces[i]
            cov = [sum(1 for cp in f.cmap if BLOCKS[n][0] <= cp <= BLOCKS[n][1]) for n in names]
            tag = f"{k:>6}" if rank == 0 else "     ="
            print(f"{tag}  " + "  ".join(f"{c:>6}" for c in cov) +
                  f"  {f.short()} ({packages.get(f.path, '?')})")
    print(f"{len(faces)} faces, {len(groups)} designs ('=': draws the design above, kept once)")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description="a long-tailed glyph set from the installed CJK fonts")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("build", "fonts"):
        s = sub.add_parser(name)
        s.add_argument("--font-set", choices=("full", "ci"), default="full",
                       help="the fonts of the packages of tools/glyph-fonts.txt (default full)")
        s.add_argument("--font-dir", action="append", default=None,
                       help="use every font under this folder instead (repeatable)")
        s.add_argument("--blocks", default="uro:0.5,a:0.2,b:0.3",
                       help="blocks and their shares of the identities: uro, a, b, ... "
                            "(default uro:0.5,a:0.2,b:0.3)")
        s.add_argument("--min-face-glyphs", type=int, default=1000,
                       help="faces drawing fewer code points of the blocks are left out")
        if name == "build":
            s.add_argument("--out", required=True)
            s.add_argument("--classes", type=int, default=20000, help="trained identities")
            s.add_argument("--heldout", type=int, default=2000,
                           help="code points never trained, for the verification pairs")
            s.add_argument("--size", type=int, default=32, help="image side in pixels")
            s.add_argument("--seed", type=int, default=2048)
            s.add_argument("--min-images", type=int, default=2)
            s.add_argument("--max-images", type=int, default=100)
            s.add_argument("--power", type=float, default=1.2)
            s.add_argument("--impostors", type=int, default=10000,
                           help="impostor pairs (and as many genuine pairs)")
            s.add_argument("--hard-share", type=float, default=0.5,
                           help="share of the impostor pairs that look alike")
            s.add_argument("--longtail-per-bucket", type=int, default=1000)
            s.add_argument("--workers", type=int, default=0, help="processes (default: cores)")
            s.add_argument("--ffc", help="the ffc executable (default build/bin/ffc)")
            s.add_argument("--keep-folder", action="store_true",
                           help="keep the image folder (DIR/images/<label>/<j>.jpg)")
            s.add_argument("--force", action="store_true", help="replace a set already in DIR")
    args = p.parse_args(argv)
    try:
        if args.command == "fonts":
            return list_fonts(args)
        for name, lo, hi in (("--classes", 1, 10**7), ("--heldout", 2, 10**6),
                             ("--size", 8, 512), ("--min-images", 1, 10**4),
                             ("--impostors", 1, 10**7), ("--longtail-per-bucket", 1, 10**6)):
            v = getattr(args, name[2:].replace("-", "_"))
            if not lo <= v <= hi:
                raise GlyphError(f"{name} {v}: must be in [{lo}, {hi}]")
        if args.max_images < args.min_images:
            raise GlyphError("--max-images must be at least --min-images")
        if not 0.0 <= args.hard_share <= 1.0:
            raise GlyphError("--hard-share must be in [0, 1]")
        return build(args)
    except GlyphError as e:
        print(f"ffc_glyphs: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
