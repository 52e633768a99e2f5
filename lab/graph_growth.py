"""Pitfall 5: the graph grows inside the training loop.

In graph mode every call such as `tf.reduce_mean(...)`, `tensor[0]`, `a + b` or
`tf.train.cosine_decay_restarts(...)` adds new ops to the default graph; it does not
compute anything. Written inside the loop that calls `sess.run`, it adds a fresh copy of
those ops at every step: memory grows without bound and each step gets slower, which people
report as a memory leak. The fix is to build every op once, before the loop, with
placeholders for what changes from step to step; `graph.finalize()` after building turns
any later op creation into an immediate RuntimeError instead of a slow leak (graph.py's
Graph finalizes its graph for this reason).

Threads: https://github.com/tensorflow/tensorflow/issues/7127,
https://github.com/tensorflow/tensorflow/issues/10408

Observable: the graph's op count before and after STEPS loop iterations that compute a
batch statistic. Broken (ops built in the loop): grows by the same amount every step.
Fixed (built once, fed through a placeholder, graph finalized): unchanged, and creating an
op afterwards raises.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `python lab/<script>.py`
from compat import tf  # noqa: E402
from lab import common  # noqa: E402

STEPS = 20


def broken():
    with tf.Graph().as_default() as graph:
        scale = tf.Variable(2.0, name="scale")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            before = len(graph.get_operations())
            for batch in common.batches(STEPS):
                sess.run(tf.reduce_mean(batch * scale))  # 4 new ops every step (the mean has its axes)
            after = len(graph.get_operations())
    return {"steps": STEPS, "ops_before": before, "ops_after": after, "finalized_graph_refused_new_op": 0}


def fixed():
    with tf.Graph().as_default() as graph:
        scale = tf.Variable(2.0, name="scale")
        batch_in = tf.placeholder(tf.float32, [None, common.FEATURES])
        statistic = tf.reduce_mean(batch_in * scale)
        init = tf.global_variables_initializer()
        graph.finalize()
        with tf.Session() as sess:
            sess.run(init)
            before = len(graph.get_operations())
            for batch in common.batches(STEPS):
                sess.run(statistic, {batch_in: batch})
            after = len(graph.get_operations())
            try:
                tf.reduce_mean(batch_in)
                refused = 0
            except RuntimeError:  # "Graph is finalized and cannot be modified."
                refused = 1
    return {"steps": STEPS, "ops_before": before, "ops_after": after, "finalized_graph_refused_new_op": refused}


if __name__ == "__main__": sys.exit(common.run(broken, fixed, __doc__))
