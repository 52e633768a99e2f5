"""Pitfall 4: `tf.cond` and ops created outside its branch functions.

`tf.cond(pred, true_fn, false_fn)` calls both Python functions while the graph is built, so
the ops of both branches exist in the graph; at run time only the ops created inside the
taken branch's function are skipped or run according to `pred`. An op created before the
call, outside the lambdas, and merely returned (or used as a control dependency) by one
branch is an input of the cond, and inputs always run. A counter increment written
`inc = tf.assign_add(...)` followed by `tf.cond(pred, lambda: inc, ...)` therefore runs
every time, whichever branch `pred` picks.

Threads: https://github.com/tensorflow/tensorflow/issues/1410,
https://github.com/tensorflow/tensorflow/issues/3287

Observable: a counter after RUNS evaluations of the cond with `pred` False, and the number
of AssignAdd ops in the graph. Broken (assign_add created outside the lambda): the counter
is RUNS. Fixed (created inside the true branch's lambda): 0, although its AssignAdd op is in
the graph as well: both branches are built, only the taken one runs.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `python lab/<script>.py`
from compat import tf  # noqa: E402
from lab import common  # noqa: E402

RUNS = 5


def run_cond(increment_inside):
    """Evaluate `tf.cond(pred, increment, zero)` RUNS times with pred False."""
    with tf.Graph().as_default() as graph:
        counter = tf.Variable(0, name="counter")
        pred = tf.placeholder(tf.bool, [])
        zero = lambda: tf.constant(0)  # noqa: E731
        if increment_inside:
            result = tf.cond(pred, lambda: tf.assign_add(counter, 1), zero)
        else:
            increment = tf.assign_add(counter, 1)  # built before the cond: an input of it
            result = tf.cond(pred, lambda: increment, zero)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(RUNS):
                sess.run(result, {pred: False})
            return {"runs_with_pred_false": RUNS, "counter": int(sess.run(counter)),
                    "assign_add_ops_in_graph": sum(op.type == "AssignAdd" for op in graph.get_operations())}


def broken():
    return run_cond(increment_inside=False)


def fixed():
    return run_cond(increment_inside=True)


if __name__ == "__main__": sys.exit(common.run(broken, fixed, __doc__))
