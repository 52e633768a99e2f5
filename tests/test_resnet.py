"""ResNet.py: shapes, parameter totals derived by hand, both units, plain nets, flags, schedule,
training, --eval, and how compare.py picks the reference rows by unit."""
import json
import os
import re
import shlex
import shutil

import numpy as np
import pytest

from compat import tf
import compare
import ops
import ResNet
from conftest import settings, summary as conftest_summary, run_main
from batches import Batches, load_data, make_batches
from conftest import lr_at
from checkpoints import check_resume
from settings import KitError, build_parser, resolve

# He et al. 2015, Table 6: "# params" of the CIFAR-10 ResNets, as printed (millions).
TABLE6 = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}
STAGE_WIDTHS = (16, 32, 64)


def resnet_params(num_layers, preact_gamma, classes=10):
    """The parameter total of the pre-activation net (unit=preact), counted by hand, unit by unit.

    n = (L - 2) / 6 units per stage; a unit at `w` channels reading `w_in` channels holds
      preact BN  k * w_in     (k = 2 with gamma and beta, 1 with beta only: the original)
      conv1      3 * 3 * w_in * w   (no bias: a BN follows)
      conv1 BN   2 * w              (gamma and beta)
      conv2      3 * 3 * w * w      (no bias)
    and the option-A shortcut has no parameters. Around the stages: init_conv 3*3*3*16
    (no bias), the head's BN k * 64 and the classifier 64 * classes + classes (bias).
    """
    k = 2 if preact_gamma else 1
    n = (num_layers - 2) // 6
    total = 3 * 3 * 3 * 16
    w_in = 16
    for w in STAGE_WIDTHS:
        for _ in range(n):
            total += k * w_in + 9 * w_in * w + 2 * w + 9 * w * w
            w_in = w
    return total + k * 64 + 64 * classes + classes


def resnet_v1_params(num_layers, classes=10):
    """The parameter total of He et al. 2015's net (unit=original), counted by hand.

    init_conv 3*3*3*16 (no bias) and its BN 2*16; a unit at `w` channels reading `w_in` holds
      conv1 3*3*w_in*w, its BN 2*w, conv2 3*3*w*w, its BN 2*w
    (no conv bias: a BN follows every conv); option-A shortcuts have no parameters; no BN
    before the pool; the classifier 64 * classes + classes.
    """
    n = (num_layers - 2) // 6
    total = 3 * 3 * 3 * 16 + 2 * 16
    w_in = 16
    for w in STAGE_WIDTHS:
        for _ in range(n):
            total += 9 * w_in * w + 2 * w + 9 * w * w + 2 * w
            w_in = w
    return total + 64 * classes + classes


def option_b_extra():
    """What option-B (projection) shortcuts add to either count: a 1x1 conv (no bias) and a BN
    (gamma, beta) in each of the two units where the width grows."""
    return sum(w_in * w + 2 * w for w_in, w in zip(STAGE_WIDTHS, STAGE_WIDTHS[1:]))


def test_hand_counts_in_closed_form():
    """The same arithmetic summed per stage, for n units:
    paper (k = 2):   stage 1: 4672 n;  stage 2: 13920 + 18560 (n - 1);  stage 3: 55488 + 73984 (n - 1);
                     plus 432 + 128 + 650  ->  97216 n - 21926
    original (k = 1): stage 1: 4656 n;  stage 2: 13904 + 18528 (n - 1);  stage 3: 55456 + 73920 (n - 1);
                     plus 432 + 64 + 650   ->  97104 n - 21942
    unit=original:   stage 1: 4672 n;  stage 2: 13952 + 18560 (n - 1);  stage 3: 55552 + 73984 (n - 1);
                     plus 432 + 32 + 650   ->  97216 n - 21926
    e.g. paper ResNet-20 (n = 3): 2*16 + 2304 + 32 + 2304 = 4672 per stage-1 unit, and so on.
    unit=original and unit=preact with gamma everywhere hold the same total: the original puts
    a BN on every conv's output (the stem's 16 channels included), the pre-activation unit on
    every unit conv's input plus the head's 64 channels, and the unit inputs are the stem's
    16 channels and every unit's output but the last (64).
    """
    for L in (20, 32, 44, 56, 110, 1202):
        n = (L - 2) // 6
        assert resnet_params(L, True) == 97216 * n - 21926
        assert resnet_params(L, False) == 97104 * n - 21942
        assert resnet_v1_params(L) == 97216 * n - 21926
    exact = {L: (resnet_params(L, False), resnet_params(L, True)) for L in TABLE6}
    assert exact == {20: (269370, 269722), 32: (463578, 464154), 44: (657786, 658586),
                     56: (851994, 853018), 110: (1725930, 1727962)}
    v1 = {L: resnet_v1_params(L) for L in TABLE6}
    assert v1 == {20: 269722, 32: 464154, 44: 658586, 56: 853018, 110: 1727962}
    # Table 6's rounding: two significant digits (1.7M), or 0.01M below one million.
    for L, millions in TABLE6.items():
        for count in exact[L] + (v1[L],):
            assert round(count / 1e6, 1 if count >= 1e6 else 2) == millions, (L, count)
    assert round(resnet_params(1202, True) / 1e6, 1) == 19.4  # ResNet-1202, 19.4M
    assert round(resnet_v1_params(1202) / 1e6, 1) == 19.4


