"""SE_ResNeXt.py: the SE block against NumPy, parameter totals derived by hand, training and --eval."""
import json

import numpy as np
import pytest

from compat import tf
import ops
import SE_ResNeXt
from conftest import settings, run_main, tiny_args
from conftest import lr_at

TINY = ["--cardinality", "2", "--depth", "4", "--blocks", "1", "--shortcut", "projection", "--out_dims", "8,16,32",
        "--batch_size", "50", "--lr", "0.05"]


def resolve(argv):
    return settings(SE_ResNeXt, argv)


def build(argv):
    """What --summary reports (stage tensors and the trainable total), from the model alone.

    The same flags, presets, validation and build function as `--summary`, without the
    optimizer's gradient graph, which doubles the build time of these large graphs.
    """
    hp = resolve(argv)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 32, 32, 3])
        SE_ResNeXt.Build_SEnet(x, tf.placeholder(tf.bool, []), hp, 10)
        stages = dict(tf.get_collection(ops.STAGES))
        return graph, stages, ops.count_params()


def test_squeeze_excitation_layer_equals_numpy():
    rng = np.random.RandomState(0)
    x = rng.randn(3, 5, 5, 8).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        inp = tf.placeholder(tf.float32, [None, 5, 5, 8])
        out = SE_ResNeXt.squeeze_excitation_layer(inp, out_dim=8, ratio=4, layer_name="se")
        variables = {v.op.name: v for v in tf.trainable_variables()}
        assert sorted((n, v.get_shape().as_list()) for n, v in variables.items()) == [
            ("se_fully_connected1/kernel", [8, 2]), ("se_fully_connected2/kernel", [2, 8])]  # no biases
        sess.run(tf.global_variables_initializer())
        # Weights of our own, not the random initial ones: with those, both ReLUs can be dead for
        # all three images (it happened), and the layer then scales everything by exactly 0.5.
        w1, w2 = rng.randn(8, 2).astype(np.float32), rng.randn(2, 8).astype(np.float32)
        variables["se_fully_connected1/kernel"].load(w1, sess)
        variables["se_fully_connected2/kernel"].load(w2, sess)
        got = sess.run(out, {inp: x})
    squeeze = x.mean(axis=(1, 2))                        # global average pool: (3, 8)
    hidden = np.maximum(squeeze.dot(w1), 0)              # fc to 8 / 4 = 2, ReLU
    weights = 1 / (1 + np.exp(-hidden.dot(w2)))          # fc back to 8, sigmoid
    expected = x * weights[:, None, None, :]             # one weight per image and channel
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert (hidden > 0).any()  # the ReLU passes something, so the scales are not 0.5 everywhere
    assert not np.allclose(got, x * 0.5, atol=1e-3)


