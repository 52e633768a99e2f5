"""Speed, graph-build time and memory of the model scripts, measured the way the trainer runs them.

    python bench/bench.py                                   # every model script present, default preset and batch
    python bench/bench.py --models ResNeXt --compare literal,fused
    python bench/bench.py --python .venv-tf1/bin/python --python .venv-tf1-intel/bin/python
    python bench/bench.py --write                           # also put the table into BENCHMARKS.md

Each configuration (model x formulation x interpreter) runs in a fresh child process (measure.py) of
its own, so that build time, first step and peak RSS are that configuration's alone.
The child builds exactly the trainer's graph (`graph.Graph`: model, loss with weight
decay, learning-rate schedule, optimizer), feeds random CIFAR-shaped data through the
trainer's own `Batches` (background thread, augmentation), and reports:

  build s        wall time of `graph.Graph(...)`, the graph the trainer builds
  first step s   session, variable initialisation and the first training step (TF's graph
                 optimisations and kernel set-up happen here)
  train img/s    batch / median wall time of a training step after the warm-up steps,
                 including any wait for the input thread
  CPU ms/img     process CPU time (all threads) per training image over the timed steps: the
                 work done, which other load on the machine inflates less than wall time
  input wait ms  median time a step waited for its batch (0: the input never starves the CPU)
  infer img/s    batch / median time of the logits in inference mode
  GFLOP/img      an analytic count over the graph's own ops: 2 x multiply-adds of every
                 Conv2D, Conv2DBackpropInput, Conv2DBackpropFilter and MatMul (element-wise
                 ops such as batch norm and ReLU are not counted), per image, training graph
  GFLOP/s, %peak training GFLOP/img x train img/s, and that as a fraction of the best of a
                 4096x4096 float32 matmul timed by the same interpreter in the same run
  peak RSS GB    the child's VmHWM (/proc): the largest resident size it had while building,
                 training and inferring (the --profile step, which holds extra memory, comes after)

`--profile` adds, per configuration, the op types that took most time in one traced step
(tf.RunMetadata), which shows where a step's time goes.
"""
from __future__ import division, print_function

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time

from measure import MARK, ROOT  # the child side: bench/measure.py

MODELS = ["ResNeXt", "SE_ResNeXt", "Densenet", "ResNet"]


# ----------------------------------------------------------------------------- parent side

def run_child(python, spec, log):
    cmd = [python, os.path.join(ROOT, "bench", "measure.py"), json.dumps(spec)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
                         universal_newlines=True)
    out, err = p.communicate()
    for line in out.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = " | ".join(err.strip().splitlines()[-3:])
    log("  child failed (exit %s): %s" % (p.returncode, tail))
    return dict(kind=spec["kind"], model=spec.get("model"), error="exit %s: %s" % (p.returncode, tail[-300:]))


def present_models(names):
    found, notes = [], []
    for name in names:
        if os.path.exists(os.path.join(ROOT, name + ".py")):
            found.append(name)
        else:
            notes.append("%s: skipped, %s.py is not in this checkout" % (name, name))
    return found, notes


def python_label(python, labels):
    return labels.get(python) or os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(python)))) or python


def fmt(v, spec):
    return "-" if v is None else spec % v


HEADER = ["model", "config", "batch", "params", "build s", "first step s", "train img/s", "CPU ms/img", "input wait ms",
          "infer img/s", "GFLOP/img train", "GFLOP/s", "% of matmul", "peak RSS GB"]


def table_rows(results, ceilings):
    rows = []
    for r in results:
        if r.get("error"):
            rows.append([r.get("model") or "?", r["config"], "", "", "", "", "failed: " + r["error"][:120]]
                        + [""] * (len(HEADER) - 7))
            continue
        achieved = r["train_gflop"] * r["train_ips"]
        ceiling = ceilings.get(r["env"])
        rows.append([r["model"], r["config"], str(r["batch"]), "{:,}".format(r["params"]), "%.1f" % r["build_s"],
                     "%.1f" % r["first_step_s"], "%.1f" % r["train_ips"], "%.0f" % r["cpu_ms_per_image"],
                     "%.1f" % r["wait_ms"],
                     "%.1f" % r["infer_ips"], "%.2f" % r["train_gflop"], "%.0f" % achieved,
                     fmt(100.0 * achieved / ceiling if ceiling else None, "%.0f %%"),
                     "%.2f" % (r["peak_rss"] / 2.0 ** 30)])
    return rows


