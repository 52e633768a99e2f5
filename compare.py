"""Compare training runs with the published numbers in references.csv.

    python compare.py [RUN_DIR ...] [--plot out.png] [--reference ID]   (no RUN_DIR: every run under runs/)
    kit-compare RUN_DIR [RUN_DIR ...] [--plot out.png] [--reference ID]

A run folder is what the training loop writes: config.json (model, preset,
dataset, dataset_label, data_verified, hparams, epochs_planned, ...) and
metrics.jsonl (one JSON object per evaluated epoch, test_acc in 0..1 and
test_loss in nats).  For every run this prints the reference row it matches
(same model, same architecture keys, same dataset, same preset), the reference
accuracy (100 - published test error, or the published accuracy), the
difference in points and a verdict.

Runs only get a within/below/above verdict when they are comparable: same
preset as the reference row (a run of the original repositories' code is never
judged against a paper number), same dataset, the same values of the
architecture columns of references.csv (depth, width, cardinality, growth
rate, ...), no flag that changed the preset's network or recipe (config.json's
"overrides", e.g. a shorter --epochs or --widen=false), trained and evaluated on
the whole dataset, and all planned epochs done.  Otherwise the verdict says
"not comparable" and why.

Runs that repeat one experiment (every setting equal but the seed, the paths and
other bookkeeping) are summarised below the table: mean +/- standard deviation of
the final and best accuracy over the finished runs, and, where all of them are
comparable with one row, the mean's verdict.

--plot writes a PNG (drawn with matplotlib) of test accuracy and test loss per
epoch, with each run's reference accuracy as a dashed horizontal line.
"""
import argparse
import csv
import io
import json
import math
import os
import sys
import textwrap

import settings

PROG = "kit-compare"

# Where the source prints no spread (no std over runs), a run within this many
# points of the reference accuracy is called "within the paper's spread".  The
# spreads that are printed (ResNet-110: 0.16; ResNet-1001: 0.14, 0.20 and 0.22)
# are one standard deviation over 5 runs; 0.5 points is about three of those.
DEFAULT_TOLERANCE_POINTS = 0.5

REFERENCES_FILE = "references.csv"

# The name a dataset_label must have for the data to count as the official archive
# (the labels trainer.load_data gives verified data).
OFFICIAL_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST"}

# Architecture keys compared per model (reference column -> meaning in the run's hparams).
# ResNet's unit: original (He et al. 2015) or preact (He et al. 2016), the run's --unit.
ARCH_KEYS = {
    "ResNet": ("num_layers", "block", "unit", "shortcut", "se"),
    "ResNeXt": ("num_layers", "cardinality", "depth"),
    "SE_ResNeXt": ("num_layers", "cardinality", "depth"),
    "Densenet": ("depth", "growth_k", "bc"),
}
# Keys a run must record for its model (others are skipped when the run does not record them).
REQUIRED_KEYS = {
    "ResNet": ("num_layers",),
    "ResNeXt": ("cardinality", "depth"),
    "SE_ResNeXt": ("cardinality", "depth"),
    "Densenet": ("depth", "growth_k"),
}
INT_KEYS = ("num_layers", "cardinality", "depth", "growth_k")
# Switches that reproduce the original repositories' harness bugs (settings.py's HARNESS group).
HARNESS_BUG_FLAGS = tuple(s.name for s in settings.SETTINGS if s.group == settings.HARNESS)
# Settings that change neither the network nor how it learns (where things are, how the run is
# logged, which random draw): runs whose other settings, model, preset and data are all the same
# repeat one experiment, and are summarised together below the table.
BOOKKEEPING = settings.BOOKKEEPING
# Settings the kit gained after runs had been written, with the value those runs trained with:
# a run that records none repeats a run that records this value.
ADDED_SETTINGS = settings.ADDED_SETTINGS

BOOL_KEYS = ("shortcut", "se", "bc")

# The --plot figure: its size in inches (at report.DPI, 1000 x 700 pixels), and the share of its
# width the two panels take; the legend (run names, reference rows) fills the rest on the right.
PLOT_INCHES = (10.0, 7.0)
PANELS_RIGHT = 0.68
LEGEND_CHARS = 32  # longer run names and reference ids wrap (at a '-' where they can) to stay in the figure