def test_the_often_quoted_272474_counts_projection_shortcuts():
    """272,474 is the count usually quoted for ResNet-20 (e.g. osmr/imgclsmob's CIFAR table,
    with 855,770 and 1,730,714 for ResNet-56 and -110). It is not Table 6's network: those
    implementations widen with option-B shortcuts, a 1x1 conv and a BN where the width grows,
    16*32 + 2*32 + 32*64 + 2*64 = 2,752 parameters more. He et al. 2015 use option A on
    CIFAR-10 ("identity shortcuts in all cases"), which has none: 269,722."""
    assert option_b_extra() == 2752
    for L, quoted in ((20, 272474), (56, 855770), (110, 1730714)):
        assert resnet_v1_params(L) + option_b_extra() == quoted
        assert resnet_v1_params(L) == quoted - 2752
    assert round(272474 / 1e6, 2) == round(resnet_v1_params(20) / 1e6, 2) == TABLE6[20]  # both print as 0.27M


def summary(argv):
    return conftest_summary(ResNet, argv)


@pytest.mark.parametrize("preset,unit,total", [("original", None, 269370), ("paper", None, 269722),
                                               ("paper", "preact", 269722), ("original", "original", 269722)])
def test_summary_resnet20(preset, unit, total):
    argv = ["--preset", preset] + (["--unit", unit] if unit else [])
    unit = unit or ("preact" if preset == "original" else "original")  # the presets' units
    assert settings(ResNet, argv)["unit"] == unit
    shapes, count = summary(argv)
    assert shapes["init_conv"] == [None, 32, 32, 16]
    assert shapes["block1"] == [None, 32, 32, 16]
    assert shapes["block2"] == [None, 16, 16, 32]
    assert shapes["block3"] == [None, 8, 8, 64]
    # only the pre-activation net has a BN-ReLU before the pool (the original unit ends in a ReLU)
    assert shapes.get("postnorm") == ([None, 8, 8, 64] if unit == "preact" else None)
    # the original keeps the 1x1 map for its 1x1-conv classifier; the paper's head is dense
    assert shapes["global_average_pool"] == ([None, 1, 1, 64] if preset == "original" else [None, 64])
    assert shapes["logits"] == [None, 10]
    expected = resnet_v1_params(20) if unit == "original" else resnet_params(20, preset == "paper")
    assert count == expected == total


def forward_graph(argv):
    """The model alone (no loss, no gradients): quick to build. Returns (graph, hp, images, training)."""
    hp = settings(ResNet, argv)
    g = tf.Graph()
    with g.as_default():
        tf.set_random_seed(0)
        x = tf.placeholder(tf.float32, [None, 32, 32, 3], name="images")
        training = tf.placeholder(tf.bool, [], name="training")
        ResNet.Build_ResNet(x, training, hp, 10)
    return g, hp, x, training


def trainable_count(g):
    with g.as_default():
        return ops.count_params()


@pytest.mark.parametrize("num_layers", [32, 44, 56, 110])
def test_parameter_totals_match_table6(num_layers):
    for argv, expected in ((["--preset", "original"], resnet_params(num_layers, False)),
                           (["--preset", "paper"], resnet_v1_params(num_layers)),
                           (["--preset", "paper", "--unit", "preact"], resnet_params(num_layers, True))):
        g, _, _, _ = forward_graph(argv + ["--num_layers", str(num_layers)])
        total = trainable_count(g)
        assert total == expected, (argv, num_layers)
        assert round(total / 1e6, 1 if total >= 1e6 else 2) == TABLE6[num_layers]


def data_path_ops(g):
    """Every op computed from the images placeholder."""
    seen, todo = {}, [g.get_operation_by_name("images")]
    while todo:
        for t in todo.pop().outputs:
            for op in t.consumers():
                if op.name not in seen:
                    seen[op.name] = op
                    todo.append(op)
    return list(seen.values())


def is_add(op):
    return op.type in ("Add", "AddV2")


def layer_chain(g):
    """The data path layer by layer from the images: each entry is the sorted op types of the
    next ops computed, with tf.cond's Switch/Merge, Identity and StopGradient looked through, only an op's
    first output followed (a fused BN's others feed its moving averages) and every
    FusedBatchNorm* (one per cond branch) called "BN". A conv-BN-ReLU stack gives
    [Conv2D], [BN], [Relu], [Conv2D], ..."""
    chain, frontier = [], [g.get_operation_by_name("images")]
    while frontier:
        found, todo, seen = {}, [op.outputs[0] for op in frontier], set()
        while todo:
            for op in todo.pop().consumers():
                if op.name in seen:
                    continue
                seen.add(op.name)
                if op.type in ("Switch", "Merge", "Identity", "StopGradient"):
                    todo.extend(op.outputs)
                else:
                    found[op.name] = op
        if not found:
            break
        chain.append(sorted(set("BN" if op.type.startswith("FusedBatchNorm") else op.type for op in found.values())))
        frontier = list(found.values())
    return chain


# Through which ops each preset's head turns the last ReLU into logits.
HEADS = {"original": [["Mean"], ["Conv2D"], ["BiasAdd"], ["Squeeze"]],
         "paper": [["Mean"], ["MatMul"], ["BiasAdd"]]}