def markdown(rows):
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def plain(rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADER)]
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except (IOError, OSError):
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 2.0 ** 20
    except (IOError, OSError, ValueError, IndexError):
        pass
    return "%s, %d cores%s" % (cpu, os.cpu_count() or 0, ", %.0f GiB RAM" % mem if mem else "")


def write_markdown(path, label, block):
    begin, end = "<!-- bench:%s:begin -->" % label, "<!-- bench:%s:end -->" % label
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    section = begin + "\n" + block.rstrip("\n") + "\n" + end
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/bench.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated model scripts; absent ones are skipped with a note")
    p.add_argument("--compare", default="",
                   help="comma-separated --formulation values to run side by side (models without the flag run once)")
    p.add_argument("--python", action="append", default=[],
                   help="interpreter to run the children with; repeat to compare wheels (default: this one)")
    p.add_argument("--label_python", action="append", default=[], metavar="PATH=NAME",
                   help="name an interpreter in the table, e.g. .venv-tf1-intel/bin/python=intel")
    p.add_argument("--batch_size", type=int, default=0, help="override every model's default batch size")
    p.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0: TF decides, all cores)")
    p.add_argument("--flags", default="", help="extra flags for every model script, split as a shell would, "
                                                "e.g. \"--dataset_label 'CIFAR-10 (JPEG)'\"")
    p.add_argument("--warmup", type=int, default=1, help="untimed training steps, the first one included")
    p.add_argument("--steps", type=int, default=3, help="timed training (and inference) steps per configuration")
    p.add_argument("--matmul_n", type=int, default=4096, help="size of the square matmul that sets the ceiling")
    p.add_argument("--profile", action="store_true", help="trace one step per configuration and list the top ops")
    p.add_argument("--write", action="store_true", help="write the table and the command into --out")
    p.add_argument("--section", default="main", help="which table of --out to replace (several can live there)")
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    return p.parse_args(argv)


def labels_of(args):
    """{interpreter path: its name in the table}, from --label_python PATH=NAME."""
    return dict(item.partition("=")[::2] for item in args.label_python)


