"""What a run writes as it goes: config.json, logs.txt (the originals' format), metrics.jsonl,
TensorBoard scalars, and a progress bar (tqdm, or plain lines where tqdm is missing).
"""
from __future__ import division

import json
import os
import sys
import time

from compat import tf
from checkpoints import write_atomic


def log_line(rec, epochs):
    """The originals' logs.txt line, with learning rate and images/s appended."""
    return ("epoch: %d/%d, train_loss: %.4f, train_acc: %.4f, test_loss: %.4f, test_acc: %.4f, "
            "learning_rate: %g, images/s: %.1f" % (rec["epoch"], epochs, rec["train_loss"], rec["train_acc"],
                                                   rec["test_loss"], rec["test_acc"], rec["lr"], rec["images_per_sec"]))


def rewrite_records(run_dir, config, history, epochs, write=write_atomic):
    """config.json holds `config`, logs.txt and metrics.jsonl exactly the epochs of `history` (the
    checkpoint's), each file written by `write` (checkpoints.write_if_changed leaves one that does
    already as it is). An empty `config` (a checkpoint older than its record) leaves config.json as it is."""
    if config:
        write(os.path.join(run_dir, "config.json"), json.dumps(config, indent=1, sort_keys=True) + "\n")
    write(os.path.join(run_dir, "metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in history))
    write(os.path.join(run_dir, "logs.txt"), "".join(log_line(r, epochs) + "\n" for r in history))


def append_logs(run_dir, rec, epochs):
    for name, text in (("metrics.jsonl", json.dumps(rec)), ("logs.txt", log_line(rec, epochs))):
        with open(os.path.join(run_dir, name), "a") as f:
            f.write(text + "\n")


class Scalars(object):
    """TensorBoard scalars under the originals' tags, once per epoch; and images (--eval's confusion matrix)."""

    def __init__(self, logdir):
        self.writer = tf.summary.FileWriter(logdir)

    def write(self, rec):
        tags = [("train_loss", "train_loss"), ("train_accuracy", "train_acc"), ("test_loss", "test_loss"),
                ("test_accuracy", "test_acc"), ("learning_rate", "lr"), ("images_per_sec", "images_per_sec")]
        summary = tf.Summary(value=[tf.Summary.Value(tag=t, simple_value=float(rec[k])) for t, k in tags])
        self.writer.add_summary(summary, rec["step"])
        self.writer.flush()

    def image(self, tag, png, step):
        """A PNG file's bytes as an image summary at `step`: TensorBoard's Images tab, beside the scalars."""
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # PNG's IHDR
        channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}[png[25]]  # by IHDR's colour type: grey, RGB, palette, +alpha
        image = tf.Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png)
        self.writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=tag, image=image)]), step)
        self.writer.flush()

    def close(self):
        self.writer.close()


def progress_bar(hp, chief, total, start, epoch, epochs):
    """A bar over an epoch's steps on rank 0's terminal; None where --progress or a pipe says no bar."""
    show = hp["progress"]
    if not chief or show == "off" or (show == "auto" and not sys.stderr.isatty()):
        return None
    desc = "epoch %d/%d" % (epoch + 1, epochs)
    try:
        from tqdm import tqdm
    except ImportError:  # a bare TensorFlow image has no tqdm: plain lines instead of a bar
        return PlainProgress(total, start, desc)
    return tqdm(total=total, initial=start, desc=desc, unit="step", leave=False)


class PlainProgress(object):
    """What the loop needs of a tqdm bar, as a line on stderr every `every` seconds."""

    def __init__(self, total, start, desc, every=30.0, out=None):
        self.total, self.n, self.desc, self.every = total, start, desc, every
        self.out = out or sys.stderr
        self.postfix, self.last = "", time.time()

    def update(self, n=1):
        self.n += n
        if time.time() - self.last >= self.every or self.n == self.total:
            self.last = time.time()
            self.out.write("%s: step %d/%d%s\n" % (self.desc, self.n, self.total,
                                                    ", " + self.postfix if self.postfix else ""))
            self.out.flush()

    def set_postfix_str(self, text):
        self.postfix = text

    def close(self):
        pass