@pytest.mark.parametrize("preset,unit", [("original", "preact"), ("paper", "original"), ("paper", "preact")])
def test_plain_net_is_the_conv_bn_relu_stack(preset, unit):
    """With --shortcut_connections=False both units give He et al. 2015's plain net: no addition
    anywhere, one chain of 6n+1 conv-BN-ReLU layers, then the pool and the classifier."""
    n = 2  # 14 layers: two units per stage, so every kind of shortcut occurs in the ResNet
    argv = ["--preset", preset, "--unit", unit, "--num_layers", "14"]
    g, hp, _, _ = forward_graph(argv)
    assert hp["shortcut_connections"] is True
    adds = [op for op in data_path_ops(g) if is_add(op)]
    assert sorted(op.name for op in adds) == sorted("block%d/unit_%d/add" % (s, u) for s in (1, 2, 3)
                                                    for u in range(1, n + 1))
    resnet_total = trainable_count(g)
    for flag in ("--shortcut_connections=False", "--shortcut_connection=False", "--shortcut_connections=no"):
        plain, hp, _, _ = forward_graph(argv + [flag])
        assert hp["shortcut_connections"] is False, flag
        path = data_path_ops(plain)
        assert [op.name for op in path if is_add(op)] == [], flag
        assert not [op for op in path if op.type in ("Pad", "AvgPool", "StridedSlice")], flag
        assert layer_chain(plain) == [["Conv2D"], ["BN"], ["Relu"]] * (6 * n + 1) + HEADS[preset], flag
        assert trainable_count(plain) == resnet_total  # option A shortcuts have no parameters
    assert settings(ResNet, ["--shortcut_connection"])["shortcut_connections"] is True


def add_inputs(g):
    """For each shortcut addition on the data path: (sorted input op types, consumer op types)."""
    found = []
    for op in data_path_ops(g):
        if is_add(op):
            found.append((sorted(t.op.type for t in op.inputs), sorted(c.type for c in op.outputs[0].consumers())))
    return found


def test_original_unit_is_figure_2():
    """unit=original: every conv is followed by its BN (tf.cond's Merge gives the BN's output),
    the sum is residual BN + shortcut, and a ReLU follows the sum; the stem has its own BN,
    and there are no pre-activations and no BN before the pool."""
    n = 2
    g, hp, _, _ = forward_graph(["--preset", "paper", "--num_layers", "14"])
    assert hp["unit"] == "original" and hp["shortcut_downsample"] == "subsample"
    adds = add_inputs(g)
    assert len(adds) == 3 * n
    # the first units of stages 2 and 3 add the subsampled (strided slice), zero-padded input;
    # every other unit its input, the previous unit's (or the stem's) ReLU
    assert sorted(inputs for inputs, _ in adds) == sorted([["Merge", "Pad"]] * 2 + [["Merge", "Relu"]] * (3 * n - 2))
    assert all(consumers == ["Relu"] for _, consumers in adds)
    assert len([op for op in data_path_ops(g) if op.type == "StridedSlice"]) == 2
    with g.as_default():
        names = [v.op.name for v in tf.trainable_variables()]
    assert names[:3] == ["init_conv/kernel", "init_conv/BatchNorm/beta", "init_conv/BatchNorm/gamma"]
    assert not [v for v in names if "preact" in v or "postnorm" in v]
    per_unit = ["conv1/kernel", "conv1/BatchNorm/beta", "conv1/BatchNorm/gamma",
                "conv2/kernel", "conv2/BatchNorm/beta", "conv2/BatchNorm/gamma"]
    assert names[3:-2] == ["block%d/unit_%d/%s" % (s, u, v) for s in (1, 2, 3) for u in (1, 2) for v in per_unit]
    assert names[-2:] == ["logits/kernel", "logits/bias"]


def test_original_preset_graph_is_unchanged():
    """The original preset is still chao-ji's pre-activation net: the same variables in the same
    order with the same shapes, the same data-path ops, its shortcut sums as before."""
    g, hp, _, _ = forward_graph(["--num_layers", "8"])
    assert hp["unit"] == "preact"
    with g.as_default():
        got = [(v.op.name, v.get_shape().as_list()) for v in tf.trainable_variables()]
    expected = [("init_conv/kernel", [3, 3, 3, 16])]
    w_in = 16
    for s, w in enumerate(STAGE_WIDTHS, start=1):
        unit = "block%d/unit_1/" % s
        expected += [(unit + "preact/beta", [w_in]), (unit + "conv1/kernel", [3, 3, w_in, w]),
                     (unit + "conv1/BatchNorm/beta", [w]), (unit + "conv1/BatchNorm/gamma", [w]),
                     (unit + "conv2/kernel", [3, 3, w, w])]
        w_in = w
    expected += [("postnorm/beta", [64]), ("logits/kernel", [1, 1, 64, 10]), ("logits/bias", [10])]
    assert got == expected
    path = data_path_ops(g)
    counts = dict((kind, len([op for op in path if op.type == kind]))
                  for kind in ("Conv2D", "Relu", "AvgPool", "Pad", "StridedSlice", "MatMul"))
    assert counts == {"Conv2D": 8, "Relu": 7, "AvgPool": 2, "Pad": 2, "StridedSlice": 0, "MatMul": 0}
    # the very first unit adds its pre-activation (a ReLU), the widening ones the pooled and
    # zero-padded input; conv2 (no bias, no BN) feeds every sum directly
    assert sorted(inputs for inputs, _ in add_inputs(g)) == [["Conv2D", "Pad"], ["Conv2D", "Pad"], ["Conv2D", "Relu"]]
    assert trainable_count(g) == resnet_params(8, False) == 75162


@pytest.mark.parametrize("argv", [["--shortcut_conections=False"], ["--unit", "v1"]])
def test_unknown_flag_or_unit_is_an_error(argv):
    with pytest.raises(SystemExit) as e:
        run_main(ResNet, ["--summary"] + argv)
    assert e.value.code == 2


