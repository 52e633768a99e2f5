"""Evaluation: the test set in inference mode (moving batch-norm statistics); --eval of a checkpoint
with per-class accuracy and a confusion matrix; --summary's stage shapes and parameter count.
"""
from __future__ import division

import errno
import os
import sys

import numpy as np

from compat import tf
import runlogs
from batches import load_data
from downloads import DataError
from checkpoints import Checkpoints, adopt_checkpoint_settings, recorded_settings, restore, _test_point
from graph import Graph
from runstate import run_folder
from settings import KitError


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
    import graphview
    graphview.print_location(model_name, g.graph, out)
    if hp.get("graph") is not None:
        graphview.write_graph(g.graph, hp["graph"] or os.path.join(run_folder(model_name, hp), "graph"), out)


def _not_a_checkpoint(folder):
    """The one line for a --ckpt_path that is no intact checkpoint: a run folder or its checkpoints/
    (meant for --run_dir), a path that is not there, or a damaged checkpoint."""
    parent = os.path.dirname(os.path.abspath(folder))
    named = os.path.basename(folder) == "latest" and os.path.basename(parent) == "checkpoints" and Checkpoints(
        os.path.dirname(parent)).latest_name()
    if named:  # the file naming the newest checkpoint
        return ("%s is the file naming a run's newest checkpoint, not a checkpoint: pass --ckpt_path %s"
                % (folder, os.path.join(os.path.dirname(folder), named)))
    for ckpts in (folder, os.path.join(folder, "checkpoints")):
        if os.path.isfile(os.path.join(ckpts, "latest")):
            return ("%s is a run's %s, not one checkpoint: pass --run_dir %s to evaluate its newest checkpoint, or "
                    "--ckpt_path one of %s" % (folder, "checkpoints folder" if ckpts == folder else "folder",
                                                os.path.dirname(os.path.normpath(ckpts)), os.path.join(ckpts, "step-N")))
    if not os.path.exists(folder):
        return "%s does not exist: pass a runs/.../checkpoints/step-N folder" % folder
    return ("%s is not an intact kit checkpoint folder (no meta.json, or a file does not match its hash): pass a "
            "runs/.../checkpoints/step-N folder" % folder)


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
            raise KitError(_not_a_checkpoint(folder))
        parent = os.path.dirname(os.path.abspath(folder))
        if not hp.get("run_dir") and os.path.basename(parent) == "checkpoints":
            run_dir = os.path.dirname(parent)  # the report goes beside the logs of the run it evaluates
    else:
        folder, meta = Checkpoints(run_dir, log=log).find(evaluating=True)
        if folder is None and os.path.isfile(os.path.join(run_dir, "latest")):  # --ckpt_path mixed up with --run_dir
            raise KitError("%s is a run's checkpoints folder: pass the run folder, --run_dir %s (or one checkpoint in "
                           "it with --ckpt_path)" % (run_dir, os.path.dirname(os.path.normpath(run_dir))))
        if folder is None and os.path.isfile(os.path.join(run_dir, "meta.json")):
            raise KitError("%s is a checkpoint, not a run folder: pass it with --ckpt_path" % run_dir)
        if folder is None:
            raise KitError("no checkpoint in %s: train first, or pass --run_dir/--ckpt_path" % run_dir)
    hp = adopt_checkpoint_settings(meta, hp, explicit, log, folder, model_name)
    try:
        data = load_data(hp)
    except DataError as e:  # where the training found its data, which --eval does not take from the checkpoint
        trained_on = recorded_settings(meta).get("data_source")
        if trained_on and not hp.get("data_source") and not os.environ.get("KIT_DATA_SOURCE"):
            raise DataError("%s (the run trained with --data_source %s)" % (e, trained_on))
        raise
    g = Graph(build_fn, hp, 1)
    config = tf.ConfigProto(allow_soft_placement=True, intra_op_parallelism_threads=hp["threads"],
                            inter_op_parallelism_threads=hp["threads"])
    with tf.Session(graph=g.graph, config=config) as sess:
        restore(sess, g, folder, meta, model_name, hp)
        step = int(sess.run(g.global_step))
        loss, acc, preds = evaluate(sess, g, data["test_x"], data["test_y"])
    import report
    matrix = report.confusion_matrix(data["test_y"], preds, g.num_classes)
    names = report.class_names(hp["dataset"], g.num_classes)
    log("checkpoint %s on %s (%d test images): loss %.4f, accuracy %.4f" % (folder, data["label"], len(preds), loss, acc))
    log(report.per_class_table(matrix, names))
    png = os.path.join(run_dir, "confusion_matrix.png")
    try:
        os.makedirs(run_dir, exist_ok=True)
        report.confusion_png(matrix, names, png, title="%s %s: test accuracy %.2f%% at step %d"
                             % (model_name, hp["preset"], 100 * acc, step))
        # the same picture into the training's event folder, so TensorBoard shows it beside the scalars
        tb = runlogs.Scalars(os.path.join(run_dir, "tb"))
        with open(png, "rb") as f:
            tb.image("confusion_matrix", f.read(), step)
        tb.close()
    except ImportError:  # a bare TensorFlow image: the table above is the whole report
        log("no confusion-matrix picture: matplotlib is not installed (pip install matplotlib to get %s)" % png)
    except (OSError, IOError, tf.errors.OpError) as e:
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk: trainer.main's exit 3
        reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e) or type(e).__name__
        raise KitError("cannot write the report into %s (%s): pass --run_dir a folder you can write, where the "
                       "report goes (the accuracy above is measured)" % (run_dir, reason.splitlines()[0]))
    else:
        log("wrote %s, and the TensorBoard image confusion_matrix at step %d into %s"
            % (png, step, os.path.join(run_dir, "tb")))
    return dict(loss=loss, accuracy=acc, confusion=matrix)
