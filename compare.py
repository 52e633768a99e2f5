"""Compare training runs with the published numbers in references.csv.

    python compare.py [RUN_DIR ...] [--plot out.png] [--reference ID]   (no RUN_DIR: every run under runs/)
    python compare.py runs/ elsewhere/                                  (a folder of runs: every run in it)
    kit-compare RUN_DIR [RUN_DIR ...] [--plot out.png] [--reference ID]

A run folder is what the training loop writes: config.json (model, preset,
dataset, dataset_label, data_verified, hparams, epochs_planned, ...) and
metrics.jsonl (one JSON object per evaluated epoch, test_acc in 0..1 and
test_loss in nats).  For every run (named by its folder, or by the end of its path
where two folders have one name) this prints the reference row it matches
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

--plot writes a PNG (drawn with matplotlib; its path must end in .png) of test accuracy and
test loss per epoch, with each run's reference accuracy as a dashed horizontal line.

This module is the command line, the table, the repeats summary and the plot;
references.py reads the reference table, runfolders.py reads run folders, and
matching.py picks each run's row and verdict (none of them imports TensorFlow).
"""
import argparse
import json
import math
import os
import sys
import textwrap

import settings
from matching import assess, match_reference, side
from references import DEFAULT_TOLERANCE_POINTS, CompareError, _as_float, describe_row, load_references, tolerance
from runfolders import _pct, describe_arch, load_run, run_arch

PROG = "compare.py"  # in errors where main() is given its arguments rather than reading the command line

# The --plot figure: its size in inches (at report.DPI, 1000 x 700 pixels), and the share of its
# width the two panels take; the legend (run names, reference rows) fills the rest on the right.
PLOT_INCHES = (10.0, 7.0)
PANELS_RIGHT = 0.68
LEGEND_CHARS = 32  # longer run names and reference ids wrap (at a '-' where they can) to stay in the figure


# ----------------------------------------------------------------------------- helpers

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
    """What two runs must share to be repeats of one experiment with other seeds: all but the
    bookkeeping settings (where things are, how the run is logged, which random draw); a run
    written before a setting existed counts as trained with its default (settings.as_recorded)."""
    bookkeeping = settings.with_policy("bookkeeping")
    h = dict((k, v) for k, v in settings.as_recorded(run["hparams"]).items() if k not in bookkeeping)
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


def check_plotting(path):
    """--plot writes a PNG and needs matplotlib: say so before any work, for a path of another
    kind (savefig would write PNG bytes under it) or where matplotlib is missing."""
    if not path.strip():
        raise CompareError("--plot needs a file to write: give a path ending in .png, e.g. --plot runs/compare.png "
                           "(got an empty path)")
    if not path.lower().endswith(".png"):
        raise CompareError("--plot writes a PNG image: give a path ending in .png, e.g. --plot runs/compare.png "
                           "(got %s)" % path)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CompareError("--plot needs matplotlib, which is not installed for %s: pip install matplotlib "
                           "(./kit's environments and the Docker images have it)" % sys.executable)


# ----------------------------------------------------------------------------- main

RUNS = "runs"  # where the model scripts put a run without --run_dir


def runs_in(root):
    """The run folders directly under `root` (those with a config.json), sorted."""
    return sorted(os.path.join(root, d) for d in (os.listdir(root) if os.path.isdir(root) else [])
                  if os.path.isfile(os.path.join(root, d, "config.json")))


def expand(run_dirs):
    """`run_dirs` with each folder that is no run but holds runs (`compare.py runs/`) replaced by those
    runs, as a bare `compare.py` takes runs/'s; any other folder stays, for load_run to say what it is."""
    out = []
    for d in run_dirs:
        inside = [] if os.path.isfile(os.path.join(d, "config.json")) else runs_in(d)
        out += inside or [d]
    return out


def default_runs(root=RUNS):
    """The run folders under `root`, for a bare `compare.py`."""
    found = runs_in(root)
    if not found:
        raise CompareError("no run folders under %s/: train a model first (python ResNeXt.py), or name run "
                           "folders on the command line" % root)
    return found


def named_once(run_dirs):
    """`run_dirs`, refused where two of them are one folder: the repeats summary would count that run
    twice, with a standard deviation of 0 that no second run measured."""
    seen = {}
    for d in run_dirs:
        real = os.path.realpath(d)
        if real in seen:
            raise CompareError("%s and %s are the same run folder: name each run once" % (seen[real], d))
        seen[real] = d
    return run_dirs


def one_copy_each(runs):
    """`runs`, each run once where two folders hold copies of it (config.json and the records of
    metrics.jsonl equal), with a note: counted twice, as one folder named twice would be (named_once),
    it would make the repeats summary's standard deviation, 0, that no second run measured. A
    backup copy beside its run, in a folder of runs, is so no reason to refuse the comparison."""
    seen, kept = {}, []
    for run in runs:
        key = json.dumps([run["config"], run["records"]], sort_keys=True)
        if key in seen:
            sys.stderr.write("note: %s holds a copy of %s (the same config.json and metrics.jsonl): counted once\n"
                             % (run["dir"], seen[key]))
            continue
        seen[key] = run["dir"]
        kept.append(run)
    return kept


def distinct_names(runs):
    """`runs`, each named by its folder, or where another's folder has the same name, by the shortest
    end of its path that no other ends in: a/r1 and b/r1 for odd/a/r1 and odd/b/r1, not r1 twice."""
    parts = [os.path.abspath(run["dir"]).split(os.sep) for run in runs]
    names = [run["name"] for run in runs]
    for i, run in enumerate(runs):
        same = [p for j, p in enumerate(parts) if j != i and names[j] == names[i]]
        if same:
            k = 2
            while k < len(parts[i]) and any(p[-k:] == parts[i][-k:] for p in same):
                k += 1
            run["name"] = os.sep.join(parts[i][-k:])
    return runs


def build_parser(prog=PROG):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Compare training runs with the published numbers in references.csv.")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR",
                   help="run folder(s) written by the training loop (config.json + metrics.jsonl), or a "
                        "folder of them (every run in it); default: every run under %s/" % RUNS)
    p.add_argument("--plot", metavar="PATH.png", help="write test accuracy/loss curves to this PNG")
    p.add_argument("--reference", metavar="ID",
                   help="compare every run with this references.csv row instead of the automatic match")
    p.add_argument("--references", metavar="CSV", help="reference table to use (default: the kit's references.csv)")
    return p


def main(argv=None):
    # the name the user typed: compare.py, or the console script's kit-compare
    prog = (os.path.basename(sys.argv[0]) or PROG) if argv is None else PROG
    args = build_parser(prog).parse_args(argv)
    try:
        refs = load_references(args.references)
        if args.reference and args.reference not in set(r["id"] for r in refs):
            raise CompareError("unknown reference id %r: use an id from the first column of references.csv"
                               % args.reference)
        runs = distinct_names(one_copy_each([load_run(d) for d in named_once(expand(args.run_dirs) or
                                                                              default_runs())]))
        if args.plot is not None:  # --plot "" too: it would draw nothing, silently
            check_plotting(args.plot)
    except CompareError as e:
        _emit("%s: error: %s" % (prog, e), sys.stderr)
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
            _emit("%s: error: could not write %s: %s" % (prog, args.plot, e), sys.stderr)
            return 2
        _emit("Plot written to %s" % args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