@pytest.mark.parametrize("bad", ["21", "2", "19"])
def test_num_layers_not_6n_plus_2_is_refused(bad):
    code, out, err = run_main(ResNet, ["--summary", "--num_layers=" + bad])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "--num_layers=%s is not 6n+2" % bad in lines[0]
    assert "20, 32, 44, 56, 110 or 1202" in lines[0]


def one_training_pass(argv, pairs):
    """Build ResNet for `argv` and run one training-mode pass (the whole net, so every BN
    updates) on inputs of mean 3. Returns (hp, variable names, [(batch mean of conv `c`'s
    output, moving_mean of BN `bn`) for (c, bn) in pairs]): a BN with decay d that starts
    from zero must then hold (1 - d) times its conv's batch mean."""
    g, hp, x, training = forward_graph(argv)
    with g.as_default():
        names = {v.op.name: v for v in tf.global_variables()}
        convs = [g.get_tensor_by_name(c + "/Conv2D:0") for c, _ in pairs]
        moving = [names[bn + "/moving_mean"] for _, bn in pairs]
        logits = dict(tf.get_collection(ops.STAGES))["logits"]
        init = tf.global_variables_initializer()
    data = np.random.RandomState(0).normal(3.0, 1.0, size=(16, 32, 32, 3)).astype(np.float32)
    with tf.Session(graph=g) as sess:
        sess.run(init)
        outs = sess.run(convs + [logits], {x: data, training: True})[:-1]
        means = sess.run(moving)
    return hp, set(names), [(o.mean(axis=(0, 1, 2)), m) for o, m in zip(outs, means)]


