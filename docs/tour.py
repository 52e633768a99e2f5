"""Write docs/tour.md: TF1 graph mode, through this kit, in a few stops.

    ./kit python docs/tour.py            # (re)write docs/tour.md
    ./kit python docs/tour.py --check    # exit 1 if docs/tour.md is not what the code gives today

Each stop names a function (or class, or method) of the kit and, optionally, the first and
last line of the part to show; the excerpt is cut from the source as it is now, never pasted.
A name or a line that no longer exists stops the generator with a one-line error, and
tests/test_tour.py fails until the tour is regenerated or corrected: the tour cannot drift
from the code.
"""
import argparse
import io
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "tour.md")


class TourError(Exception):
    """A stop names code that does not exist: one line, exit 2."""


# (title, file, name, first line regex or None, last line regex or None, text)
STOPS = [
    ("Placeholders: the graph's inputs", "graph.py", "Graph.__init__", r"self\.graph = tf\.Graph\(\)",
     r"self\.global_step = ", """
A TF1 program first *describes* a computation, then runs it. The description is a `tf.Graph`;
its inputs are placeholders, typed holes that each `sess.run` fills through `feed_dict`. The
kit has three: the images, the labels, and a boolean `training` that every batch-norm and
dropout layer reads, so one graph serves both training and evaluation. `global_step` is a
variable the optimizer increments: the step count lives in the graph, and in every checkpoint."""),
    ("The static graph: a model is a function that adds ops", "ResNeXt.py", "Build_ResNext", None, None, """
Calling a model function does not compute anything: it adds ops to the default graph and
returns the tensor of logits. The stages are name scopes, so TensorBoard's graph view (and
`--graph`) shows them as boxes. The same function is called once per run, inside `with
graph.as_default()` (the first stop), which is why a loop that calls it again would grow the
graph (see `lab/graph_growth.py`)."""),
    ("Variables, scopes and reuse", "fused.py", "group_conv_layer", None, None, """
Variables are created by name inside a `tf.variable_scope`; `tf.get_variable` fails if the
name exists already, unless the scope says `reuse` (see `lab/variable_reuse.py`). Most layers
here come from `tf.layers`, which does the same internally; this one is written out: one kernel
variable for a grouped convolution, split per group."""),
    ("Batch norm under tf.cond, and why updates_collections=None", "ops.py", "Batch_Normalization",
     r"    with tf\.name_scope\(scope\), arg_scope", r"lambda: tf\.stop_gradient", """
The originals' idiom: contrib's `batch_norm` twice under one scope, picked by `tf.cond` on
the `training` placeholder. The training branch creates the variables and updates the moving
mean and variance as part of computing its output (`updates_collections=None`), so no
`UPDATE_OPS` dependency is needed and none can be forgotten (`lab/bn_update_ops.py` shows
the mistake, `lab/kit_batch_norm.py` this fix). The inference branch reuses the same
variables and reads the moving averages. `tf.cond` builds both branches; only the lambdas'
ops are conditional (`lab/cond_branches.py`)."""),
    ("The learning rate is in the graph, computed from global_step", "graph.py", "learning_rate", None, None, """
The schedule is a tensor, not a Python number fed each step: `piecewise_constant` of
`global_step`. A resumed run restores `global_step` and therefore cannot restart its
schedule by mistake."""),
    ("Loss, optimizer and train_op", "graph.py", "Graph.__init__", r"with tf\.name_scope\(\"loss\"\)",
     r"self\.train_op = ", """
The loss is mean cross-entropy plus weight decay written out as `l2_loss` over the chosen
variables, as the originals do. `minimize` adds the gradient ops and one `train_op` that
applies them and increments `global_step`. The `UPDATE_OPS` dependency is empty with the
kit's batch norm, and harmless; it matters for layers that do put their updates there."""),
    ("The session, and allow_soft_placement", "trainer.py", "train", r"# allow_soft_placement",
     r"dist\.configure\(config\)", """
`allow_soft_placement=True` lets an op pinned to a device that cannot run it (a GPU op on a
machine without one, or a kernel without a GPU implementation) fall back to the CPU instead of
failing: the same script runs on both. `--threads` sets TensorFlow's two thread pools (0 lets it
decide); a Horovod run gives each process its own GPU, as Horovod's TF1 examples do."""),
    ("The loop: a session, and sess.run with feed_dict", "trainer.py", "train", None, None, """
The whole of training, top to bottom: the data, the graph, a session, then for each epoch one
`sess.run` per batch, feeding NumPy arrays (made ahead by a background thread) into
the placeholders and fetching the train op, the cross-entropy (logged as train_loss; the
optimizer minimises it plus weight decay), the count of correct predictions and the learning
rate (read from the graph, as the logs print it), and an evaluation on the test set in inference
mode. What makes a run robust (the run folder's lock, exact resume from atomic checkpoints,
Ctrl-C, a loss that is not finite, the logs) is the `RunState`'s, in runstate.py, so that none
of it hides the idiom: `with run, tf.Session(...)` holds the folder's lock for as long as the
session lives, and `run.batches` ends an epoch early after Ctrl-C, so the loop needs no `break`."""),
    ("Saver and restore", "checkpoints.py", "restore", None, None, """
`tf.train.Saver(tf.global_variables())` (made with the graph) saves every variable, the moving
averages and `global_step` included; a Saver of the trainable variables only would lose them
(`lab/saver_trainable.py`). Before restoring, the kit checks every variable's name and shape
against the checkpoint, so a checkpoint of another network fails with one line instead of a
traceback."""),
    ("TF 1.15 and TF 2: tf.compat.v1", "compat.py", None, r"^if TF2:", r"tf\.disable_v2_behavior\(\)", """
The kit imports TensorFlow in one place, `compat.py`; every other module takes `tf` from it. On
TF 2.x, `tf.compat.v1` with `disable_v2_behavior()` gives graph mode, placeholders and sessions
back. What `compat.v1` does not keep is contrib: its `batch_norm` and `arg_scope` come from
tf_slim there (further down the same file), the same code with the same variable names, so
checkpoints move between the two runtimes (`lab/compat_contrib.py`)."""),
]


