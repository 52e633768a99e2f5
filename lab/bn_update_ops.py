"""Pitfall 1: batch norm's moving statistics are never updated.

`tf.layers.batch_normalization` (and `tf.contrib.layers.batch_norm` with its default
`updates_collections`) does not update its moving mean and variance as a side effect of the
forward pass: it puts the two assign ops into the `tf.GraphKeys.UPDATE_OPS` collection and
leaves running them to the caller. A train op built with a plain `optimizer.minimize(loss)`
does not depend on them, so they never run and the moving statistics stay at their initial
values (mean 0, variance 1) however long one trains. Training looks fine, because training
mode normalises with each batch's own statistics; only inference shows it (pitfall 2).

Thread: https://github.com/tensorflow/tensorflow/issues/11965

Observable: the moving mean after STEPS training steps on inputs of mean 5. Broken: still
exactly 0. Fixed (the train op built under `tf.control_dependencies` on UPDATE_OPS, as
graph.py's Graph does): close to 5. The other fix, `updates_collections=None`, is the kit's
own (lab/kit_batch_norm.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `python lab/<script>.py`
from compat import tf  # noqa: E402
from lab import common  # noqa: E402

STEPS = 60


def minimize(optimizer, loss, update_ops_dependency):
    """The train op, with or without the dependency on UPDATE_OPS: the whole pitfall."""
    if update_ops_dependency:
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            return optimizer.minimize(loss)
    return optimizer.minimize(loss)  # the assign ops of the moving statistics never run


def layers_batch_norm(x):
    return tf.layers.batch_normalization(x, training=True, momentum=0.9)


def train(update_ops_dependency, normalise=layers_batch_norm):
    """Train x -> normalise -> linear head for STEPS steps; returns the observable."""
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, common.FEATURES])
        loss = common.head_loss(normalise(x))
        train_op = minimize(tf.train.GradientDescentOptimizer(0.05), loss, update_ops_dependency)
        init = tf.global_variables_initializer()
        with tf.Session() as sess:
            sess.run(init)
            for batch in common.batches(STEPS):
                sess.run(train_op, {x: batch})
            return {"steps": STEPS, "data_mean": common.DATA_MEAN, "moving_mean": common.moving_mean(sess),
                    "update_ops_in_collection": len(tf.get_collection(tf.GraphKeys.UPDATE_OPS))}


def broken():
    return train(update_ops_dependency=False)


def fixed():
    return train(update_ops_dependency=True)


if __name__ == "__main__": sys.exit(common.run(broken, fixed, __doc__))