def test_batch_norm_decays_and_gamma_follow_the_original():
    """One training-mode pass from fresh moving averages (0) with zero_debias off:
    moving_mean = (1 - decay) * batch mean. The original's stand-alone pre-activation BN is
    slim's default (decay 0.999, no gamma); the BN inside conv1 has --batch_norm_decay 0.99."""
    hp, names, ((stem, preact), (conv1, bn1)) = one_training_pass(
        ["--num_layers", "8"],
        [("init_conv", "block1/unit_1/preact"), ("block1/unit_1/conv1", "block1/unit_1/conv1/BatchNorm")])
    assert hp["bn_decay"] == 0.99 and hp["preact_bn_decay"] == 0.999 and hp["preact_bn_scale"] is False
    assert "block1/unit_1/preact/gamma" not in names and "postnorm/gamma" not in names
    assert "block1/unit_1/conv1/BatchNorm/gamma" in names
    assert not [n for n in names if "biased" in n or "local_step" in n]  # no zero-debias state
    np.testing.assert_allclose(preact, 0.001 * stem, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(bn1, 0.01 * conv1, rtol=1e-3, atol=1e-7)
    hp = settings(ResNet, ["--batch_norm_decay", "0.97", "--preset", "paper"])
    assert hp["bn_decay"] == 0.97 and hp["preact_bn_decay"] == 0 and hp["preact_bn_scale"] is True


def test_original_unit_batch_norms_use_bn_decay():
    """unit=original (paper preset): every BN follows a conv, has a gamma and --bn_decay (0.9),
    the stem's included."""
    hp, names, ((stem, stem_bn), (conv2, bn2)) = one_training_pass(
        ["--preset", "paper", "--num_layers", "8"],
        [("init_conv", "init_conv/BatchNorm"), ("block1/unit_1/conv2", "block1/unit_1/conv2/BatchNorm")])
    assert hp["bn_decay"] == 0.9
    assert {"init_conv/BatchNorm/gamma", "block1/unit_1/conv2/BatchNorm/gamma"} <= names
    np.testing.assert_allclose(stem_bn, 0.1 * stem, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(bn2, 0.1 * conv2, rtol=1e-3, atol=1e-7)


def test_learning_rate_schedules():
    hp = settings(ResNet, [])
    assert hp["unit"] == "preact" and settings(ResNet, ["--preset", "paper"])["unit"] == "original"
    assert hp["steps"] == 64000 and hp["batch_size"] == 128 and hp["nesterov"] is False
    assert (hp["weight_decay"], hp["decay_on"], hp["init"], hp["normalization"]) == (2e-4, "kernels", "glorot",
                                                                                      "pixel_mean")
    lr = lambda step, h=hp: lr_at(step, h, 391)  # noqa: E731
    assert [lr(s) for s in (0, 499, 500, 31999, 32000, 47999, 48000, 63999)] == \
        [0.01, 0.01, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1, 0.1 * 0.1 ** 2, 0.1 * 0.1 ** 2]
    assert abs(lr(32000) - 0.01) < 1e-12 and abs(lr(48000) - 0.001) < 1e-12
    # paper: the 0.01 warm-up (400 steps) only for ResNet-110 and deeper
    p110 = settings(ResNet, ["--preset", "paper", "--num_layers", "110"])
    assert [lr_at(s, p110, 391) for s in (0, 399, 400)] == [0.01, 0.01, 0.1]
    p56 = settings(ResNet, ["--preset", "paper", "--num_layers", "56"])
    assert p56["warmup_steps"] == 0 and lr_at(0, p56, 391) == 0.1
    # ... a warm-up given on the command line is the user's, not the preset's to drop
    assert settings(ResNet, ["--preset", "paper", "--num_layers", "56", "--warmup_steps", "200"])["warmup_steps"] == 200
    assert settings(ResNet, ["--preset", "paper", "--num_layers", "56", "--warmup_steps", "400"])["warmup_steps"] == 400
    # ... and a warm-up rate without the warm-up would do nothing
    code, _, err = run_main(ResNet, ["--preset", "paper", "--num_layers", "56", "--warmup_lr", "0.05"])
    assert code == 2 and "--warmup_lr is used only with a warm-up" in err and len(err.strip().splitlines()) == 1
    # ... and which nets get the preset's warm-up means nothing beside a warm-up of one's own
    code, _, err = run_main(ResNet, ["--preset", "paper", "--warmup_min_layers", "50", "--warmup_steps", "100"])
    assert (code, err) == (2, "error: --warmup_min_layers says which nets get the preset's warm-up, and --warmup_steps "
                              "gives this net its own: drop one of them\n")
    code, _, err = run_main(ResNet, ["--warmup_min_layers", "-5"])
    assert (code, err) == (2, "error: --warmup_min_layers must be between 0 and 2402, got -5\n")
    assert (p56["weight_decay"], p56["decay_on"], p56["init"], p56["bn_decay"]) == (1e-4, "all", "he", 0.9)
    # --epochs counts epochs and replaces the preset's step budget; a step count there is refused
    assert settings(ResNet, ["--epochs", "3"])["steps"] == 0
    code, _, err = run_main(ResNet, ["--epochs", "64000"])
    assert code == 2 and "--steps 64000" in err and len(err.strip().splitlines()) == 1


def test_path_and_ckpt_path_flags(tmp_path):
    hp = settings(ResNet, ["--path", "some/cifar-10-batches-bin"])
    assert hp["data_source"] == "some/cifar-10-batches-bin" and hp["binary"] is True
    assert settings(ResNet, ["--dataset", "cifar100"])["binary"] is False  # CIFAR-100 is read as pickles
    code, _, err = run_main(ResNet, ["--path", "x", "--ckpt_path", str(tmp_path), "--run_dir", str(tmp_path)])
    assert code == 2 and "add --eval" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main(ResNet, ["--dataset", "mnist", "--summary"])
    assert code == 2 and "cifar10" in err


@pytest.mark.parametrize("flag", ["--data_source", "--path"])
def test_the_python_version_given_to_the_binary_preset_says_how_to_read_it(flag, fake_cifar, tmp_path):
    """The preset reads cifar-10-batches-bin; given cifar-10-batches-py, the error names the flag that
    reads it, and the command with that advice followed loads the data."""
    argv = [flag, fake_cifar["py"], "--trust_data", "--num_layers", "8", "--run_dir", str(tmp_path / "run")]
    code, out, err = run_main(ResNet, argv)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: %s is the python version of CIFAR-10, and this run reads the binary version: "
                          "pass it with --data_source and --binary=false to read it" % fake_cifar["py"]), err
    assert not (tmp_path / "run").exists()
    argv[0] = "--data_source"
    hp = settings(ResNet, argv + ["--binary=false"])
    assert hp["binary"] is False and load_data(hp)["train_x"].shape == (250, 32, 32, 3)


def test_training_lowers_loss_and_eval_matches_the_log(fake_cifar, tmp_path):
    run_dir = tmp_path / "run"
    # ResNet-8, batch 50 on 250 fake images: 5 steps per epoch, 3 epochs, all at the 0.01 warm-up rate
    args = ["--path", fake_cifar["bin"], "--num_layers", "8", "--batch_size", "50", "--steps", "15",
            "--run_dir", str(run_dir), "--threads", "1", "--progress", "off"]
    code, out, err = run_main(ResNet, args)
    assert code == 0, err
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    assert recs[-1]["train_loss"] < 0.8 * recs[0]["train_loss"], recs
    assert all(r["lr"] == 0.01 for r in recs)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["hparams"]["binary"] is True and config["hparams"]["data_source"] == fake_cifar["bin"]
    assert config["num_params"] == resnet_params(8, False)

    ckpt = run_dir / "checkpoints" / "step-00000015"
    assert (ckpt / "meta.json").exists()
    code, out, err = run_main(ResNet, ["--eval", "--ckpt_path", str(ckpt), "--path", fake_cifar["bin"],
                                       "--num_layers", "8", "--run_dir", str(run_dir), "--threads", "1"])
    assert code == 0, err
    line = [l for l in out.splitlines() if l.startswith("checkpoint ")][0]
    assert "(100 test images)" in line
    accuracy = float(line.rsplit("accuracy", 1)[1])
    assert accuracy == pytest.approx(recs[-1]["test_acc"], abs=5e-5)
    assert (run_dir / "confusion_matrix.png").exists()
    # --ckpt_path alone: the report goes beside the logs of the run it evaluates, not into a default folder;
    # what the evaluation measures (--test_subset) is the command's
    os.remove(str(run_dir / "confusion_matrix.png"))
    os.makedirs(str(tmp_path / "elsewhere"))
    here = os.getcwd()
    os.chdir(str(tmp_path / "elsewhere"))
    try:
        code, out, err = run_main(ResNet, ["--eval", "--ckpt_path", str(ckpt), "--path", fake_cifar["bin"],
                                           "--num_layers", "8", "--threads", "1", "--test_subset", "40"])
    finally:
        os.chdir(here)
    assert code == 0, err
    assert (run_dir / "confusion_matrix.png").exists() and os.listdir(str(tmp_path / "elsewhere")) == []
    assert "(40 test images)" in out and "ignores" not in out, out
    # the inputs are normalised with the training images' statistics: --train_subset is the checkpoint's
    code, out, err = run_main(ResNet, ["--eval", "--run_dir", str(run_dir), "--path", fake_cifar["bin"],
                                       "--num_layers", "8", "--train_subset", "100"])
    assert code == 2 and "trained with --train_subset 0, this command says --train_subset 100" in err, err
    # the plain net has the same variables: only the checkpoint's record can tell them apart
    code, out, err = run_main(ResNet, ["--eval", "--ckpt_path", str(ckpt), "--path", fake_cifar["bin"],
                                       "--num_layers", "8", "--run_dir", str(run_dir), "--shortcut_connection=false"])
    assert code == 2 and "trained with --shortcut_connections true, this command says --shortcut_connections false" in err, err
    # --binary=false reads the same images from the python layout, as the error for that layout advises: --eval
    # measures the same accuracy, and the run resumes (not refused as another experiment)
    py = ["--data_source", fake_cifar["py"], "--binary=false", "--trust_data", "--num_layers", "8", "--threads", "1",
          "--progress", "off"]
    code, out, err = run_main(ResNet, ["--eval", "--ckpt_path", str(ckpt)] + py)
    assert code == 0, err
    line = [l for l in out.splitlines() if l.startswith("checkpoint ")][0]
    assert "(100 test images)" in line and float(line.rsplit("accuracy", 1)[1]) == accuracy
    first = config["dataset_label"]
    code, out, err = run_main(ResNet, py + ["--batch_size", "50", "--steps", "20", "--run_dir", str(run_dir),
                                            "--dataset_label", "the python copy"])
    assert code == 0 and "resumed from %s: step 15" % ckpt in out, err
    # config.json says what the whole run read, its earlier part too (compare.py's data caveat reads it)
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["dataset_label"], config["data_verified"]) == (first + ", then the python copy", False)
    code, out, err = run_main(ResNet, py + ["--batch_size", "50", "--steps", "25", "--run_dir", str(run_dir),
                                            "--dataset_label", "the python copy"])
    assert code == 0 and "resumed from" in out, err
    assert json.loads((run_dir / "config.json").read_text())["dataset_label"] == first + ", then the python copy"
    assert settings(ResNet, ["--preset", "paper", "--binary=false"]).overrides == {}  # compare.py: the paper's recipe


