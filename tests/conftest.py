"""Shared fixtures: tiny synthetic datasets and a way to run a model script in-process."""
import io
import os
import sys
from contextlib import contextmanager

import pytest
from settings import hparams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakedata  # noqa: E402

SHARED = os.path.join(os.path.dirname(ROOT), "shared")  # optional real data beside a checkout


@pytest.fixture(scope="session")
def fake_cifar(tmp_path_factory):
    """A tiny CIFAR-10 (250 train / 100 test) in both official layouts, with archives."""
    return fakedata.write_cifar10(str(tmp_path_factory.mktemp("cifar")))


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory):
    return fakedata.write_mnist(str(tmp_path_factory.mktemp("mnist")))


@contextmanager
def captured():
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = old


def run_main(module, argv):
    """Call `module.main(argv)` in this process; returns (exit code, stdout, stderr)."""
    with captured() as (out, err):
        code = module.main(argv)
    return code, out.getvalue(), err.getvalue()


def usage_error(module, typed, monkeypatch, capsys):
    """stderr of `module.main()` run as the command `typed` with a flag it does not have (argparse: exit 2)."""
    monkeypatch.setattr(sys, "argv", [typed, "--no-such-flag"])
    with pytest.raises(SystemExit) as e:
        module.main()
    assert e.value.code == 2
    return capsys.readouterr().err


def tiny_args(fake, run_dir, *extra):
    """Flags for a few quick steps on the fake CIFAR-10 (python layout, vouched for)."""
    return ["--data_source", fake["py"], "--trust_data", "--run_dir", str(run_dir), "--threads", "1",
            "--progress", "off"] + list(extra)


def checkpoint_variables(folder):
    """{name: value} of every variable of the kit checkpoint in `folder` (runs/.../checkpoints/step-N)."""
    from compat import tf
    reader = tf.train.load_checkpoint(os.path.join(folder, "model"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def settings(module, argv):
    """The checked settings model script `module` would run with for `argv`."""
    return hparams(module.__name__, module.PRESETS, getattr(module, "validate", None), argv)


def summary(module, argv):
    """Run `module --summary argv`; returns ({stage: shape}, trainable parameter total)."""
    import json
    code, out, err = run_main(module, ["--summary", "--threads", "1"] + list(argv))
    assert code == 0, err
    shapes = {}
    for line in out.splitlines():
        if line.startswith("  "):
            name, shape = line.split(None, 1)
            shapes[name] = json.loads(shape.replace("None", "null"))
    return shapes, summary_params(out)


def summary_params(out):
    """The total of --summary's "trainable parameters: N" line."""
    import re
    return int(re.search(r"^trainable parameters: (\d+)$", out, re.M).group(1))


_SCHEDULES = {}


def lr_at(step, hp, steps_per_epoch, dist=None):
    """The learning rate of the update made at `step`, read from graph.learning_rate's tensor
    (the one schedule there is) with global_step fed as `step`."""
    from compat import tf
    from graph import learning_rate
    key = (repr(sorted(hp.items())), steps_per_epoch, id(dist))  # all of hp: whatever the schedule reads
    if key not in _SCHEDULES:
        graph = tf.Graph()
        with graph.as_default():
            global_step = tf.placeholder(tf.int64, [])
            _SCHEDULES[key] = (tf.Session(graph=graph), global_step,
                               learning_rate(global_step, hp, steps_per_epoch, dist), dist)
    sess, global_step, lr, _ = _SCHEDULES[key]  # dist is kept, so that its id stays its own
    return float(sess.run(lr, {global_step: step}))


def weight_decay_term(module, build_fn, argv, seed=0):
    """Build graph.Graph for `module` with `argv`, give every trainable variable random values (gammas
    near 1, betas and biases far from 0, so that every kind of variable weighs in the sum), and feed one
    batch. Returns (hp, loss - xent as the graph computes it, {variable name: value})."""
    import numpy as np
    from compat import tf
    from graph import Graph
    hp = settings(module, argv)
    g = Graph(build_fn, hp, steps_per_epoch=10)
    rng = np.random.RandomState(seed)
    with g.graph.as_default():
        variables = tf.trainable_variables()
    values = {}
    with tf.Session(graph=g.graph) as sess:
        sess.run(g.init)
        for v in variables:
            shape = v.get_shape().as_list()
            value = rng.normal(0.0, 0.05, size=shape) + (1.0 if v.op.name.endswith("gamma") else 0.0)
            if v.op.name.endswith(("beta", "bias")):
                value += rng.choice([-0.5, 0.5], size=shape)
            v.load(value.astype(np.float32), sess)  # through the initializer's input: the graph is finalized
            values[v.op.name] = sess.run(v).astype(np.float64)
        x = rng.normal(0.0, 1.0, size=[4] + g.x.get_shape().as_list()[1:]).astype(np.float32)
        loss, xent = sess.run([g.loss, g.xent], {g.x: x, g.y: np.arange(4), g.training: False})
    return hp, float(loss) - float(xent), values


def half_squares(values, names):
    """sum(0.5 * ||v||^2) over the variables `names` (tf.nn.l2_loss), in float64."""
    return sum(0.5 * float((values[n] ** 2).sum()) for n in names)
