"""The child side of bench/bench.py: one configuration measured in a process of its own.

    python bench/measure.py '{"kind": "model", "model": "ResNeXt", ...}'

bench.py starts this script once per configuration (model x formulation x interpreter) with
the configuration as JSON, so that build time, first step and peak RSS are that
configuration's alone. It prints one line, MARK followed by the result as JSON (or the
error, so that one broken model does not hide the others); bench.py's docstring says what
each number means.
"""
from __future__ import division, print_function

import importlib
import json
import os
import platform
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from flops import count_flops  # noqa: E402  (the GFLOP/img column; cards.py counts with it too)

MARK = "BENCH_RESULT "


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


if __name__ == "__main__":
    sys.exit(child_main(json.loads(sys.argv[1])))
