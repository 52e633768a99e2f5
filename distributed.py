"""Data-parallel training with Horovod (Sergeev & Del Balso 2018, arXiv 1802.05799).

    horovodrun -np 2 -H localhost:2 python ResNeXt.py [flags]          # 2 GPUs (or CPU processes)
    horovodrun -np 8 -H host1:4,host2:4 python ResNeXt.py [flags]      # 2 machines x 4 GPUs

Every process runs the same graph on its own slice of each batch; `hvd.DistributedOptimizer`
averages the gradients over the processes with an allreduce before they are applied, so the
weights stay identical everywhere. `trainer.train` (its RunState and Graph) calls the hooks
below in a process that horovodrun started, that mpirun started as one of several processes,
or that was given `--horovod`; any other run is the plain single-process loop, unchanged.
Only this module imports Horovod.

The choices, following Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training ImageNet
in 1 Hour" (arXiv 1706.02677):
  batch       --batch_size is per process; a step consumes workers x batch_size images.
  lr          linear scaling rule (their section 2.1): lr x workers, reached by a linear ramp
              from 1x over the first --hvd_warmup_epochs epochs (their "gradual warmup",
              section 2.2, 5 epochs). It multiplies the whole schedule, --warmup_lr included.
              TF's MomentumOptimizer applies lr outside the momentum buffer, so no momentum
              correction (their section 3) is needed when lr changes.
  batch norm  statistics over each process's own batch_size images, as in their section 2.3
              (per-worker BN); moving averages are not averaged, and rank 0's are the ones
              evaluated and saved.
  data        `shard`: global batch k of the epoch's permutation is split round-robin over the
              ranks, so a step sees the images a single process with batch_size x workers
              would see at that step (tests/test_horovod.py checks the weights match); only
              when the training set is not a multiple of the number of ranks does the last
              batch repeat a few of the epoch's first images.
  rank 0      alone holds the run LOCK, evaluates, logs and checkpoints; the others wait for it
              at their next allreduce. On resume rank 0 restores its newest intact checkpoint
              and broadcasts every variable (global_step, optimizer slots included), so the
              other ranks need no access to the run folder (no shared file system needed).
"""
import multiprocessing
import os
import shlex
import sys

import numpy as np

from compat import tf, kit_command
from settings import KitError

# What the launchers set in each process: horovodrun --gloo sets HOROVOD_RANK; horovodrun on an
# MPI build (NVIDIA's NGC image) and mpirun set only their MPI's variables.
MPI_SIZE_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
# What a Horovod flag not given stands for. The settings keep None there, so that a single process
# can refuse one given; a resume compares what they stand for (`as_meant`).
DEFAULTS = {"hvd_scale_lr": True, "hvd_warmup_epochs": 5.0}


def as_meant(settings):
    """`settings` with each Horovod flag not given (None) at the value it stands for."""
    return dict(settings, **{k: v for k, v in DEFAULTS.items() if settings.get(k) is None})


def requested(hp):
    """True when this process should train with Horovod: --horovod, horovodrun started it, or
    mpirun started it as one of several processes (which, training alone, would fight over one
    run folder)."""
    if hp.get("horovod") or os.environ.get("HOROVOD_RANK") is not None:
        return True
    sizes = [os.environ.get(k, "") for k in MPI_SIZE_ENV]
    return any(n.isdigit() and int(n) > 1 for n in sizes)


def check_workers(folder, meta, dist):
    """Refuse to resume a checkpoint written by another number of processes.

    The global batch, the steps per epoch and so the schedule depend on it: resumed
    with another number, a run would go on as another run. config.json records
    `workers` for a distributed run; a single-process run records none (1).
    """
    saved = (meta.get("config") or {}).get("workers", 1)
    here = dist.size if dist is not None else 1
    if saved != here:
        how = "horovodrun -np %d" % saved if saved > 1 else "a plain python command (no horovodrun)"
        raise KitError("checkpoint %s was trained by %d process%s and this run has %d: resume it with %s, "
                               "or pass another --run_dir" % (folder, saved, "es" if saved > 1 else "", here, how))


def build_command():
    """The command that builds Horovod into the environment of this interpreter: ./kit's of the
    .venv-<KIT_ENV> it runs in (horovod.sh builds into the active one, tf1 unless KIT_ENV says
    otherwise), or horovod.sh given this Python."""
    return kit_command("bash requirements/horovod.sh") or \
        "PYTHON=%s bash requirements/horovod.sh" % shlex.quote(sys.executable)  # pasted into a shell


