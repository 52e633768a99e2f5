"""Pitfall 2: accuracy at chance with is_training=False.

The visible consequence of pitfall 1. A network with batch norm trains well, and its
accuracy measured in training mode is high; switched to inference mode
(`is_training=False`, `training=False`) for testing, it scores no better than guessing.
In inference mode batch norm normalises with its moving mean and variance instead of the
batch's, and when those were never updated they are still 0 and 1: the layer then passes
its raw input through, and inputs far from zero mean and unit variance (raw pixels, say)
arrive at the next layer in a range it never saw in training.

Thread: https://github.com/tensorflow/tensorflow/issues/1122 (its later comments)

Observable: on a two-class toy set whose features sit around 100, the test accuracy in
inference mode. Broken (train op without the UPDATE_OPS dependency): 0.5, every test point
given the same class, although the training-mode accuracy is near 1. Fixed (with it): near
1 in both modes.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `python lab/<script>.py`
from compat import tf  # noqa: E402
from lab import common  # noqa: E402
from lab.bn_update_ops import minimize  # noqa: E402

OFFSET = 100.0  # every feature's mean: far from the initial moving mean 0
STEPS = 150


def two_classes(n, seed):
    """n points, half of each class, separable on feature 0 (class 0 at -3, class 1 at +3)."""
    rng = np.random.RandomState(seed)
    labels = np.arange(n) % 2
    x = OFFSET + rng.normal(0.0, 1.0, size=(n, 2))
    x[:, 0] += np.where(labels == 1, 3.0, -3.0)
    return x.astype(np.float32), labels.astype(np.int64)


def train(update_ops_dependency):
    """Train x -> batch_normalization -> 2 logits; accuracy on a test set in both modes."""
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        x = tf.placeholder(tf.float32, [None, 2])
        y = tf.placeholder(tf.int64, [None])
        training = tf.placeholder(tf.bool, [])
        logits = tf.layers.dense(tf.layers.batch_normalization(x, training=training, momentum=0.9), 2)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train_op = minimize(tf.train.GradientDescentOptimizer(0.1), loss, update_ops_dependency)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
        init = tf.global_variables_initializer()
        train_x, train_y = two_classes(32 * STEPS, seed=1)
        test_x, test_y = two_classes(200, seed=2)
        with tf.Session() as sess:
            sess.run(init)
            for i in range(STEPS):
                part = slice(32 * i, 32 * (i + 1))
                sess.run(train_op, {x: train_x[part], y: train_y[part], training: True})
            return {"test_accuracy_training_mode": float(sess.run(accuracy, {x: test_x, y: test_y, training: True})),
                    "test_accuracy_inference_mode": float(sess.run(accuracy, {x: test_x, y: test_y, training: False})),
                    "moving_mean": common.moving_mean(sess)}


def broken():
    return train(update_ops_dependency=False)


def fixed():
    return train(update_ops_dependency=True)


if __name__ == "__main__": sys.exit(common.run(broken, fixed, __doc__))