def fake_data(n):
    """n 1x1 images whose labels are their indices, so a batch's labels say which images it took."""
    return dict(train_x=np.zeros((n, 1, 1, 1), np.float32), train_y=np.arange(n))


def test_original_preset_steps_draw_full_batches_across_epochs():
    """chao-ji's dataset.py feeds repeat -> shuffle(50000) -> batch(128): every one of its 64,000
    steps has 128 images. The preset streams the passes' permutations end to end."""
    hp = settings(ResNet, [])
    assert hp["batches"] == "stream"
    b = make_batches(hp, fake_data(50000))
    assert b.steps_per_epoch == 391  # an epoch of the logs: ceil(50000 / 128) steps, 50,048 images
    steps = [b.batch(e, i)[1] for e in range(3) for i in range(391)]
    assert len(steps) == 3 * 391 and set(len(s) for s in steps) == {128}
    taken = np.concatenate(steps)  # 150,144 images: three passes and 144 of the fourth
    passes = np.concatenate([b.permutation(p) for p in range(4)])
    assert np.array_equal(taken, passes[:len(taken)])
    for p in range(3):
        assert sorted(taken[p * 50000:(p + 1) * 50000]) == list(range(50000))
    assert np.array_equal(b.batch(2, 100)[1], steps[2 * 391 + 100])  # a pure function of the step
    # the paper preset cuts each epoch alone: its last batch has 50000 - 390 * 128 images
    paper = make_batches(settings(ResNet, ["--preset", "paper"]), fake_data(50000))
    assert len(paper.batch(0, 390)[1]) == 80 and len(paper.batch(1, 0)[1]) == 128


def test_original_preset_training_feeds_full_batches(fake_cifar, tmp_path, monkeypatch):
    """Training itself takes the stream: 250 images at batch 64 give 4 steps per epoch, none short."""
    fed, real = [], Batches.batch

    def batch(self, epoch, index, order=None):
        bx, by = real(self, epoch, index, order)
        fed.append((epoch, index, len(bx)))
        return bx, by
    monkeypatch.setattr(Batches, "batch", batch)
    run_dir = tmp_path / "run"
    argv = ["--path", fake_cifar["bin"], "--num_layers", "8", "--batch_size", "64", "--steps", "9",
            "--run_dir", str(run_dir), "--threads", "1", "--progress", "off"]
    code, out, err = run_main(ResNet, argv)
    assert code == 0, err
    assert sorted(fed)[:9] == [(0, 0, 64), (0, 1, 64), (0, 2, 64), (0, 3, 64), (1, 0, 64), (1, 1, 64), (1, 2, 64),
                               (1, 3, 64), (2, 0, 64)]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["hparams"]["batches"] == "stream" and config["steps_per_epoch"] == 4


def test_a_checkpoint_from_before_batches_existed_resumes_only_as_epoch_batches():
    """A checkpoint whose record has no --batches was trained with epoch batches (Setting.added_later)."""
    old = {"config": {"hparams": {}}}
    with pytest.raises(KitError) as e:
        check_resume(old, settings(ResNet, []), "ck", "ResNet")
    assert str(e.value) == ("checkpoint ck does not fit this command: it was trained with --batches epoch, this command "
                            "has --batches stream; give --batches epoch to resume it, or pass another --run_dir")
    check_resume(old, settings(ResNet, ["--batches", "epoch"]), "ck", "ResNet")
    check_resume({"config": {"hparams": {"batches": "stream"}}}, settings(ResNet, []), "ck", "ResNet")