class Horovod(object):
    """The hooks `trainer.train` calls in a data-parallel run; one instance per process."""

    def __init__(self, hp, hvd=None):
        """`hvd`: the module horovod.tensorflow (imported here when None; the tests pass a stand-in)."""
        self.batch_size = hp["batch_size"]
        meant = as_meant(hp)
        self.scale_lr = meant["hvd_scale_lr"]
        self.warmup_epochs = float(meant["hvd_warmup_epochs"])
        self.threads = hp.get("threads") or 0
        # Before hvd.init(): a bad flag fails without starting Horovod or waiting for the other ranks.
        if not self.warmup_epochs >= 0:  # NaN too
            raise KitError("--hvd_warmup_epochs must be a number >= 0, got %s: pass e.g. 5, or 0 for no "
                                   "warm-up" % hp["hvd_warmup_epochs"])
        if hvd is None:
            try:
                import horovod.tensorflow as hvd
            except ImportError as e:
                raise KitError("Horovod is not installed (%s): run `%s` to build it, or run the script as a single "
                               "process (no horovodrun, no --horovod)" % (e, build_command()))
        hvd.init()
        self.hvd = hvd
        self.rank, self.size = hvd.rank(), hvd.size()
        self.local_rank, self.local_size = hvd.local_rank(), hvd.local_size()
        self.is_chief = self.rank == 0

    # -- data
    def shard(self, order):
        """This rank's slice of an epoch's permutation `order`, batch after batch.

        The order is first padded (cyclically) to a multiple of the number of ranks, so that
        every rank gets the same number of images and therefore runs the same number of steps
        (a rank with one step fewer would leave the others waiting in an allreduce forever).
        Then each global batch of size x batch_size images is dealt round-robin: rank r's k-th
        batch is order[k*G:(k+1)*G][r::size], and the union of the ranks' k-th batches is the
        k-th batch of a single process with batch_size G.
        """
        order = np.resize(order, len(order) + (-len(order)) % self.size)
        g = self.size * self.batch_size
        return np.concatenate([order[i:i + g][self.rank::self.size] for i in range(0, len(order), g)])

    # -- graph
    def wrap_optimizer(self, opt):
        """Average the gradients over all ranks (allreduce) before applying them."""
        return self.hvd.DistributedOptimizer(opt)

    def broadcast_op(self):
        """Copy every variable from rank 0, run once after initialisation or rank 0's restore."""
        return self.hvd.broadcast_variables(tf.global_variables(), root_rank=0)

    def stop_vote(self):
        """(asked, any_asked): each rank feeds whether Ctrl-C or SIGTERM reached it and reads whether
        one reached any rank (RunState.after_step), so that all stop after the same step."""
        asked = tf.placeholder_with_default(False, [], name="stop_asked")
        return asked, self.hvd.allreduce(tf.cast(asked, tf.float32), op=self.hvd.Sum, name="stop_vote") > 0

    def lr_scale(self, global_step, steps_per_epoch):
        """The learning-rate multiplier as a tensor of global_step (None: no scaling): the
        number of workers, reached linearly over --hvd_warmup_epochs (Goyal et al. 2017)."""
        if not self.scale_lr or self.size == 1:
            return None
        warmup = self.warmup_epochs * steps_per_epoch
        if warmup <= 0:
            return tf.constant(float(self.size))
        ramp = tf.minimum(tf.cast(global_step, tf.float32) / float(warmup), 1.0)
        return 1.0 + (self.size - 1.0) * ramp

    # -- session
    def configure(self, config):
        """One GPU per process (local rank); on CPU, the cores shared among this machine's ranks."""
        config.gpu_options.visible_device_list = str(self.local_rank)
        if not self.threads:
            share = max(1, multiprocessing.cpu_count() // self.local_size)
            config.intra_op_parallelism_threads = share
            config.inter_op_parallelism_threads = min(share, 2)

    def agree_on_checkpoint(self, folder, meta):
        """Rank 0 restores the checkpoint it found; the others start from their initial values
        and receive rank 0's (restored) variables from `broadcast_op`, global_step included."""
        return (folder, meta) if self.is_chief else (None, None)

    def finish(self, sess, g):
        """End of training (`g`: the graph.Graph). TEST HOOK, inert unless the environment sets
        KIT_DUMP_VARIABLES=PREFIX: then every rank writes its variables to PREFIX-rank<R>.npz, the
        only way tests/test_horovod.py can see the weights of a rank that writes no checkpoint."""
        prefix = os.environ.get("KIT_DUMP_VARIABLES")
        if prefix:
            with g.graph.as_default():
                names = [v.op.name for v in tf.global_variables()]
                values = sess.run(tf.global_variables())
            np.savez("%s-rank%d.npz" % (prefix, self.rank), **dict(zip(names, values)))
