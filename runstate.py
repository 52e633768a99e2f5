"""The run state: everything that makes a run robust, kept out of the training loop.

One `RunState` per process and run. It holds the run folder's LOCK; finds the newest intact
checkpoint and checks that this command may resume it; plans the steps (--steps or --epochs,
then KIT_MAX_STEPS); writes config.json, logs.txt, metrics.jsonl and TensorBoard scalars;
saves atomic checkpoints (per epoch, every --ckpt_every_steps, and on Ctrl-C or SIGTERM, after
which the process exits with 130); and stops on a loss that is not finite.

Run folder (`--run_dir`):
  config.json     model, preset, dataset and every hyper-parameter of the run
  logs.txt        the originals' log format, one line per epoch
  metrics.jsonl   the same numbers, machine-readable (the compare command reads them)
  checkpoints/    step-NNNNNNNN/ folders and `latest` (see checkpoints.Checkpoints)
  tb/             TensorBoard events
  LOCK            held while a process trains in this folder

In a Horovod run (distributed.py) only rank 0 holds the lock, reads and writes the folder and
speaks; the other ranks get a RunState that does the same bookkeeping of steps silently, so
the loop has no branch for them.
"""
from __future__ import division, print_function

import math
import os
import signal
import time

import numpy as np

from compat import VERSION
import distributed
import runlogs
from checkpoints import Checkpoints, check_resume, run_lock, write_if_changed
from settings import KitError, EXIT_NAN, EXIT_INTERRUPTED

KIT_VERSION = "0.1.0"


def run_folder(model_name, hp):
    """--run_dir, or runs/<model>-<preset>-<dataset> where it is not given."""
    return hp["run_dir"] or os.path.join("runs", "%s-%s-%s" % (model_name, hp["preset"], hp["dataset"]))


def holds_checkpoint(model_name, hp):
    """Whether the run folder of `hp` (None: flags not read yet) holds a checkpoint to resume."""
    return hp is not None and bool(Checkpoints(run_folder(model_name, hp)).steps())


def _quiet(*args, **kwargs):
    pass


