"""The training loop the four model scripts share.

A model script supplies a graph-building function, its presets and its own flags, then
calls `main(...)`. Everything else happens here, in plain TF1 graph mode:

  graph    placeholders (images, labels, `training`), the model, loss = mean cross-entropy
           + weight_decay * sum(l2_loss), a learning rate computed *from global_step* (so a
           resumed run cannot restart its schedule), the optimizer;
  session  tf.Session(config=tf.ConfigProto(allow_soft_placement=True));
  data     batches are a pure function of (seed, epoch, batch index), made one step ahead
           by a background thread and fed through feed_dict, so a resumed run sees exactly
           the batches an uninterrupted one would;
  each epoch  full test-set evaluation in inference mode (moving BN statistics), a line in
           logs.txt (the originals' fields plus learning rate and images/s), metrics.jsonl,
           TensorBoard scalars, and an atomic checkpoint.

Run folder (`--run_dir`):
  config.json     model, preset, dataset and every hyper-parameter of the run
  logs.txt        the originals' log format, one line per epoch
  metrics.jsonl   the same numbers, machine-readable (the compare command reads them)
  checkpoints/    step-NNNNNNNN/ folders and `latest`; see `Checkpoints` below
  tb/             TensorBoard events
  LOCK            held while a process trains in this folder
"""
from __future__ import division, print_function

import argparse
import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import threading
import time

import numpy as np
from six.moves import queue

from compat import tf, TF2, VERSION
import ops

from settings import (KitError, EXIT_USAGE, EXIT_DISK, EXIT_NAN, EXIT_INTERRUPTED, COMMON_DEFAULTS, RESUMABLE,
                      BOOKKEEPING, TRAINING_ONLY, str2bool, bool_flag, int_list, build_parser, resolve, hparams,
                      check_common, preset_overrides, check_resume, adopt_checkpoint_settings)

KIT_VERSION = "0.1.0"


# ----------------------------------------------------------------------------- data

def input_shape(dataset):
    return ((28, 28, 1), 10) if dataset == "mnist" else ((32, 32, 3), 100 if dataset == "cifar100" else 10)


def load_data(hp):
    """Load, subset and normalise the dataset named in `hp`; returns a dict of float32 arrays."""
    if hp["dataset"] == "mnist":
        import mnist
        d = mnist.load(hp["data_dir"], hp.get("data_source"), hp.get("trust_data"))
        label = "MNIST" if d["verified"] else "MNIST (unverified copy)"
    else:
        import cifar10
        d = cifar10.load(hp["dataset"], hp["data_dir"], hp.get("data_source"), hp.get("trust_data"),
                         binary=hp.get("binary", False))
        name = "CIFAR-100" if hp["dataset"] == "cifar100" else "CIFAR-10"
        label = name if d["verified"] else name + " (unverified copy)"
    if hp.get("train_subset"):
        d["train_x"], d["train_y"] = d["train_x"][:hp["train_subset"]], d["train_y"][:hp["train_subset"]]
    if hp.get("test_subset"):
        d["test_x"], d["test_y"] = d["test_x"][:hp["test_subset"]], d["test_y"][:hp["test_subset"]]
    d["label"] = hp.get("dataset_label") or label
    import cifar10
    if hp["normalization"] == "unit":  # what tensorflow.examples.tutorials.mnist feeds: pixels / 255
        d["train_x"] = cifar10.normalize(d["train_x"], 0.0, 255.0)
        d["test_x"] = cifar10.normalize(d["test_x"], 0.0, 255.0)
    elif hp["normalization"] == "pixel_mean":
        mean = d["train_x"].astype(np.float64).mean(axis=0)
        d["train_x"] = cifar10.normalize(d["train_x"], mean)
        test_mean = d["test_x"].astype(np.float64).mean(axis=0) if hp["test_own_stats"] else mean
        d["test_x"] = cifar10.normalize(d["test_x"], test_mean)
    else:
        mean, std = cifar10.channel_stats(d["train_x"])
        if hp["test_own_stats"]:  # the originals' bug: the test set normalised with its own statistics
            tmean, tstd = cifar10.channel_stats(d["test_x"])
        else:
            tmean, tstd = mean, std
        d["train_x"] = cifar10.normalize(d["train_x"], mean, std)
        d["test_x"] = cifar10.normalize(d["test_x"], tmean, tstd)
    return d


