#!/usr/bin/python3
"""Charts of ffc runs as PNG files: training curves, the FFC pool, scaling benchmarks.

    ffc_plot.py metrics RUN [RUN...] [--out curves.png]
        RUN: a run's output folder or its metrics.jsonl. Loss (and FFC's ce part) against the
        step, held-out verification accuracy and TAR@FAR of the evaluations, learning rate and
        images/s. Several runs: one line each (e.g. the four methods side by side).

    ffc_plot.py pool CKPT [CKPT...] [--out pool.png] [--ffc PATH]
        CKPT: FFC checkpoints (step_*.h5, or a run's output folder for all of its checkpoints),
        or files holding the output of `ffc ckpt pool-stats --json`. Pool fill and the age of its
        entries (steps since each slot was last written) against the step; for the newest
        checkpoint, the histogram of entry ages (read with h5py) and the pooled identities by
        their number of training images.

    ffc_plot.py scaling CSV [CSV...] [--out scaling.png]
        CSV: `ffc bench scaling` results (columns method, classes, ranks, images_per_s,
        peak_rss_mib, and optionally status), or folders holding scaling.csv files (a
        slurm/sweep.sbatch array writes one per point). Images/s and peak RSS per rank against
        the number of classes N (log axes), one line per method and rank count. Rows whose status
        is not "ok" ("does not fit", "failed ...") are left out. A folder stands for every
        scaling.csv below it.

    ffc_plot.py accuracy CSV [--out accuracy-curves.png]
        CSV: `ffc bench accuracy` results (accuracy.csv: one row per run and evaluation), or the
        folder holding it. Held-out verification accuracy against the epoch and against the
        minutes of training (evaluations left out), and TAR@FAR=1e-3 against the epoch: one
        colour per configuration, one line per seed.

    ffc_plot.py sheet DATASET [--identities 16] [--images 12] [--seed 0] [--out sheet.png]
        DATASET: a dataset folder (train.rec, train.idx, property). A contact sheet: rows of
        identities drawn at random, each with up to --images of its images, labelled with its
        label and number of images (and, for a glyph set, its character and code point from
        identities.tsv), so that you can see what you train on.

Needs Debian's python3-matplotlib (and python3-numpy; python3-h5py for the pool's histogram).
Use /usr/bin/python3. Plots are drawn with the Agg backend: no display is needed.
"""

import argparse
import collections
import csv
import glob
import json
import math
import os
import shutil
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def fail(message):
    print(f"ffc_plot: {message}", file=sys.stderr)
    sys.exit(1)


# --- metrics -------------------------------------------------------------------------------------


def metrics_path(run):
    path = os.path.join(run, "metrics.jsonl") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        fail(f"{run}: no metrics.jsonl")
    return path


def run_label(path):
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.basename(folder) or path


def read_metrics(path):
    """Returns (training records by step, evaluation records), the last record of a step winning:
    a run resumed from a checkpoint logs again the steps after that checkpoint."""
    steps = {}
    evals = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{path}:{n}: not JSON ({e})")
            if rec.get("event") == "eval":
                key = (rec.get("step"), rec.get("target"), rec.get("net"))
                evals[key] = rec
            elif "step" in rec and "loss" in rec:
                steps[int(rec["step"])] = rec
    train = [steps[s] for s in sorted(steps)]
    return train, list(evals.values())


def series(records, key):
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            xs.append(r["step"])
            ys.append(v)
    return xs, ys


