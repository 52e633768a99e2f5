"""What the lab scripts share: the command line, the printed line, fake data, one BN readout.

Every script defines `broken()` and `fixed()`, each building its own graph and returning the
observable as a dict; `run(broken, fixed, __doc__)` is its `__main__`:

    python lab/<script>.py            both, one line each
    python lab/<script>.py --broken   only the broken form
    python lab/<script>.py --fixed    only the fixed form
"""
import argparse

import numpy as np

from compat import tf

FEATURES = 4      # input width of the toy networks
DATA_MEAN = 5.0   # the fake inputs' mean: far from the moving mean's initial 0
DATA_STD = 2.0


def run(broken, fixed, doc, argv=None):
    """Print `broken()` and/or `fixed()` as one line each; returns the exit code."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--broken", action="store_true", help="run only the broken form")
    which.add_argument("--fixed", action="store_true", help="run only the fixed form")
    args = parser.parse_args(argv)
    if not args.fixed:
        print(line("broken", broken()))
    if not args.broken:
        print(line("fixed", fixed()))
    return 0


def line(name, observable):
    """`fixed: moving_mean=4.98 steps=60`: the observable on one line, in its own order."""
    return "%s: %s" % (name, " ".join("%s=%s" % (k, _fmt(v)) for k, v in observable.items()))


def _fmt(v):
    if isinstance(v, float):
        return "%.4g" % v
    if isinstance(v, str):
        return '"%s"' % v
    return str(v)


def batches(steps, batch=32, mean=DATA_MEAN, std=DATA_STD, seed=0):
    """`steps` batches of [batch, FEATURES] Gaussian features, the same on every call."""
    rng = np.random.RandomState(seed)
    return [rng.normal(mean, std, size=(batch, FEATURES)).astype(np.float32) for _ in range(steps)]


def head_loss(h):
    """A linear head on the normalised features and a squared error: something to train."""
    y = tf.layers.dense(h, 1, name="head")
    return tf.reduce_mean(tf.square(y - 1.0))


def moving_mean(sess):
    """The moving mean of the graph's one batch-norm layer, averaged over its channels."""
    found = [v for v in sess.graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
             if v.op.name.endswith("/moving_mean")]
    assert len(found) == 1, [v.op.name for v in found]
    return float(np.mean(sess.run(found[0])))