class Batches(object):
    """Training batches as a pure function of (seed, epoch, index), made ahead by a thread.

    Pass p over the data is the permutation `permutation(p)` of the training set. `stream`
    (--batches) says how steps cut the passes into batches:
      epoch   (False) epoch e is pass e cut into ceil(N / B) batches, the last one short
              (N mod B images, as the taki0112 loops' last slice);
      stream  (True) passes 0, 1, 2, ... are one endless sequence and step n takes its
              images n*B to (n+1)*B - 1, so every batch is full and one may straddle two
              passes, as chao-ji's `repeat -> shuffle -> batch` pipeline.
    Either way an epoch is ceil(N / B) steps, so --epochs, --lr_decay_epochs and the per-epoch
    evaluation and checkpoint fall on the same steps; in a stream an epoch holds
    ceil(N / B) * B images (50,048 for CIFAR-10 at 128) and its start drifts through the passes.

    `shard(order)` lets a distributed run take its slice of each epoch's order; in a stream,
    rank r of `workers` takes shard(the global batch of workers x B images), its r::workers share.
    """

    def __init__(self, x, y, batch_size, seed, augment, shuffle_once=False, pad=4, shard=None, prefetch=2, rank=0,
                 stream=False, workers=1):
        self.x, self.y, self.bs, self.seed, self.aug = x, y, batch_size, seed, augment
        self.rank = rank  # a distributed run's other ranks draw their own crops and flips
        self.shuffle_once, self.pad, self.shard = shuffle_once, pad, shard
        self.stream, self.global_bs = stream, batch_size * workers
        if stream:
            self.steps_per_epoch = int(math.ceil(len(x) / float(self.global_bs)))
        else:
            n = len(x) if shard is None else len(shard(np.arange(len(x))))
            self.steps_per_epoch = int(math.ceil(n / float(batch_size)))
        self.prefetch = prefetch
        self._last_pass = (None, None)  # (p, permutation(p)): a stream reads one pass for many steps

    def permutation(self, p):
        rng = np.random.RandomState([self.seed, 0 if self.shuffle_once else p, 7])
        return rng.permutation(len(self.x))

    def order(self, epoch):
        o = self.permutation(epoch)
        return o if self.shard is None else self.shard(o)

    def _pass(self, p):
        last = self._last_pass
        if last[0] != p:
            last = self._last_pass = (p, self.permutation(p))
        return last[1]

    def stream_indices(self, step):
        """This rank's share of images [step * G, (step + 1) * G) of the concatenated passes,
        G being the global batch."""
        at, need, parts = step * self.global_bs, self.global_bs, []
        while need:
            p, offset = divmod(at, len(self.x))
            part = self._pass(p)[offset:offset + need]
            parts.append(part)
            at, need = at + len(part), need - len(part)
        idx = np.concatenate(parts)
        return idx if self.shard is None else self.shard(idx)

    def batch(self, epoch, index, order=None):
        import cifar10
        if self.stream:
            idx = self.stream_indices(epoch * self.steps_per_epoch + index)
        else:
            o = self.order(epoch) if order is None else order
            idx = o[index * self.bs:(index + 1) * self.bs]
        bx = self.x[idx]
        if self.aug:
            key = [self.seed, epoch, index, 11] + ([self.rank] if self.rank else [])
            bx = cifar10.augment(bx, np.random.RandomState(key), pad=self.pad)
        return bx, self.y[idx]

    def iterate(self, epoch, start):
        """Yield (index, images, labels) for indices start..steps_per_epoch-1, one step ahead."""
        q = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        order = None if self.stream else self.order(epoch)

        def work():
            for i in range(start, self.steps_per_epoch):
                item = (i,) + self.batch(epoch, i, order)
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        pass
                if stop.is_set():
                    return
            q.put(None)

        t = threading.Thread(target=work)
        t.daemon = True
        t.start()
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                yield item
        finally:
            stop.set()


# ----------------------------------------------------------------------------- graph