def se_params(out_dims, blocks, ratio):
    """Two bias-free fully connected layers per block: C -> C/r -> C."""
    return sum(blocks * (c * (c // ratio) + (c // ratio) * c) for c in out_dims)


def test_original_preset_parameters_derived_by_hand():
    graph, stages, params = build([])
    # first_layer: 3x3 conv 3 -> 64 and BN (gamma, beta)
    stem = 3 * 3 * 3 * 64 + 2 * 64                                      # 1,856
    # one path (transform_layer) with c input channels: 1x1 conv c -> 64, BN, 3x3 conv 64 -> 64, BN
    path = lambda c: c * 64 + 2 * 64 + 3 * 3 * 64 * 64 + 2 * 64         # noqa: E731; 37,120 + 64c
    # a block: 8 paths, transition 1x1 conv 8*64 = 512 -> C and BN, SE 2 * C * C/4; shortcuts have no weights
    block = lambda c_in, c: 8 * path(c_in) + 512 * c + 2 * c + 2 * c * c // 4  # noqa: E731
    stage1 = 3 * block(64, 64)                                          # 3 x 364,672
    stage2 = block(64, 128) + 2 * block(128, 128)                       # 403,712 + 2 x 436,480
    stage3 = block(128, 256) + 2 * block(256, 256)                      # 526,848 + 2 x 592,384
    fc = 256 * 10                                                       # no bias
    assert stem == 1856 and block(64, 64) == 364672 and block(256, 256) == 592384
    assert params == stem + stage1 + stage2 + stage3 + fc == 4086720
    # = ResNeXt.py's original network (3,957,696) plus 129,024 SE weights
    assert params - 3957696 == se_params((64, 128, 256), 3, 4) == 129024
    assert stages["residual_layer_3"].get_shape().as_list() == [None, 8, 8, 256]
    # stride 2 on the paths' 3x3 convs (stride_on=3x3), not on their 1x1 convs
    convs = [op for op in graph.get_operations()
             if op.type == "Conv2D" and op.name.startswith("residual_layer_2/block_0/split_layer_2_0_")]
    assert {(op.inputs[1].get_shape().as_list()[0], tuple(op.get_attr("strides"))) for op in convs} == {
        (1, (1, 1, 1, 1)), (3, (1, 2, 2, 1))}


def test_paper_preset_is_resnext29_plus_se_r16():
    _, _, params = build(["--preset", "paper"])
    resnext29_8x64d = 34426698  # ResNeXt.py --preset paper (Table 7: 34.4M)
    assert params == resnext29_8x64d + se_params((256, 512, 1024), 3, 16) == 34426698 + 516096
    assert resolve(["--preset", "paper"])["reduction_ratio"] == 16


def test_original_preset_recipe():
    hp = resolve([])
    assert (hp["reduction_ratio"], hp["stride_on"], hp["epochs"], hp["lr"]) == (4, "3x3", 100, 0.1)
    assert (hp["optimizer"], hp["momentum"], hp["nesterov"]) == ("momentum", 0.9, True)
    assert (hp["weight_decay"], hp["decay_on"], hp["batch_size"]) == (5e-4, "all", 128)
    # the original divides at the start of (1-based) epochs 30, 60 and 90
    spe = 391
    assert [lr_at(e * spe, hp, spe) for e in (28, 29, 58, 59, 88, 89)] == pytest.approx(
        [0.1, 0.01, 0.01, 0.001, 0.001, 0.0001])


def stage_one(argv, monkeypatch):
    """Stage 1 of a tiny SE-ResNeXt (one block, identity shortcut) with weights of our own, in
    inference mode: (stage input, the block's SE output, the stage output) for one input batch."""
    hp = resolve(["--cardinality", "2", "--depth", "2", "--blocks", "1", "--stem_dim", "4", "--out_dims", "4,8,16"]
                 + argv)
    se_outputs = []
    real = SE_ResNeXt.squeeze_excitation_layer

    def recorded(*args, **kwargs):
        se_outputs.append(real(*args, **kwargs))
        return se_outputs[-1]
    monkeypatch.setattr(SE_ResNeXt, "squeeze_excitation_layer", recorded)
    rng = np.random.RandomState(1)
    with tf.Graph().as_default(), tf.Session() as sess:
        x = tf.placeholder(tf.float32, [None, 32, 32, 3])
        SE_ResNeXt.Build_SEnet(x, tf.constant(False), hp, 10)
        stages = dict(tf.get_collection(ops.STAGES))
        sess.run(tf.global_variables_initializer())
        for v in tf.trainable_variables():  # known weights, large enough that no ReLU is idle everywhere
            v.load(rng.normal(0.0, 0.5, v.get_shape().as_list()).astype(np.float32), sess)
        return sess.run([stages["first_layer"], se_outputs[0], stages["residual_layer_1"]],
                        {x: rng.randn(2, 32, 32, 3).astype(np.float32)})


def test_stage_output_is_merged_in_the_original_and_pre_merge_only_with_the_switch(monkeypatch):
    """SENet-Tensorflow's residual_layer returns ReLU(SE(x) + shortcut) since afa2529 (2018-01-19);
    --pre_merge_output gives its 2017 code, which returned SE(x) alone."""
    assert resolve([])["pre_merge_output"] is False
    stage_in, se, out = stage_one([], monkeypatch)
    assert (se < 0).any() and (stage_in > 0).any()  # so ReLU(se + shortcut) differs from both parts
    np.testing.assert_allclose(out, np.maximum(se + stage_in, 0), rtol=1e-5, atol=1e-5)
    stage_in, se, out = stage_one(["--pre_merge_output"], monkeypatch)
    np.testing.assert_array_equal(out, se)
    assert not np.allclose(out, np.maximum(se + stage_in, 0), atol=1e-3)


def test_bad_reduction_ratio_is_one_line_error():
    code, _, err = run_main(SE_ResNeXt, ["--summary", "--reduction_ratio", "0"])
    assert code == 2
    assert err == "error: --reduction_ratio must be between 1 and the narrowest stage (64 channels), got 0\n"


def test_training_lowers_the_loss_and_eval_reads_the_checkpoint(fake_cifar, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_main(SE_ResNeXt, tiny_args(fake_cifar, run, *(TINY + ["--epochs", "3"])))
    assert code == 0, err
    history = [json.loads(l) for l in open(str(run / "metrics.jsonl"))]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"], history
    assert json.load(open(str(run / "config.json")))["model"] == "SE_ResNeXt"
    code, out, err = run_main(SE_ResNeXt, ["--eval", "--run_dir", str(run), "--data_source", fake_cifar["py"],
                                           "--trust_data", "--threads", "1"] + TINY)
    assert code == 0, err
    acc = float([l for l in out.splitlines() if l.startswith("checkpoint ")][0].rsplit("accuracy", 1)[1])
    assert acc == pytest.approx(history[-1]["test_acc"], abs=5e-5)
