"""bench/bench.py: the FLOP count its GFLOP/s column rests on, and how it edits BENCHMARKS.md."""
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench  # noqa: E402
from compat import tf  # noqa: E402


@pytest.mark.parametrize("gated", [True, False])
def test_flops_of_a_conv_and_a_dense_layer_and_their_gradients(gated):
    """2 x multiply-adds per image: forward conv and matmul, and the backprops a step runs."""
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 8, 8, 3])
        w = tf.get_variable("w", [3, 3, 3, 16])
        y = tf.nn.conv2d(x, w, strides=[1, 2, 2, 1], padding="SAME")  # 4x4x16 outputs, 27 MACs each
        v = tf.get_variable("v", [4 * 4 * 16, 10])
        logits = tf.matmul(tf.reshape(y, [-1, 256]), v)                # 2,560 MACs
        loss = tf.reduce_sum(logits)
        if gated:  # what the trainer does
            tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        else:
            tf.group(*tf.gradients(loss, [w, v]))
    conv, dense = 2 * 4 * 4 * 16 * 27, 2 * 256 * 10
    fwd, train = bench.count_flops(g)
    assert fwd == conv + dense
    # dense: forward and both gradients; conv: forward, filter gradient, and the input gradient
    # only where minimize's gating makes the step run it
    assert train == (3 if gated else 2) * conv + 3 * dense


def test_write_replaces_only_its_own_section(tmp_path):
    path = str(tmp_path / "BENCHMARKS.md")
    with open(path, "w") as f:
        f.write("# Benchmarks\n\nintro\n\n<!-- bench:main:begin -->\nold table\n<!-- bench:main:end -->\n\nnotes\n")
    bench.write_markdown(path, "main", "new table\n")
    bench.write_markdown(path, "other", "second\n")
    text = open(path).read()
    assert text == ("# Benchmarks\n\nintro\n\n<!-- bench:main:begin -->\nnew table\n<!-- bench:main:end -->\n\nnotes\n"
                    "\n<!-- bench:other:begin -->\nsecond\n<!-- bench:other:end -->\n")
    assert not os.path.exists(path + ".tmp")


@pytest.mark.parametrize("argv, words", [
    (["--models", "VGG"], "error: unknown model VGG: choose from ResNeXt, SE_ResNeXt, Densenet, ResNet"),
    (["--python", "/nonexistent/python"], "error: --python /nonexistent/python does not exist"),
])
def test_bad_arguments_are_one_line_errors(argv, words, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(words) and err.count("\n") == 1, err