class CompareError(Exception):
    """A problem with the input: reported as one line on stderr, exit code 2."""


# ----------------------------------------------------------------------------- helpers

def _truthy(value):
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    return str(value).strip().lower() in ("1", "true", "yes", "y", "on", "t")


def _as_int(value):
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _as_float(value):
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt_pct(value):
    return "n/a" if value is None else "%.2f" % value


def _fmt_diff(value):
    return "n/a" if value is None else "%+.2f" % value


def _emit(text, stream=None):
    stream = stream or sys.stdout
    try:
        stream.write(text + "\n")
    except UnicodeEncodeError:
        enc = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(enc, "replace").decode(enc) + "\n")


# ----------------------------------------------------------------------------- references

def default_references_path():
    """references.csv next to this module (source tree, editable install), else the installed copy."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(here, REFERENCES_FILE),
                  os.path.join(sys.prefix, "share", "tf1-residual-kit", REFERENCES_FILE)]
    for path in candidates:
        if os.path.isfile(path):
            return path
    return candidates[0]


def load_references(path=None):
    """Read references.csv into a list of dicts with parsed numbers and keys."""
    path = path or default_references_path()
    if not os.path.isfile(path):
        raise CompareError("%s not found: reinstall the kit or pass --references PATH" % path)
    try:
        with io.open(path, "r", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError, csv.Error) as e:  # unreadable, not UTF-8, not CSV
        raise CompareError("cannot read %s (%s): pass a references.csv in the kit's format" % (path, e))
    out = []
    for n, row in enumerate(rows, start=2):
        row = dict((k, (v or "").strip()) for k, v in row.items() if k is not None)
        if not row.get("id"):
            raise CompareError("%s line %d: row without an id" % (path, n))
        row["_line"] = n
        row["_value"] = _as_float(row.get("value"))
        row["_mean"] = _as_float(row.get("mean"))
        row["_spread"] = _as_float(row.get("spread"))
        if row["_value"] is None:
            raise CompareError("%s line %d (%s): value is not a number" % (path, n, row["id"]))
        out.append(row)
    return out


def reference_accuracy(row):
    """Reference test accuracy in %: the mean where one is printed, else the headline value."""
    value = row["_mean"] if row["_mean"] is not None else row["_value"]
    if row.get("metric") == "test_error_pct":
        return round(100.0 - value, 4)
    return value


def row_arch(row):
    keys = ARCH_KEYS.get(row["model"], ())
    arch = {}
    for key in keys:
        raw = row.get(key, "")
        if key in BOOL_KEYS:
            if key == "se":
                arch[key] = raw.lower() == "yes"          # a ResNet row without se is a plain ResNet
            elif raw:
                arch[key] = raw.lower() == "yes"
        elif key in INT_KEYS:
            if raw:
                arch[key] = _as_int(raw)
        elif raw:
            arch[key] = raw
    return arch


# ----------------------------------------------------------------------------- runs

def load_run(run_dir):
    """Read one run folder; raise CompareError with a one-line message if it is not one."""
    name = os.path.basename(os.path.normpath(run_dir)) or run_dir
    if not os.path.isdir(run_dir):
        raise CompareError("%s: no such folder: pass a run folder written by the training loop "
                           "(the --run_dir of a training run)" % run_dir)
    cfg_path = os.path.join(run_dir, "config.json")
    met_path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(cfg_path):
        raise CompareError("%s: config.json not found: this is not a run folder; pass the folder a training "
                           "run wrote (its --run_dir), which holds config.json and metrics.jsonl" % run_dir)
    if not os.path.isfile(met_path):
        raise CompareError("%s: metrics.jsonl not found: the run has not written any metrics; pass the folder "
                           "a training run wrote (its --run_dir), or wait until its first epoch is evaluated"
                           % run_dir)
    try:
        with io.open(cfg_path, "r", encoding="utf-8") as f:
            config = json.load(f)
    except ValueError as e:  # UnicodeDecodeError included
        raise CompareError("%s: config.json is not valid JSON (%s): rewrite it or rerun training" % (run_dir, e))
    except OSError as e:
        raise CompareError("%s: cannot read config.json (%s): fix its permissions" % (run_dir, e.strerror or e))
    if not isinstance(config, dict) or not config.get("model"):
        raise CompareError("%s: config.json has no \"model\" field: it was not written by the training loop"
                           % run_dir)
    try:
        with io.open(met_path, "r", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except ValueError:
        raise CompareError("%s: metrics.jsonl is not UTF-8 text: the file is damaged" % run_dir)
    except OSError as e:
        raise CompareError("%s: cannot read metrics.jsonl (%s): fix its permissions" % (run_dir, e.strerror or e))
    records = []
    nonblank = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    for k, (lineno, line) in enumerate(nonblank):
        try:
            rec = json.loads(line)
        except ValueError:
            if k == len(nonblank) - 1:
                break          # a line still being written by a running training: ignore it
            raise CompareError("%s: metrics.jsonl line %d is not valid JSON: the file is damaged"
                               % (run_dir, lineno))
        if isinstance(rec, dict) and rec.get("epoch") is not None:
            records.append(rec)
    records.sort(key=lambda r: _as_float(r.get("epoch")) or 0)

    hparams = config.get("hparams") or {}
    if not isinstance(hparams, dict):
        hparams = {}
    run = {
        "dir": run_dir,
        "name": name,
        "config": config,
        "hparams": hparams,
        "model": str(config.get("model")),
        "preset": str(config.get("preset") or "?"),
        "dataset": str(config.get("dataset") or "?"),
        "dataset_label": config.get("dataset_label"),
        "records": records,
    }
    run["planned"] = _as_int(config.get("epochs_planned"))
    run["data_verified"] = config.get("data_verified")
    run["done"] = _as_int(records[-1].get("epoch")) if records else 0

    accs = [_pct(r.get("test_acc")) for r in records]
    accs = [a for a in accs if a is not None]
    run["final_acc"] = round(accs[-1], 2) if accs else None
    run["best_acc"] = round(max(accs), 2) if accs else None
    return run


def _pct(value):
    v = _as_float(value)
    if v is None:
        return None
    return v * 100.0


# The hparams run_arch reads: flags that pick which network of a paper's table a run is.
ARCH_HPARAMS = {"ResNet": ("num_layers", "shortcut_connections", "unit"),
                "ResNeXt": ("cardinality", "depth", "blocks"), "SE_ResNeXt": ("cardinality", "depth", "blocks"),
                "Densenet": ("depth", "growth_k", "bc")}


def run_arch(run):
    """Architecture keys of a run, in the vocabulary of references.csv."""
    h = run["hparams"]
    model = run["model"]
    arch = {}
    if model == "ResNet":
        arch["num_layers"] = _as_int(h.get("num_layers"))
        arch["shortcut"] = _truthy(h.get("shortcut_connections", True))
        arch["block"] = "basic"                 # ResNet.py builds basic units only,
        arch["se"] = False                      # and no SE: the bottleneck and SE rows never match
        arch["unit"] = h.get("unit") or None    # runs recorded before --unit existed: not compared
    elif model in ("ResNeXt", "SE_ResNeXt"):
        arch["cardinality"] = _as_int(h.get("cardinality"))
        arch["depth"] = _as_int(h.get("depth"))
        blocks = _as_int(h.get("blocks"))
        arch["num_layers"] = 9 * blocks + 2 if blocks else None   # ResNeXt-29 = 3 stages x 3 blocks x 3 + 2
    elif model == "Densenet":
        arch["depth"] = densenet_depth(h)
        arch["growth_k"] = _as_int(h.get("growth_k"))
        arch["bc"] = _truthy(h.get("bc", False))
    return arch


def densenet_depth(h):
    """L of a DenseNet run as Huang et al. count it: its convolutions plus the classifier.

    Densenet.py takes either --layers (a count per dense block) or --depth (the paper's three
    equal blocks; 0 stands for 40, or 100 with --bc), so config.json's "depth" alone is 0 for
    most runs. A bottleneck layer holds two convs and a plain layer one; add the first conv, a
    transition between each two blocks and the fully connected layer. Hence L=40 is three
    blocks of 12 plain layers, and the original CIFAR preset (6, 12, 48, 32 bottleneck layers)
    is DenseNet-201. None where the run records neither.
    """
    layers = h.get("layers")
    if layers:
        try:
            blocks = [int(n) for n in str(layers).split(",")]
        except ValueError:
            return None
        return (2 if _truthy(h.get("bc", False)) else 1) * sum(blocks) + len(blocks) + 1
    depth = _as_int(h.get("depth"))
    if depth == 0:
        return 100 if _truthy(h.get("bc", False)) else 40
    return depth


def describe_arch(model, arch):
    """A short human name: ResNet-20, ResNeXt 8x64d, DenseNet-BC L=100 k=12 ..."""
    g = arch.get
    if model == "ResNet":
        name = "ResNet-%s" % (g("num_layers") if g("num_layers") is not None else "?")
        if g("se"):
            name = "SE-" + name
        if g("unit") == "preact":
            name += " pre-act"
        if g("block") == "bottleneck":
            name += " bottleneck"
        if g("shortcut") is False:
            name += " plain"
        return name
    if model in ("ResNeXt", "SE_ResNeXt"):
        prefix = "SE-ResNeXt" if model == "SE_ResNeXt" else "ResNeXt"
        layers = "-%d" % g("num_layers") if g("num_layers") else ""
        return "%s%s %sx%sd" % (prefix, layers, g("cardinality") or "?", g("depth") or "?")
    if model == "Densenet":
        return "DenseNet%s L=%s k=%s" % ("-BC" if g("bc") else "", g("depth") or "?", g("growth_k") or "?")
    return model


def _fmt_key(key, value):
    if isinstance(value, bool):
        return "%s=%s" % (key, "yes" if value else "no")
    return "%s=%s" % (key, value)


def arch_differences(run, row):
    """Architecture keys on which run and reference row disagree (empty list: same architecture)."""
    model = run["model"]
    mine = run_arch(run)
    theirs = row_arch(row)
    diffs = []
    for key in ARCH_KEYS.get(model, ()):
        if key not in theirs or theirs[key] is None:
            continue
        have = mine.get(key)
        if have is None:
            if key in REQUIRED_KEYS.get(model, ()):
                diffs.append("run records no %s, reference %s" % (key, _fmt_key(key, theirs[key])))
            continue
        if have != theirs[key]:
            diffs.append("run %s, reference %s" % (_fmt_key(key, have), _fmt_key(key, theirs[key])))
    return diffs


# ----------------------------------------------------------------------------- matching

def _problems(run, row, check_model=False):
    """Reasons why row is not the reference for run (empty: it is)."""
    reasons = []
    if check_model and row["model"] != run["model"]:
        reasons.append("model differs: run %s, reference %s" % (run["model"], row["model"]))
        return reasons
    diffs = arch_differences(run, row)
    if diffs:
        reasons.append("architecture differs: " + ", ".join(diffs))
    if row.get("dataset") != run["dataset"]:
        reasons.append("dataset differs: run %s, reference %s" % (run["dataset"], row.get("dataset")))
    if row.get("preset") != run["preset"]:
        if run["preset"] == "original" and row.get("preset") == "paper":
            reasons.append("preset differs: the run uses the original repository's recipe (preset original), "
                           "%s is a paper result (preset paper); train with --preset paper to compare with it"
                           % row["id"])
        else:
            reasons.append("preset differs: run preset %s, reference preset %s" % (run["preset"], row.get("preset")))
    return reasons


def _wants_augmented(run):
    # The kit never augments MNIST; on CIFAR --augment (pad 4, random crop, flip) is on by default.
    return run["dataset"] != "mnist" and _truthy(run["hparams"].get("augment", True))


def _preference(run, row):
    """Sort key among equally good rows: augmentation as the run, then the row marked default, then file order."""
    aug = (row.get("augmented") == "yes") == _wants_augmented(run)
    return (0 if aug else 1, 0 if row.get("default", "yes") != "no" else 1, row["_line"])


def match_reference(run, refs, forced_id=None):
    """Return (row or None, reasons it is not comparable, ids of other fully matching rows)."""
    if forced_id:
        byid = dict((r["id"], r) for r in refs)
        row = byid[forced_id]
        return row, _problems(run, row, check_model=True), []
    same_model = [r for r in refs if r["model"] == run["model"]]
    scored = [(r, _problems(run, r)) for r in same_model]
    full = sorted([r for r, p in scored if not p], key=lambda r: _preference(run, r))
    if full:
        best = full[0]
        others = [r["id"] for r in full[1:] if _preference(run, r)[0] == _preference(run, best)[0]]
        return best, [], others
    # No exact match: show the nearest row and say what differs.
    for wanted in (("preset",), ("dataset",), ("dataset", "preset")):
        near = [(r, p) for r, p in scored
                if p and all(any(x.startswith(w + " differs") for w in wanted) for x in p)]
        if near:
            near.sort(key=lambda rp: _preference(run, rp[0]))
            return near[0][0], near[0][1], []
    what = "%s on %s" % (describe_arch(run["model"], run_arch(run)), run["dataset"])
    reason = "no reference row for %s (preset %s)" % (what, run["preset"])
    if run["model"] == "ResNet" and run_arch(run).get("shortcut") is False:
        reason += ": the papers show plain nets only as training curves (He et al. 2015, Figure 6)"
    elif run["model"] == "SE_ResNeXt":
        reason += ": Hu et al. print no SE-ResNeXt CIFAR number (see the se-resnet rows for SE-ResNet)"
    return None, [reason], []


def assess(run, row, reasons):
    """Verdict for one run against its row."""
    result = {"row": row, "ref_acc": None, "diff": None, "caveats": [], "compared": "final"}
    if row is not None:
        result["ref_acc"] = reference_accuracy(row)
    planned, done = run["planned"], run["done"]
    reasons = list(reasons)
    if planned is None:
        reasons.append("config.json records no epochs_planned, so whether the run finished is unknown")
    elif done < planned:
        reasons.append("unfinished: %d of %d epochs" % (done, planned))
    elif run["final_acc"] is None:
        reasons.append("no evaluated epoch in metrics.jsonl yet")
    h = run["hparams"]
    if _as_int(h.get("train_subset")):
        reasons.append("trained on only %d training images (--train_subset)" % _as_int(h.get("train_subset")))
    if _as_int(h.get("test_subset")):
        reasons.append("evaluated on only %d test images (--test_subset)" % _as_int(h.get("test_subset")))
    overrides = run["config"].get("overrides")
    if overrides:  # flags that chose the architecture chose the reference row: they change no recipe
        overrides = dict((k, v) for k, v in overrides.items() if k not in ARCH_HPARAMS.get(run["model"], ()))
    if overrides:
        reasons.append("the %s preset was changed by %s" % (run["preset"], ", ".join(
            "--%s %s" % (k, v) for k, v in sorted(overrides.items()))))
    elif overrides is None:
        result["caveats"].append("the run does not record which flags changed its preset (written before "
                                 "config.json had \"overrides\")")
    bugs = [k for k in HARNESS_BUG_FLAGS if _truthy(h.get(k))]
    if bugs and run["preset"] != "original":
        result["caveats"].append("the run enables the original harness's bugs: " + ", ".join(bugs))

    official = OFFICIAL_LABELS.get(run["dataset"])
    label = run["dataset_label"]
    if not label:
        result["caveats"].append("the run does not record what data it used (no dataset_label)")
    elif "jpeg" in str(label).lower() or "jpg" in str(label).lower():
        result["caveats"].append("data is %s: expect a few points lower" % label)
    elif official and (str(label).strip() != official or run.get("data_verified") is False):
        result["caveats"].append("data is %s, not the checksum-verified official %s archive" % (label, official))

    if row is not None:
        if row.get("value_kind") == "read off a figure":
            result["caveats"].append("reference read off a figure (approximate)")
        if row.get("augmented") == "yes" and not _wants_augmented(run):
            result["caveats"].append("reference is with augmentation, the run is not")
        if row.get("augmented") == "no" and _wants_augmented(run) and row.get("dataset") != "mnist":
            result["caveats"].append("reference is without augmentation (with dropout), the run augments")

    if reasons:
        result["verdict"] = "not comparable: " + "; ".join(reasons)
        return result

    # Compare the final epoch, except where the source reports its highest accuracy.
    acc = run["final_acc"]
    if row.get("value_kind") == "best" and row["_mean"] is None:
        acc = run["best_acc"]
        result["compared"] = "best"
        result["caveats"].append("the source reports its highest test accuracy: compared with the run's best epoch")
    diff = round(acc - result["ref_acc"], 2)
    result["diff"] = diff
    word = "paper's" if row.get("preset") == "paper" else "source's"
    tol = tolerance(row)
    if row["_spread"] is not None:
        how = "+/-%.2f points" % tol
    else:
        how = "default tolerance +/-%.2f points: no spread printed" % tol
    where = side(diff, tol)
    if where == "within":
        result["verdict"] = "within the %s spread (%s)" % (word, how)
    else:
        result["verdict"] = "%s the reference by %.2f points (%s)" % (where, abs(diff), how)
    return result


def tolerance(row):
    """How many points a result may miss the row's accuracy by: its printed spread, else the default."""
    return row["_spread"] if row["_spread"] is not None else DEFAULT_TOLERANCE_POINTS