def plot_metrics(args):
    runs = [(run_label(p), *read_metrics(p)) for p in map(metrics_path, args.runs)]
    if not any(train or evals for _, train, evals in runs):
        fail("no training or evaluation records in " + ", ".join(args.runs))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax_loss, ax_acc, ax_lr, ax_speed = axes.flat
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, train, evals) in enumerate(runs):
        color = colors[i % len(colors)]
        name = label if len(runs) > 1 else "loss"
        ax_loss.plot(*series(train, "loss"), color=color, label=name)
        xs, ys = series(train, "ce")
        if xs:
            ax_loss.plot(xs, ys, color=color, linestyle="--", alpha=0.7,
                         label=f"{label}: ce" if len(runs) > 1 else "ce (without the fresh term)")
        ax_lr.plot(*series(train, "lr"), color=color, label=label)
        ax_speed.plot(*series(train, "images_per_s"), color=color, label=label)
        by_target = collections.defaultdict(list)
        for e in evals:
            by_target[(e.get("target", "?"), e.get("net", ""))].append(e)
        styles = ["-", "--", ":", "-."]
        for j, ((target, net), recs) in enumerate(sorted(by_target.items())):
            recs.sort(key=lambda r: r["step"])
            xs, ys = series(recs, "accuracy")
            if not xs:
                continue
            tag = f"{target} {net}".strip()
            if len(runs) > 1:
                tag = f"{label}: {tag}"
            ax_acc.plot(xs, ys, color=color, linestyle=styles[j % len(styles)], marker="o",
                        label=f"{tag} accuracy")
            tar_key = next((k for k in ("tar@far=1e-03", "tar_at_far_1e-3") if k in recs[-1]), None)
            if tar_key:
                xs, ys = series(recs, tar_key)
                ax_acc.plot(xs, ys, color=color, linestyle=styles[j % len(styles)], marker="x",
                            alpha=0.6, label=f"{tag} TAR@FAR=1e-3")
    ax_loss.set(title="training loss", xlabel="step", ylabel="loss")
    ax_acc.set(title="held-out verification (evaluations during and after training)",
               xlabel="step", ylabel="accuracy / TAR")
    if not ax_acc.lines:
        ax_acc.text(0.5, 0.5, "no evaluation records", ha="center", va="center",
                    transform=ax_acc.transAxes)
    ax_lr.set(title="learning rate", xlabel="step", ylabel="lr")
    ax_speed.set(title="throughput (all ranks)", xlabel="step", ylabel="images/s")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    fig.suptitle(", ".join(label for label, _, _ in runs))
    fig.tight_layout()
    save(fig, args.out)


# --- pool ----------------------------------------------------------------------------------------


def find_ffc(explicit):
    if explicit:
        return explicit
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.environ.get("FFC_BIN"), os.path.join(here, "..", "build", "bin", "ffc"),
                      shutil.which("ffc")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    fail("no ffc executable to run `ffc ckpt pool-stats`: pass --ffc, set FFC_BIN or put ffc "
         "on PATH (or give saved `pool-stats --json` outputs instead of checkpoints)")


