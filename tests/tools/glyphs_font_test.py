"""tools/ffc_glyphs.py leaves out what a font maps but does not draw: a font made here (fontTools'
FontBuilder) maps U+4E00 to an empty glyph, U+4E01 to a copy of its missing-glyph box and
U+4E02, U+4E03 to real shapes; only the last two are designs of that font. A second font with
the same outlines under another file name is one design (kept once), and renderings are
deterministic and honour the jitter switch.

usage: glyphs_font_test.py TOOLS_DIR
"""

import os
import random
import sys
import tempfile

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

sys.path.insert(0, sys.argv[1])
import ffc_glyphs  # noqa: E402


def polygon(points):
    pen = TTGlyphPen(None)
    pen.moveTo(points[0])
    for p in points[1:]:
        pen.lineTo(p)
    pen.closePath()
    return pen.glyph()


def box():
    pen = TTGlyphPen(None)
    for ring in ([(100, 0), (100, 800), (600, 800), (600, 0)],
                 [(150, 50), (550, 50), (550, 750), (150, 750)]):
        pen.moveTo(ring[0])
        for p in ring[1:]:
            pen.lineTo(p)
        pen.closePath()
    return pen.glyph()


def make_font(path, family):
    fb = FontBuilder(1000, isTTF=True)
    names = [".notdef", "empty", "fake", "tri", "bar"]
    fb.setupGlyphOrder(names)
    fb.setupCharacterMap({0x4E00: "empty", 0x4E01: "fake", 0x4E02: "tri", 0x4E03: "bar"})
    fb.setupGlyf({
        ".notdef": box(),
        "empty": TTGlyphPen(None).glyph(),
        "fake": box(),
        "tri": polygon([(100, 0), (500, 800), (900, 0)]),
        "bar": polygon([(100, 300), (100, 500), (900, 500), (900, 300)]),
    })
    fb.setupHorizontalMetrics({n: (1000, 0) for n in names})
    fb.setupHorizontalHeader(ascent=880, descent=-120)
    fb.setupNameTable({"familyName": family, "styleName": "Regular"})
    fb.setupOS2()
    fb.setupPost()
    fb.save(path)


with tempfile.TemporaryDirectory() as d:
    a = os.path.join(d, "a.ttf")
    b = os.path.join(d, "b.ttf")
    make_font(a, "TestA")
    make_font(b, "TestB")
    faces = ffc_glyphs.discover_faces(ffc_glyphs.font_files([d]), [(0x4E00, 0x4E0F)], 1)
    assert len(faces) == 2, [f.short() for f in faces]
    # The signature needs common characters; these fonts have none, so group by hand as
    # design_groups would for two files with the same outlines.
    groups = [[0, 1]]
    got = {cp: ffc_glyphs.designs_of(cp, faces, groups) for cp in range(0x4E00, 0x4E04)}
    assert got[0x4E00] == [], "an empty glyph is no design"
    assert got[0x4E01] == [], "the missing-glyph box is no design"
    assert got[0x4E02] == [(faces[0].path, 0)], got[0x4E02]
    assert got[0x4E03] == [(faces[0].path, 0)], got[0x4E03]
    # Two groups: two designs.
    two = ffc_glyphs.designs_of(0x4E02, faces, [[0], [1]])
    assert len(two) == 2, two
    # Deterministic renderings; jitter off gives a centred glyph on a white ground.
    d0 = (faces[0].path, 0)
    r1 = ffc_glyphs.render(0x4E02, d0, 32, ffc_glyphs.jitter_rng(1, "x"))
    r2 = ffc_glyphs.render(0x4E02, d0, 32, ffc_glyphs.jitter_rng(1, "x"))
    r3 = ffc_glyphs.render(0x4E02, d0, 32, ffc_glyphs.jitter_rng(2, "x"))
    assert r1.tobytes() == r2.tobytes() and r1.tobytes() != r3.tobytes()
    plain = ffc_glyphs.render(0x4E02, d0, 32, None, jitter=False)
    px = list(plain.getdata())
    assert plain.size == (32, 32) and max(px) == 255 and min(px) < 64, (min(px), max(px))
    try:
        ffc_glyphs.render(0x4E00, d0, 32, random.Random(0))
        raise AssertionError("an empty glyph rendered")
    except ffc_glyphs.GlyphError as e:
        assert "renders empty" in str(e), e
    # The counts' law: non-increasing with rank, within [min, max], the largest first.
    counts = [ffc_glyphs.count_of_rank(r, 1000, 2, 100, 1.2) for r in range(1000)]
    assert counts == sorted(counts, reverse=True) and counts[-1] == 2 and counts[0] <= 100
    # Blocks and shares.
    assert ffc_glyphs.parse_blocks("uro:1,b:3") == [("uro", 0.25), ("b", 0.75)]
    assert ffc_glyphs.split_counts(10, [0.25, 0.75]) == [3, 7]  # ties: the first block
    assert sum(ffc_glyphs.split_counts(2001, [0.5, 0.2, 0.3])) == 2001
    try:
        ffc_glyphs.parse_blocks("zz:1")
        raise AssertionError("accepted an unknown block")
    except ffc_glyphs.GlyphError:
        pass
print("glyphs_font_test: ok")