def check_args(args):
    """The first thing wrong with the flags, as one line saying what to pass, or None: checked before any
    child starts, so that a bad value neither aborts a child inside TensorFlow nor, for --out, costs
    every measurement at the end."""
    from settings import RESNEXT
    formulations = next(s.choices for s in RESNEXT if s.name == "formulation")
    for flag, value, least in (("--warmup", args.warmup, 1), ("--steps", args.steps, 1),
                               ("--matmul_n", args.matmul_n, 1), ("--threads", args.threads, 0),
                               ("--batch_size", args.batch_size, 0)):
        if value < least:
            return "%s must be at least %d, got %d" % (flag, least, value)
    for py in args.python:
        if not os.path.isfile(py) or not os.access(py, os.X_OK):
            return ("--python %s %s: pass the interpreter of an environment, e.g. .venv-tf1/bin/python"
                    % (py, "is not an executable file" if os.path.exists(py) else "does not exist"))
    for item in args.label_python:
        path, _, name = item.partition("=")
        if not path or not name:
            return "--label_python %s: write PATH=NAME, e.g. .venv-tf1-intel/bin/python=intel" % item
        if path not in (args.python or [sys.executable]):  # labels are looked up by the path as written
            return "--label_python %s: no --python is %s; write the path as --python gives it" % (item, path)
    named = [python_label(py, labels_of(args)) for py in args.python]
    twice = sorted(set(n for n in named if named.count(n) > 1))
    if twice:  # the table's rows and matmul ceilings are kept by label: one would stand for both
        return ("two --python interpreters are both labelled %s: give each a name of its own with "
                "--label_python PATH=NAME" % ", ".join(twice))
    try:
        shlex.split(args.flags)
    except ValueError as e:  # an unclosed quote: the children would get flags other than the ones meant
        return ("--flags %s: %s; quote a value with spaces as a shell would, e.g. "
                "\"--dataset_label 'CIFAR-10 (JPEG)'\"" % (args.flags, str(e).lower()))
    names = [m for m in args.models.replace(" ", "").split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        return "%s: choose from %s" % ("unknown model " + ", ".join(unknown) if unknown else "--models names no model",
                                       ", ".join(MODELS))
    unknown = [m for m in args.compare.replace(" ", "").split(",") if m and m not in formulations]
    if unknown:
        return "--compare %s: the formulations are %s" % (", ".join(unknown), ", ".join(formulations))
    if args.write and (os.path.isdir(args.out) or not os.path.isdir(os.path.dirname(os.path.abspath(args.out)))):
        return "--out %s: give a markdown file in an existing folder, e.g. BENCHMARKS.md" % args.out
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)

    def log(msg):
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    problem = check_args(args)
    if problem:
        log("error: " + problem)
        return 2
    pythons = args.python or [sys.executable]
    labels = labels_of(args)
    models, notes = present_models([m for m in args.models.replace(" ", "").split(",") if m])
    formulations = [f for f in args.compare.replace(" ", "").split(",") if f] or [None]
    flags = shlex.split(args.flags)  # a quoted value with spaces stays one argument, as on a command line
    load_before = os.getloadavg()
    started = time.time()

    ceilings, versions, results = {}, {}, []
    for py in pythons:
        name = python_label(py, labels)
        log("[%s] matmul %dx%d ceiling ..." % (name, args.matmul_n, args.matmul_n))
        r = run_child(py, dict(kind="matmul", n=args.matmul_n, threads=args.threads), log)
        if not r.get("error"):
            ceilings[name] = r["gflops"]
            log("  %.0f GFLOP/s" % r["gflops"])
        for model in models:
            for form in formulations:
                spec = dict(kind="model", model=model, formulation=form, flags=flags, batch_size=args.batch_size,
                            threads=args.threads, warmup=args.warmup, steps=args.steps, profile=args.profile)
                log("[%s] %s%s ..." % (name, model, " --formulation %s" % form if form else ""))
                r = run_child(py, spec, log)
                r["env"] = name
                if not r.get("error"):
                    versions[name] = "TensorFlow %s%s, Python %s" % (r["tf"], " (oneDNN/MKL)" if r["mkl"] else "",
                                                                       r["python"])
                    config = [name] if len(pythons) > 1 else []
                    if r["has_formulation"]:
                        config.append(r["formulation"] or "default")
                    r["config"] = " ".join(config) or "default"
                    log("  built in %.1fs, %.1f img/s training, peak RSS %.2f GB"
                        % (r["build_s"], r["train_ips"], r["peak_rss"] / 2.0 ** 30))
                else:
                    r["config"] = " ".join(([name] if len(pythons) > 1 else []) + ([form] if form else [])) or "default"
                results.append(r)
                if not r.get("error") and not r["has_formulation"]:
                    break  # the other formulations would repeat the same graph
    load_after = os.getloadavg()

    rows = table_rows(results, ceilings)
    command = "python bench/bench.py " + " ".join(shlex.quote(a) for a in argv)  # pastes back as the same argv
    info = ["Machine: %s." % machine(),
            "Load average (1/5/15 min): %.2f %.2f %.2f before, %.2f %.2f %.2f after; %.0f s in all."
            % (load_before + load_after + (time.time() - started,))]
    for name in [python_label(py, labels) for py in pythons]:
        info.append("%s: %s; matmul ceiling %s GFLOP/s." % (name, versions.get(name, "?"),
                                                           fmt(ceilings.get(name), "%.0f")))
    info.append("FLOPs: analytic, from the graph's Conv2D/Conv2DBackprop*/MatMul ops (2 per multiply-add).")
    for r in results:
        if not r.get("error"):
            info.append("%s %s: %d graph ops; imports %.1f s (tflearn %.1f s more); the input thread makes a batch "
                        "in %.1f ms (%.1f %% of a step)." % (r["model"], r["config"], r["ops"], r["import_s"],
                                                              r["tflearn_s"], r["batch_ms"],
                                                              100 * r["batch_ms"] / 1000 / r["step_s"]))
    info.append("Steps: %d warm-up (the first included), median of %d timed." % (args.warmup, args.steps))
    info += notes
    print(plain(rows))
    print()
    print("\n".join(info))
    if args.profile:
        for r in results:
            if r.get("profile"):
                print("\n%s %s: op types by time in one traced training step" % (r["model"], r["config"]))
                for t, ms, share in r["profile"]:
                    print("  %-28s %9.1f ms  %5.1f %%" % (t, ms, 100 * share))
    if args.write:
        block = ["Measured %s with:" % datetime.date.today().isoformat(), "", "    " + command, ""]
        block += [markdown(rows), ""] + ["- " + line for line in info]
        if args.profile:
            for r in results:
                if r.get("profile"):
                    block += ["", "Top op types, one traced training step, %s %s:" % (r["model"], r["config"]), ""]
                    block += ["    %-28s %9.1f ms  %5.1f %%" % (t, ms, 100 * s) for t, ms, s in r["profile"]]
        write_markdown(args.out, args.section, "\n".join(block) + "\n")
        print("\nwrote %s (section %s)" % (args.out, args.section))
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