def advice(message):
    """The flags a refused resume says to give ("give ... to resume it, or pass another --run_dir")."""
    m = re.search(r"; give (.*) to resume it, or pass another --run_dir$", message)
    assert m, message
    return m.group(1)


def test_resume_advice_pastes_back_to_the_recorded_settings(fake_cifar, tmp_path):
    """The original preset records --lr_decay_epochs as the empty string: the advice quotes it, and
    the words a POSIX shell makes of it are flags the script's parser reads back as the record."""
    run = tmp_path / "run"
    argv = ["--path", fake_cifar["bin"], "--num_layers", "8", "--batch_size", "50", "--run_dir", str(run),
            "--threads", "1", "--progress", "off"]
    assert run_main(ResNet, argv + ["--steps", "2"])[0] == 0
    refused = argv + ["--steps", "3", "--lr_decay_epochs", "2"]
    code, out, err = run_main(ResNet, refused)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    flags = advice(err.strip())
    assert flags == "--lr_decay_epochs '' --lr_decay_steps 32000,48000", err
    recorded = json.loads((run / "config.json").read_text())["hparams"]
    args = build_parser("ResNet", ResNet.PRESETS, "").parse_args(shlex.split(flags))
    assert (args.lr_decay_epochs, args.lr_decay_steps) == (recorded["lr_decay_epochs"], recorded["lr_decay_steps"])
    # pasted after the refused command, as the message says
    code, out, err = run_main(ResNet, refused + shlex.split(flags))
    assert code == 0, err
    assert "resumed from %s: step 2" % (run / "checkpoints" / "step-00000002") in out


def test_resume_advice_says_bools_as_the_parser_reads_them_and_an_absent_flag_as_absent():
    """A flag not given (None) has no value to paste: the advice says to leave it out."""
    saved = settings(ResNet, [])
    here = ["--augment=false", "--lr", "0.05", "--horovod"]
    with pytest.raises(KitError) as e:
        check_resume({"config": {"hparams": dict(saved)}}, settings(ResNet, here), "ck", "ResNet")
    flags, _, absent = advice(str(e.value)).partition(" and no ")
    assert (flags, absent) == ("--augment true --lr 0.1", "--horovod")
    pasted = [w for w in here if w != "--horovod"] + shlex.split(flags)
    check_resume({"config": {"hparams": dict(saved)}}, settings(ResNet, pasted), "ck", "ResNet")
    assert "it was trained with --augment true --lr 0.1 and no --horovod, this command has --augment " \
           "false --horovod true --lr 0.05;" in str(e.value)


@pytest.mark.parametrize("trained, here, flags", [
    ([], ["--preset", "paper"], "--preset original"),
    (["--weight_decay", "0.0005", "--dataset", "cifar100"], ["--preset", "paper", "--dataset", "cifar100"],
     "--preset original --weight_decay 0.0005"),
    ([], ["--preset", "paper", "--weight_decay", "0.0005", "--lr", "0.2"],
     "--preset original --lr 0.1 --weight_decay 0.0002"),
    (["--preset", "paper", "--init", "glorot"], ["--unit", "original", "--epochs", "9"], "--preset paper --init glorot"),
])
def test_resume_advice_across_presets_names_the_preset_not_each_setting(trained, here, flags):
    """A checkpoint of another preset differs in a dozen settings: the advice is its preset, the
    flags its command gave that this one does not, and those this one gives otherwise. Pasted
    after the refused command, they resume it (--epochs, which may change on resume, stays)."""
    saved = settings(ResNet, trained)
    meta = {"config": {"hparams": dict(saved), "overrides": saved.overrides, "preset": saved["preset"]}}
    with pytest.raises(KitError) as e:
        check_resume(meta, settings(ResNet, here), "ck", "ResNet")
    assert advice(str(e.value)) == flags
    assert re.search(r"this command has --preset \w+[^(]* \((\d+) settings differ: --", str(e.value)), str(e.value)
    check_resume(meta, settings(ResNet, here + shlex.split(flags)), "ck", "ResNet")


@pytest.fixture(scope="module")
def original_unit_run(fake_cifar, tmp_path_factory):
    """ResNet-8 with He et al. 2015's unit and recipe (--preset paper: lr 0.1 from the first
    step, He initialisation), batch 50 on the 250 fake images: 15 steps in 3 epochs."""
    run_dir = tmp_path_factory.mktemp("resnet-original-unit") / "run"
    args = ["--preset", "paper", "--path", fake_cifar["bin"], "--num_layers", "8", "--batch_size", "50",
            "--steps", "15", "--run_dir", str(run_dir), "--threads", "1", "--progress", "off"]
    code, out, err = run_main(ResNet, args)
    assert code == 0, err
    return run_dir


def test_original_unit_training_lowers_loss(original_unit_run, fake_cifar):
    run_dir = original_unit_run
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    assert all(r["lr"] == 0.1 for r in recs)  # no warm-up below 110 layers
    assert recs[-1]["train_loss"] < 0.8 * recs[0]["train_loss"], recs
    config = json.loads((run_dir / "config.json").read_text())
    assert config["hparams"]["unit"] == "original" and config["preset"] == "paper"
    assert config["num_params"] == resnet_v1_params(8) == 75290
    # what changed the paper's recipe, for compare.py (paths, threads and logging are not recorded)
    assert config["overrides"] == {"batch_size": 50, "num_layers": 8, "steps": 15}
    # the checkpoint records its unit: --eval refuses to build the other one over its weights
    ckpt = run_dir / "checkpoints" / "step-00000015"
    code, out, err = run_main(ResNet, ["--eval", "--ckpt_path", str(ckpt), "--path", fake_cifar["bin"], "--preset",
                                       "paper", "--num_layers", "8", "--run_dir", str(run_dir), "--unit", "preact"])
    assert code == 2 and "trained with --unit original, this command says --unit preact:" in err, err


