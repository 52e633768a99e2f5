"""Pitfall 6: "Variable ... already exists, disallowed" on a second build.

`tf.layers.dense(..., name="fc")`, `tf.get_variable` and the contrib/slim layers create
their variables by name in the default graph. Calling the model-building function a second
time in the same graph (a re-run notebook cell, a second tower for evaluation, a script that
builds the model again after training) asks for the same names once more, and without
reuse TF refuses with a ValueError. Two fixes, for two intentions: to share the variables,
build under `tf.variable_scope(..., reuse=tf.AUTO_REUSE)` (or `reuse=True` on the second
call); to start over, build in a new graph (`with tf.Graph().as_default():`, or
`tf.reset_default_graph()` first, which is what the `reset_graph()` helper at the top of
Geron's notebooks does).

Threads: https://github.com/google-deepmind/neural-processes/issues/4,
https://github.com/tensorflow/tensorflow/issues/11333

Observable: building the same model twice. Broken (same graph, no reuse): the second build
raises ValueError, message shown. Fixed (AUTO_REUSE): no error and still one kernel and one
bias, shared by both builds; building again in a new graph raises nothing either.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `python lab/<script>.py`
from compat import tf  # noqa: E402
from lab import common  # noqa: E402


def model(x, reuse=None):
    with tf.variable_scope("model", reuse=reuse):
        return tf.layers.dense(x, 2, name="fc")


def build_twice(reuse):
    """Call `model` twice in one graph; returns (error message or "", number of variables)."""
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, common.FEATURES])
        model(x, reuse)
        try:
            model(x, reuse)
            error = ""
        except ValueError as e:
            error = str(e).splitlines()[0].replace(" Originally defined at:", "")
        return error, len(tf.global_variables())


def build_in_new_graph():
    """The other fix: each build in a graph of its own; returns the number of variables."""
    for _ in range(2):
        with tf.Graph().as_default():
            model(tf.placeholder(tf.float32, [None, common.FEATURES]))
            count = len(tf.global_variables())
    return count


def broken():
    error, variables = build_twice(reuse=None)
    return {"builds": 2, "raised": int(bool(error)), "variables": variables, "error": error}


def fixed():
    error, variables = build_twice(reuse=tf.AUTO_REUSE)
    return {"builds": 2, "raised": int(bool(error)), "variables": variables,
            "variables_after_rebuild_in_new_graph": build_in_new_graph()}


if __name__ == "__main__": sys.exit(common.run(broken, fixed, __doc__))
