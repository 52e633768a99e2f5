"""ResNeXt's fused formulation computes the literal one's function.

Both graphs get the same weights (the literal graph's, copied across by
`literal_to_fused`) and the same batch; then training-mode and inference-mode logits,
the loss, the gradients of every variable and of the input, and the batch-norm moving
averages after a training-mode pass must agree to float32 rounding.
"""
import re

import numpy as np
import pytest

from compat import tf
import ops
import ResNeXt
import fused
from settings import build_parser, resolve

TINY = dict(cardinality=3, depth=4, blocks=1, stem_dim=8, out_dims="8,16,32")  # an identity, a pad/projection shortcut
PATH_VAR = re.compile(r"^(split_layer_\d+_\d+)_splitN_(\d+)_(conv1|conv2|batch1|batch2)(/.*)$")


def hparams(formulation, preset, **override):
    parser = build_parser("ResNeXt", ResNeXt.PRESETS, "")
    hp = resolve(parser.parse_args(["--preset", preset, "--formulation", formulation]), ResNeXt.PRESETS)
    hp.update(TINY)
    hp.update(override)
    ResNeXt.validate(hp)
    return hp


def literal_to_fused(values):
    """{literal variable name: value} -> {fused variable name: value}.

    A path's conv kernels and BN vectors go side by side along the last axis, path 0 first;
    the zero-debias step counter is the same scalar in every path. Other names are shared.
    """
    groups, out = {}, {}
    for name, value in values.items():
        m = PATH_VAR.match(name)
        if m is None:
            out[name] = value
            continue
        block, path, layer, rest = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        fused = block + "_" + layer + rest.replace("%s_splitN_%d_%s" % (block, path, layer), block + "_" + layer)
        groups.setdefault(fused, []).append((path, value))
    for fused, parts in groups.items():
        parts = [v for _, v in sorted(parts, key=lambda p: p[0])]
        if np.ndim(parts[0]) == 0:
            assert all(p == parts[0] for p in parts), fused
            out[fused] = parts[0]
        else:
            out[fused] = np.concatenate(parts, axis=-1)
    return out


class Net(object):
    """The model, the trainer's loss (cross-entropy + weight decay on every variable) and its gradients."""

    def __init__(self, hp):
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(3)
            self.x = tf.placeholder(tf.float32, [None, 32, 32, 3])
            self.y = tf.placeholder(tf.int64, [None])
            self.training = tf.placeholder(tf.bool, [])
            self.logits = ResNeXt.Build_ResNext(self.x, self.training, hp)
            xent = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.y, logits=self.logits))
            self.vars = tf.trainable_variables()
            self.loss = xent + 5e-4 * tf.add_n([tf.nn.l2_loss(v) for v in self.vars])
            grads = tf.gradients(self.loss, self.vars + [self.x])
            self.grads = dict(zip([v.op.name for v in self.vars] + ["input"], grads))
            self.init = tf.global_variables_initializer()
            self.all_vars = tf.global_variables()
            self.feeds = [tf.placeholder(v.dtype.base_dtype, v.get_shape()) for v in self.all_vars]
            self.assign = tf.group(*[v.assign(p) for v, p in zip(self.all_vars, self.feeds)])
        self.sess = tf.Session(graph=self.graph, config=tf.ConfigProto(intra_op_parallelism_threads=1,
                                                                       inter_op_parallelism_threads=1))
        self.sess.run(self.init)

    def values(self):
        return dict(zip([v.op.name for v in self.all_vars], self.sess.run(self.all_vars)))

    def load(self, values):
        names = {v.op.name for v in self.all_vars}
        assert names == set(values), sorted(names ^ set(values))[:6]
        self.sess.run(self.assign, {p: values[v.op.name] for v, p in zip(self.all_vars, self.feeds)})


def randomise(net, rng):
    """Make gamma, beta and the moving statistics non-trivial, so that each of them shows in the outputs."""
    values = net.values()
    for name, value in values.items():
        shape = np.shape(value)
        if name.endswith("/gamma") or name.endswith("/moving_variance"):
            values[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif name.endswith("/beta") or name.endswith("/moving_mean") or name.endswith("/biased"):
            values[name] = rng.normal(0, 0.2, shape).astype(np.float32)
        elif name.endswith("/local_step"):
            values[name] = np.float32(3)
    net.load(values)


def assert_close(a, b, what):
    scale = max(1.0, float(np.max(np.abs(a))))
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5 * scale, err_msg=what)