def test_compare_picks_reference_rows_by_unit(original_unit_run, tmp_path):
    """compare.py reads the unit from a run's config.json: He et al. 2015 rows for
    unit=original, He et al. 2016 (or chao-ji's) rows for unit=preact."""
    refs = compare.load_references()
    run = compare.load_run(str(original_unit_run))  # the real run: ResNet-8 has no published number
    assert compare.run_arch(run)["unit"] == "original"
    row, reasons, _ = compare.match_reference(run, refs)
    assert row is None and "no reference row for ResNet-8 on cifar10 (preset paper)" in reasons[0]

    def as_run(preset, unit, num_layers):
        """The real run's folder, its config.json rewritten with the settings these flags give."""
        folder = tmp_path / ("%d-%s-%s-%d" % (len(os.listdir(str(tmp_path))), preset, unit, num_layers))
        shutil.copytree(str(original_unit_run), str(folder), ignore=shutil.ignore_patterns("checkpoints", "tb"))
        config = json.loads((folder / "config.json").read_text())
        config["preset"] = preset
        config["hparams"] = settings(ResNet, ["--preset", preset, "--unit", unit, "--num_layers", str(num_layers)])
        (folder / "config.json").write_text(json.dumps(config))
        return compare.load_run(str(folder))

    for preset, unit, layers, expected in (("paper", "original", 20, "resnet20-c10-he2015"),
                                           ("paper", "original", 110, "resnet110-c10-he2015"),
                                           ("paper", "preact", 110, "resnet110-preact-c10-he2016"),
                                           ("original", "preact", 20, "resnet20-c10-chaoji")):
        row, reasons, others = compare.match_reference(as_run(preset, unit, layers), refs)
        assert (row["id"], reasons, others) == (expected, [], []), (preset, unit, layers)

    preact20 = as_run("paper", "preact", 20)
    assert compare.describe_arch("ResNet", compare.run_arch(preact20)) == "ResNet-20 pre-act"
    # He et al. 2016 print only ResNet-110: the nearest row is chao-ji's, not comparable
    row, reasons, _ = compare.match_reference(preact20, refs)
    assert row["id"] == "resnet20-c10-chaoji"
    assert reasons == ["preset differs: run preset paper, reference preset original"]
    row, reasons, _ = compare.match_reference(as_run("original", "original", 20), refs)
    assert row["id"] == "resnet20-c10-he2015" and reasons[0].startswith("preset differs"), reasons
    row, reasons, _ = compare.match_reference(as_run("paper", "preact", 110), refs, "resnet110-c10-he2015")
    assert reasons == ["architecture differs: run unit=preact, reference unit=original"]


def test_only_flags_that_change_the_preset_are_recorded_as_overrides():
    """config.json's "overrides": what compare.py reads to tell a paper run from a modified one."""
    parser = build_parser("ResNet", ResNet.PRESETS, "ResNet")

    def overrides(argv):
        args = parser.parse_args(argv)
        hp = resolve(args, ResNet.PRESETS, parser)
        ResNet.validate(hp)
        return hp.overrides

    # paths, threads, logging and the seed are not the recipe; the warm-up ResNet-110 derives is not a flag
    assert overrides(["--preset", "paper", "--num_layers", "110", "--run_dir", "r", "--path", "p", "--seed", "3",
                      "--threads", "1", "--progress", "off"]) == {"num_layers": 110}
    assert overrides(["--preset", "paper", "--lr", "0.1", "--momentum", "0.9"]) == {}  # the preset's own values
    assert overrides(["--preset", "paper", "--weight_decay", "2e-4", "--epochs", "16"]) == {"epochs": 16,
                                                                                           "weight_decay": 2e-4}
    assert overrides(["--weight_decay", "2e-4"]) == {}  # chao-ji's value: the original preset's own


def test_weight_decay_covers_the_conv_kernels_only():
    """chao-ji/tf-resnet-cifar10: slim's l2_regularizer(2e-4) on every conv kernel, the 1x1-conv
    classifier's included, and on nothing else: no BN beta or gamma, not the classifier's bias
    (docs/deviations.md, ResNet "weight decay" row; decay_on="kernels"). Checked on the graph's own
    numbers: loss - xent = 2e-4 * sum(l2_loss) over exactly those kernels, not over all variables."""
    from conftest import half_squares, weight_decay_term
    hp, term, values = weight_decay_term(ResNet, ResNet.Build_ResNet, ["--num_layers", "8"])
    assert (hp["weight_decay"], hp["decay_on"]) == (2e-4, "kernels")
    kernels = sorted(n for n in values if n.endswith("/kernel"))
    assert kernels == ["block%d/unit_1/conv%d/kernel" % (b, c) for b in (1, 2, 3) for c in (1, 2)] + \
        ["init_conv/kernel", "logits/kernel"]
    others = set(values) - set(kernels)
    assert {"logits/bias", "postnorm/beta", "block1/unit_1/conv1/BatchNorm/gamma"} <= others
    assert term == pytest.approx(2e-4 * half_squares(values, kernels), rel=1e-4)
    assert abs(term - 2e-4 * half_squares(values, values)) > 0.1 * term  # BN and the bias would weigh in
