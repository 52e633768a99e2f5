"""The training loop the four model scripts share, in plain TF1 graph mode.

A model script supplies a graph-building function, its presets and a `validate` (its flags
are declared in settings.py's MODEL_SETTINGS), then calls `main(...)`, which parses the flags
(settings.py) and runs --summary, --eval (evaluation.py) or `train`. `train` is the loop to
read: the data (batches.py), the graph (graph.py: placeholders, loss, learning rate,
optimizer), a session, then for each epoch `sess.run` on every batch and an evaluation on the
test set. What makes a run robust (the run folder's lock, exact resume from atomic checkpoints,
Ctrl-C, a loss that is not finite, the logs) is the RunState's (runstate.py); Horovod's hooks are distributed.py's.
"""
from __future__ import print_function

import errno
import os
import sys

from compat import tf
import distributed
from evaluation import print_summary, run_eval, evaluate
from graph import Graph
from runstate import RunState, holds_checkpoint
from settings import KitError, EXIT_USAGE, EXIT_DISK, EXIT_INTERRUPTED, build_parser, resolve, check_common
from batches import load_data, make_batches, expected_steps_per_epoch
from checkpoints import restore
from downloads import DataError


def train(model_name, build_fn, hp, log=print, dist=None, overrides=None):
    """Train (or resume) one run as described by `hp`; returns the last epoch's record.

    `dist`: a distributed.Horovod, or None for one process. `overrides` (settings.Hparams's) goes
    into config.json, where compare.py reads it.
    """
    run = RunState(model_name, hp, dist, log)  # the run folder checked first: a refused run fails at once
    data = load_data(hp)
    batches = make_batches(hp, data, dist)
    g = Graph(build_fn, hp, batches.steps_per_epoch, dist)  # placeholders, model, loss, lr, train_op
    # allow_soft_placement: an op pinned to a GPU runs on the CPU where there is none (threads 0: TF decides)
    config = tf.ConfigProto(allow_soft_placement=True, intra_op_parallelism_threads=hp["threads"],
                            inter_op_parallelism_threads=hp["threads"])
    if dist is not None:
        dist.configure(config)  # Horovod: one GPU per process
    # `run` holds the run folder's lock from here to the end, and takes Ctrl-C from run.start on.
    with run, tf.Session(graph=g.graph, config=config) as sess:
        if run.folder is None:
            sess.run(g.init)
        else:
            restore(sess, g, run.folder, run.meta, model_name, hp)
        run.start(sess, g, data, overrides)  # plan the steps, write config.json; Ctrl-C now stops at a step
        for epoch in run.epochs_left():
            for bx, by in run.batches(batches, epoch):  # the steps left in this epoch; none after Ctrl-C
                feed = {g.x: bx, g.y: by, g.training: True}
                # loss is the cross-entropy without weight decay: the originals log it as the train loss
                _, loss, correct, lr = sess.run([g.train_op, g.xent, g.correct, g.lr], feed_dict=feed)
                # --second_train_pass: the originals' extra training-mode pass to log train accuracy, which
                # also moves the batch-norm moving averages a second time (docs/deviations.md)
                correct = sess.run(g.correct, feed_dict=feed) if hp["second_train_pass"] else correct
                run.after_step(loss, correct, len(bx), lr)  # NaN check, progress, --ckpt_every_steps
            run.end_epoch()  # stopped mid-epoch by Ctrl-C: checkpoint and exit 130
            if run.evaluation_due():
                test_loss, test_acc, _ = evaluate(sess, g, data["test_x"], data["test_y"])
                run.record_epoch(test_loss, test_acc)  # logs, TensorBoard, checkpoint
            run.stop_if_asked()  # Ctrl-C at the epoch's end: exit 130, its checkpoint written
        run.finish()
    return run.rec


def main(model_name, build_fn, presets, validate=None, argv=None, description=None):
    """Entry point of a model script: parse flags (settings.SETTINGS and MODEL_SETTINGS[model_name]),
    then --summary, --eval or train."""
    parser = build_parser(model_name, presets, description or model_name)
    if argv is None:  # the name the user typed: ResNeXt.py, or a console script's kit-resnext
        parser.prog = os.path.basename(sys.argv[0]) or parser.prog
    args = parser.parse_args(argv)
    hp = None
    try:
        hp = resolve(args, presets, parser)  # an Hparams: also the flags given, and which change the preset
        check_common(hp, model_name)
        if validate is not None:
            validate(hp)
        horovod = distributed.requested(hp)
        if horovod and (hp["summary"] or hp["eval"]):  # every rank would write the same files at once
            raise KitError("--%s works in one process: run the same command without horovodrun (or mpirun) and "
                           "without --horovod" % ("eval" if hp["eval"] else "summary"))
        if hp["summary"]:
            g = Graph(build_fn, hp, expected_steps_per_epoch(hp))  # the schedule as training has it (--graph)
            print_summary(model_name, hp, g)
            return 0
        if hp["eval"]:
            run_eval(model_name, build_fn, hp, explicit=hp.given)
            return 0
        dist = distributed.Horovod(hp) if horovod else None
        train(model_name, build_fn, hp, dist=dist, overrides=hp.overrides)
        return 0
    except KitError as e:
        if e.code != EXIT_INTERRUPTED:
            sys.stderr.write("error: %s\n" % e)
        return e.code
    except (OSError, IOError) as e:  # a full disk outside a checkpoint write (logs, config.json)
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        again = "evaluate again" if hp is not None and hp.get("eval") else "resume from the last checkpoint"
        sys.stderr.write("error: %s writing %s: free space, then run the same command to %s\n"
                         % (e.strerror, e.filename or "the run folder", again))
        return EXIT_DISK
    except KeyboardInterrupt:  # a second Ctrl-C (or Ctrl-C before training began): stop at once
        if hp is not None and hp.get("eval"):  # an evaluation writes no checkpoint: it is simply run again
            sys.stderr.write("error: stopped; run the same command to evaluate again\n")
        else:
            sys.stderr.write("error: stopped at once, without a new checkpoint; run the same command to %s\n"
                             % ("resume from the last one" if holds_checkpoint(model_name, hp) else "start again"))
        return EXIT_INTERRUPTED
    except DataError as e:  # the data loaders' errors are one line too
        env = os.environ.get("KIT_DATA_SOURCE") if not (hp or {}).get("data_source") else None
        sys.stderr.write("error: %s%s\n" % (e, " (here --data_source is KIT_DATA_SOURCE=%s, from the environment)"
                                            % env if env else ""))
        return EXIT_USAGE