class Graph(object):
    """Placeholders, model, loss, metrics, learning rate and train op of one run."""

    def __init__(self, build_fn, hp, steps_per_epoch, dist=None):
        shape, self.num_classes = input_shape(hp["dataset"])
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(hp["seed"])
            self.x = tf.placeholder(tf.float32, [None] + list(shape), name="images")
            self.y = tf.placeholder(tf.int64, [None], name="labels")
            self.training = tf.placeholder(tf.bool, [], name="training")
            self.global_step = tf.train.get_or_create_global_step()
            self.logits = build_fn(self.x, self.training, hp, self.num_classes)
            # Name scopes (op names only) keep TensorBoard's graph view (--graph) to a few nodes.
            with tf.name_scope("metrics"):
                self.correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(self.logits, 1), self.y), tf.int32))
                self.predictions = tf.argmax(self.logits, 1)
            with tf.name_scope("loss"):
                self.xent = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.y,
                                                                                          logits=self.logits))
                decayed = [v for v in tf.trainable_variables()
                           if hp["decay_on"] == "all" or v.op.name.endswith("kernel")]
                l2 = tf.add_n([tf.nn.l2_loss(v) for v in decayed]) if decayed and hp["weight_decay"] else 0.0
                self.loss = self.xent + hp["weight_decay"] * l2
            with tf.name_scope("learning_rate"):
                self.lr = learning_rate(self.global_step, hp, steps_per_epoch, dist)
            if hp["optimizer"] == "adam":
                opt = tf.train.AdamOptimizer(self.lr, epsilon=hp["adam_epsilon"])
            else:
                opt = tf.train.MomentumOptimizer(self.lr, hp["momentum"], use_nesterov=hp["nesterov"])
            if dist is not None:
                opt = dist.wrap_optimizer(opt)
            with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
                self.train_op = opt.minimize(self.loss, global_step=self.global_step)
            self.num_params = ops.count_params()
            self.stages = [(name, t.get_shape().as_list()) for name, t in tf.get_collection(ops.STAGES)]
            self.saver = tf.train.Saver(tf.global_variables(), max_to_keep=None, save_relative_paths=True)
            self.init = tf.global_variables_initializer()
            self.broadcast = dist.broadcast_op() if dist is not None else None
            self.graph.finalize()


def lr_plan(hp, steps_per_epoch):
    """(boundaries, values) of the piecewise-constant schedule, in steps."""
    decay = int_list(hp["lr_decay_steps"]) or [e * steps_per_epoch for e in int_list(hp["lr_decay_epochs"])]
    bounds, values = [], [hp["lr"]]
    for i, b in enumerate(sorted(decay)):
        bounds.append(int(b))
        values.append(hp["lr"] * hp["lr_decay_factor"] ** (i + 1))
    if hp["warmup_steps"]:
        bounds = [int(hp["warmup_steps"])] + bounds
        values = [hp["warmup_lr"]] + values
    return bounds, values


def lr_at(step, hp, steps_per_epoch, dist=None):
    """The schedule in Python, for the logs and the tests."""
    bounds, values = lr_plan(hp, steps_per_epoch)
    i = 0
    while i < len(bounds) and step >= bounds[i]:
        i += 1
    return values[i] if dist is None else values[i] * dist.lr_scale_at(step, steps_per_epoch)


def learning_rate(global_step, hp, steps_per_epoch, dist=None):
    bounds, values = lr_plan(hp, steps_per_epoch)
    scale = dist.lr_scale(global_step, steps_per_epoch) if dist is not None else None
    # The update made at step s (global_step == s before it) uses the rate of the first
    # interval with s >= boundary, as lr_at says and as chao-ji's `tf.less(global_step, 500)`
    # does; piecewise_constant switches only once x > boundary, hence the - 1.
    lr = tf.train.piecewise_constant(global_step, [tf.cast(b - 1, tf.int64) for b in bounds], values) \
        if bounds else tf.constant(values[0])
    return lr if scale is None else lr * scale


# ----------------------------------------------------------------------------- checkpoints

_reached = {}


def _test_point(name):
    """TEST HOOK, inert unless the environment sets KIT_TEST_KILL_AT=<name>:<n>.

    Then the process SIGKILLs itself the n-th time it reaches the point `name`
    ("checkpoint-files": TF files written, nothing renamed; "checkpoint-renamed": the
    step folder is in place, `latest` not yet updated; "evaluate": mid-evaluation), so
    tests/test_crash.py can crash inside windows too short to hit by timing.
    """
    spec = os.environ.get("KIT_TEST_KILL_AT")
    if spec and spec.rpartition(":")[0] == name:
        _reached[name] = _reached.get(name, 0) + 1
        if _reached[name] >= int(spec.rpartition(":")[2]):
            os.kill(os.getpid(), signal.SIGKILL)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path) or ".")


