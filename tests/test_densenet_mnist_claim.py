"""bench/densenet_mnist_claim.py: Densenet-Tensorflow's two MNIST networks, restated without the kit."""
import os
import subprocess
import sys

import numpy as np
import pytest

import Densenet
from conftest import ROOT, captured, summary

sys.path.insert(0, os.path.join(ROOT, "bench"))
import densenet_mnist_claim as claim  # noqa: E402

# The first Densenet.py, counted by hand (k = 12; every "BN" is gamma and beta; convs and the dense
# layer have biases):
#   7x7 stem conv 1 -> 24:                            49*24 + 24             =   1,200
#   a bottleneck on c channels: BN 2c, 1x1 c -> 48 (48c + 48), BN 96, 3x3 48 -> 12 (5,184 + 12)
#                                                                            =  50c + 5,340
#   a dense block on c0 channels runs five bottlenecks, on c0, c0+12, ..., c0+48:
#                                                     50 (5 c0 + 120) + 5 * 5,340 = 250 c0 + 32,700
#   the first block (c0 = 24) and the other five (c0 = 12: a block returns 12 channels)
#                                                     38,700 + 5 * 35,700   = 217,200
#   five transitions on 12 channels: BN 24, 1x1 12 -> 12 (144 + 12)     5 * 180 =     900
#   dense 12 -> 10:                                                               130
FIRST_PARAMS = 1200 + 38700 + 5 * 35700 + 5 * 180 + 130


def test_first_network_parameters_and_output():
    g = claim.build("first")
    assert g["params"] == FIRST_PARAMS == 219430
    assert g["logits"].shape.as_list() == [None, 10]
    with g["tf"].Session(graph=g["graph"]) as sess:
        sess.run(g["init"])
        out = sess.run(g["logits"], {g["x"]: np.zeros((3, 28, 28, 1), np.float32), g["training"]: False})
    assert out.shape == (3, 10)


def test_committed_network_is_the_kits_mnist_preset():
    """The restatement and Densenet.py --dataset mnist (original preset) count the same parameters."""
    kit_params = summary(Densenet, ["--dataset", "mnist"])[1]
    assert claim.build("committed")["params"] == kit_params == 552634


def test_learning_rates_follow_each_script():
    assert [claim.learning_rate("first", e, 50) for e in (0, 25, 49)] == [1e-4] * 3
    committed = [claim.learning_rate("committed", e, 50) for e in range(50)]
    # epoch == 50 * 0.5 matches once; epoch == 37.5 never does
    assert committed[:25] == [1e-4] * 25 and all(abs(r - 1e-5) < 1e-12 for r in committed[25:])


def test_trains_and_reports_each_epoch(fake_mnist):
    """Run as users run it, with the environment ./kit gives it (TF_USE_LEGACY_KERAS=1 under tf2)."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "densenet_mnist_claim.py"),
                           "--network", "first", "--data_source", fake_mnist["folder"], "--trust_data",
                           "--epochs", "2", "--train_images", "200"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "network first: 219430 parameters, 200 training images, 2 epochs"
    rows = [line.split() for line in lines[2:4]]
    assert [r[0] for r in rows] == ["1", "2"]
    best = max(float(r[3]) for r in rows)
    assert float(rows[1][4]) == best and 0 <= best <= 100
    assert lines[4].startswith("best test accuracy %.2f %%, final %s %%" % (best, rows[1][3]))


@pytest.mark.parametrize("argv, message", [
    (["--network", "first", "--dropout_rate", "0.2"], "the first network has no dropout"),
    (["--network", "first", "--train_images", "5000"], "the training file has only 300 images"),
    (["--network", "first", "--data_source", "/nonexistent"], "data source /nonexistent does not exist"),
    # the three below were a ValueError traceback at graph build, an abort inside TensorFlow, and NumPy's
    # ValueError traceback
    (["--network", "committed", "--dropout_rate", "1.5", "--train_images", "100"],
     "--dropout_rate is the share of units dropped"),
    (["--network", "first", "--threads", "-1", "--train_images", "100"], "--threads must be at least 0"),
    (["--network", "first", "--seed", "-1", "--train_images", "100"], "--seed must be between 0 and 4294967295"),
])
def test_bad_arguments_are_one_line_errors(fake_mnist, argv, message):
    argv = ["--data_source", fake_mnist["folder"], "--trust_data"] + argv
    with captured() as (_, err), pytest.raises(SystemExit) as e:
        claim.main(argv)
    text = str(e.value.code) if not isinstance(e.value.code, int) else err.getvalue()
    assert message in text and "Traceback" not in text