def expand_checkpoints(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            folder = os.path.join(p, "checkpoints") if os.path.isdir(
                os.path.join(p, "checkpoints")) else p
            found = sorted(glob.glob(os.path.join(folder, "step_*.h5")))
            if not found:
                fail(f"{p}: no step_*.h5 checkpoints")
            out.extend(found)
        else:
            out.append(p)
    return out


def pool_stats(path, ffc):
    """The pool-stats JSON of a checkpoint (by running ffc) or of a saved JSON file."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            try:
                return json.load(f)
            except json.JSONDecodeError as e:
                fail(f"{path}: not the JSON of `ffc ckpt pool-stats --json` ({e})")
    r = subprocess.run([ffc, "ckpt", "pool-stats", "--json", path], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        fail(f"ffc ckpt pool-stats {path} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError as e:
        fail(f"ffc ckpt pool-stats {path}: output is not JSON ({e})")


def entry_ages(path):
    """Ages (step - last_step) of the filled slots of an FFC checkpoint, or None without h5py."""
    try:
        import h5py
        import numpy as np
    except ImportError:
        return None
    with h5py.File(path, "r") as f:
        if "head/pool/last_step" not in f:
            return None
        step = int(f.attrs["step"])
        labels = np.asarray(f["head/pool/labels"][()])
        last = np.asarray(f["head/pool/last_step"][()])
    return step - last[labels >= 0]


def plot_pool(args):
    paths = expand_checkpoints(args.checkpoints)
    ffc = None if all(p.endswith(".json") for p in paths) else find_ffc(args.ffc)
    stats = []
    for p in paths:
        s = pool_stats(p, ffc)
        if "pool_size" not in s:
            fail(f"{p}: not an FFC checkpoint (no pool in its pool-stats)")
        stats.append((p, s))
    stats.sort(key=lambda ps: ps[1]["step"])
    steps = [s["step"] for _, s in stats]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax_fill, ax_age, ax_hist, ax_ids = axes.flat

    ax_fill.plot(steps, [100.0 * s["fill"] for _, s in stats], marker="o")
    ax_fill.set(title=f"pool occupancy (Q = {stats[-1][1]['pool_size']} slots)", xlabel="step",
                ylabel="filled slots, %", ylim=(0, 105))

    for key, style in (("max", ":"), ("mean", "-"), ("median", "--"), ("min", "-.")):
        ys = [s.get("age_steps", {}).get(key) for _, s in stats]
        if any(y is not None for y in ys):
            ax_age.plot(steps, ys, linestyle=style, marker="o", label=key)
    ax_age.set(title="age of pool entries (steps since last written)", xlabel="step",
               ylabel="steps")

    newest_path, newest = stats[-1]
    ages = None if newest_path.endswith(".json") else entry_ages(newest_path)
    if ages is not None and len(ages):
        lo, hi = int(ages.min()), int(ages.max())
        step = max(1, (hi - lo + 1) // 50)
        ax_hist.hist(ages, bins=[lo - 0.5 + i * step for i in range((hi - lo) // step + 2)])
        ax_hist.set(title=f"entry ages at step {newest['step']}", xlabel="age, steps",
                    ylabel="slots")
    else:
        ax_hist.text(0.5, 0.5, "entry ages need the checkpoint file and h5py", ha="center",
                     va="center", transform=ax_hist.transAxes)
        ax_hist.set(title="entry ages")

    buckets = newest.get("pooled_identities_by_training_images")
    if buckets:
        ax_ids.bar(list(buckets.keys()), list(buckets.values()))
        ax_ids.set(title=f"pooled identities by training images (step {newest['step']})",
                   xlabel="images of the identity in the training set", ylabel="identities")
    else:
        per_rank = newest.get("filled_per_rank", [])
        ax_ids.bar([str(i) for i in range(len(per_rank))], per_rank)
        ax_ids.set(title=f"filled slots per rank (step {newest['step']})", xlabel="rank",
                   ylabel="slots")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.suptitle(os.path.dirname(os.path.abspath(newest_path)))
    fig.tight_layout()
    save(fig, args.out)


# --- scaling -------------------------------------------------------------------------------------


def expand_csvs(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            # The benchmark's results, not other CSVs its runs may have left below them.
            found = sorted(glob.glob(os.path.join(p, "**", "scaling.csv"), recursive=True))
            if not found:
                fail(f"{p}: no scaling.csv below it")
            out.extend(found)
        else:
            out.append(p)
    return out


def read_scaling(paths):
    rows, skipped = [], 0
    for p in paths:
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            need = {"method", "classes", "ranks", "images_per_s", "peak_rss_mib"}
            missing = need - set(reader.fieldnames or [])
            if missing:
                fail(f"{p}: no column(s) {', '.join(sorted(missing))}")
            for r in reader:
                status = (r.get("status") or "ok").strip()
                if status != "ok":
                    skipped += 1
                    continue
                try:
                    rows.append({"method": r["method"], "classes": int(float(r["classes"])),
                                 "ranks": int(float(r["ranks"])),
                                 "images_per_s": float(r["images_per_s"]),
                                 "peak_rss_mib": float(r["peak_rss_mib"])})
                except ValueError:
                    skipped += 1
    return rows, skipped


def plot_scaling(args):
    rows, skipped = read_scaling(expand_csvs(args.csv))
    if not rows:
        fail("no measured rows (status ok) in " + ", ".join(args.csv))
    lines = collections.defaultdict(dict)
    for r in rows:
        lines[(r["method"], r["ranks"])][r["classes"]] = r
    several_ranks = len({ranks for _, ranks in lines}) > 1
    order = {"fc": 0, "pfc": 1, "vfc": 2, "ffc": 3}
    fig, (ax_speed, ax_mem) = plt.subplots(1, 2, figsize=(12, 5))
    for (method, ranks), points in sorted(lines.items(),
                                          key=lambda kv: (order.get(kv[0][0], 9), kv[0])):
        ns = sorted(points)
        label = f"{method}, {ranks} rank(s)" if several_ranks else method
        ax_speed.plot(ns, [points[n]["images_per_s"] for n in ns], marker="o", label=label)
        ax_mem.plot(ns, [points[n]["peak_rss_mib"] for n in ns], marker="o", label=label)
    ax_speed.set(title="throughput", xlabel="classes N", ylabel="images/s", xscale="log",
                 yscale="log")
    ax_mem.set(title="peak RSS per rank", xlabel="classes N", ylabel="MiB", xscale="log",
               yscale="log")
    for ax in (ax_speed, ax_mem):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    if skipped:
        fig.text(0.01, 0.01, f"{skipped} point(s) not measured (does not fit / failed) left out",
                 fontsize="small")
    fig.tight_layout()
    save(fig, args.out)


def read_accuracy(path):
    if os.path.isdir(path):
        path = os.path.join(path, "accuracy.csv")
    if not os.path.exists(path):
        fail(f"{path}: no such file (ffc bench accuracy writes accuracy.csv in its --out folder)")
    runs = collections.OrderedDict()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"config", "seed", "run", "epoch", "train_s", "heldout_accuracy", "tar_far_1e-3"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            fail(f"{path}: no column(s) {', '.join(sorted(missing))}")
        for r in reader:
            def num(key):
                try:
                    return float(r[key])
                except (TypeError, ValueError):
                    return math.nan
            run = runs.setdefault(r["run"], {"config": r["config"], "seed": r["seed"],
                                             "epoch": [], "minutes": [], "accuracy": [],
                                             "tar": []})
            run["epoch"].append(num("epoch"))
            run["minutes"].append(num("train_s") / 60)
            run["accuracy"].append(num("heldout_accuracy"))
            run["tar"].append(num("tar_far_1e-3"))
    if not runs:
        fail(f"{path}: no evaluations")
    return runs


def plot_accuracy(args):
    runs = read_accuracy(args.csv)
    configs = list(collections.OrderedDict((r["config"], None) for r in runs.values()))
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(configs)}
    styles = ["-", "--", ":", "-."]
    seeds_seen = collections.defaultdict(list)
    fig, (ax_epoch, ax_time, ax_tar) = plt.subplots(1, 3, figsize=(17, 5))
    for run in runs.values():
        seeds = seeds_seen[run["config"]]
        seeds.append(run["seed"])
        style = styles[(len(seeds) - 1) % len(styles)]
        label = run["config"] if len(seeds) == 1 else None
        kw = dict(color=colours[run["config"]], linestyle=style, marker="o", markersize=3)
        ax_epoch.plot(run["epoch"], run["accuracy"], label=label, **kw)
        ax_time.plot(run["minutes"], run["accuracy"], label=label, **kw)
        ax_tar.plot(run["epoch"], run["tar"], label=label, **kw)
    ax_epoch.set(title="held-out accuracy by epoch", xlabel="epoch", ylabel="accuracy (10-fold)")
    ax_time.set(title="held-out accuracy by training time", xlabel="minutes of training",
                ylabel="accuracy (10-fold)")
    ax_tar.set(title="held-out TAR@FAR=1e-3 by epoch", xlabel="epoch", ylabel="TAR")
    for ax in (ax_epoch, ax_time, ax_tar):
        ax.grid(True, alpha=0.3)
    ax_epoch.legend(fontsize="small", title="run (line style: seed)", title_fontsize="small")
    fig.tight_layout()
    save(fig, args.out)


# --- sheet ---------------------------------------------------------------------------------------


def glyph_names(folder):
    """label -> "U+4E00 一" from a glyph set's identities.tsv, or {}."""
    path = os.path.join(folder, "identities.tsv")
    if not os.path.isfile(path):
        return {}
    out = {}
    with open(path, encoding="utf-8") as f:
        next(f, None)
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 3:
                out[int(fields[0])] = f"{fields[1]}"
    return out


def plot_sheet(args):
    import io
    import random

    import numpy as np
    from PIL import Image

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import ffc_recordio

    try:
        ds = ffc_recordio.Dataset(args.dataset)
    except ffc_recordio.RecordError as e:
        fail(str(e))
    labels = random.Random(args.seed).sample(range(ds.num_classes),
                                             min(args.identities, ds.num_classes))
    names = glyph_names(args.dataset)
    rows, cols = len(labels), args.images
    fig, axes = plt.subplots(rows, cols + 1, figsize=(0.9 * cols + 1.3, 0.9 * rows + 0.4),
                             gridspec_kw={"width_ratios": [1.3] + [1] * cols}, squeeze=False)
    for r, label in enumerate(labels):
        keys = list(ds.class_keys(label))
        info = axes[r][0]
        info.axis("off")
        text = f"{label}\n{len(keys)} image{'s' if len(keys) != 1 else ''}"
        if label in names:
            text = f"{names[label]}\n" + text
        info.text(0.0, 0.5, text, fontsize=7, va="center", ha="left")
        for c in range(cols):
            ax = axes[r][c + 1]
            ax.axis("off")
            if c < len(keys):
                _, jpeg = ds.image(keys[c])
                img = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"))
                ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ds.close()
    fig.suptitle(f"{os.path.basename(os.path.abspath(args.dataset))}: {rows} of "
                 f"{ds.num_classes:,} identities, up to {cols} images each", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.01, wspace=0.05, hspace=0.05)
    save(fig, args.out)


def save(fig, out):
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"ffc_plot: wrote {out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("metrics", help="loss, accuracy, lr and images/s from metrics.jsonl")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder or metrics.jsonl")
    p.add_argument("--out", default="metrics.png", help="PNG to write (default metrics.png)")
    p.set_defaults(func=plot_metrics)
    p = sub.add_parser("pool", help="FFC pool fill and entry age over checkpoints")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT",
                   help="step_*.h5, a run folder, or saved pool-stats --json output (.json)")
    p.add_argument("--out", default="pool.png", help="PNG to write (default pool.png)")
    p.add_argument("--ffc", help="the ffc executable (default: FFC_BIN, build/bin/ffc, PATH)")
    p.set_defaults(func=plot_pool)
    p = sub.add_parser("scaling", help="images/s and peak RSS against N from bench CSVs")
    p.add_argument("csv", nargs="+", metavar="CSV", help="scaling.csv files or folders")
    p.add_argument("--out", default="scaling.png", help="PNG to write (default scaling.png)")
    p.set_defaults(func=plot_scaling)
    p = sub.add_parser("accuracy", help="held-out accuracy by epoch and time from bench accuracy")
    p.add_argument("csv", metavar="CSV", help="accuracy.csv or the folder holding it")
    p.add_argument("--out", default="accuracy-curves.png",
                   help="PNG to write (default accuracy-curves.png)")
    p.set_defaults(func=plot_accuracy)
    p = sub.add_parser("sheet", help="a contact sheet of a dataset: identities x their images")
    p.add_argument("dataset", metavar="DATASET", help="dataset folder (train.rec, train.idx)")
    p.add_argument("--identities", type=int, default=16, help="rows (default 16)")
    p.add_argument("--images", type=int, default=12, help="images per row (default 12)")
    p.add_argument("--seed", type=int, default=0, help="which identities (default 0)")
    p.add_argument("--out", default="sheet.png", help="PNG to write (default sheet.png)")
    p.set_defaults(func=plot_sheet)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
