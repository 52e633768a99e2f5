"""Pitfall 3: `tf.train.Saver(tf.trainable_variables())` drops the moving statistics.

Saving only the trainable variables looks like a harmless way to keep checkpoints small,
since optimiser slots and counters are not needed to run a model. But batch norm's moving
mean and variance are not trainable (they are computed, not learned by gradient), so such a
checkpoint has no trace of them. Restored into a fresh graph for testing, they keep their
initial values (mean 0, variance 1) and inference mode then fails as in pitfall 2; in the
thread below a released model carried the problem, and the symptom people saw was an
"uninitialized value .../moving_mean" error or bad test results.

Thread: https://github.com/tinghuiz/SfMLearner/issues/17

Observable: the batch-norm moving mean after training on inputs of mean 5 (the kit's
`ops.Batch_Normalization`, which does update it), whether the checkpoint holds it, and its
value after restoring into a new graph. Broken (`Saver(tf.trainable_variables())`): back at
0. Fixed (`Saver()`, every global variable, as graph.py's Saver does): the trained value.
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `python lab/<script>.py`
from compat import tf  # noqa: E402
from lab import common  # noqa: E402
import ops  # noqa: E402

STEPS = 30


def build():
    """x -> the kit's Batch_Normalization (training mode) -> linear head, and its train op."""
    x = tf.placeholder(tf.float32, [None, common.FEATURES])
    h = ops.Batch_Normalization(x, tf.constant(True), scope="bn")
    return x, tf.train.GradientDescentOptimizer(0.05).minimize(common.head_loss(h))


def make_saver(trainable_only):
    return tf.train.Saver(tf.trainable_variables()) if trainable_only else tf.train.Saver()


def save_and_restore(trainable_only):
    """Train and save in one graph, restore into a second; returns the observable."""
    folder = tempfile.mkdtemp(prefix="lab-saver-")
    path = os.path.join(folder, "model")
    try:
        with tf.Graph().as_default():
            x, train_op = build()
            saver = make_saver(trainable_only)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                for batch in common.batches(STEPS):
                    sess.run(train_op, {x: batch})
                trained = common.moving_mean(sess)
                saver.save(sess, path)
        saved = [name for name, _ in tf.train.list_variables(path)]
        with tf.Graph().as_default():
            build()
            saver = make_saver(trainable_only)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())  # what is not in the checkpoint keeps its initial value
                saver.restore(sess, path)
                restored = common.moving_mean(sess)
    finally:
        shutil.rmtree(folder)
    return {"trained_moving_mean": trained, "checkpoint_has_moving_mean": int("bn/moving_mean" in saved),
            "restored_moving_mean": restored}


def broken():
    return save_and_restore(trainable_only=True)


def fixed():
    return save_and_restore(trainable_only=False)


if __name__ == "__main__": sys.exit(common.run(broken, fixed, __doc__))