def _block(lines, start, indent):
    """The lines of the def/class at `start` (its decorators excluded), by indentation."""
    end = start + 1
    while end < len(lines):
        line = lines[end]
        if line.strip() and not line.startswith(" " * (indent + 1)) and not line.lstrip().startswith(")"):
            break
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return start, end


def locate(lines, name):
    """(first, end) line indexes of `name` ("function", "Class" or "Class.method") in `lines`."""
    lo, hi, indent = 0, len(lines), -1
    for part in name.split("."):
        pattern = re.compile(r"^( *)(def|class) %s\b" % re.escape(part))
        for i in range(lo, hi):
            m = pattern.match(lines[i])
            if m and (len(m.group(1)) > indent if indent >= 0 else not m.group(1)):
                indent = len(m.group(1))
                lo, hi = _block(lines, i, indent)
                break
        else:
            return None
    return lo, hi


def excerpt(path, name, first=None, last=None):
    """The source lines of `name` in `path` (the whole file if name is None), cut to the first
    line matching `first` and the last matching `last`, dedented."""
    full = os.path.join(ROOT, path)
    if not os.path.exists(full):
        raise TourError("the tour names %s, which does not exist: correct STOPS in docs/tour.py" % path)
    with io.open(full, encoding="utf-8") as f:
        lines = f.read().splitlines()
    where = (0, len(lines)) if name is None else locate(lines, name)
    if where is None:
        raise TourError("%s has no %s, which the tour shows: correct STOPS in docs/tour.py" % (path, name))
    lo, hi = where
    if first:
        found = [i for i in range(lo, hi) if re.search(first, lines[i])]
        if not found:
            raise TourError("%s %s has no line matching %r: correct STOPS in docs/tour.py" % (path, name, first))
        lo = found[0]
    if last:
        found = [i for i in range(lo, hi) if re.search(last, lines[i])]
        if not found:
            raise TourError("%s %s has no line matching %r: correct STOPS in docs/tour.py" % (path, name, last))
        hi = found[0] + 1
        # a statement that goes on over more lines is shown whole
        while hi < len(lines) and _open_brackets("\n".join(lines[lo:hi])):
            hi += 1
    body = lines[lo:hi]
    indent = min(len(l) - len(l.lstrip()) for l in body if l.strip())
    return [l[indent:] for l in body], lo + 1, hi


def _open_brackets(text):
    text = re.sub(r"\"[^\"\n]*\"|'[^'\n]*'|#[^\n]*", "", text)
    return sum(text.count(c) for c in "([{") > sum(text.count(c) for c in ")]}")


def tour():
    out = ["<!-- Generated by `./kit python docs/tour.py` from the code it quotes: edit docs/tour.py, not this file. -->",
           "# TF1 graph mode, through this kit, in %d stops" % len(STOPS), "",
           "Each stop is real code of the kit, cut from the source when this page was generated (a test",
           "fails when the code and the page disagree), with what it shows about TensorFlow 1.x. Read them in",
           "order; the [pitfall lab](../lab/README.md) has a runnable broken/fixed pair for the mistakes named",
           "on the way.", ""]
    for n, (title, path, name, first, last, text) in enumerate(STOPS, 1):
        code, a, b = excerpt(path, name, first, last)
        where = "`%s`" % name if name else "module level"
        out += ["## %d. %s" % (n, title), "", text.strip(), "",
                "[`%s`](../%s#L%d-L%d), %s, lines %d-%d:" % (path, path, a, b, where, a, b), "",
                "```python"] + code + ["```", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv=None):
    # a parser, not `"--check" in argv`: a mistyped --check or --help rewrote docs/tour.md instead
    p = argparse.ArgumentParser(prog="docs/tour.py", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if docs/tour.md is stale")
    args = p.parse_args(argv)
    try:
        text = tour()
    except TourError as e:
        sys.stderr.write("error: %s\n" % e)
        return 2
    if args.check:
        old = io.open(OUT, encoding="utf-8").read() if os.path.exists(OUT) else ""
        if old != text:
            sys.stderr.write("docs/tour.md is stale: run ./kit python docs/tour.py\n")
            return 1
        print("docs/tour.md is up to date (%d stops)" % len(STOPS))
        return 0
    with io.open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %s (%d stops)" % (OUT, len(STOPS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
