"""lab/: each pitfall's broken form shows its symptom and its fixed form does not.

Every test asserts on both halves, so swapping a script's broken() and fixed() fails it.
"""
import os
import subprocess
import sys

import pytest

from compat import TF2
from conftest import ROOT
from lab import (bn_eval_accuracy, bn_update_ops, compat_contrib, cond_branches, graph_growth, input_pipeline,
                 kit_batch_norm, saver_trainable, variable_reuse)

SCRIPTS = [bn_update_ops, bn_eval_accuracy, saver_trainable, cond_branches, graph_growth, variable_reuse,
           input_pipeline, compat_contrib, kit_batch_norm]


def test_bn_update_ops_moving_mean_stays_zero_without_the_dependency():
    broken, fixed = bn_update_ops.broken(), bn_update_ops.fixed()
    assert broken["moving_mean"] == 0.0
    assert broken["update_ops_in_collection"] == 2  # the update ops exist; nothing ran them
    assert abs(fixed["moving_mean"] - fixed["data_mean"]) < 0.2


def test_bn_eval_accuracy_at_chance_in_inference_mode_without_updates():
    broken, fixed = bn_eval_accuracy.broken(), bn_eval_accuracy.fixed()
    assert broken["test_accuracy_training_mode"] >= 0.95  # it did learn ...
    assert broken["test_accuracy_inference_mode"] <= 0.55  # ... but inference mode guesses
    assert broken["moving_mean"] == 0.0
    assert fixed["test_accuracy_inference_mode"] >= 0.95
    assert abs(fixed["moving_mean"] - bn_eval_accuracy.OFFSET) < 2.0


def test_saver_of_trainable_variables_loses_the_moving_mean():
    broken, fixed = saver_trainable.broken(), saver_trainable.fixed()
    assert broken["trained_moving_mean"] > 4.0  # it was trained ...
    assert broken["checkpoint_has_moving_mean"] == 0
    assert broken["restored_moving_mean"] == 0.0  # ... and came back at its initial value
    assert fixed["checkpoint_has_moving_mean"] == 1
    assert fixed["restored_moving_mean"] == pytest.approx(fixed["trained_moving_mean"], rel=1e-6)
    assert fixed["restored_moving_mean"] > 4.0


def test_cond_runs_ops_created_outside_its_branches():
    broken, fixed = cond_branches.broken(), cond_branches.fixed()
    assert broken["counter"] == cond_branches.RUNS == broken["runs_with_pred_false"]
    assert fixed["counter"] == 0
    assert broken["assign_add_ops_in_graph"] == fixed["assign_add_ops_in_graph"] == 1  # built either way


def test_graph_grows_when_ops_are_built_in_the_loop():
    broken, fixed = graph_growth.broken(), graph_growth.fixed()
    assert broken["ops_after"] - broken["ops_before"] >= 3 * graph_growth.STEPS
    assert fixed["ops_after"] == fixed["ops_before"]
    assert fixed["finalized_graph_refused_new_op"] == 1
    assert broken["finalized_graph_refused_new_op"] == 0


def test_second_build_without_reuse_raises():
    broken, fixed = variable_reuse.broken(), variable_reuse.fixed()
    assert broken["raised"] == 1
    assert "model/fc/kernel already exists" in broken["error"]
    assert fixed["raised"] == 0
    assert fixed["variables"] == 2  # one kernel and one bias, shared by both builds
    assert fixed["variables_after_rebuild_in_new_graph"] == 2


def test_input_pipeline_without_repeat_ends_after_one_epoch():
    broken, fixed = input_pipeline.broken(), input_pipeline.fixed()
    assert broken["steps_asked"] == 2 * broken["steps_per_epoch"]
    assert broken["steps_run"] == broken["steps_per_epoch"]
    assert broken["stopped_by_out_of_range"] == 1
    assert fixed["steps_run"] == fixed["steps_asked"]
    assert fixed["stopped_by_out_of_range"] == 0
    # the contrast: the pipeline computes exactly what feed_dict does, step for step
    assert broken["results_equal_feed_dict"] == fixed["results_equal_feed_dict"] == 1


def test_compat_v1_has_no_contrib_and_compat_py_supplies_batch_norm():
    broken, fixed = compat_contrib.broken(), compat_contrib.fixed()
    for seen in (broken, fixed):  # the runtime's side, the same in both forms
        assert seen["tensorflow_has_contrib"] == (0 if TF2 else 1)
        assert seen["compat_v1_keeps_graph_api"] == 1
    assert broken["builds"] == 0
    assert "has no attribute 'contrib'" in broken["error"]  # on TF 1.15 as well as on TF 2
    assert fixed["builds"] == 1
    assert fixed["batch_norm_from"] == ("tf_slim" if TF2 else "tf.contrib.layers")
    assert fixed["variables"] == "bn/beta bn/moving_mean bn/moving_variance"


def test_kit_batch_norm_updates_without_update_ops():
    broken, fixed = kit_batch_norm.broken(), kit_batch_norm.fixed()
    assert broken["moving_mean"] == 0.0
    assert broken["update_ops_in_collection"] == 2
    assert abs(fixed["moving_mean"] - fixed["data_mean"]) < 0.2
    assert fixed["update_ops_in_collection"] == 0  # nothing a train op could forget


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__.split(".")[-1])
def test_script_has_the_pair_and_cites_a_thread(script):
    assert callable(script.broken) and callable(script.fixed)
    assert "https://github.com/" in script.__doc__
    assert "Broken" in script.__doc__ and "Fixed" in script.__doc__
    with open(os.path.join(ROOT, "lab", "README.md")) as f:
        assert "lab/%s.py" % script.__name__.split(".")[-1] in f.read()


def _run(*args):
    return subprocess.run([sys.executable, os.path.join("lab", "cond_branches.py")] + list(args), cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)


def test_script_prints_both_forms_from_the_checkout_root():
    done = _run()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["broken: runs_with_pred_false=5 counter=5 assign_add_ops_in_graph=1",
                     "fixed: runs_with_pred_false=5 counter=0 assign_add_ops_in_graph=1"]
    done = _run("--fixed")
    assert done.stdout.splitlines() == lines[1:]


def test_script_rejects_both_flags_at_once():
    done = _run("--broken", "--fixed")
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr
