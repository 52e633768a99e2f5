"""Pitfall 8: what `tf.compat.v1` keeps, and what it drops (contrib).

`import tensorflow.compat.v1 as tf` (what `tf_upgrade_v2` writes, and the usual advice for
running TF1 code on TF 2) keeps the graph-mode API: placeholders, sessions, variable
scopes, `tf.layers`, `tf.train`. It does not keep `tf.contrib`, which TF 2 removed
altogether, and which `tensorflow.compat.v1` lacks even on TF 1.15: code that still says
`tf.contrib.layers.batch_norm` fails with "module ... has no attribute 'contrib'" on
either runtime once ported this way. contrib's layers live on in the `tf_slim` package
(same code, arguments and variable names). The kit's compat.py is the worked example: it
takes `batch_norm` from `tf.contrib.layers` on TF 1.15 and from `tf_slim` on TF 2, so
ops.py reads the same on both. (`tf.compat.v1.layers.batch_normalization` is the other
replacement: it works inside `tf.cond` on both runtimes, but only with the UPDATE_OPS dependency
that the kit's idiom does without: docs/tf2.md.)

Threads: https://github.com/tensorflow/models/issues/8965,
https://github.com/tensorflow/models/issues/7767

Observable, on whichever runtime runs it: whether `tensorflow` itself has contrib (yes on
TF 1.15, no on TF 2) and whether `tensorflow.compat.v1` keeps the graph API. Broken
(`tensorflow.compat.v1.contrib.layers.batch_norm`): raises AttributeError, on both. Fixed
(`from compat import batch_norm`): builds, from contrib on TF 1.15 and tf_slim on TF 2,
with the same variables.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `python lab/<script>.py`
import compat  # noqa: E402
from compat import tf  # noqa: E402
from lab import common  # noqa: E402

GRAPH_API = ("placeholder", "Session", "variable_scope", "get_variable", "layers", "train")


def runtime():
    """What this TensorFlow offers, read off it (compat.py imported it already)."""
    import tensorflow
    v1 = tensorflow.compat.v1
    return {"tensorflow": compat.VERSION, "tensorflow_has_contrib": int(hasattr(tensorflow, "contrib")),
            "compat_v1_keeps_graph_api": int(all(hasattr(v1, name) for name in GRAPH_API))}


def build(get_batch_norm):
    """Build one batch norm with the function `get_batch_norm()` returns; (error, variables)."""
    with tf.Graph().as_default():
        try:
            bn = get_batch_norm()
        except AttributeError as e:
            return str(e), ""
        bn(tf.placeholder(tf.float32, [None, common.FEATURES]), is_training=True, scope="bn")
        return "", " ".join(sorted(v.op.name for v in tf.global_variables()))


def broken():
    import tensorflow.compat.v1 as tf1  # the ported code's import
    error, variables = build(lambda: tf1.contrib.layers.batch_norm)
    return dict(runtime(), builds=int(not error), error=error)


def fixed():
    error, variables = build(lambda: compat.batch_norm)
    source = "tf.contrib.layers" if "contrib" in compat.batch_norm.__module__ else "tf_slim"
    return dict(runtime(), builds=int(not error), batch_norm_from=source, variables=variables)


if __name__ == "__main__": sys.exit(common.run(broken, fixed, __doc__))