def side(diff, tol):
    """"within", "below" or "above" the reference, for a difference of `diff` points."""
    if abs(diff) <= tol + 1e-9:
        return "within"
    return "below" if diff < 0 else "above"


# ----------------------------------------------------------------------------- output

def format_table(headers, rows, right=()):
    widths = [len(h) for h in headers]
    for r in rows:
        for i, cell in enumerate(r):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for r in [headers] + rows:
        cells = []
        for i, cell in enumerate(r):
            last = i == len(r) - 1
            if i in right:
                cells.append(cell.rjust(widths[i]))
            else:
                cells.append(cell if last else cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return lines


def describe_row(row):
    """One line about a reference row: what it is, the number, where it is printed."""
    metric = {"test_error_pct": "test error %", "test_acc_pct": "test accuracy %"}.get(row.get("metric"),
                                                                                      row.get("metric"))
    number = row.get("value", "")
    if row.get("mean"):
        number += ", mean %s" % row["mean"]
    if row.get("spread"):
        number += " +/- %s" % row["spread"]
    kind = row.get("value_kind")
    runs = _as_int(row.get("runs"))
    if kind == "single" or (kind and runs == 1):
        number += " (single run)"
    elif kind and kind != "unstated":
        number += " (%s of %d runs)" % (kind, runs) if runs else " (%s)" % kind
    return "%s = %s, %s %s; printed as \"%s\"; %s, %s" % (
        row["id"], row.get("variant", ""), metric, number, row.get("as_printed", ""),
        row.get("source", ""), row.get("where", ""))


def report(runs, results):
    headers = ["run", "model", "preset", "data", "epochs", "final %", "best %", "reference", "ref %", "diff",
               "verdict"]
    body = []
    for run, res in zip(runs, results):
        row = res["row"]
        verdict = res["verdict"]
        if res["caveats"]:
            verdict += "; caveat: " + "; ".join(res["caveats"])
        epochs = "%d/%s" % (run["done"], run["planned"] if run["planned"] is not None else "?")
        body.append([run["name"], describe_arch(run["model"], run_arch(run)), run["preset"],
                     str(run["dataset_label"] or run["dataset"]), epochs,
                     _fmt_pct(run["final_acc"]), _fmt_pct(run["best_acc"]),
                     row["id"] if row else "none", _fmt_pct(res["ref_acc"]), _fmt_diff(res["diff"]), verdict])
    lines = format_table(headers, body, right=(4, 5, 6, 8, 9))
    lines.append("")
    lines.append("ref % = 100 - published test error, or the published accuracy (the mean where mean+/-std is "
                 "printed); diff = final % - ref % (best % where the source reports its best), in points.")
    lines.append("Default tolerance where the source prints no spread: +/-%.2f points (DEFAULT_TOLERANCE_POINTS)."
                 % DEFAULT_TOLERANCE_POINTS)
    seen = []
    for res in results:
        if res["row"] is not None and res["row"]["id"] not in [r["id"] for r in seen]:
            seen.append(res["row"])
    if seen:
        lines.append("Reference rows:")
        lines.extend("  " + describe_row(row) for row in seen)
    others = ["  %s: %s" % (run["name"], ", ".join(res["others"])) for run, res in zip(runs, results)
              if res.get("others")]
    if others:
        lines.append("Other rows that match as well (compare with one of them with --reference ID):")
        lines.extend(others)
    return lines


def experiment_key(run):
    """What two runs must share to be repeats of one experiment with other seeds."""
    h = dict(ADDED_SETTINGS)
    h.update(run["hparams"])
    h = dict((k, v) for k, v in h.items() if k not in BOOKKEEPING)
    return json.dumps([run["model"], run["preset"], run["dataset"], run["dataset_label"], h], sort_keys=True)


def _mean_std(values):
    """Mean and sample standard deviation (n - 1): the spread the papers print over their runs."""
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def repeats(runs, results):
    """Lines summarising each set of two or more runs of one experiment (same settings but the
    seed): mean +/- standard deviation of the final and best accuracy over the finished runs, and,
    where every run is comparable with the same reference, the mean's verdict by the tolerance a
    single run gets (a published single number says nothing of its own seed's luck: the spread
    over repeats is what shows whether the gap to it is noise)."""
    groups = {}  # insertion-ordered: groups print in the order of their first run
    for run, res in zip(runs, results):
        groups.setdefault(experiment_key(run), []).append((run, res))
    lines = []
    for members in groups.values():
        if len(members) < 2:
            continue
        finished = [run for run, _ in members if run["final_acc"] is not None and run["planned"] is not None
                    and run["done"] >= run["planned"]]
        text = "%s (seeds %s): " % (", ".join(run["name"] for run, _ in members),
                                    ", ".join(str(run["hparams"].get("seed", "?")) for run, _ in members))
        if len(finished) < 2:
            lines.append("  %s%d of %d runs finished: no statistics until two have" % (text, len(finished),
                                                                                        len(members)))
            continue
        text += "%d finished runs" % len(finished)
        means = {}
        for label in ("final", "best"):
            values = [run[label + "_acc"] for run in finished]
            means[label], std = _mean_std(values)
            text += "; %s %.2f +/- %.2f (%.2f to %.2f)" % (label, means[label], std, min(values), max(values))
        judged = [res for _, res in members if res["diff"] is not None]  # comparable, hence finished
        if len(judged) == len(members) and len(set(res["row"]["id"] for res in judged)) == 1:
            res = judged[0]
            mean, tol = means[res["compared"]], tolerance(res["row"])
            diff = round(mean - res["ref_acc"], 2)
            where = side(diff, tol)
            if where == "within":
                verdict = "within the tolerance of +/-%.2f points" % tol
            else:
                verdict = "%s the reference by more than the tolerance of +/-%.2f points" % (where, tol)
            text += "; the mean %s %.2f against %s's %.2f: %+.2f, %s" % (
                res["compared"], mean, res["row"]["id"], res["ref_acc"], diff, verdict)
        else:
            text += "; no verdict: not every run is comparable with one reference (see the table)"
        lines.append("  " + text)
    if lines:
        lines.insert(0, "Repeats of one experiment (settings equal but the seed; mean +/- standard deviation "
                        "over the finished runs, in %):")
    return lines


# ----------------------------------------------------------------------------- plot

def _curves(run):
    """(epochs, accuracies in %), (epochs, losses) of a run's evaluated epochs; non-finite losses left out."""
    acc, loss = ([], []), ([], [])
    for rec in run["records"]:
        ep = _as_float(rec.get("epoch"))
        if ep is None:
            continue
        a, l = _pct(rec.get("test_acc")), _as_float(rec.get("test_loss"))
        if a is not None:
            acc[0].append(ep)
            acc[1].append(a)
        if l is not None and math.isfinite(l):
            loss[0].append(ep)
            loss[1].append(l)
    return acc, loss


def _wrap(label):
    return "\n".join(textwrap.wrap(label, LEGEND_CHARS)) or label


def curves_figure(runs, results):
    """The --plot figure: test accuracy per epoch (top, each run's reference accuracy a dashed line of
    its colour) and test loss per epoch (bottom), one colour per run, with a legend naming runs and
    reference rows. Returns the matplotlib Figure; raises ImportError without matplotlib."""
    from report import figure  # the module, not report() above: its Agg figure, shared with --eval
    fig = figure(*PLOT_INCHES)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 2), left=0.08, right=PANELS_RIGHT, top=0.92, bottom=0.09,
                            hspace=0.08)
    acc_ax = fig.add_subplot(grid[0])
    loss_ax = fig.add_subplot(grid[1], sharex=acc_ax)
    for i, (run, res) in enumerate(zip(runs, results)):
        color = "C%d" % (i % 10)
        (ex, acc), (lx, loss) = _curves(run)
        marker = "o" if len(ex) == 1 else None   # a run with one evaluated epoch is a dot, not nothing
        acc_ax.plot(ex, acc, color=color, marker=marker, linewidth=1.8, label=_wrap(run["name"]))
        loss_ax.plot(lx, loss, color=color, marker=marker, linewidth=1.8)
        if res["ref_acc"] is not None:
            acc_ax.axhline(res["ref_acc"], color=color, linestyle="--", linewidth=1.2,
                           label=_wrap("%.2f %% %s" % (res["ref_acc"], res["row"]["id"])))
    acc_ax.set_ylabel("test accuracy (%)")
    loss_ax.set_ylabel("test loss")
    loss_ax.set_xlabel("epoch")
    for ax in (acc_ax, loss_ax):
        ax.grid(True, color="0.88")
    acc_ax.tick_params(labelbottom=False)
    loss_ax.set_ylim(bottom=0.0)
    loss_ax.set_xlim(left=0.0)
    fig.suptitle("Test accuracy and test loss per epoch (dashed: reference accuracy)")
    acc_ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=9,
                  title="runs (solid), references (dashed)", title_fontsize=9)
    return fig


