"""ResNeXt.py: architecture (shapes, parameter totals derived by hand), training, resume."""
import json
import os

import numpy as np
import pytest

from compat import tf
import ResNeXt
from conftest import checkpoint_variables, settings, summary as conftest_summary, run_main, tiny_args
from checkpoints import Checkpoints
from graph import Graph
from runlogs import PlainProgress
from runstate import run_folder
from settings import build_parser

TINY = ["--cardinality", "2", "--depth", "4", "--blocks", "1", "--stem_dim", "8", "--out_dims", "8,16,32", "--batch_size", "50",
        "--lr", "0.05"]


def bn(c):
    return 2 * c  # gamma and beta


def resnext_original_params(cardinality=8, depth=64, blocks=3, out_dims=(64, 128, 256), classes=10):
    """taki0112/ResNeXt-Tensorflow counted by hand: no conv biases, a pad shortcut, fc without bias."""
    total = 3 * 3 * 3 * 64 + bn(64)  # first_layer
    in_dim = 64
    for out_dim in out_dims:
        for _ in range(blocks):
            path = in_dim * depth + bn(depth) + 3 * 3 * depth * depth + bn(depth)  # transform_layer
            total += cardinality * path
            total += cardinality * depth * out_dim + bn(out_dim)  # transition_layer
            in_dim = out_dim
    return total + out_dims[-1] * classes


def resnext_paper_params(cardinality=8, depth=64, classes=10):
    """ResNeXt-29 (Xie et al. 2017, Table 7) counted by hand: grouped bottlenecks, projection shortcuts."""
    total = 3 * 3 * 3 * 64 + bn(64)
    in_dim = 64
    for s, out_dim in enumerate((256, 512, 1024)):
        width = cardinality * depth * 2 ** s
        for b in range(3):
            total += in_dim * width + bn(width)  # 1x1 reduce (the paths' 1x1 convs side by side)
            total += 9 * width * width // cardinality + bn(width)  # grouped 3x3
            total += width * out_dim + bn(out_dim)  # 1x1 expand
            if b == 0:
                total += in_dim * out_dim + bn(out_dim)  # projection shortcut
            in_dim = out_dim
    return total + 1024 * classes + classes


def summary(argv):
    return conftest_summary(ResNeXt, argv)


def test_original_preset_shapes_and_parameters():
    shapes, params = summary([])
    assert shapes["first_layer"] == [None, 32, 32, 64]
    assert shapes["residual_layer_1"] == [None, 32, 32, 64]
    assert shapes["residual_layer_2"] == [None, 16, 16, 128]
    assert shapes["residual_layer_3"] == [None, 8, 8, 256]
    assert shapes["logits"] == [None, 10]
    assert params == resnext_original_params() == 3957696


def test_paper_preset_matches_table_7():
    shapes, params = summary(["--preset", "paper"])
    assert shapes["residual_layer_3"] == [None, 8, 8, 1024]
    assert params == resnext_paper_params()
    assert int(params / 1e5) == 344  # Table 7 prints 34.4M
    _, params16 = summary(["--preset", "paper", "--cardinality", "16"])
    assert params16 == resnext_paper_params(cardinality=16) == 68155210  # docs/deviations.md
    assert int(params16 / 1e5) == 681  # Table 7 prints 68.1M


def test_cifar100_head():
    shapes, params = summary(["--dataset", "cifar100"])
    assert shapes["logits"] == [None, 100]
    assert params == resnext_original_params(classes=100)


def test_bad_cardinality_is_one_line_error():
    code, out, err = run_main(ResNeXt, ["--summary", "--cardinality", "0"])
    assert code == 2 and err.strip() == "error: --cardinality must be between 1 and 64, got 0"


