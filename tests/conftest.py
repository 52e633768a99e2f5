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
