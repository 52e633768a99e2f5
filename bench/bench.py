"""Speed, graph-build time and memory of the model scripts, measured the way the trainer runs them.

    python bench/bench.py                                   # every model script present, default preset and batch
    python bench/bench.py --models ResNeXt --compare literal,fused
    python bench/bench.py --python .venv-tf1/bin/python --python .venv-tf1-intel/bin/python
    python bench/bench.py --write                           # also put the table into BENCHMARKS.md

Each configuration (model x formulation x interpreter) runs in a fresh child process of
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
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from flops import count_flops  # noqa: E402  (the GFLOP/img column; cards.py counts with it too)

MODELS = ["ResNeXt", "SE_ResNeXt", "Densenet", "ResNet"]
MARK = "BENCH_RESULT "


# ----------------------------------------------------------------------------- child side

def peak_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (IOError, OSError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def import_model(name):
    """(model_name, build_fn, presets, validate) exactly as the script hands them to trainer.main."""
    import trainer
    got = {}

    def capture(model_name, build_fn, presets, validate=None, argv=None, description=None):
        got.update(model_name=model_name, build_fn=build_fn, presets=presets, validate=validate)
        return 0

    module = importlib.import_module(name)
    real = trainer.main
    trainer.main = capture
    try:
        module.main([])
    finally:
        trainer.main = real
    return got


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def top_ops(graph, run_metadata, n=8):
    """Op types by summed kernel time in one traced step: [(type, ms, share)]."""
    types = {op.name: op.type for op in graph.get_operations()}
    total, per = 0.0, {}
    for dev in run_metadata.step_stats.dev_stats:
        for node in dev.node_stats:
            name = node.node_name.split(":")[0]
            if name not in types:
                continue
            us = node.op_end_rel_micros - node.op_start_rel_micros
            per[types[name]] = per.get(types[name], 0.0) + us
            total += us
    ranked = sorted(per.items(), key=lambda kv: -kv[1])[:n]
    return [(t, us / 1000.0, us / max(total, 1e-9)) for t, us in ranked]


def run_matmul(spec):
    from compat import tf
    import numpy as np
    n = spec.get("n", 4096)
    config = tf.ConfigProto()
    if spec.get("threads"):
        config.intra_op_parallelism_threads = config.inter_op_parallelism_threads = spec["threads"]
    g = tf.Graph()
    with g.as_default():
        rng = np.random.RandomState(0)
        a = tf.constant(rng.randn(n, n).astype(np.float32))
        b = tf.Variable(rng.randn(n, n).astype(np.float32))
        c = tf.reduce_sum(tf.matmul(a, b))  # a scalar fetch: the copy-out stays out of the timing
        with tf.Session(graph=g, config=config) as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(c)
            times = []
            for _ in range(spec.get("reps", 5)):
                t = time.time()
                sess.run(c)
                times.append(time.time() - t)
    return dict(kind="matmul", n=n, gflops=2.0 * n ** 3 / min(times) / 1e9,
                gflops_median=2.0 * n ** 3 / median(times) / 1e9)


def run_model(spec):
    t_start = time.time()
    sys.path.insert(0, ROOT)
    import compat
    t_compat = time.time() - t_start
    t = time.time()
    import ops  # noqa: F401 (its import is tflearn's, timed here)
    t_tflearn = time.time() - t
    tf = compat.tf
    import numpy as np
    from batches import Batches, INPUT_SHAPES
    from graph import Graph
    from settings import MODEL_SETTINGS, hparams

    m = import_model(spec["model"])
    has_formulation = any(s.name == "formulation" for s in MODEL_SETTINGS[m["model_name"]])
    argv = list(spec.get("flags", []))
    if spec.get("formulation") and has_formulation:
        argv += ["--formulation", spec["formulation"]]
    if spec.get("batch_size"):
        argv += ["--batch_size", str(spec["batch_size"])]
    if spec.get("threads"):
        argv += ["--threads", str(spec["threads"])]
    hp = hparams(m["model_name"], m["presets"], m["validate"], argv)
    bs = hp["batch_size"]

    t = time.time()
    g = Graph(m["build_fn"], hp, 391)
    build_s = time.time() - t
    n_ops = len(g.graph.get_operations())
    fwd_flops, train_flops = count_flops(g.graph)

    shape, _ = INPUT_SHAPES[hp["dataset"]]
    rng = np.random.RandomState(0)
    pool = max(4 * bs, 256)
    x = rng.randn(pool, *shape).astype(np.float32)
    y = rng.randint(0, g.num_classes, size=pool).astype(np.int64)
    batches = Batches(x, y, bs, seed=0, augment=hp["augment"])

    def stream():
        epoch = 0
        while True:
            for item in batches.iterate(epoch, 0):
                yield item
            epoch += 1

    feed = stream()
    t0 = time.time()
    sess = tf.Session(graph=g.graph, config=tf.ConfigProto(allow_soft_placement=True,
                                                          intra_op_parallelism_threads=hp["threads"],
                                                          inter_op_parallelism_threads=hp["threads"]))
    sess.run(g.init)
    _, bx, by = next(feed)
    sess.run(g.train_op, {g.x: bx, g.y: by, g.training: True})
    first_s = time.time() - t0

    steps, waits, cpu = [], [], 0.0
    for i in range(spec["warmup"] - 1 + spec["steps"]):
        t, c = time.time(), time.process_time()
        _, bx, by = next(feed)
        waited = time.time() - t
        sess.run(g.train_op, {g.x: bx, g.y: by, g.training: True})
        if i >= spec["warmup"] - 1:
            steps.append(time.time() - t)
            waits.append(waited)
            cpu += time.process_time() - c

    infer = []
    sess.run(g.logits, {g.x: bx, g.training: False})
    for _ in range(spec["steps"]):
        t = time.time()
        sess.run(g.logits, {g.x: bx, g.training: False})
        infer.append(time.time() - t)

    t = time.time()
    for i in range(8):
        batches.batch(0, i % batches.steps_per_epoch)
    batch_ms = (time.time() - t) / 8 * 1000
    peak = peak_rss_bytes()  # before the traced step: tracing holds on to memory a plain step frees

    profile = None
    if spec.get("profile"):
        meta = tf.RunMetadata()
        sess.run(g.train_op, {g.x: bx, g.y: by, g.training: True},
                 options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE), run_metadata=meta)
        profile = top_ops(g.graph, meta)
    sess.close()

    mkl = None
    try:
        from tensorflow.python.framework import test_util
        mkl = bool(test_util.IsMklEnabled())
    except Exception:
        pass
    return dict(kind="model", model=m["model_name"], preset=hp["preset"], batch=bs,
                formulation=hp.get("formulation") if has_formulation else None, has_formulation=has_formulation,
                tf=compat.VERSION, mkl=mkl, python=platform.python_version(),
                params=g.num_params, ops=n_ops, import_s=t_compat, tflearn_s=t_tflearn, build_s=build_s,
                first_step_s=first_s, step_s=median(steps), steps=len(steps), wait_ms=1000 * median(waits),
                batch_ms=batch_ms, train_ips=bs / median(steps), cpu_ms_per_image=1000 * cpu / (bs * len(steps)),
                infer_ips=bs / median(infer),
                fwd_gflop=fwd_flops / 1e9, train_gflop=train_flops / 1e9, peak_rss=peak,
                profile=profile)


def child_main(spec):
    os.chdir(ROOT)
    sys.path.insert(0, ROOT)
    try:
        result = run_matmul(spec) if spec["kind"] == "matmul" else run_model(spec)
        if result.get("kind") == "matmul":
            result["peak_rss"] = peak_rss_bytes()
    except Exception as e:  # reported as a row, so one broken model does not hide the others
        import traceback
        traceback.print_exc()
        result = dict(kind=spec["kind"], model=spec.get("model"), error="%s: %s" % (type(e).__name__, e))
    sys.stdout.write(MARK + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


# ----------------------------------------------------------------------------- parent side

def run_child(python, spec, log):
    cmd = [python, os.path.abspath(__file__), "--child", json.dumps(spec)]
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
    p.add_argument("--flags", default="", help="extra flags for every model script, e.g. '--preset paper'")
    p.add_argument("--warmup", type=int, default=1, help="untimed training steps, the first one included")
    p.add_argument("--steps", type=int, default=3, help="timed training (and inference) steps per configuration")
    p.add_argument("--matmul_n", type=int, default=4096, help="size of the square matmul that sets the ceiling")
    p.add_argument("--profile", action="store_true", help="trace one step per configuration and list the top ops")
    p.add_argument("--write", action="store_true", help="write the table and the command into --out")
    p.add_argument("--section", default="main", help="which table of --out to replace (several can live there)")
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be at least 1")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child is not None:
        return child_main(json.loads(args.child))

    def log(msg):
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    pythons = args.python or [sys.executable]
    for py in pythons:
        if not os.path.exists(py):
            log("error: --python %s does not exist: pass the interpreter of an environment, e.g. .venv-tf1/bin/python"
                % py)
            return 2
    labels = {}
    for item in args.label_python:
        path, _, name = item.partition("=")
        labels[path] = name
    names = [m for m in args.models.replace(" ", "").split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        log("error: unknown model %s: choose from %s" % (", ".join(unknown), ", ".join(MODELS)))
        return 2
    models, notes = present_models(names)
    formulations = [f for f in args.compare.replace(" ", "").split(",") if f] or [None]
    flags = args.flags.split()
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
    command = "python bench/bench.py " + " ".join(a if " " not in a else "'%s'" % a for a in argv)
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