class Checkpoints(object):
    """Atomic checkpoints in `run_dir/checkpoints`.

    A checkpoint is written into `.tmp-step-N/` (the TF files, then `meta.json` holding
    their SHA-256 and the run's state), fsynced, renamed to `step-N/`, and only then
    named in `latest` (itself replaced atomically). A crash at any moment leaves
    either the old `latest` or the new one, each pointing at a complete folder; on
    resume every candidate is checked against its hashes, newest first, and a damaged
    one is skipped with a message.
    """

    def __init__(self, run_dir, keep=3, log=print):
        self.dir = os.path.join(run_dir, "checkpoints")
        self.keep, self.log = keep, log

    def clean_partial(self):
        if os.path.isdir(self.dir):
            for name in os.listdir(self.dir):
                if name.startswith(".tmp-"):
                    shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)

    def steps(self):
        if not os.path.isdir(self.dir):
            return []
        return sorted((int(n[5:]) for n in os.listdir(self.dir) if n.startswith("step-") and n[5:].isdigit()),
                      reverse=True)

    def path(self, step):
        return os.path.join(self.dir, "step-%08d" % step)

    def save(self, sess, saver, step, meta):
        os.makedirs(self.dir, exist_ok=True)
        final = self.path(step)
        tmp = os.path.join(self.dir, ".tmp-step-%08d" % step)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            os.makedirs(tmp)
            saver.save(sess, os.path.join(tmp, "model"), write_meta_graph=False, write_state=False)
            _test_point("checkpoint-files")
            files = sorted(f for f in os.listdir(tmp))
            meta = dict(meta, step=step, files={f: _sha256(os.path.join(tmp, f)) for f in files})
            with open(os.path.join(tmp, "meta.json"), "w") as f:
                json.dump(meta, f)
                f.flush()
                os.fsync(f.fileno())
            for f in files:
                with open(os.path.join(tmp, f), "rb") as fh:
                    os.fsync(fh.fileno())
            _fsync_dir(tmp)
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.rename(tmp, final)
            _fsync_dir(self.dir)
            _test_point("checkpoint-renamed")
            write_atomic(os.path.join(self.dir, "latest"), os.path.basename(final) + "\n")
        except (OSError, IOError, tf.errors.OpError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            good = self.latest_name()
            reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
            raise KitError("could not write the checkpoint of step %d in %s (%s): free space or fix the folder, then "
                           "run the same command to resume%s" % (step, self.dir, reason.splitlines()[0] if reason else e,
                                                                  "; %s is intact" % good if good else ""), EXIT_DISK)
        for old in self.steps()[self.keep:]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        return final

    def latest_name(self):
        try:
            with open(os.path.join(self.dir, "latest")) as f:
                return f.read().strip() or None
        except (OSError, IOError):
            return None

    def verify(self, folder):
        """meta dict if every file of the checkpoint in `folder` is present and intact, else None."""
        try:
            with open(os.path.join(folder, "meta.json")) as f:
                meta = json.load(f)
            for name, digest in meta["files"].items():
                if _sha256(os.path.join(folder, name)) != digest:
                    return None
            return meta
        except (OSError, IOError, ValueError, KeyError):
            return None

    def find(self):
        """(folder, meta) of the newest intact checkpoint, or (None, None)."""
        named = self.latest_name()
        candidates = ([os.path.join(self.dir, named)] if named else []) + [self.path(s) for s in self.steps()]
        seen, bad = set(), []
        for folder in candidates:
            if folder in seen:
                continue
            seen.add(folder)
            meta = self.verify(folder)
            if meta is not None:
                if bad:
                    self.log("checkpoint %s is incomplete or damaged; resuming from %s instead"
                             % (", ".join(os.path.basename(b) for b in bad), os.path.basename(folder)))
                return folder, meta
            bad.append(folder)
        if bad:
            self.log("no intact checkpoint in %s (damaged: %s); starting from scratch"
                     % (self.dir, ", ".join(os.path.basename(b) for b in bad)))
        return None, None


class RunLock(object):
    """An exclusive lock on a run folder, released by the OS even if the process is killed."""

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, "LOCK")
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (OSError, IOError) as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            other = os.read(self.fd, 64).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise KitError("run folder %s is in use by another training process (pid %s): wait for it to finish or "
                           "pass another --run_dir" % (os.path.dirname(self.path), other))
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


# ----------------------------------------------------------------------------- logging

def log_line(rec, epochs):
    """The originals' logs.txt line, with learning rate and images/s appended."""
    return ("epoch: %d/%d, train_loss: %.4f, train_acc: %.4f, test_loss: %.4f, test_acc: %.4f, "
            "learning_rate: %g, images/s: %.1f" % (rec["epoch"], epochs, rec["train_loss"], rec["train_acc"],
                                                   rec["test_loss"], rec["test_acc"], rec["lr"], rec["images_per_sec"]))


