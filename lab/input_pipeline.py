"""Pitfall 7: feed_dict versus a tf.data pipeline, and the pipeline that ends after one epoch.

A contrast first. With `feed_dict` the Python loop slices each batch out of a NumPy array
and `sess.run` copies it into TensorFlow at every step; a `tf.data` pipeline produces the
batches inside the runtime, where they can be prepared in parallel with the training step,
which is why the TF1 performance guide advised against feed_dict for large inputs (first
thread). Given the same data and order, both deliver exactly the same batches. (The kit
keeps feed_dict, as the originals do, and makes the next batch in a background thread while
the current step runs: batches.py.) Then the pitfall: a dataset without `.repeat()` is
exhausted after one epoch, and the next `sess.run` on its iterator raises
`OutOfRangeError: End of sequence`, typically at the start of the second epoch (second
thread). `.repeat()` (or re-initialising the iterator every epoch) lets the loop run as
many steps as asked.

Threads: https://github.com/tensorflow/tensorflow/issues/2919,
https://github.com/tensorflow/tensorflow/issues/24399

Observable: a loop asking for two epochs of steps, each step computing the same statistic
once from a fed batch and once from the pipeline's batch. Broken (no repeat): the pipeline
stops the loop with OutOfRangeError after one epoch. Fixed (repeat): every step runs. In
both, every result from the pipeline equals the feed_dict one (the contrast). Which of the
two is faster depends on the machine and the model; it is not measured here.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `python lab/<script>.py`
from compat import tf  # noqa: E402
from lab import common  # noqa: E402

BATCH = 32
STEPS_PER_EPOCH = 4
EPOCHS = 2


def statistic(batch):
    """What each step computes from its batch (a stand-in for a training step's loss)."""
    return tf.reduce_mean(tf.square(batch), axis=0)


def pipeline_loop(repeat):
    """Ask for EPOCHS epochs of steps fed by feed_dict and by tf.data; compare the results."""
    data = np.concatenate(common.batches(STEPS_PER_EPOCH, batch=BATCH))
    steps = STEPS_PER_EPOCH * EPOCHS
    with tf.Graph().as_default():
        fed = tf.placeholder(tf.float32, [None, common.FEATURES])
        from_feed = statistic(fed)
        dataset = tf.data.Dataset.from_tensor_slices(data).batch(BATCH)
        if repeat:
            dataset = dataset.repeat()
        from_pipeline = statistic(tf.data.make_one_shot_iterator(dataset).get_next())
        run, same, out_of_range = 0, True, 0
        with tf.Session() as sess:
            for step in range(steps):
                start = (step % STEPS_PER_EPOCH) * BATCH
                by_feed = sess.run(from_feed, {fed: data[start:start + BATCH]})  # copied in from NumPy
                try:
                    by_pipeline = sess.run(from_pipeline)  # produced inside the runtime
                except tf.errors.OutOfRangeError:
                    out_of_range = 1
                    break
                run += 1
                same = same and np.array_equal(by_feed, by_pipeline)
    return {"steps_asked": steps, "steps_per_epoch": STEPS_PER_EPOCH, "steps_run": run,
            "stopped_by_out_of_range": out_of_range, "results_equal_feed_dict": int(same)}


def broken():
    return pipeline_loop(repeat=False)


def fixed():
    return pipeline_loop(repeat=True)


if __name__ == "__main__": sys.exit(common.run(broken, fixed, __doc__))
