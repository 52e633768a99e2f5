"""The same kit on TF 1.15 and TF 2.x: checkpoints move between them, training agrees.

Needs the other runtime's interpreter: KIT_OTHER_PYTHON, or else the `.venv-tf1*`
(when this runs on TF 2.x) or `.venv-tf2` (on TF 1.15) folder that `./kit` makes in
the checkout. Without one every test here is skipped and says so.

What runs ("here" is this process's runtime, "there" the other's):
  1. here writes a kit checkpoint of a freshly initialised tiny ResNeXt (step 0), its
     kernels drawn with numpy, so the start is the same whichever runtime writes it
     (the same --seed does not give the same initial weights on TF 1.15 and TF 2.x:
     graph-level seeds become different op-level seeds there);
  2. each runtime trains a copy of it STEPS steps with ResNeXt.main, checkpointing
     every step;
  3. each predicts the test set from both final checkpoints.

Tolerances, and why (measured on a 2-core x86 CPU, TF 1.15.5 against 2.15.1). With one
thread the two runtimes agree to the last bit on the first step and within 3e-5 after
four. They stop agreeing that closely as soon as a sum is added up in another order:
TF 2.x computes convolutions with oneDNN, whose order depends on the CPU's instruction
set and on the number of threads (and the first session of a process fixes the thread
count for all later ones, so an in-process run cannot be sure of it). The tolerances
cover that noise, measured by running TF 2.15 with two threads against TF 1.15 with one:
  * predictions from one checkpoint: logits differ by ~2e-6; allowed 1e-4.
  * the first step's loss (identical weights, identical batch): measured relative
    difference 7.5e-7, allowed 1e-5. The weights after that step: the update of all
    trainable variables together differs by 3.2e-3 of its norm (allowed 2e-2) and
    each variable by up to 6e-3 of its own norm (allowed 5e-2); the largest are the
    batch-norm betas, whose gradients are sums over 51,200 positions that nearly
    cancel. Against that, Nesterov momentum off changes the update by 47%, a 10%
    smaller learning rate by 10%, batch-norm decay 0.95 instead of 0.9 the moving
    statistics by 50% of their norm.
  * the next steps: each amplifies the last one's rounding differences (batch norm over
    50 images, learning rate 0.05, momentum): per-step losses differed by up to 2e-3
    (allowed 1e-2), the epoch's mean training loss by 1.4e-3 (allowed 1e-2), the test
    loss after it by 1.5e-3 (allowed 2e-2). Real differences are larger: Nesterov off
    moved a step's loss by up to 9%, a 10% smaller learning rate by 2.6%, batch-norm
    decay 0.95 the test loss by 3.6%.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from compat import TF2, VERSION
from conftest import ROOT, checkpoint_variables

import cross_runtime

STEPS = 5  # one epoch of the fake CIFAR-10 (250 images, batches of 50)
TINY = ["--cardinality", "2", "--depth", "4", "--blocks", "1", "--stem_dim", "8", "--out_dims", "8,16,32",
        "--batch_size", "50", "--lr", "0.05", "--augment", "false", "--ckpt_every_steps", "1",
        "--keep_checkpoints", "10"]
OTHER = "TF 1.15" if TF2 else "TF 2.x"


def other_python():
    """(interpreter, None) or (None, why not)."""
    given = os.environ.get("KIT_OTHER_PYTHON")
    if given:
        if not (os.path.isfile(given) and os.access(given, os.X_OK)):
            return None, "KIT_OTHER_PYTHON=%s is not an executable file" % given
        if os.path.realpath(os.path.dirname(os.path.dirname(given))) == os.path.realpath(sys.prefix):
            return None, "KIT_OTHER_PYTHON=%s is the interpreter running these tests: point it at %s" % (given, OTHER)
        return given, None
    names = ["tf1", "tf1-intel", "tf1-py36"] if TF2 else ["tf2"]
    for name in names:
        path = os.path.join(ROOT, ".venv-" + name, "bin", "python")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path, None
    return None, ("no %s interpreter to compare with: build one with `KIT_ENV=%s ./kit python -c pass` or point "
                  "KIT_OTHER_PYTHON at one" % (OTHER, "tf1" if TF2 else "tf2"))


PYTHON, WHY_NOT = other_python()
pytestmark = pytest.mark.skipif(PYTHON is None, reason=WHY_NOT or "")


@pytest.fixture(scope="module")
def runs(fake_cifar, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cross_runtime"))
    argv = ["--data_source", fake_cifar["py"], "--trust_data", "--threads", "1", "--progress", "off"] + TINY
    start, here, there = (os.path.join(root, n) for n in ("start", "here", "there"))
    cross_runtime.write_start(start, argv)
    shutil.copytree(start, here)
    shutil.copytree(start, there)
    cross_runtime.train(here, argv, STEPS)

    job = dict(argv=argv, train=[[there, STEPS]], predict=[here, there], out=os.path.join(root, "there.npz"))
    with open(os.path.join(root, "job.json"), "w") as f:
        json.dump(job, f)
    log = os.path.join(root, "there.log")
    with open(log, "w") as out:
        code = subprocess.call([PYTHON, os.path.join(ROOT, "tests", "cross_runtime.py"), os.path.join(root, "job.json")],
                               cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    with open(log) as f:
        tail = "".join(f.readlines()[-15:])
    assert code == 0, "%s failed (exit %s):\n%s" % (PYTHON, code, tail)
    result = np.load(job["out"])
    version = str(result["version"])
    if version.split(".")[0] == VERSION.split(".")[0]:
        pytest.skip("%s runs TensorFlow %s, the same major version as this one (%s): point KIT_OTHER_PYTHON at %s"
                    % (PYTHON, version, VERSION, OTHER))
    here_logits = cross_runtime.predict([here, there], argv)
    return dict(here=here, there=there, start=start, version=version, result=result,
                logits={("here", "here"): here_logits[0], ("here", "there"): here_logits[1],
                        ("there", "here"): result["logits_0"], ("there", "there"): result["logits_1"]})


def checkpoint(run_dir, step):
    folder = os.path.join(run_dir, "checkpoints", "step-%08d" % step)
    assert os.path.isdir(folder), "no checkpoint of step %d in %s: %s" % (
        step, run_dir, sorted(glob.glob(os.path.join(run_dir, "checkpoints", "*"))))
    return folder


def variables(run_dir, step):
    return checkpoint_variables(checkpoint(run_dir, step))


def step_losses(run_dir):
    """Loss of each step, from the running sums each mid-epoch checkpoint records, then the epoch mean."""
    sums = [0.0]
    for step in range(1, STEPS):
        with open(os.path.join(checkpoint(run_dir, step), "meta.json")) as f:
            partial = json.load(f)["partial"]
        assert partial["seen"] == 50 * step
        sums.append(partial["loss"])
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 1 and records[0]["step"] == STEPS
    per_step = [(b - a) / 50.0 for a, b in zip(sums, sums[1:])]
    return per_step, records[0]


def test_both_runtimes_write_checkpoints_with_the_same_variables(runs):
    start = variables(runs["start"], 0)
    here, there = variables(runs["here"], STEPS), variables(runs["there"], STEPS)
    assert len(start) > 50
    shapes = {k: v.shape for k, v in start.items()}
    assert {k: v.shape for k, v in here.items()} == shapes
    assert {k: v.shape for k, v in there.items()} == shapes
    assert int(here["global_step"]) == int(there["global_step"]) == STEPS


@pytest.mark.parametrize("written", ["there", "here"])
def test_a_checkpoint_predicts_the_same_in_both_runtimes(runs, written):
    """written=there: a checkpoint of the other runtime restored here (and the reverse)."""
    a, b = runs["logits"][("here", written)], runs["logits"][("there", written)]
    assert a.shape == b.shape == (100, 10)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(a.argmax(1), b.argmax(1))
    assert a.std() > 0.01  # a trained model, not a constant


def test_the_two_runs_really_trained(runs):
    start, here = variables(runs["start"], 0), variables(runs["here"], STEPS)
    assert max(np.abs(here[k] - start[k]).max() for k in start if k.endswith("kernel")) > 1e-3


def test_the_first_step_from_the_same_weights_agrees(runs):
    here_losses, _ = step_losses(runs["here"])
    there_losses, _ = step_losses(runs["there"])
    assert here_losses[0] > 1.0  # untrained on 10 classes: about ln 10
    np.testing.assert_allclose(there_losses[0], here_losses[0], rtol=1e-5)
    here, there = variables(runs["here"], 1), variables(runs["there"], 1)
    start = variables(runs["start"], 0)
    moved = 0
    for name in sorted(here):
        a, b = here[name].astype(np.float64), there[name].astype(np.float64)
        scale = max(np.linalg.norm(a), 1e-6)
        assert np.linalg.norm(a - b) <= 5e-2 * scale, "%s differs after one step: %g of its norm" % (
            name, np.linalg.norm(a - b) / scale)
        moved += not np.array_equal(here[name], start[name])
    assert moved > 20  # the step changed weights, slots and statistics
    trainable = [n for n in sorted(start) if n.endswith(("kernel", "bias", "beta", "gamma"))]
    update_here = np.concatenate([(here[n] - start[n]).ravel() for n in trainable]).astype(np.float64)
    update_there = np.concatenate([(there[n] - start[n]).ravel() for n in trainable]).astype(np.float64)
    assert np.linalg.norm(update_here) > 0
    assert np.linalg.norm(update_here - update_there) <= 2e-2 * np.linalg.norm(update_here)


def test_a_few_steps_from_the_same_weights_agree(runs):
    here_losses, here_rec = step_losses(runs["here"])
    there_losses, there_rec = step_losses(runs["there"])
    assert len(here_losses) == STEPS - 1
    np.testing.assert_allclose(there_losses, here_losses, rtol=1e-2)
    np.testing.assert_allclose(there_rec["train_loss"], here_rec["train_loss"], rtol=1e-2)
    np.testing.assert_allclose(there_rec["test_loss"], here_rec["test_loss"], rtol=2e-2)
    assert here_rec["train_loss"] < here_losses[0]  # and it did learn


def test_dropout_draws_the_same_masks_in_both_runtimes(runs):
    """ops.Drop_out keys a stateless generator by (graph seed, layer, step): no runtime's state."""
    there = runs["result"]["dropout"]
    here = cross_runtime.dropout_mask()
    assert here.shape == (4, 6, 6, 3)
    assert 0.3 < (here == 0).mean() < 0.7
    np.testing.assert_array_equal(here, there)
