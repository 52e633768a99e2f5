"""compat.py: one TF1 graph-mode API on TF 1.15 and TF 2.x, with the same variables.

These run on whichever runtime the suite runs on; tests/test_cross_runtime.py runs the
other one next to it.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import compat
from compat import tf, TF2, VERSION, batch_norm, arg_scope
from conftest import ROOT
import ops


def test_tf_is_the_v1_api_in_graph_mode():
    assert TF2 == VERSION.startswith("2.")
    assert VERSION.startswith(("1.15", "2."))
    assert not tf.executing_eagerly()
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 2])
        v = tf.get_variable("v", [2], initializer=tf.ones_initializer())
        y = tf.reduce_sum(x * v)
        # reference variables, as TF 1.15 makes them: the optimizers, the batch-norm
        # moving averages and the checkpoints all behave as there
        assert v.op.type == "VariableV2"
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert sess.run(y, {x: [[1.0, 2.0]]}) == 3.0


def test_batch_norm_and_arg_scope_are_contrib_or_the_same_code_in_tf_slim():
    where = "tf_slim." if TF2 else "tensorflow.contrib."
    assert batch_norm.__module__.startswith(where), batch_norm.__module__
    assert arg_scope.__module__.startswith(where), arg_scope.__module__


def test_the_kit_layers_make_the_same_variables_on_every_runtime():
    """The names a checkpoint holds, identical on TF 1.15 (contrib) and TF 2.x (tf_slim, Keras 2)."""
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 8, 8, 3])
        training = tf.placeholder(tf.bool, [])
        y = ops.conv_layer(x, 4, 3, layer_name="c")
        y = ops.Batch_Normalization(y, training, scope="bn")
        y = ops.Linear(ops.Flatten(ops.Global_Average_Pooling(y)), 5, use_bias=True, layer_name="fc")
        found = sorted((v.op.name, v.op.type, v.get_shape().as_list()) for v in tf.global_variables())
    assert found == [
        ("bn/beta", "VariableV2", [4]),
        ("bn/bn/moving_mean/biased", "VariableV2", [4]),  # zero_debias_moving_mean's two extra variables
        ("bn/bn/moving_mean/local_step", "VariableV2", []),
        ("bn/gamma", "VariableV2", [4]),
        ("bn/moving_mean", "VariableV2", [4]),
        ("bn/moving_variance", "VariableV2", [4]),
        ("c/kernel", "VariableV2", [3, 3, 3, 4]),
        ("fc/bias", "VariableV2", [5]),
        ("fc/kernel", "VariableV2", [4, 5]),
    ]
    assert y.get_shape().as_list() == [None, 5]


@pytest.mark.skipif(not TF2, reason="the aliases are for tf_slim on TF >= 2.14; TF 1.15 uses tf.contrib")
def test_tf_slim_finds_the_names_that_moved_in_tf_2_14():
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.ops import control_flow_ops
    if compat._version_tuple(VERSION) < (2, 14):
        pytest.skip("TensorFlow %s still has both names where tf_slim looks" % VERSION)
    from tensorflow.python.framework import tensor
    from tensorflow.python.ops import cond
    assert tf_ops.Tensor is tensor.Tensor
    assert control_flow_ops.cond is cond.cond


def test_layers_batch_normalization_inside_tf_cond_needs_the_update_ops_dependency():
    """docs/tf2.md: tf.layers' batch_normalization under tf.cond trains on both runtimes, its moving
    mean updated through the UPDATE_OPS dependency; its update ops, inside the cond, cannot be fetched."""
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 4])
        training = tf.placeholder(tf.bool, [])
        w = tf.get_variable("w", [4], initializer=tf.ones_initializer())
        y = tf.cond(training, lambda: tf.layers.batch_normalization(x * w, training=True, name="bn"),
                    lambda: tf.layers.batch_normalization(x * w, training=False, name="bn", reuse=True))
        loss = tf.reduce_mean(tf.square(y - 1.0))
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        with tf.control_dependencies(updates):
            train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        moving_mean = [v for v in tf.global_variables() if v.name == "bn/moving_mean:0"][0]
        init = tf.global_variables_initializer()
    data = np.full((8, 4), 5.0, np.float32) + np.arange(8, dtype=np.float32)[:, None]
    with tf.Session(graph=g) as sess:
        sess.run(init)
        sess.run(train_op, {x: data, training: True})
        np.testing.assert_allclose(sess.run(moving_mean), 0.01 * data.mean(axis=0), rtol=1e-5)  # momentum 0.99
        with pytest.raises(Exception, match="marked as not fetchable"):
            sess.run(updates, {x: data, training: True})


def test_batch_norm_builds_inside_tf_cond():
    """The originals' idiom: batch_norm under tf.cond, run in both modes."""
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 2, 2, 2])
        training = tf.placeholder(tf.bool, [])
        y = ops.Batch_Normalization(x, training, scope="bn")
        init = tf.global_variables_initializer()
    data = np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2)
    with tf.Session(graph=g) as sess:
        sess.run(init)
        train_out = sess.run(y, {x: data, training: True})
        test_out = sess.run(y, {x: data, training: False})
    np.testing.assert_allclose(train_out.reshape(-1, 2).mean(axis=0), 0, atol=1e-5)
    assert not np.allclose(train_out, test_out)


def test_global_average_pooling_is_a_mean_over_height_and_width():
    if TF2:  # tflearn 0.5 does not import on TF 2.x: the kit uses reduce_mean itself
        assert ops.tflearn is None
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 3, 5, 2])
        y = ops.Global_Average_Pooling(x)
    data = np.random.RandomState(0).rand(4, 3, 5, 2).astype(np.float32)
    with tf.Session(graph=g) as sess:
        out = sess.run(y, {x: data})
    np.testing.assert_allclose(out, data.mean(axis=(1, 2)), rtol=1e-6)


def test_version_tuple():
    assert compat._version_tuple("2.15.1") == (2, 15)
    assert compat._version_tuple("2.16.0-rc1") == (2, 16)
    assert compat._version_tuple("2.16.0rc1") == (2, 16)
    assert compat._version_tuple("1.15.5") == (1, 15)


SCRIPT = """
import compat, ops
from compat import tf
x = tf.placeholder(tf.float32, [None, 8, 8, 3])
t = tf.placeholder(tf.bool, [])
y = ops.Batch_Normalization(ops.conv_layer(x, 4, 3, layer_name="c"), t, scope="bn")
y = ops.Linear(ops.Flatten(ops.Average_pooling(y)), 3, layer_name="fc")
print("built", y.get_shape().as_list())
"""


def test_a_script_runs_quietly_even_with_tf_use_legacy_keras_set():
    """TF_USE_LEGACY_KERAS=1 (which ./kit sets for tf2) without tf_keras must not break
    tf.layers on TF 2.15, and no deprecation notice may reach the user's terminal."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONPATH=ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    p = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "built [None, 3]"
    assert "deprecat" not in p.stderr.lower(), p.stderr[-2000:]
