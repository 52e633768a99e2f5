"""Pitfall 9: the kit's own `ops.Batch_Normalization` is the fixed form of pitfall 1.

The originals (and ops.py after them) call contrib's `batch_norm` with
`updates_collections=None`: the moving mean and variance are then updated in place, as
part of computing the layer's training-mode output, instead of being left in UPDATE_OPS
for the train op to depend on. Whatever depends on the output (the loss, hence every train
op) runs the update, and nothing can forget it. The `tf.cond` on the `training` tensor picks
between that training branch and an inference branch that reads the moving statistics;
both branches share one set of variables. The costs: the updates run whenever the training
branch is evaluated, even in a forward pass that does not train, and contrib's documentation
warns of a speed penalty, especially in distributed training.

Threads: https://github.com/yscacaca/DeepSense/issues/16 (what `updates_collections=None`
does), https://github.com/tensorflow/tensorflow/issues/1122 (the idiom with an
`is_training` placeholder, suggested there); the symptom it avoids:
https://github.com/tensorflow/tensorflow/issues/11965

Observable: the moving mean after STEPS training steps on inputs of mean 5, with a plain
`optimizer.minimize(loss)` (no UPDATE_OPS dependency) in both. Broken (contrib/slim
`batch_norm` with its default `updates_collections`): 0, its two update ops sitting unused
in UPDATE_OPS. Fixed (`ops.Batch_Normalization`): close to 5, with nothing in UPDATE_OPS.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `python lab/<script>.py`
from compat import tf, batch_norm  # noqa: E402
from lab import common  # noqa: E402
from lab.bn_update_ops import train  # noqa: E402
import ops  # noqa: E402


def default_batch_norm(x):
    """contrib's batch_norm as most code calls it: updates_collections left at UPDATE_OPS."""
    return batch_norm(x, is_training=True, decay=0.9, scope="bn")


def kit_batch_norm(x):
    """ops.Batch_Normalization in training mode, as trainer.py feeds `training`."""
    return ops.Batch_Normalization(x, tf.constant(True), scope="bn")


def broken():
    return train(update_ops_dependency=False, normalise=default_batch_norm)


def fixed():
    return train(update_ops_dependency=False, normalise=kit_batch_norm)


if __name__ == "__main__": sys.exit(common.run(broken, fixed, __doc__))