def rewrite_logs(run_dir, history, epochs):
    """logs.txt and metrics.jsonl hold exactly the epochs of `history` (the checkpoint's)."""
    write_atomic(os.path.join(run_dir, "metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in history))
    write_atomic(os.path.join(run_dir, "logs.txt"), "".join(log_line(r, epochs) + "\n" for r in history))


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


# ----------------------------------------------------------------------------- the loop

def session_config(hp, dist=None):
    config = tf.ConfigProto(allow_soft_placement=True)
    if hp.get("threads"):
        config.intra_op_parallelism_threads = hp["threads"]
        config.inter_op_parallelism_threads = hp["threads"]
    if dist is not None:
        dist.configure(config)
    return config


def evaluate(sess, g, x, y, chunk=1000):
    """Mean cross-entropy and accuracy over all of (x, y) in inference mode, plus predictions."""
    total_loss, correct, preds = 0.0, 0, []
    for i in range(0, len(x), chunk):
        bx, by = x[i:i + chunk], y[i:i + chunk]
        loss, c, p = sess.run([g.xent, g.correct, g.predictions], {g.x: bx, g.y: by, g.training: False})
        _test_point("evaluate")
        total_loss += float(loss) * len(bx)
        correct += int(c)
        preds.append(p)
    n = max(len(x), 1)
    return total_loss / n, correct / float(n), np.concatenate(preds) if preds else np.zeros(0, np.int64)


def print_summary(model_name, hp, g, out=None):
    out = out or sys.stdout
    out.write("%s (preset %s, %s): stage output shapes\n" % (model_name, hp["preset"], hp["dataset"]))
    for name, shape in g.stages:
        out.write("  %-28s %s\n" % (name, shape))
    out.write("trainable parameters: %d\n" % g.num_params)
    import cards
    cards.print_location(model_name, g.graph, out)
    if hp.get("graph") is not None:
        cards.write_graph(g.graph, hp["graph"] or os.path.join(hp["run_dir"] or default_run_dir(model_name, hp),
                                                               "graph"), out)


class _StopFlag(object):
    """Ctrl-C / SIGTERM ask the loop to stop at the next step boundary and checkpoint."""

    def __init__(self):
        self.requested = None
        self.previous = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self.previous[s] = signal.signal(s, self.handle)
        return self

    def handle(self, signum, frame):
        if self.requested is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = signum

    def __exit__(self, *exc):
        for s, h in self.previous.items():
            signal.signal(s, h)


def make_batches(hp, data, dist=None, meta=None):
    """The run's Batches. `meta`: the checkpoint being resumed, whose batching must not change."""
    saved = ((meta or {}).get("config") or {}).get("hparams") or {}
    if meta is not None and "batches" not in saved and hp["batches"] != "epoch":
        raise KitError("the checkpoint was written before --batches existed, by a run with --batches epoch: pass "
                       "--batches epoch to resume it, or another --run_dir")
    return Batches(data["train_x"], data["train_y"], hp["batch_size"], hp["seed"], hp["augment"], hp["shuffle_once"],
                   shard=dist.shard if dist is not None else None, rank=dist.rank if dist is not None else 0,
                   stream=hp["batches"] == "stream", workers=dist.size if dist is not None else 1)


def run_folder(model_name, hp):
    """--run_dir, or runs/<model>-<preset>-<dataset> where it is not given."""
    return hp["run_dir"] or os.path.join("runs", "%s-%s-%s" % (model_name, hp["preset"], hp["dataset"]))


def step_limit(total_steps, log):
    """KIT_MAX_STEPS=N ends a run after step N, leaving its schedule and epoch count as they are:
    a smoke test of any command exactly as written (the README's commands run so in the tests)."""
    text = os.environ.get("KIT_MAX_STEPS", "").strip()
    if not text:
        return total_steps
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit < 1:
        raise KitError("KIT_MAX_STEPS must be a positive whole number of steps, got %r: set a number or unset it" % text)
    if limit < total_steps:
        log("KIT_MAX_STEPS=%d: this run stops after step %d of %d; run the same command without it to go on"
            % (limit, limit, total_steps))
    return min(limit, total_steps)


def train(model_name, build_fn, hp, log=print, dist=None, overrides=None):
    """Train (or resume) one run as described by `hp`; returns the last epoch's record.

    `overrides` (see preset_overrides) goes into config.json, where compare.py reads it.
    """
    chief = dist is None or dist.is_chief
    if not chief:  # one voice per run: the other ranks of a distributed run print nothing
        log = _quiet
    run_dir = run_folder(model_name, hp)
    if chief:
        os.makedirs(run_dir, exist_ok=True)
    # The lock and the checks of an existing checkpoint come first, so that a refused run
    # fails before it spends time on the data and the graph.
    with RunLock(run_dir) if chief else _Null():
        ckpts = Checkpoints(run_dir, hp["keep_checkpoints"], log=log)
        folder, meta = None, None
        if chief:
            ckpts.clean_partial()
            folder, meta = ckpts.find()
            if folder is not None and hp.get("fresh"):
                raise KitError("%s already holds checkpoints and --fresh was given: pass another --run_dir or "
                               "drop --fresh" % run_dir)
            if folder is not None:
                check_resume(meta, hp, folder)
                import distributed
                distributed.check_workers(folder, meta, dist)
        if dist is None:  # after check_workers: resuming a distributed run alone is the likelier mistake
            ignored = ["--" + k for k in ("hvd_scale_lr", "hvd_warmup_epochs") if hp.get(k) is not None]
            if ignored:
                raise KitError("%s %s used only by a Horovod run (horovodrun, or --horovod): drop %s, or start "
                               "the script with horovodrun" % (" and ".join(ignored), "is" if len(ignored) == 1
                                                               else "are", "it" if len(ignored) == 1 else "them"))
        data = load_data(hp)
        batches = make_batches(hp, data, dist, meta)
        spe = batches.steps_per_epoch
        total_steps = hp["steps"] or hp["epochs"] * spe
        epochs = int(math.ceil(total_steps / float(spe)))
        total_steps = step_limit(total_steps, log)

        t0 = time.time()
        g = Graph(build_fn, hp, spe, dist)
        build_seconds = time.time() - t0
        config = dict(model=model_name, preset=hp["preset"], dataset=hp["dataset"], dataset_label=data["label"],
                      data_verified=bool(data["verified"]), hparams={k: v for k, v in sorted(hp.items())},
                      num_params=g.num_params, kit_version=KIT_VERSION, tensorflow=VERSION,
                      steps_per_epoch=spe, total_steps=total_steps, epochs_planned=epochs)
        if overrides is not None:
            config["overrides"] = overrides
        if dist is not None:
            config["workers"] = dist.size
        with _StopFlag() as stop, tf.Session(graph=g.graph, config=session_config(hp, dist)) as sess:
            if dist is not None:
                folder, meta = dist.agree_on_checkpoint(folder, meta)
            if folder is not None:
                restore(sess, g, folder, meta, model_name, hp)
                history, partial = meta["history"], meta.get("partial")
                step = int(sess.run(g.global_step))
                # A run that stopped mid-epoch: that epoch goes on, and will log its record again. A run
                # already at its last step (--steps ended it mid-epoch) keeps that record.
                if history and history[-1].get("partial") and step < total_steps:
                    history.pop()
                log("resumed from %s: step %d (%d full epochs and %d steps done), learning rate %g"
                    % (folder, step, step // spe, step % spe, lr_at(step, hp, spe, dist)))
            else:
                sess.run(g.init)
                history, partial, step = [], None, 0
            if g.broadcast is not None:
                sess.run(g.broadcast)
                step = int(sess.run(g.global_step))  # rank 0's, restored or 0
            if chief:
                write_atomic(os.path.join(run_dir, "config.json"), json.dumps(config, indent=1, sort_keys=True) + "\n")
                rewrite_logs(run_dir, history, epochs)
                log("%s: %d trainable parameters, graph built in %.1fs; %s, %d train / %d test images; %d steps of %d "
                    "(%d per epoch)" % (model_name, g.num_params, build_seconds, data["label"], len(data["train_x"]),
                                        len(data["test_x"]), step, total_steps, spe))
            scalars = Scalars(os.path.join(run_dir, "tb")) if chief else None

            def checkpoint(state_partial):
                if chief:
                    ckpts.save(sess, g.saver, step, dict(history=history, partial=state_partial, config=config))

            rec = history[-1] if history else None
            try:
                while step < total_steps:
                    epoch = step // spe
                    start = step % spe
                    acc = partial if (partial and partial.get("epoch") == epoch) else dict(epoch=epoch, loss=0.0, correct=0, seen=0)
                    partial = None
                    bar = _bar(hp, chief, spe, start, epoch, epochs)
                    t_epoch, images = time.time(), 0
                    for index, bx, by in batches.iterate(epoch, start):
                        if step >= total_steps:
                            break
                        fetch = [g.train_op, g.xent, g.correct]
                        _, loss, correct = sess.run(fetch, {g.x: bx, g.y: by, g.training: True})
                        if not np.isfinite(loss):
                            good = ckpts.latest_name()
                            # Training is deterministic: the same settings would diverge at the same step again.
                            raise KitError("loss is %s at step %d (epoch %d): stopped; the last good checkpoint (%s) is "
                                           "kept. The same settings diverge again: start a new --run_dir with a lower --lr "
                                           "or --warmup_steps, or fix the data and run the same command to resume"
                                           % (loss, step + 1, epoch + 1, good or "none yet"), EXIT_NAN)
                        if hp["second_train_pass"]:  # the originals' extra pass, only to log train accuracy
                            correct = sess.run(g.correct, {g.x: bx, g.y: by, g.training: True})
                        step += 1
                        images += len(bx)
                        acc["loss"] += float(loss) * len(bx)
                        acc["correct"] += int(correct)
                        acc["seen"] += len(bx)
                        if bar is not None:
                            bar.set_postfix_str("loss %.3f, %.0f img/s" % (loss, images / max(time.time() - t_epoch, 1e-9)))
                            bar.update(1)
                        if stop.requested is not None:
                            break
                        if hp["ckpt_every_steps"] and step % hp["ckpt_every_steps"] == 0 and step % spe:
                            checkpoint(acc)
                    if bar is not None:
                        bar.close()
                    seconds = time.time() - t_epoch
                    if stop.requested is not None and step % spe and step < total_steps:
                        checkpoint(acc)
                        log("interrupted at step %d: checkpoint written; run the same command to resume" % step)
                        raise KitError("interrupted", EXIT_INTERRUPTED)
                    if chief and (step % spe == 0 or step >= total_steps):
                        test_loss, test_acc, _ = evaluate(sess, g, data["test_x"], data["test_y"])
                        rec = dict(epoch=epoch + 1, step=step, train_loss=acc["loss"] / max(acc["seen"], 1),
                                   train_acc=acc["correct"] / float(max(acc["seen"], 1)), test_loss=test_loss,
                                   test_acc=test_acc, lr=lr_at(step - 1, hp, spe, dist),
                                   images_per_sec=images * (dist.size if dist else 1) / max(seconds, 1e-9),
                                   wall_time=time.time() - t0)
                        if step % spe:  # --steps ended the run inside an epoch
                            rec["partial"] = True
                        history.append(rec)
                        checkpoint(acc if step % spe else None)
                        append_logs(run_dir, rec, epochs)
                        scalars.write(rec)
                        log(log_line(rec, epochs))
                    if stop.requested is not None:
                        log("interrupted at step %d: checkpoint written; run the same command to resume" % step)
                        raise KitError("interrupted", EXIT_INTERRUPTED)
                if dist is not None:
                    dist.finish(sess, g)
            finally:
                if scalars is not None:
                    scalars.close()
        return rec

def _quiet(*args, **kwargs):
    pass


class _Null(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _bar(hp, chief, total, start, epoch, epochs):
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


def restore(sess, g, folder, meta, model_name, hp):
    """Restore `folder` into the session, or raise a one-line KitError if it does not fit."""
    prefix = os.path.join(folder, "model")
    saved = meta.get("config", {}) if meta else {}
    where = "%s --preset %s" % (saved.get("model", "?"), saved.get("preset", "?"))
    try:
        shapes = dict(tf.train.list_variables(prefix))
    except tf.errors.OpError as e:
        raise KitError("cannot read checkpoint %s (%s): pass another --run_dir or --ckpt_path" % (folder, e.message))
    with g.graph.as_default():
        for v in tf.global_variables():
            name = v.op.name
            if name not in shapes:
                raise KitError("checkpoint %s does not fit this model: it has no variable %s (it was written by %s); "
                               "use the same model and settings or another --run_dir" % (folder, name, where))
            if list(shapes[name]) != v.get_shape().as_list():
                raise KitError("checkpoint %s does not fit this model: %s is %s there and %s here (it was written by "
                               "%s); use the same model and settings or another --run_dir"
                               % (folder, name, list(shapes[name]), v.get_shape().as_list(), where))
    g.saver.restore(sess, prefix)


def run_eval(model_name, build_fn, hp, explicit=(), log=print):
    """--eval: restore a checkpoint, report overall and per-class test accuracy, write a confusion matrix.

    `explicit` names the settings given on the command line (the rest may follow the checkpoint).
    """
    run_dir = run_folder(model_name, hp)
    if hp.get("ckpt_path"):
        folder = hp["ckpt_path"].rstrip("/")
        if os.path.basename(folder) == "model":
            folder = os.path.dirname(folder)
        meta = Checkpoints(run_dir).verify(folder)
        if meta is None:
            raise KitError("%s is not an intact kit checkpoint folder (no meta.json, or a file does not match its "
                           "hash): pass a runs/.../checkpoints/step-N folder" % folder)
    else:
        folder, meta = Checkpoints(run_dir, log=log).find()
        if folder is None:
            raise KitError("no checkpoint in %s: train first, or pass --run_dir/--ckpt_path" % run_dir)
    hp = adopt_checkpoint_settings(meta, hp, explicit, log)
    data = load_data(hp)
    g = Graph(build_fn, hp, 1)
    with tf.Session(graph=g.graph, config=session_config(hp)) as sess:
        restore(sess, g, folder, meta, model_name, hp)
        step = int(sess.run(g.global_step))
        loss, acc, preds = evaluate(sess, g, data["test_x"], data["test_y"])
    import report
    matrix = report.confusion_matrix(data["test_y"], preds, g.num_classes)
    names = report.class_names(hp["dataset"], g.num_classes)
    log("checkpoint %s on %s (%d test images): loss %.4f, accuracy %.4f" % (folder, data["label"], len(preds), loss, acc))
    log(report.per_class_table(matrix, names))
    png = os.path.join(run_dir, "confusion_matrix.png")
    os.makedirs(run_dir, exist_ok=True)
    try:
        report.confusion_png(matrix, names, png, title="%s %s: test accuracy %.2f%% at step %d"
                             % (model_name, hp["preset"], 100 * acc, step))
    except ImportError:  # a bare TensorFlow image: the table above is the whole report
        log("no confusion-matrix picture: matplotlib is not installed (pip install matplotlib to get %s)" % png)
    else:  # the same picture into the training's event folder, so TensorBoard shows it beside the scalars
        tb = Scalars(os.path.join(run_dir, "tb"))
        with open(png, "rb") as f:
            tb.image("confusion_matrix", f.read(), step)
        tb.close()
        log("wrote %s, and the TensorBoard image confusion_matrix at step %d into %s"
            % (png, step, os.path.join(run_dir, "tb")))
    return dict(loss=loss, accuracy=acc, confusion=matrix)


def main(model_name, build_fn, presets, add_model_flags, validate=None, argv=None, description=None):
    """Entry point of a model script: parse flags, then --summary, --eval or train."""
    parser = build_parser(model_name, add_model_flags, presets, description or model_name)
    args = parser.parse_args(argv)
    try:
        hp = resolve(args, presets)
        check_common(hp)
        if validate is not None:
            validate(hp)
        if hp["summary"]:
            g = Graph(build_fn, hp, 1)
            print_summary(model_name, hp, g)
            return 0
        if hp["eval"]:
            run_eval(model_name, build_fn, hp, explicit={k for k, v in vars(args).items() if v is not None})
            return 0
        dist = None
        import distributed
        if distributed.requested(hp):
            dist = distributed.Horovod(hp)
        train(model_name, build_fn, hp, dist=dist, overrides=preset_overrides(parser, args, presets, hp))
        return 0
    except KitError as e:
        if e.code != EXIT_INTERRUPTED:
            sys.stderr.write("error: %s\n" % e)
        return e.code
    except (OSError, IOError) as e:  # a full disk outside a checkpoint write (logs, config.json)
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        sys.stderr.write("error: %s writing %s: free space, then run the same command to resume from the last "
                         "checkpoint\n" % (e.strerror, e.filename or "the run folder"))
        return EXIT_DISK
    except KeyboardInterrupt:  # a second Ctrl-C (or Ctrl-C before training began): stop at once
        sys.stderr.write("error: stopped at once, without a new checkpoint; run the same command to resume from the "
                         "last one\n")
        return EXIT_INTERRUPTED
    except Exception as e:  # data errors from the loaders are one line too
        import cifar10
        if isinstance(e, cifar10.DataError):
            sys.stderr.write("error: %s\n" % e)
            return EXIT_USAGE
        raise
