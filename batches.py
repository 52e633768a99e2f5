"""The data of a run: the dataset loaded and normalised, and its training batches.

Batches are a pure function of (seed, epoch, batch index), made ahead by a
background thread and fed through feed_dict, so a resumed run sees exactly the batches
an uninterrupted one would.
"""
from __future__ import division

import math
import threading

import numpy as np
from six.moves import queue

import cifar10
from downloads import DataError


# dataset: (one image's shape, the number of classes)
INPUT_SHAPES = {"cifar10": ((32, 32, 3), 10), "cifar100": ((32, 32, 3), 100), "mnist": ((28, 28, 1), 10)}
TRAIN_IMAGES = {"cifar10": 50000, "cifar100": 50000, "mnist": 60000}  # the official training sets


def expected_steps_per_epoch(hp):
    """An epoch's steps in one process (Batches' count) on the official training set or --train_subset
    of it: what turns --lr_decay_epochs into the graph's steps where the data is not loaded (--graph)."""
    n = min(hp.get("train_subset") or TRAIN_IMAGES[hp["dataset"]], TRAIN_IMAGES[hp["dataset"]])
    return int(math.ceil(n / float(hp["batch_size"])))


def load_data(hp):
    """Load, subset and normalise the dataset named in `hp`; returns a dict of float32 arrays."""
    if hp["dataset"] == "mnist":
        import mnist
        d = mnist.load(hp["data_dir"], hp.get("data_source"), hp.get("trust_data"))
        label = "MNIST" if d["verified"] else "MNIST (unverified copy)"
    else:
        d = cifar10.load(hp["dataset"], hp["data_dir"], hp.get("data_source"), hp.get("trust_data"),
                         binary=hp.get("binary", False))
        name = "CIFAR-100" if hp["dataset"] == "cifar100" else "CIFAR-10"
        label = name if d["verified"] else name + " (unverified copy)"
    d["label"] = hp.get("dataset_label") or label
    for part in ("train", "test"):
        n, have = hp.get(part + "_subset"), len(d[part + "_y"])
        # a subset past the end would train on all images while config.json and compare.py say N;
        # --eval's --train_subset is the checkpoint's, which it was trained with either way
        if n and n > have and not (part == "train" and hp.get("eval")):
            raise DataError("--%s_subset %d is more than the %d %s images of %s: pass at most %d (0 takes them all)"
                            % (part, n, have, "training" if part == "train" else "test", d["label"], have))
        if n:
            d[part + "_x"], d[part + "_y"] = d[part + "_x"][:n], d[part + "_y"][:n]
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

    def iterate(self, epoch, start, end=None):
        """Yield (index, images, labels) for indices start..end-1 (end: steps_per_epoch), made ahead.

        An exception raised while making a batch is raised here, in place of that batch."""
        end = self.steps_per_epoch if end is None else end
        q = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        order = None if self.stream else self.order(epoch)

        def work():
            for i in range(start, end + 1):  # one turn more, for the end marker None
                try:
                    item = (i,) + self.batch(epoch, i, order) if i < end else None
                except BaseException as e:  # a thread that died here would leave the loop waiting forever
                    item = e
                while not stop.is_set():  # a consumer that stopped early takes nothing more
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        pass
                if stop.is_set() or not isinstance(item, tuple):
                    return

        t = threading.Thread(target=work)
        t.daemon = True
        t.start()
        try:
            while True:
                item = q.get()
                if isinstance(item, BaseException):
                    raise item  # at the step that needed the batch, with the thread's traceback
                if item is None:
                    return
                yield item
        finally:
            stop.set()


def make_batches(hp, data, dist=None):
    """The run's Batches (a resumed run's --batches is the checkpoint's: checkpoints.check_resume)."""
    return Batches(data["train_x"], data["train_y"], hp["batch_size"], hp["seed"], hp["augment"], hp["shuffle_once"],
                   shard=dist.shard if dist is not None else None, rank=dist.rank if dist is not None else 0,
                   stream=hp["batches"] == "stream", workers=dist.size if dist is not None else 1)