def plot(runs, results, path):
    """Write curves_figure(runs, results) to `path` as a PNG of PLOT_INCHES at report.DPI."""
    from report import save_png
    return save_png(curves_figure(runs, results), path)


def check_plotting():
    """--plot needs matplotlib: say what to install before any work, where it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CompareError("--plot needs matplotlib, which is not installed for %s: pip install matplotlib "
                           "(./kit's environments and the Docker images have it)" % sys.executable)


# ----------------------------------------------------------------------------- main

RUNS = "runs"  # where the model scripts put a run without --run_dir


def default_runs(root=RUNS):
    """The run folders under `root` (those with a config.json), sorted, for a bare `compare.py`."""
    found = sorted(os.path.join(root, d) for d in (os.listdir(root) if os.path.isdir(root) else [])
                   if os.path.isfile(os.path.join(root, d, "config.json")))
    if not found:
        raise CompareError("no run folders under %s/: train a model first (python ResNeXt.py), or name run "
                           "folders on the command line" % root)
    return found


def build_parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Compare training runs with the published numbers in references.csv.")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR",
                   help="run folder(s) written by the training loop (config.json + metrics.jsonl); "
                        "default: every run under %s/" % RUNS)
    p.add_argument("--plot", metavar="PATH.png", help="write test accuracy/loss curves to this PNG")
    p.add_argument("--reference", metavar="ID",
                   help="compare every run with this references.csv row instead of the automatic match")
    p.add_argument("--references", metavar="CSV", help="reference table to use (default: the kit's references.csv)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        refs = load_references(args.references)
        if args.reference and args.reference not in set(r["id"] for r in refs):
            raise CompareError("unknown reference id %r: use an id from the first column of references.csv"
                               % args.reference)
        runs = [load_run(d) for d in args.run_dirs or default_runs()]
        if args.plot:
            check_plotting()
    except CompareError as e:
        _emit("%s: error: %s" % (PROG, e), sys.stderr)
        return 2
    results = []
    for run in runs:
        row, reasons, others = match_reference(run, refs, args.reference)
        res = assess(run, row, reasons)
        res["others"] = others
        results.append(res)
    for line in report(runs, results) + repeats(runs, results):
        _emit(line)
    if args.plot:
        try:
            plot(runs, results, args.plot)
        except (IOError, OSError) as e:
            _emit("%s: error: could not write %s: %s" % (PROG, args.plot, e), sys.stderr)
            return 2
        _emit("Plot written to %s" % args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
