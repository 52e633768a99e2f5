"""What tests/test_cross_runtime.py runs under each TensorFlow runtime.

The test calls these functions in its own process and runs this file with the other
runtime's interpreter (TF 1.15 if the test runs on TF 2.x, and the reverse):

    python tests/cross_runtime.py JOB.json

JOB.json: {"argv": [ResNeXt flags], "train": [[run_dir, steps], ...],
           "predict": [run_dir, ...], "out": "result.npz"}
Every run folder in "train" is trained (resumed) to `steps` with ResNeXt.main, then the
test-set logits of the newest checkpoint of each "predict" folder are written to
"out" as logits_0, logits_1, ... together with the runtime's version and a dropout mask.
Only the kit's own code paths are used: graph.Graph, checkpoints.Checkpoints, checkpoints.restore.
"""
import json
import math
import os
import sys
from batches import load_data
from checkpoints import Checkpoints, restore
from graph import Graph
from settings import hparams as settings_of

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from compat import tf, VERSION  # noqa: E402
import ops  # noqa: E402
import ResNeXt  # noqa: E402


def hparams(argv):
    return settings_of("ResNeXt", ResNeXt.PRESETS, ResNeXt.validate, argv)


def glorot_uniform(shape, rng):
    """Glorot & Bengio 2010 uniform, what tf.layers' kernels default to, drawn with numpy."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    limit = np.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def write_start(run_dir, argv, seed=0):
    """A kit checkpoint of a freshly initialised model at step 0, which training resumes from.

    The kernels are drawn with numpy rather than by TensorFlow's seeded initialisers,
    which draw different numbers on TF 1.15 and TF 2.x: so the start is the same
    whichever runtime writes it. Everything else keeps its initial value (batch-norm
    gamma 1 and beta 0, moving statistics, zero optimizer slots, step 0).
    """
    hp = hparams(argv + ["--run_dir", run_dir])
    data = load_data(hp)
    spe = int(math.ceil(len(data["train_x"]) / float(hp["batch_size"])))
    g = Graph(ResNeXt.Build_ResNext, hp, spe)
    config = dict(model="ResNeXt", preset=hp["preset"], hparams={k: v for k, v in sorted(hp.items())})
    with g.graph.as_default():
        kernels = sorted((v for v in tf.trainable_variables() if v.op.name.endswith("kernel")), key=lambda v: v.op.name)
    with tf.Session(graph=g.graph, config=tf.ConfigProto(allow_soft_placement=True)) as sess:
        sess.run(g.init)
        for i, v in enumerate(kernels):
            v.load(glorot_uniform(v.get_shape().as_list(), np.random.RandomState([seed, i])), sess)
        return Checkpoints(run_dir, log=lambda s: None).save(
            sess, g.saver, 0, dict(history=[], partial=None, config=config))


def train(run_dir, argv, steps):
    """Resume `run_dir` and train it to `steps` with the model script's own main()."""
    code = ResNeXt.main(argv + ["--run_dir", run_dir, "--steps", str(steps)])
    if code != 0:
        raise RuntimeError("ResNeXt.main exited with %s training %s" % (code, run_dir))


def predict(run_dirs, argv):
    """Test-set logits (inference mode) of the newest intact checkpoint of each folder in `run_dirs`."""
    hp = hparams(argv + ["--run_dir", run_dirs[0]])
    data = load_data(hp)
    g = Graph(ResNeXt.Build_ResNext, hp, 1)
    logits = []
    with tf.Session(graph=g.graph, config=tf.ConfigProto(allow_soft_placement=True)) as sess:
        for run_dir in run_dirs:
            folder, meta = Checkpoints(run_dir, log=lambda s: None).find()
            if folder is None:
                raise RuntimeError("no checkpoint in %s" % run_dir)
            restore(sess, g, folder, meta, "ResNeXt", hp)
            logits.append(sess.run(g.logits, {g.x: data["test_x"], g.training: False}))
    return logits


def dropout_mask(seed=5, step=7):
    """ops.Drop_out's mask for graph seed `seed` at global step `step` (stateless: same on both runtimes)."""
    g = tf.Graph()
    with g.as_default():
        tf.set_random_seed(seed)
        x = tf.ones([4, 6, 6, 3])
        y = ops.Drop_out(x, rate=0.5, training=tf.constant(True))
        gs = tf.train.get_or_create_global_step()
        # One thread, as the training runs use: the first session of a process fixes the size
        # of TensorFlow's thread pools for all later ones, and oneDNN (TF 2.x) adds up in
        # another order with another number of threads.
        one = tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
        with tf.Session(config=one) as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(tf.assign(gs, step))
            return sess.run(y)


def run(job):
    out = {"version": np.array(VERSION)}
    for run_dir, steps in job.get("train", []):
        train(run_dir, job["argv"], steps)
    out["dropout"] = dropout_mask()
    if job.get("predict"):
        for i, logits in enumerate(predict(job["predict"], job["argv"])):
            out["logits_%d" % i] = logits
    np.savez(job["out"], **out)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        run(json.load(f))
