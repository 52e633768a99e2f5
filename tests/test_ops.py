"""ops.py: the batch-norm idiom, global average pooling, dropout."""
import numpy as np
import pytest

from compat import tf, TF2
import ops


def _bn_graph(decay=0.9):
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 4, 4, 3])
        training = tf.placeholder(tf.bool, [])
        y = ops.Batch_Normalization(x, training, scope="bn", decay=decay)
        init = tf.global_variables_initializer()
    return g, x, training, y, init


def _moving(sess, g):
    with g.as_default():
        by_name = {v.op.name: v for v in tf.global_variables()}
    return sess.run(by_name["bn/moving_mean"]), sess.run(by_name["bn/moving_variance"])


def test_batch_norm_creates_one_set_of_variables():
    g, _, _, _, _ = _bn_graph()
    with g.as_default():
        trainable = sorted(v.op.name for v in tf.trainable_variables())
        names = sorted(v.op.name for v in tf.global_variables())
    assert trainable == ["bn/beta", "bn/gamma"]
    assert "bn/moving_mean" in names and "bn/moving_variance" in names
    assert not any(n.startswith("bn_1") for n in names)  # the reuse=True branch made nothing new
    assert sum(1 for n in names if n.endswith("moving_mean")) == 1


def test_batch_norm_updates_statistics_only_in_training():
    g, x, training, y, init = _bn_graph(decay=0.9)
    data = np.random.RandomState(0).normal(5.0, 2.0, size=(8, 4, 4, 3)).astype(np.float32)
    with tf.Session(graph=g) as sess:
        sess.run(init)
        mean0, var0 = _moving(sess, g)
        out_eval = sess.run(y, {x: data, training: False})
        mean1, var1 = _moving(sess, g)
        np.testing.assert_array_equal(mean0, mean1)  # inference leaves them alone
        np.testing.assert_array_equal(var0, var1)
        # inference normalises with the moving statistics (0 and 1 at start): output ~ input
        np.testing.assert_allclose(out_eval, data / np.sqrt(1 + 1e-3), rtol=1e-5)
        out_train = sess.run(y, {x: data, training: True})
        mean2, _ = _moving(sess, g)
        batch_mean = data.reshape(-1, 3).mean(axis=0)
        # zero-debiased moving mean after one update equals the batch mean
        np.testing.assert_allclose(mean2, batch_mean, rtol=1e-4)
        # training normalises with the batch's statistics
        np.testing.assert_allclose(out_train.reshape(-1, 3).mean(axis=0), 0, atol=1e-4)
        sess.run(y, {x: data, training: True})
        mean3, _ = _moving(sess, g)
        np.testing.assert_allclose(mean3, batch_mean, rtol=1e-4)  # same batch again: debiased mean unchanged
        assert not np.array_equal(_moving(sess, g)[1], var0)


@pytest.mark.skipif(TF2, reason="tflearn 0.5 does not import on TF 2.x; the kit uses reduce_mean there")
def test_global_average_pooling_tflearn_equals_reduce_mean():
    assert ops.tflearn is not None, "tflearn should import under TF 1.15"
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 5, 7, 3])
        a = ops.Global_Average_Pooling(x, use_tflearn=True)
        b = ops.Global_Average_Pooling(x, use_tflearn=False)
    data = np.random.RandomState(1).rand(2, 5, 7, 3).astype(np.float32)
    with tf.Session(graph=g) as sess:
        va, vb = sess.run([a, b], {x: data})
    assert va.shape == (2, 3)
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_allclose(va, data.mean(axis=(1, 2)), rtol=1e-6)


def test_dropout_is_identity_in_inference_and_masks_in_training():
    g = tf.Graph()
    with g.as_default():
        tf.set_random_seed(3)
        x = tf.placeholder(tf.float32, [None, 100])
        training = tf.placeholder(tf.bool, [])
        y = ops.Drop_out(x, 0.5, training)
        step = tf.train.get_or_create_global_step()
        bump = tf.assign_add(step, 1)
        init = tf.global_variables_initializer()
    data = np.ones((50, 100), np.float32)
    with tf.Session(graph=g) as sess:
        sess.run(init)
        np.testing.assert_array_equal(sess.run(y, {x: data, training: False}), data)
        a = sess.run(y, {x: data, training: True})
        a_again = sess.run(y, {x: data, training: True})
        sess.run(bump)
        b = sess.run(y, {x: data, training: True})
    assert set(np.unique(a)) == {0.0, 2.0}  # kept units are scaled by 1 / (1 - rate)
    assert 0.4 < (a == 0).mean() < 0.6
    np.testing.assert_array_equal(a, a_again)  # the mask is a function of the step ...
    assert not np.array_equal(a, b)  # ... and changes with it


def test_count_params():
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 8, 8, 3])
        ops.conv_layer(x, filter=5, kernel=[3, 3], layer_name="c")
        ops.Linear(tf.reshape(x, [-1, 192]), units=4, use_bias=True, layer_name="fc")
        assert ops.count_params() == 3 * 3 * 3 * 5 + 192 * 4 + 4


def test_every_batch_norm_follows_bn_decay():
    """--bn_decay must reach every Batch_Normalization of every model (no silently ignored flag)."""
    from conftest import settings
    import Densenet
    import ResNeXt
    import ResNet
    import SE_ResNeXt
    for module, build, extra in ((ResNeXt, ResNeXt.Build_ResNext, ["--cardinality", "2", "--depth", "4", "--blocks", "1"]),
                                 (SE_ResNeXt, SE_ResNeXt.Build_SEnet, ["--cardinality", "2", "--depth", "4", "--blocks", "1"]),
                                 (Densenet, Densenet.Dense_net, ["--preset", "paper", "--depth", "10"]),
                                 (ResNet, ResNet.Build_ResNet, ["--num_layers", "8", "--preset", "paper"])):
        hp = settings(module, extra + ["--bn_decay", "0.5"])
        g = tf.Graph()
        with g.as_default():
            x = tf.placeholder(tf.float32, [None, 32, 32, 3])
            build(x, tf.placeholder(tf.bool, []), hp, 10)
            decays = [op for op in g.get_operations() if op.type == "Const" and op.name.endswith("AssignMovingAvg/decay")]
            values = {float(tf.make_ndarray(op.get_attr("value"))) for op in decays}
        assert decays and values <= {0.5, 1 - 0.5} | ({0.999, 0.001} if module is ResNet else set()), (module, values)


@pytest.mark.parametrize("script, argv", [("ResNeXt", []), ("SE_ResNeXt", []), ("Densenet", []),
                                          ("Densenet", ["--dataset", "mnist"])],
                         ids=["ResNeXt", "SE_ResNeXt", "Densenet", "Densenet-mnist"])
def test_taki0112_presets_resolve_to_batch_norm_decay_0_9(script, argv):
    """taki0112's three repositories call contrib's batch_norm under arg_scope(decay=0.9, ...)
    (originals.md, "Shared by the three taki0112 repositories"): their original presets resolve to
    bn_decay 0.9, and Batch_Normalization's own default is the same."""
    import importlib
    import inspect
    from settings import build_parser, resolve
    module = importlib.import_module(script)
    parser = build_parser(script, module.PRESETS, script)
    hp = resolve(parser.parse_args(argv), module.PRESETS, parser)
    assert hp["preset"] == "original" and hp["bn_decay"] == 0.9
    assert inspect.signature(ops.Batch_Normalization).parameters["decay"].default == 0.9