@pytest.mark.parametrize("preset", ["original", "paper"])
def test_fused_matches_literal_outputs_gradients_and_moving_averages(preset):
    rng = np.random.RandomState(0)
    literal = Net(hparams("literal", preset))
    fused = Net(hparams("fused", preset))
    randomise(literal, rng)
    fused.load(literal_to_fused(literal.values()))
    x = rng.normal(0, 1, (6, 32, 32, 3)).astype(np.float32)
    y = rng.randint(0, 10, 6)

    infer = [n.sess.run(n.logits, {n.x: x, n.training: False}) for n in (literal, fused)]
    assert_close(infer[0], infer[1], "inference-mode logits")
    assert np.abs(infer[0]).max() > 1e-3  # a network that outputs zeros would agree trivially

    runs = []
    for n in (literal, fused):
        names = sorted(n.grads)
        out = n.sess.run([n.logits, n.loss] + [n.grads[k] for k in names], {n.x: x, n.y: y, n.training: True})
        runs.append((out[0], out[1], dict(zip(names, out[2:]))))
    assert_close(runs[0][0], runs[1][0], "training-mode logits")
    assert_close(runs[0][1], runs[1][1], "loss")
    assert_close(runs[0][2].pop("input"), runs[1][2].pop("input"), "gradient of the input")
    expected = literal_to_fused(runs[0][2])
    assert set(expected) == set(runs[1][2])
    assert len(expected) < len(runs[0][2])  # the fused graph really has merged variables
    for name, g in expected.items():
        assert np.abs(g).max() > 0, name
        assert_close(g, runs[1][2][name], "gradient of " + name)

    # That training-mode pass updated the moving averages (zero-debiased mean, variance) in place.
    after = literal_to_fused(literal.values())
    got = fused.values()
    for name, value in after.items():
        assert_close(value, got[name], "after a training pass: " + name)
    assert after["first_layer_batch1/first_layer_batch1/moving_mean/local_step"] == 4


def test_fused_variables_are_the_literal_ones_side_by_side():
    with tf.Graph().as_default():
        ResNeXt.Build_ResNext(tf.placeholder(tf.float32, [None, 32, 32, 3]), tf.placeholder(tf.bool, []),
                              hparams("fused", "original"))
        shapes = {v.op.name: v.get_shape().as_list() for v in tf.global_variables()}
    assert shapes["split_layer_1_0_conv1/kernel"] == [1, 1, 8, 3 * 4]          # three 1x1 kernels 8 -> 4
    assert shapes["split_layer_1_0_conv2/kernel"] == [3, 3, 4, 3 * 4]          # grouped 3x3: in = one path's 4
    assert shapes["split_layer_1_0_batch2/moving_mean"] == [12]
    assert not [n for n in shapes if "splitN" in n]


@pytest.mark.parametrize("preset,total", [("original", 3957696), ("paper", 34426698)])
def test_both_formulations_have_the_presets_parameter_totals(preset, total):
    parser = build_parser("ResNeXt", ResNeXt.PRESETS, "")
    counts, sizes = {}, {}
    for formulation in ("fused", "literal"):
        hp = resolve(parser.parse_args(["--preset", preset, "--formulation", formulation]), ResNeXt.PRESETS)
        g = tf.Graph()
        with g.as_default():
            ResNeXt.Build_ResNext(tf.placeholder(tf.float32, [None, 32, 32, 3]), tf.placeholder(tf.bool, []), hp)
            counts[formulation] = ops.count_params()
            sizes[formulation] = len(g.get_operations())
        if preset == "paper":
            break  # the literal paper network is slow to build; its total is test_resnext's
    assert counts["fused"] == total
    if "literal" in counts:
        assert counts["literal"] == total
        assert sizes["fused"] * 3 < sizes["literal"]  # the point of fusing: a much smaller graph


def test_default_formulation_is_fused_and_literal_is_selectable():
    parser = build_parser("ResNeXt", ResNeXt.PRESETS, "")
    for preset in ResNeXt.PRESETS:
        assert resolve(parser.parse_args(["--preset", preset]), ResNeXt.PRESETS)["formulation"] == "fused"
    hp = resolve(parser.parse_args(["--formulation", "literal"]), ResNeXt.PRESETS)
    assert hp["formulation"] == "literal"
    with pytest.raises(SystemExit):
        parser.parse_args(["--formulation", "grouped"])


@pytest.mark.parametrize("init,expected_std", [
    ("glorot", np.sqrt(2.0 / (9 * 16 + 9 * 16))),  # Glorot uniform: var = 2 / (fan_in + fan_out) of ONE path
    ("he", np.sqrt(2.0 / (9 * 16))),                # He (fan_out): var = 2 / fan_out of ONE path
])
def test_fused_kernels_are_drawn_like_one_path_kernel(init, expected_std):
    """[3, 3, 16, 8*16] holds eight 16 -> 16 kernels: its spread must be a single path's, not a 16 -> 128 conv's."""
    initializer = fused._per_path(ops.kernel_init(dict(init=init)), 8)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        w = initializer([3, 3, 16, 8 * 16])
        with tf.Session() as sess:
            value = sess.run(w)
    assert value.shape == (3, 3, 16, 128)
    for path in np.split(value, 8, axis=-1):
        assert abs(path.std() / expected_std - 1) < 0.06
    if init == "glorot":
        limit = np.sqrt(6.0 / (9 * 16 + 9 * 16))
        assert np.abs(value).max() <= limit and np.abs(value).max() > 0.95 * limit