def test_a_few_steps_drive_the_loss_down():
    """Fixed batch, training mode: the loss falls."""
    hp = settings(ResNeXt, TINY)
    g = Graph(ResNeXt.Build_ResNext, hp, steps_per_epoch=10)
    import fakedata
    images, y = fakedata.images(32)
    x = (images.astype(np.float32) - 127.5) / 64
    with tf.Session(graph=g.graph) as sess:
        sess.run(g.init)
        losses = [sess.run([g.train_op, g.xent], {g.x: x, g.y: y, g.training: True})[1] for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(fake_cifar, tmp_path):
    flags = TINY + ["--epochs", "2", "--lr_decay_epochs", "1"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_main(ResNeXt, tiny_args(fake_cifar, straight, *flags))[0] == 0
    assert run_main(ResNeXt, tiny_args(fake_cifar, split, *(flags + ["--steps", "5"])))[0] == 0  # stops after epoch 1
    code, out, _ = run_main(ResNeXt, tiny_args(fake_cifar, split, *flags))
    assert code == 0 and "resumed from" in out and "step 5 (1 full epoch and 0 steps done), learning rate 0.005" in out
    a = Checkpoints(str(straight)).find()
    b = Checkpoints(str(split)).find()
    assert a[1]["step"] == b[1]["step"] == 10
    va, vb = checkpoint_variables(a[0]), checkpoint_variables(b[0])
    assert va.keys() == vb.keys() and len(va) > 20
    for name in va:
        np.testing.assert_array_equal(va[name], vb[name], err_msg=name)
    assert va["global_step"] == 10
    with open(str(split / "logs.txt")) as f1, open(str(straight / "logs.txt")) as f2:
        strip = lambda lines: [l.rsplit(", images/s", 1)[0] for l in lines]  # noqa: E731
        assert strip(f1.readlines()) == strip(f2.readlines())
    assert json.loads(open(str(split / "metrics.jsonl")).readlines()[-1])["lr"] == pytest.approx(0.005)


def test_run_folder_contents(fake_cifar, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_main(ResNeXt, tiny_args(fake_cifar, run, *(TINY + ["--epochs", "1"])))
    assert code == 0, err
    cfg = json.load(open(str(run / "config.json")))
    assert cfg["model"] == "ResNeXt" and cfg["preset"] == "original" and cfg["dataset"] == "cifar10"
    assert cfg["dataset_label"] == "CIFAR-10 (unverified copy)" and cfg["hparams"]["cardinality"] == 2
    line = open(str(run / "logs.txt")).read().strip()
    assert line.startswith("epoch: 1/1, train_loss: ") and ", test_acc: " in line and ", learning_rate: 0.05" in line
    rec = json.loads(open(str(run / "metrics.jsonl")).read())
    assert rec["step"] == 5 and 0 <= rec["test_acc"] <= 1
    assert os.listdir(str(run / "tb"))  # TensorBoard events
    assert open(str(run / "checkpoints" / "latest")).read().strip() == "step-00000005"


def test_without_run_dir_the_run_goes_to_runs_model_preset_dataset(fake_cifar, tmp_path, monkeypatch):
    """The README's first command passes no --run_dir: training and --eval use the default folder."""
    monkeypatch.chdir(tmp_path)
    args = tiny_args(fake_cifar, "unused", *(TINY + ["--epochs", "1"]))
    args = args[:args.index("--run_dir")] + args[args.index("--run_dir") + 2:]
    code, out, err = run_main(ResNeXt, args)
    assert code == 0, err
    run = tmp_path / "runs" / "ResNeXt-original-cifar10"
    assert open(str(run / "checkpoints" / "latest")).read().strip() == "step-00000005"
    assert json.load(open(str(run / "config.json")))["model"] == "ResNeXt"
    code, out, err = run_main(ResNeXt, ["--eval"] + args)
    assert code == 0, err
    assert os.path.join("runs", "ResNeXt-original-cifar10", "checkpoints", "step-00000005") in out


@pytest.mark.parametrize("script", ["ResNeXt", "SE_ResNeXt", "Densenet", "ResNet"])
def test_every_flag_has_a_setting_when_no_flag_is_given(script):
    """No code path may depend on a flag that only some commands pass (`--run_dir` once did)."""
    import importlib
    module = importlib.import_module(script)
    parser = build_parser(script, module.PRESETS, script)
    hp = settings(module, [])
    missing = sorted(a.dest for a in parser._actions if a.dest != "help" and a.dest not in hp)
    assert not missing
    assert hp["run_dir"] is None and run_folder(script, hp) == os.path.join("runs", script + "-original-cifar10")


def test_step_limit_ends_the_run_but_keeps_its_schedule(fake_cifar, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_MAX_STEPS", "3")
    code, out, err = run_main(ResNeXt, tiny_args(fake_cifar, tmp_path / "run", *(TINY + ["--epochs", "4"])))
    assert code == 0, err
    assert "KIT_MAX_STEPS=3: this run stops after step 3 of 20" in out
    config = json.load(open(str(tmp_path / "run" / "config.json")))
    assert config["epochs_planned"] == 4 and config["total_steps"] == 3
    assert open(str(tmp_path / "run" / "checkpoints" / "latest")).read().strip() == "step-00000003"


def test_without_tqdm_progress_is_plain_lines(fake_cifar, tmp_path, monkeypatch):
    """A bare TensorFlow image has no tqdm: --progress on prints lines instead of failing."""
    import sys
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` raises ImportError
    monkeypatch.setattr(PlainProgress.__init__, "__defaults__", (0.0, None))  # a line every step
    code, out, err = run_main(ResNeXt, tiny_args(fake_cifar, tmp_path / "run", *(TINY + ["--epochs", "1", "--progress", "on"])))
    assert code == 0, err
    lines = [l for l in err.splitlines() if l.startswith("epoch 1/1: step ")]
    assert lines[0].startswith("epoch 1/1: step 1/5, loss ") and lines[-1].startswith("epoch 1/1: step 5/5")


def tensorboard_images(run):
    """[(tag, step, width, height, PNG bytes)] of the image summaries in run/tb/."""
    found = []
    for name in sorted(os.listdir(str(run / "tb"))):
        for event in tf.train.summary_iterator(str(run / "tb" / name)):
            for value in event.summary.value:
                if value.HasField("image"):
                    image = value.image
                    found.append((value.tag, event.step, image.width, image.height, image.encoded_image_string))
    return found


def test_eval_draws_the_confusion_matrix_into_a_png_and_tensorboard(fake_cifar, tmp_path, monkeypatch):
    import sys
    from PIL import Image
    run = tmp_path / "run"
    assert run_main(ResNeXt, tiny_args(fake_cifar, run, *(TINY + ["--epochs", "1"])))[0] == 0
    png = run / "confusion_matrix.png"
    with monkeypatch.context() as m:  # a bare TensorFlow image: no matplotlib
        m.setitem(sys.modules, "matplotlib", None)
        code, out, err = run_main(ResNeXt, tiny_args(fake_cifar, run, "--eval"))
    assert code == 0, err
    assert ("no confusion-matrix picture: matplotlib is not installed (pip install matplotlib to get %s)" % png) in out
    assert not png.exists() and tensorboard_images(run) == []
    code, out, err = run_main(ResNeXt, tiny_args(fake_cifar, run, "--eval"))
    assert code == 0, err
    assert "the TensorBoard image confusion_matrix at step 5 into %s" % (run / "tb") in out
    size = Image.open(str(png)).size
    assert size == (800, 700)
    [(tag, step, width, height, encoded)] = tensorboard_images(run)
    assert (tag, step, (width, height)) == ("confusion_matrix", 5, size)  # 5: the checkpoint's global step
    assert encoded == png.read_bytes()


def test_resume_under_other_settings_is_refused_and_eval_follows_the_checkpoint(fake_cifar, tmp_path):
    """--stride_on changes the function but no variable: only the recorded settings can tell."""
    run = tmp_path / "run"
    assert run_main(ResNeXt, tiny_args(fake_cifar, run, *(TINY + ["--epochs", "1"])))[0] == 0
    before = sorted(os.listdir(str(run / "checkpoints")))
    code, out, err = run_main(ResNeXt, tiny_args(fake_cifar, run, *(TINY + ["--epochs", "2", "--stride_on", "3x3"])))
    assert code == 2 and err.count("\n") == 1
    assert "it was trained with --stride_on 1x1, this command has --stride_on 3x3" in err
    assert sorted(os.listdir(str(run / "checkpoints"))) == before  # nothing lost
    # --eval without architecture flags builds what the checkpoint was trained as
    code, out, err = run_main(ResNeXt, ["--eval", "--run_dir", str(run), "--data_source", fake_cifar["py"],
                                        "--trust_data", "--threads", "1", "--epochs", "9", "--lr", "0.5", "--keep_checkpoints", "1"])
    assert code == 0, err
    assert "evaluating with the checkpoint's settings:" in out and "--cardinality 2" in out
    # training's flags are said to be ignored, not taken for a choice of checkpoint or silently dropped
    assert ("--eval ignores --epochs 9 --keep_checkpoints 1 --lr 0.5: they shape training, not the network the "
            "checkpoint computes") in out
    assert "--threads" not in out
    acc = float([l for l in out.splitlines() if l.startswith("checkpoint ")][0].rsplit("accuracy", 1)[1])
    assert acc == pytest.approx(json.loads(open(str(run / "metrics.jsonl")).read())["test_acc"], abs=5e-5)
    assert os.path.exists(str(run / "confusion_matrix.png"))
    # ... and a flag given differently from the checkpoint is refused, not evaluated as another network
    code, out, err = run_main(ResNeXt, ["--eval", "--run_dir", str(run), "--data_source", fake_cifar["py"],
                                        "--trust_data", "--stride_on", "3x3"] + TINY)
    assert code == 2 and "trained with --stride_on 1x1, this command says --stride_on 3x3" in err


@pytest.mark.parametrize("second", [False, True])
def test_second_train_pass_updates_the_batch_norm_statistics_twice_per_step(second, fake_cifar, tmp_path):
    """taki0112's loops run a second training-mode forward pass every step only to log train accuracy,
    which updates the batch-norm moving averages a second time on the same batch (docs/deviations.md,
    "what is fixed"; --second_train_pass brings it back). With zero_debias_moving_mean=True, contrib's
    batch_norm keeps a `local_step` per moving mean that counts its updates: N steps make it N, or 2N."""
    steps = 3
    run = tmp_path / "run"
    flags = TINY + ["--steps", str(steps)] + (["--second_train_pass"] if second else [])
    code, out, err = run_main(ResNeXt, tiny_args(fake_cifar, run, *flags))
    assert code == 0, err
    folder, meta = Checkpoints(str(run)).find()
    assert meta["step"] == steps
    counts = {name: int(v) for name, v in checkpoint_variables(folder).items()
              if name.endswith("moving_mean/local_step")}
    # one per batch norm: the stem, two in each block's split layer, one in each transition
    assert len(counts) == 1 + 3 * 3
    assert set(counts.values()) == {2 * steps if second else steps}, counts


def test_weight_decay_covers_every_trainable_variable_batch_norm_included():
    """taki0112/ResNeXt-Tensorflow: loss = cross-entropy + weight_decay * sum(tf.nn.l2_loss(v)) over all
    trainable variables, BN gamma and beta included (docs/deviations.md, ResNeXt "weight decay" row;
    decay_on="all"). Checked on the graph's own numbers: loss - xent is that sum, and not the kernels' alone."""
    from conftest import half_squares, weight_decay_term
    hp, term, values = weight_decay_term(ResNeXt, ResNeXt.Build_ResNext, TINY)
    assert (hp["weight_decay"], hp["decay_on"]) == (5e-4, "all")
    assert {n.rsplit("/", 1)[1] for n in values} == {"kernel", "gamma", "beta"}  # no biases in the original
    assert term == pytest.approx(5e-4 * half_squares(values, values), rel=1e-4)
    kernels = [n for n in values if n.endswith("kernel")]
    assert abs(term - 5e-4 * half_squares(values, kernels)) > 0.1 * term  # gamma and beta weigh in


def test_presets_hold_the_original_code_s_and_the_paper_s_recipes():
    """original: taki0112/ResNeXt-Tensorflow at 60bfd72, ResNeXt.py's constants and loop (originals.md:
    MomentumOptimizer(lr, 0.9, use_nesterov=True), init_learning_rate 0.1, weight_decay 0.0005 on all
    trainable variables, batch_size 128, total_epochs 300, tf.layers' Glorot default, lr / 10 when its
    1-based epoch == 150 or 225, stride on each path's 1x1 conv, average pool + zero-pad shortcut, dense
    without bias). paper: Xie et al. 2017 (arXiv 1611.05431), appendix's CIFAR recipe (papers.md: lr / 10
    at 150 and 225 of 300 epochs) with fb.resnet.torch's He init, an fc with bias, the stride on the 3x3
    and projection shortcuts. The paper says "momentum 0.9"; Nesterov is its released train.lua's (the
    preset's comment)."""
    o = settings(ResNeXt, [])
    assert (o["optimizer"], o["momentum"], o["nesterov"], o["lr"]) == ("momentum", 0.9, True, 0.1)
    assert (o["weight_decay"], o["decay_on"], o["batch_size"], o["epochs"]) == (5e-4, "all", 128, 300)
    assert (o["init"], o["lr_decay_epochs"], o["lr_decay_factor"]) == ("glorot", "149,224", 0.1)
    assert (o["stride_on"], o["shortcut"], o["fc_bias"]) == ("1x1", "pad", False)
    assert (o["cardinality"], o["depth"], o["blocks"], o["out_dims"], o["widen"]) == (8, 64, 3, "64,128,256", False)
    p = settings(ResNeXt, ["--preset", "paper"])
    assert (p["optimizer"], p["momentum"], p["nesterov"], p["lr"]) == ("momentum", 0.9, True, 0.1)
    assert (p["weight_decay"], p["decay_on"], p["batch_size"], p["epochs"]) == (5e-4, "all", 128, 300)
    assert (p["init"], p["lr_decay_epochs"], p["lr_decay_factor"]) == ("he", "150,225", 0.1)
    assert (p["stride_on"], p["shortcut"], p["fc_bias"]) == ("3x3", "projection", True)
    assert (p["cardinality"], p["depth"], p["out_dims"], p["widen"]) == (8, 64, "256,512,1024", True)


def split_layer_strides(argv):
    """{(stage, "conv1" or "conv2"): {(kernel height, width, stride)}} of the first block's split_layer in
    each stage, read from the Conv2D ops of the model built for `argv` (fused: one op per layer, or one per
    group; literal: one per path)."""
    hp = settings(ResNeXt, argv)
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 32, 32, 3])
        ResNeXt.Build_ResNext(x, tf.placeholder(tf.bool, []), hp, 10)
    found = {}
    for op in g.get_operations():
        layer = [part for part in op.name.split("/") if part.startswith("split_layer_")]
        if op.type != "Conv2D" or not layer or not layer[0].endswith(("_conv1", "_conv2")):
            continue
        stage, conv = int(layer[0].split("_")[2]), layer[0][-5:]
        kh, kw = op.inputs[1].get_shape().as_list()[:2]
        strides = op.get_attr("strides")
        assert strides[0] == strides[3] == 1 and strides[1] == strides[2]
        found.setdefault((stage, conv), set()).add((kh, kw, strides[1]))
    return found


@pytest.mark.parametrize("formulation", ["fused", "literal"])
def test_the_original_downsamples_on_the_path_s_1x1_conv_and_the_paper_on_its_3x3(formulation):
    """taki0112/ResNeXt-Tensorflow's transform_layer gives the block's stride to the 1x1 conv (originals.md);
    the paper's bottleneck (Xie et al. 2017, Figure 3; fb.resnet.torch) strides the 3x3."""
    small = ["--cardinality", "2", "--depth", "4", "--blocks", "1", "--stem_dim", "8", "--formulation", formulation]
    original = split_layer_strides(small + ["--out_dims", "8,16,32"])
    paper = split_layer_strides(small + ["--preset", "paper", "--out_dims", "16,32,64"])
    for stage, stride in ((1, 1), (2, 2), (3, 2)):
        assert original[(stage, "conv1")] == {(1, 1, stride)} and original[(stage, "conv2")] == {(3, 3, 1)}
        assert paper[(stage, "conv1")] == {(1, 1, 1)} and paper[(stage, "conv2")] == {(3, 3, stride)}


def test_pad_shortcut_is_a_2x2_average_pool_then_zero_channels_on_both_sides():
    """taki0112/ResNeXt-Tensorflow's shortcut of a widening block: Average_pooling(2x2, stride 2, SAME),
    then tf.pad of the channels by input_dim // 2 on each side (originals.md). On a 5x5 map SAME gives 3x3,
    the last row and column averaging the pixels that exist."""
    x = np.random.RandomState(0).normal(size=(2, 5, 5, 4)).astype(np.float32)
    with tf.Graph().as_default():
        y = ResNeXt.shortcut(tf.constant(x), 8, 2, None, {"shortcut": "pad"}, scope="shortcut")
        with tf.Session() as sess:
            got = sess.run(y)
    assert got.shape == (2, 3, 3, 8)
    pooled = np.stack([np.stack([x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean(axis=(1, 2)) for j in range(3)], 1)
                       for i in range(3)], 1)
    assert pooled[0, 2, 2, 0] == x[0, 4, 4, 0]  # the corner window holds one pixel
    np.testing.assert_allclose(got[..., 2:6], pooled, rtol=1e-6, atol=1e-7)
    assert not got[..., :2].any() and not got[..., 6:].any()  # (8 - 4) // 2 zero channels on each side
