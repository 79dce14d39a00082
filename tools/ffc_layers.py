#!/usr/bin/python3
"""The map of ffc's libraries, read from src/CMakeLists.txt, and the check that src/ keeps to it.

Each library (ffc_add_library ffc_X, and the `ffc` executable for src/apps) owns the folders of
its sources. A file of library L may include headers of L itself and of the libraries L uses:
its PUBLIC_DEPS and PRIVATE_DEPS, and what those export in turn (their PUBLIC_DEPS), as CMake
links them. The HDF5 library itself (hdf5.h) belongs to src/h5 alone.

    ffc_layers.py check [--src SRC]   every #include "X/..." of SRC (default: src/ beside this
                                      tool) against the map; exit 1 naming file:line for each one
                                      a library must not use
    ffc_layers.py map [--src SRC] [--write DOC]
                                      the map as a Markdown table (docs/CONTRIBUTING.md holds it
                                      between its layers:begin/end markers, and the layering test
                                      checks that it is the same); --write DOC puts it there
"""

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ONLY_IN = {"hdf5.h": "h5", "H5Cpp.h": "h5"}  # system headers one folder alone may include


def _strip_comments(text):
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def _calls(text, command):
    """The argument lists of every `command(...)` call, as lists of words."""
    out = []
    for m in re.finditer(r"\b" + command + r"\s*\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(text[m.end():i - 1].split())
    return out


def read_map(src):
    """{library: {"folders": set, "deps": set of direct ffc deps, "public": set}} from CMake."""
    path = os.path.join(src, "CMakeLists.txt")
    with open(path) as f:
        text = _strip_comments(f.read())
    libs = {}

    def lib(name):
        return libs.setdefault(name, {"folders": set(), "deps": set(), "public": set()})

    def add_sources(entry, words):
        for w in words:
            if "/" in w and w.endswith((".cpp", ".h", ".in")) and not w.startswith("$"):
                entry["folders"].add(w.split("/", 1)[0])

    for words in _calls(text, "ffc_add_library"):
        entry = lib(words[0])
        section = None
        for w in words[1:]:
            if w in ("SOURCES", "PUBLIC_DEPS", "PRIVATE_DEPS"):
                section = w
            elif section == "SOURCES":
                add_sources(entry, [w])
            elif w.startswith("ffc_"):
                entry["deps"].add(w)
                if section == "PUBLIC_DEPS":
                    entry["public"].add(w)
    for words in _calls(text, "add_executable"):
        if words[0] == "ffc":
            add_sources(lib("ffc"), words[1:])
    for words in _calls(text, "target_sources"):
        if words[0] in libs:
            add_sources(lib(words[0]), words[1:])
    for words in _calls(text, "target_link_libraries"):
        if words[0] in libs:
            public = False
            for w in words[1:]:
                if w in ("PUBLIC", "PRIVATE", "INTERFACE"):
                    public = w != "PRIVATE"
                elif w.startswith("ffc_") and w in libs or w.startswith("ffc_"):
                    lib(words[0])["deps"].add(w)
                    if public:
                        lib(words[0])["public"].add(w)
    # Object libraries that only check compilation (ffc_torch_cuda_check) own no folder.
    return {k: v for k, v in libs.items() if v["folders"] or v["deps"]}


def allowed(libs, name):
    """The libraries `name` may include: itself, its deps, and their public deps, transitively."""
    out = {name}
    todo = list(libs.get(name, {}).get("deps", ()))
    while todo:
        d = todo.pop()
        if d in out:
            continue
        out.add(d)
        todo.extend(libs.get(d, {}).get("public", ()))
    return out


def owners(libs):
    """{folder: library}; a folder shared by two libraries (apps/: ffc_app_support and the
    executable) is checked as the one that uses the other."""
    out = {}
    for name, entry in libs.items():
        for folder in entry["folders"]:
            if folder in out and name in allowed(libs, out[folder]):
                continue
            out[folder] = name
    return out


INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def check(src):
    base = os.path.dirname(os.path.abspath(src))
    libs = read_map(src)
    folder_of = owners(libs)
    problems = []
    for folder in sorted(os.listdir(src)):
        root = os.path.join(src, folder)
        if not os.path.isdir(root):
            continue
        if folder not in folder_of:
            problems.append(f"{os.path.relpath(root, base)}: a folder that no library of "
                            f"src/CMakeLists.txt builds")
            continue
        lib = folder_of[folder]
        ok = allowed(libs, lib)
        for dirpath, _, files in os.walk(root):
            for fname in sorted(files):
                if not fname.endswith((".h", ".cpp", ".in")):
                    continue
                full = os.path.join(dirpath, fname)
                path = os.path.relpath(full, base)
                with open(full, errors="replace") as f:
                    for no, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        header = m.group(2)
                        if m.group(1) == "<":
                            only = ONLY_IN.get(header)
                            if only and folder != only:
                                problems.append(f"{path}:{no}: includes <{header}>, which only "
                                                f"src/{only} may (use the {only} layer)")
                            continue
                        first = header.split("/", 1)[0]
                        if "/" not in header or first not in folder_of:
                            continue  # generated or local headers
                        target = folder_of[first]
                        if target not in ok:
                            problems.append(
                                f"{path}:{no}: {lib} includes \"{header}\" of {target}, which "
                                f"it does not use (its libraries: {', '.join(sorted(ok - {lib}))}"
                                f"); move the code, or add the dependency in src/CMakeLists.txt "
                                f"where the layering allows it")
    return problems


def markdown_map(src):
    libs = read_map(src)
    folder_of = owners(libs)
    rows = ["| library | folders | may use (directly; what those export follows) |",
            "|---|---|---|"]

    def depth(name, seen=()):
        deps = [d for d in libs[name]["deps"] if d in libs and d not in seen]
        return 1 + max((depth(d, seen + (name,)) for d in deps), default=0)

    for name in sorted(libs, key=lambda n: (depth(n), n)):
        folders = sorted(f for f, owner in folder_of.items() if owner == name)
        if not folders:
            continue
        deps = sorted(d for d in libs[name]["deps"] if d in libs)
        rows.append(f"| `{name}` | {', '.join('src/' + f for f in folders)} | "
                    f"{', '.join('`' + d + '`' for d in deps) or '-'} |")
    return "\n".join(rows) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["check", "map"])
    parser.add_argument("--src", default=os.path.join(HERE, "..", "src"))
    parser.add_argument("--write", metavar="DOC", help="map: replace the table in DOC")
    args = parser.parse_args(argv)
    src = os.path.normpath(args.src)
    if args.mode == "map":
        table = markdown_map(src)
        if not args.write:
            sys.stdout.write(table)
            return 0
        with open(args.write) as f:
            text = f.read()
        begin, end = "<!-- layers:begin -->\n", "<!-- layers:end -->"
        if begin not in text or end not in text:
            print(f"ffc_layers: {args.write} has no {begin.strip()} ... {end} markers",
                  file=sys.stderr)
            return 2
        head, rest = text.split(begin, 1)
        with open(args.write, "w") as f:
            f.write(head + begin + table + end + rest.split(end, 1)[1])
        print(f"ffc_layers: the map in {args.write} is the build files' again")
        return 0
    problems = check(src)
    for p in problems:
        print(p)
    if problems:
        print(f"ffc_layers: {len(problems)} include(s) against the layering "
              f"(docs/CONTRIBUTING.md, 'The map')")
        return 1
    print(f"ffc_layers: every include of {os.path.relpath(src)} keeps to the map")
    return 0


if __name__ == "__main__":
    sys.exit(main())