class RunState(object):
    """The robustness around `trainer.train`'s loop.

    Made before the data and the graph, it checks the run folder at once, under the folder's
    lock, which it then lets go: a folder another process trains in, or a checkpoint this
    command may not resume, fails before any time is spent. A folder not there yet is made only
    once the run is entered, so that a run refused before (for its data, say) leaves none behind.
    Entered (`with run, tf.Session(...)`) it holds the lock until the run ends and reads the
    checkpoints' names again: where they changed in between, it finds the checkpoint again, and a
    new one (another process trained here meanwhile) stops the run with a one-line error.

    Its attributes the loop reads: `folder` and `meta` (the checkpoint to resume, or None), and
    `rec` (the last epoch's record, which `trainer.train` returns).
    """

    def __init__(self, model_name, hp, dist=None, log=print):
        self.model_name, self.hp, self.dist = model_name, hp, dist
        self.chief = dist is None or dist.is_chief
        self.log = log if self.chief else _quiet  # one voice per run: the other ranks print nothing
        self.dir = run_folder(model_name, hp)
        self.ckpts = Checkpoints(self.dir, hp["keep_checkpoints"], log=self.log)
        self.stop_requested = self.handlers = None  # Ctrl-C / SIGTERM, from `start` on: see _on_signal
        self.stopping = False  # the loop ends after this step: see _on_signal and after_step
        self.lock = self.scalars = self.rec = self.lr = None
        # KIT_MAX_STEPS=N ends the run after step N (see start); a bad value fails before any time is spent
        text = os.environ.get("KIT_MAX_STEPS", "").strip()
        if text and not (text.isdigit() and int(text) >= 1):
            raise KitError("KIT_MAX_STEPS must be a positive whole number of steps, got %r: set a number or unset "
                           "it" % text)
        self.max_steps = int(text) if text else None
        # --run_dir given a run's checkpoints/ (or a checkpoint in it), meant for --ckpt_path: a new run
        # would start there, among the checkpoints it then rotates
        here = os.path.normpath(self.dir)
        parent = os.path.normpath(os.path.join(here, os.pardir))
        for ckpts, run in ((here, parent), (parent, os.path.normpath(os.path.join(parent, os.pardir)))):
            if os.path.isfile(os.path.join(ckpts, "latest")):
                raise KitError("%s is %s run's checkpoints folder: pass the run folder, --run_dir %s, to resume it "
                               "(or a checkpoint with --eval --ckpt_path to evaluate it)"
                               % (self.dir, "a" if ckpts == here else "in a", run))
        with run_lock(self.dir, held=self.chief, look=True):  # in a Horovod run, rank 0 alone looks after it
            self.folder, self.meta = self._checkpoint_to_resume()

    def _checkpoint_to_resume(self):
        """(folder, meta) of the newest intact checkpoint, checked against this command, or (None, None)."""
        hp, dist, folder, meta = self.hp, self.dist, None, None
        if self.chief:
            folder, meta = self.ckpts.find()
            records = os.path.join(self.dir, "metrics.jsonl")
            # checkpoints deleted, the logs kept: a new run would replace them (where the checkpoints are only
            # damaged, the run starts again from scratch, as it does without logs)
            if folder is None and os.path.isfile(records) and os.path.getsize(records) and not self.ckpts.seen[1]:
                raise KitError("%s holds the logs of a run (metrics.jsonl, logs.txt) but no checkpoint to resume it "
                               "from: pass another --run_dir to keep them, or move them away to start again in this "
                               "folder" % self.dir)
            if folder is not None and hp.get("fresh"):
                raise KitError("%s already holds checkpoints and --fresh was given: pass another --run_dir or "
                               "drop --fresh" % self.dir)
            if folder is not None:
                check_resume(meta, hp, folder, self.model_name)
                distributed.check_workers(folder, meta, dist)
        if dist is not None:
            return dist.agree_on_checkpoint(folder, meta)
        # after check_workers: resuming a distributed run alone is the likelier mistake
        ignored = ["--" + k for k in ("hvd_scale_lr", "hvd_warmup_epochs") if hp.get(k) is not None]
        if ignored:
            raise KitError("%s %s used only by a Horovod run (horovodrun, or --horovod): drop %s, or start the "
                           "script with horovodrun" % (" and ".join(ignored), "is" if len(ignored) == 1 else "are",
                                                       "it" if len(ignored) == 1 else "them"))
        return folder, meta

    def __enter__(self):
        self.lock = run_lock(self.dir, held=self.chief)
        self.lock.__enter__()
        try:
            # The same names as `find` saw: the checkpoint found (and hashed) then is still the one.
            changed = self.chief and (self.ckpts.latest_name(), self.ckpts.steps()) != self.ckpts.seen
            if changed and self._checkpoint_to_resume()[0] != self.folder:
                raise KitError("%s changed while this run was starting (another process trained in it): run the "
                               "same command again" % self.dir)
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for s, h in (self.handlers or {}).items():
            signal.signal(s, h)
        if self.scalars is not None:
            self.scalars.close()
        return self.lock.__exit__(*exc)

    def _on_signal(self, signum, frame):
        """Ctrl-C or SIGTERM, once training has begun: the loop stops at the next step boundary (in a
        Horovod run, the one the ranks agree on: after_step) and checkpoints (end_epoch), then exits
        130. A second one stops at once."""
        if self.stop_requested is not None:
            raise KeyboardInterrupt
        self.stop_requested = signum
        self.stopping = self.dist is None  # Horovod: once the ranks agree (after_step)

    def start(self, sess, g, data, overrides=None):
        """After initialisation or restore: the run's length, the step to go on from and the epochs'
        records, rank 0's variables on every rank, config.json and the logs as of the checkpoint;
        from here on, Ctrl-C and SIGTERM stop the loop at a step boundary with a checkpoint (_on_signal).
        A run already at (or past) the step this command ends at trains nothing and says so in one line;
        its records stay as its checkpoint describes the run (_records_as_trained).

        The length is --steps, or --epochs of the graph's steps per epoch; KIT_MAX_STEPS=N then ends
        the run after step N and leaves its schedule and epoch count as they are (a smoke test of any
        command exactly as written: the README's commands run so in the tests)."""
        hp, spe = self.hp, g.steps_per_epoch
        self.sess, self.g, self.spe, self.t0 = sess, g, spe, time.time()
        planned = hp["steps"] or hp["epochs"] * spe
        self.epochs = int(math.ceil(planned / float(spe)))
        self.total_steps = min(planned, self.max_steps or planned)
        self.handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self.history, self.partial, self.step = [], None, 0
        if self.folder is not None:
            self.history, self.partial = self.meta["history"], self.meta.get("partial")
            self.step = int(sess.run(g.global_step))
            epochs = self.step // spe
            self.log("resumed from %s: step %d (%d full epoch%s and %d steps done), learning rate %g"
                     % (self.folder, self.step, epochs, "" if epochs == 1 else "s", self.step % spe, sess.run(g.lr)))
        if g.broadcast is not None:
            sess.run(g.broadcast)
            self.step = int(sess.run(g.global_step))  # rank 0's, restored or 0
        # Known on every rank only after the broadcast, so that all of them skip the loop alike. The
        # records keep the run as trained: rewritten for this command's length, they would contradict it.
        if self.step >= self.total_steps:
            if self.chief:
                self._records_as_trained()
            self.rec = self.history[-1] if self.history else None
            self.log(self._nothing_to_train(planned))
            return
        if self.total_steps < planned:
            self.log("KIT_MAX_STEPS=%d: this run stops after step %d of %d; run the same command without it to go "
                     "on" % (self.max_steps, self.max_steps, planned))
        # A run that stopped mid-epoch: that epoch goes on, and will log its record again.
        if self.history and self.history[-1].get("partial"):
            self.history.pop()
        # The data of the whole run: a resumed one says what its earlier part read too (compare.py's caveat)
        before = (self.meta or {}).get("config") or {}
        label = before.get("dataset_label") or data["label"]
        if label.rsplit(", then ", 1)[-1] != data["label"]:
            label += ", then " + data["label"]
        verified = bool(data["verified"]) and before.get("data_verified") is not False
        self.config = dict(model=self.model_name, preset=hp["preset"], dataset=hp["dataset"],
                           dataset_label=label, data_verified=verified,
                           hparams={k: v for k, v in sorted(hp.items())}, num_params=g.num_params,
                           kit_version=KIT_VERSION, tensorflow=VERSION, steps_per_epoch=spe,
                           total_steps=self.total_steps, epochs_planned=self.epochs)
        if overrides is not None:
            self.config["overrides"] = overrides
        if self.dist is not None:
            self.config["workers"] = self.dist.size
        if self.chief:
            runlogs.rewrite_records(self.dir, self.config, self.history, self.epochs)
            self.log("%s: %d trainable parameters, graph built in %.1fs; %s, %d train / %d test images; %d steps of "
                     "%d (%d per epoch)" % (self.model_name, g.num_params, g.build_seconds, data["label"],
                                            len(data["train_x"]), len(data["test_x"]), self.step, self.total_steps,
                                            spe))
            self.scalars = runlogs.Scalars(os.path.join(self.dir, "tb"))
        self.rec = self.history[-1] if self.history else None

    def _records_as_trained(self):
        """config.json, logs.txt and metrics.jsonl as the checkpoint describes the run. Only a file that
        differs is written: logs a crash left an epoch behind (its lines follow its checkpoint), or records
        that a command stopped before its first checkpoint rewrote for its own length."""
        config = self.meta.get("config") or {}
        runlogs.rewrite_records(self.dir, config, self.history, config.get("epochs_planned", self.epochs),
                                write=write_if_changed)

    def _nothing_to_train(self, planned):
        """The line of a run with no step left to train: what ends it here, and how to go on."""
        hp, step, cap = self.hp, self.step, self.max_steps
        if step < planned:  # the run goes on, but not under KIT_MAX_STEPS
            at = "at step %d" % step if step == cap else "at step %d, past step %d" % (step, cap)
            return ("%s is %s, where KIT_MAX_STEPS=%d ends this run: nothing to train; unset KIT_MAX_STEPS or raise "
                    "it to train on to step %d" % (self.dir, at, cap, planned))
        length = "--steps %d" % planned if hp["steps"] else "--epochs %d" % hp["epochs"]
        larger = "a larger --steps" if hp["steps"] else "a larger --epochs (or --steps)"
        if step == planned:
            return ("%s is finished: step %d of %d (%s) done; pass %s to train on, or --eval to evaluate it"
                    % (self.dir, step, planned, length, larger))
        return ("%s is finished: it was trained to step %d, past this command's %s%s; pass %s to train on, or --eval "
                "to evaluate it" % (self.dir, step, length, "" if hp["steps"] else " (step %d)" % planned, larger))

    def epochs_left(self):
        """The epochs still to train, the first perhaps a resumed one's rest."""
        if self.step >= self.total_steps:
            return range(0)
        return range(self.step // self.spe, int(math.ceil(self.total_steps / float(self.spe))))

    def batches(self, batches, epoch):
        """(images, labels) of `epoch`'s steps still to train: from a resumed step, to the run's
        last; it ends early once Ctrl-C or SIGTERM asks the run to stop."""
        start = self.step - epoch * self.spe
        end = min(self.spe, self.total_steps - epoch * self.spe)
        fresh = dict(epoch=epoch, loss=0.0, correct=0, seen=0)
        self.acc = self.partial if (self.partial and self.partial.get("epoch") == epoch) else fresh
        self.partial = None
        self.bar = runlogs.progress_bar(self.hp, self.chief, self.spe, start, epoch, self.epochs)
        self.t_epoch, self.images = time.time(), 0
        for _, bx, by in batches.iterate(epoch, start, end):
            yield bx, by
            if self.stopping:
                return

    def after_step(self, loss, correct, images, lr):
        """Count a step's results, and checkpoint every --ckpt_every_steps."""
        if not np.isfinite(loss):
            # Training is deterministic: the same settings would diverge at the same step again.
            raise KitError("loss is %s at step %d (epoch %d): stopped; the last good checkpoint (%s) is kept. The "
                           "same settings diverge again: start a new --run_dir with a lower --lr or --warmup_steps, "
                           "or fix the data and run the same command to resume"
                           % (loss, self.step + 1, self.acc["epoch"] + 1, self.ckpts.latest_name() or "none yet"),
                           EXIT_NAN)
        self.step += 1
        self.images += images
        if self.g.stop_vote is not None:
            # Horovod: every rank stops after the same step. A rank that stopped alone would leave the others
            # waiting in the next step's allreduce, to fail there when it exits: rank 0 without its checkpoint.
            asked, any_asked = self.g.stop_vote
            self.stopping = bool(self.sess.run(any_asked, {asked: self.stop_requested is not None}))
        self.lr = float(lr)  # the rate this step trained at, read from the graph
        self.acc["loss"] += float(loss) * images
        self.acc["correct"] += int(correct)
        self.acc["seen"] += images
        if self.bar is not None:
            rate = self.images / max(time.time() - self.t_epoch, 1e-9)
            self.bar.set_postfix_str("loss %.3f, %.0f img/s" % (loss, rate))
            self.bar.update(1)
        every = self.hp["ckpt_every_steps"]
        if every and self.step % every == 0 and self.step % self.spe and not self.stopping:
            self.save(self.acc)

    def save(self, partial):
        """A checkpoint of this step (rank 0): the weights, the epochs' records, the epoch so far."""
        if self.chief:
            self.ckpts.save(self.sess, self.g.saver, self.step,
                            dict(history=self.history, partial=partial, config=self.config))

    def end_epoch(self):
        """Close the epoch's progress bar; stopped mid-epoch by a signal: checkpoint and exit."""
        if self.bar is not None:
            self.bar.close()
        self.seconds = time.time() - self.t_epoch
        if self.stopping and self.step % self.spe and self.step < self.total_steps:
            self.save(self.acc)
            self.stop_if_asked()

    def evaluation_due(self):
        """True on rank 0 at an epoch's end, or at the run's last step (--steps, KIT_MAX_STEPS)."""
        return self.chief and (self.step % self.spe == 0 or self.step >= self.total_steps)

    def record_epoch(self, test_loss, test_acc):
        """The epoch's record into the history, a checkpoint, logs.txt, metrics.jsonl and TensorBoard."""
        acc, spe = self.acc, self.spe
        rec = dict(epoch=acc["epoch"] + 1, step=self.step, train_loss=acc["loss"] / max(acc["seen"], 1),
                   train_acc=acc["correct"] / float(max(acc["seen"], 1)), test_loss=test_loss, test_acc=test_acc,
                   lr=self.lr, images_per_sec=self.images * (self.dist.size if self.dist else 1) / max(self.seconds,
                                                                                                          1e-9),
                   wall_time=time.time() - self.t0)
        if self.step % spe:  # --steps ended the run inside an epoch
            rec["partial"] = True
        self.history.append(rec)
        self.rec = rec
        self.save(acc if self.step % spe else None)
        runlogs.append_logs(self.dir, rec, self.epochs)
        self.scalars.write(rec)
        self.log(runlogs.log_line(rec, self.epochs))

    def stop_if_asked(self):
        """After Ctrl-C or SIGTERM (the checkpoint written): exit 130."""
        if self.stopping:
            self.log("interrupted at step %d: checkpoint written; run the same command to resume" % self.step)
            raise KitError("interrupted", EXIT_INTERRUPTED)

    def finish(self):
        if self.dist is not None:
            self.dist.finish(self.sess, self.g)
