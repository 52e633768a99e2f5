"""bench/bench.py and bench/measure.py: the FLOP count the GFLOP/s column rests on, a measurement in a child
process, and how bench.py edits BENCHMARKS.md."""
import os
import shlex
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench  # noqa: E402
import measure  # noqa: E402
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
    fwd, train = measure.count_flops(g)
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
    # each of these ran the whole bench before: a child aborted inside TensorFlow (--threads -1), a table
    # came out against a ceiling of 0 GFLOP/s or none, a label or formulation was ignored, or, for --out,
    # a traceback after every measurement was taken
    (["--python", ROOT], "error: --python %s is not an executable file" % ROOT),
    (["--threads", "-1"], "error: --threads must be at least 0, got -1"),
    (["--matmul_n", "0"], "error: --matmul_n must be at least 1, got 0"),
    (["--batch_size", "-5"], "error: --batch_size must be at least 0, got -5"),
    (["--steps", "0"], "error: --steps must be at least 1, got 0"),
    (["--label_python", "intel"], "error: --label_python intel: write PATH=NAME"),
    (["--python", sys.executable, "--label_python", "./python=x"], "error: --label_python ./python=x: no --python is"),
    (["--models", ","], "error: --models names no model: choose from ResNeXt"),
    (["--compare", "literal,grouped"], "error: --compare grouped: the formulations are fused, literal"),
    (["--write", "--out", ROOT], "error: --out %s: give a markdown file in an existing folder" % ROOT),
    (["--write", "--out", "/nonexistent/B.md"], "error: --out /nonexistent/B.md: give a markdown file"),
])
def test_bad_arguments_are_one_line_errors(argv, words, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(words) and err.count("\n") == 1, err


def test_a_configuration_is_measured_in_a_child_process():
    """bench.py runs bench/measure.py as a child per configuration and reads its one result line."""
    logged = []
    r = bench.run_child(sys.executable, dict(kind="matmul", n=64, threads=1, reps=2), logged.append)
    assert logged == [] and "error" not in r, (r, logged)
    assert r["kind"] == "matmul" and r["n"] == 64 and r["gflops"] > 0 and r["peak_rss"] > 10 * 2 ** 20
    spec = dict(kind="model", model="ResNet", flags=["--num_layers", "8"], batch_size=8, threads=1, warmup=1, steps=1)
    r = bench.run_child(sys.executable, spec, logged.append)
    assert "error" not in r, r
    assert r["model"] == "ResNet" and r["params"] > 0 and r["train_gflop"] > r["fwd_gflop"] > 0 and r["peak_rss"] > 0
    broken = bench.run_child(sys.executable, dict(kind="model", model="NoSuchModel"), logged.append)
    assert broken["model"] == "NoSuchModel" and "NoSuchModel" in broken["error"]


def test_two_interpreters_with_one_label_are_refused(capsys):
    # the ceilings were kept by label, so the first interpreter's "% of matmul" was taken against the second's
    py = sys.executable
    assert bench.main(["--python", py, "--python", py]) == 2
    err = capsys.readouterr().err
    assert err == ("error: two --python interpreters are both labelled %s: give each a name of its own with "
                   "--label_python PATH=NAME\n" % bench.python_label(py, {}))


def test_flags_are_split_as_a_shell_would(tmp_path, monkeypatch):
    # split on spaces, the child got "--dataset_label", "'CIFAR-10", "(JPEG)'" and refused the stray words
    specs = []

    def child(python, spec, log):
        specs.append(spec)
        return dict(kind=spec["kind"], model=spec.get("model"), error="not measured here")

    monkeypatch.setattr(bench, "run_child", child)
    out = str(tmp_path / "B.md")
    argv = ["--models", "ResNet", "--flags", "--dataset_label 'CIFAR-10 (JPEG)' --num_layers 8", "--write", "--out", out]
    assert bench.main(argv) == 1
    assert [s["flags"] for s in specs if s["kind"] == "model"] == [
        ["--dataset_label", "CIFAR-10 (JPEG)", "--num_layers", "8"]]
    # the command written with the table, pasted into a shell, gives the same arguments back
    command = next(line for line in open(out) if "bench/bench.py" in line).strip()
    assert shlex.split(command)[2:] == argv


def test_flags_with_an_unclosed_quote_are_refused(capsys):
    assert bench.main(["--flags", "--dataset_label 'CIFAR-10"]) == 2
    assert capsys.readouterr().err == (
        "error: --flags --dataset_label 'CIFAR-10: no closing quotation; quote a value with spaces as a shell "
        "would, e.g. \"--dataset_label 'CIFAR-10 (JPEG)'\"\n")
