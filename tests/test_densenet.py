"""Densenet.py: block and transition shapes, parameter totals derived by hand, presets, training and --eval."""
import json
import os

import numpy as np
import pytest

from compat import tf
import Densenet
import ops
from conftest import settings, run_main, summary_params, tiny_args
from batches import INPUT_SHAPES, load_data
from conftest import lr_at
from settings import KitError, int_list

TINY = ["--layers", "2,2", "--growth_k", "4", "--batch_size", "50", "--lr", "0.01"]


def resolve(argv):
    return settings(Densenet, argv)


def build(argv):
    """What --summary reports (stage shapes and the trainable total), from the model alone,
    and L, the number of weight layers (convolutions and the classifier) as the paper counts it.

    The same flags, presets, validation and build function as `--summary`, without the
    optimizer's gradient graph, which doubles the build time of these large graphs;
    test_summary_of_densenet_40 checks the two agree.
    """
    hp = resolve(argv)
    shape, classes = INPUT_SHAPES[hp["dataset"]]
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None] + list(shape))
        Densenet.Dense_net(x, tf.placeholder(tf.bool, []), hp, classes)
        shapes = {name: t.get_shape().as_list() for name, t in tf.get_collection(ops.STAGES)}
        weight_layers = sum(len(v.shape) in (2, 4) for v in tf.trainable_variables())
        return shapes, ops.count_params(), weight_layers


def compare_depth(argv):
    """The L compare.py reads from the hparams config.json records, where --depth is 0 for
    "the paper's default" and the original presets give --layers instead: it matches runs to
    Table 2's rows by it, so it must be the L of the graph that `build` counts."""
    import compare
    return compare.run_arch({"model": "Densenet", "hparams": json.loads(json.dumps(resolve(argv)))})["depth"]


def bn(c):
    return 2 * c  # gamma and beta


# Densenet_MNIST.py's network (blocks 4-4-32, k = 12, transitions to k), counted by densenet_params
MNIST_PARAMS = 552634


def densenet_params(stem, blocks, k, bottleneck, compression, classes=10, in_channels=3, conv_bias=False,
                    transition_k=False):
    """A DenseNet counted by hand. stem = (kernel, channels); a layer reading c channels holds
    bottleneck: BN(c), 1x1 conv c -> 4k, BN(4k), 3x3 conv 4k -> k;  plain: BN(c), 3x3 conv c -> k.
    A transition: BN(c), 1x1 conv c -> floor(compression * c), or c -> k with transition_k.
    Head: BN(c), fc c -> classes with bias."""
    b = 1 if conv_bias else 0
    kernel, c = stem
    total = kernel * kernel * in_channels * c + b * c
    for i, n in enumerate(blocks):
        for _ in range(n):
            if bottleneck:
                total += bn(c) + c * 4 * k + b * 4 * k + bn(4 * k) + 9 * 4 * k * k + b * k
            else:
                total += bn(c) + 9 * c * k + b * k
            c += k
        if i < len(blocks) - 1:
            out = k if transition_k else int(c * compression)
            total += bn(c) + c * out + b * out
            c = out
    return total + bn(c) + c * classes + classes


def test_summary_of_densenet_40():
    """The paper's DenseNet (L=40, k=12): Table 2 says 1.0M."""
    code, out, err = run_main(Densenet, ["--summary", "--preset", "paper"])
    assert code == 0, err
    shapes = {l.split()[0]: json.loads(l.split(None, 1)[1].replace("None", "null"))
              for l in out.splitlines() if l.startswith("  ")}
    params = summary_params(out)
    assert (shapes, params, 40) == build(["--preset", "paper"])
    assert compare_depth(["--preset", "paper"]) == 40
    assert shapes["conv0"] == [None, 32, 32, 16]
    assert shapes["dense_1"] == [None, 32, 32, 16 + 12 * 12]  # (40 - 4) / 3 = 12 layers of k = 12
    assert shapes["trans_1"] == [None, 16, 16, 160]           # no compression
    assert shapes["dense_final"] == [None, 8, 8, 160 + 2 * 144]
    # by hand: stem 432; a plain layer on c channels: 2c + 9*12c = 110c; 12 layers: 110 * (12 c0 + 12*66)
    hand = 432 + 110 * (12 * 16 + 792) + (2 * 160 + 160 * 160) + 110 * (12 * 160 + 792) + \
        (2 * 304 + 304 * 304) + 110 * (12 * 304 + 792) + 2 * 448 + 448 * 10 + 10
    assert params == hand == densenet_params((3, 16), [12] * 3, 12, False, 1.0) == 1019722
    assert 0.95e6 <= params < 1.05e6  # "1.0M"


def test_densenet_bc_100():
    """--bc: bottleneck layers, (100 - 4) / 6 = 16 per block, first conv to 2k, compression 0.5. Table 2: 0.8M."""
    shapes, params, L = build(["--preset", "paper", "--bc"])
    assert L == compare_depth(["--preset", "paper", "--bc"]) == 100
    assert shapes["conv0"] == [None, 32, 32, 24]
    assert shapes["dense_1"] == [None, 32, 32, 24 + 16 * 12]
    assert shapes["trans_1"] == [None, 16, 16, 108]
    assert shapes["dense_final"] == [None, 8, 8, 150 + 16 * 12]
    # by hand: a bottleneck layer on c channels: 2c + 48c + 96 + 9*48*12 = 50c + 5280
    layers = lambda c0: 50 * (16 * c0 + 12 * 120) + 16 * 5280  # noqa: E731; 16 layers from c0 channels
    hand = 3 * 3 * 3 * 24 + layers(24) + (2 * 216 + 216 * 108) + layers(108) + (2 * 300 + 300 * 150) + \
        layers(150) + 2 * 342 + 342 * 10 + 10
    assert params == hand == densenet_params((3, 24), [16] * 3, 12, True, 0.5) == 769162
    assert 0.75e6 <= params < 0.85e6  # "0.8M"


def test_original_cifar_preset():
    """Densenet_Cifar10.py: k = 24, 7x7/2 conv, blocks 6-12-48-32, transitions halve the channels."""
    shapes, params, L = build([])
    assert L == compare_depth([]) == 201  # the layout of ImageNet's DenseNet-201
    assert shapes["conv0"] == [None, 16, 16, 48]
    expected = [("dense_1", 16, 48 + 6 * 24), ("trans_1", 8, 96), ("dense_2", 8, 96 + 12 * 24),
                ("trans_2", 4, 192), ("dense_3", 4, 192 + 48 * 24), ("trans_3", 2, 672),
                ("dense_final", 2, 672 + 32 * 24)]
    for name, size, channels in expected:
        assert shapes[name] == [None, size, size, channels], name
    for i in (1, 2, 3):  # each transition keeps half of its input channels
        assert shapes["trans_%d" % i][3] * 2 == shapes["dense_%d" % i][3]
    # by hand: a bottleneck layer on c channels: 2c + 96c + 192 + 9*96*24 = 98c + 20928;
    # n layers from c0 channels read c0, c0 + 24, ...: 98 * (n c0 + 24 n(n-1)/2) + 20928 n
    layers = lambda n, c0: 98 * (n * c0 + 24 * n * (n - 1) // 2) + 20928 * n  # noqa: E731
    hand = 7 * 7 * 3 * 48 + layers(6, 48) + (2 * 192 + 192 * 96) + layers(12, 96) + (2 * 384 + 384 * 192) + \
        layers(48, 192) + (2 * 1344 + 1344 * 672) + layers(32, 672) + 2 * 1440 + 1440 * 10 + 10
    assert params == hand == densenet_params((7, 48), [6, 12, 48, 32], 24, True, 0.5) == 10236298


def test_every_table_2_row_is_the_network_its_flags_build():
    """references.csv's Table 2 rows (Huang et al. 2017, arXiv 1608.06993) give L, k, BC and the parameter count
    the paper prints; the network the kit lays out for the row's flags (docs/reproducing.md's commands) has that
    count. The paper prints one count per network, its CIFAR-10 head's (a 100-way head adds 0.01M to 0.2M)."""
    import csv
    from conftest import ROOT
    with open(os.path.join(ROOT, "references.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["model"] == "Densenet" and r["preset"] == "paper"]
    checked = set()
    for r in rows:
        bc = r["bc"] == "yes"
        hp = resolve(["--preset", "paper", "--depth", r["depth"], "--growth_k", r["growth_k"], "--bc=%s" % bc])
        a = Densenet.architecture(hp)
        assert a["blocks"] == [(int(r["depth"]) - 4) // (6 if bc else 3)] * 3, r["id"]
        count = densenet_params((3, a["stem_channels"]), a["blocks"], a["growth_k"], a["bottleneck"],
                                a["compression"])
        assert "%.1fM" % (count / 1e6) == r["params"], r["id"]
        checked.add((r["depth"], r["growth_k"], bc))
    assert len(checked) == 6  # L=40 k=12, L=100 k=12, L=100 k=24; BC: L=100 k=12, L=250 k=24, L=190 k=40
    # docs/deviations.md's MNIST network with --transition_k=false, the 2019 transitions
    assert densenet_params((7, 24), [4, 4, 32], 12, True, 0.5, in_channels=1, conv_bias=True) == 610432


def test_original_preset_recipes():
    hp = resolve([])
    assert (hp["optimizer"], hp["lr"], hp["adam_epsilon"], hp["weight_decay"]) == ("adam", 1e-4, 1e-4, 0.0)
    assert (hp["batch_size"], hp["epochs"], hp["dropout_rate"], hp["augment"]) == (64, 300, 0.2, True)
    spe = 782  # the original's loop counts epochs from 1 and divides at the start of epochs 150 and 225
    assert [lr_at(e * spe, hp, spe) for e in (148, 149, 223, 224)] == pytest.approx([1e-4, 1e-5, 1e-5, 1e-6])
    m = resolve(["--dataset", "mnist"])  # Densenet_MNIST.py's values
    assert (m["growth_k"], m["stem"], m["conv_bias"], m["dropout_rate"]) == (12, "7x7s2_maxpool", True, 0.0)
    assert (m["adam_epsilon"], m["batch_size"], m["epochs"], m["normalization"], m["augment"]) == \
        (1e-8, 100, 50, "unit", False)
    assert Densenet.architecture(m)["blocks"] == [4, 4, 32]
    assert [lr_at(e * 600, m, 600) for e in (24, 25, 37, 49)] == pytest.approx([1e-4, 1e-5, 1e-5, 1e-5])
    # a flag still wins over the dataset's preset value
    assert resolve(["--dataset", "mnist", "--growth_k", "6"])["growth_k"] == 6
    p = resolve(["--preset", "paper"])
    assert (p["optimizer"], p["nesterov"], p["lr"], p["weight_decay"], p["init"]) == ("momentum", True, 0.1, 1e-4, "he")
    assert int_list(p["lr_decay_epochs"]) == [150, 225]  # 50 % and 75 % of 300


@pytest.mark.parametrize("argv, message", [
    (["--preset", "paper", "--depth", "41"],
     "--depth 41 does not fit: L - 4 must be a positive multiple of 3 (three dense blocks of (L-4)/3 plain layers), "
     "e.g. 40 or 100"),
    (["--preset", "paper", "--bc", "--depth", "42"],
     "--depth 42 does not fit: L - 4 must be a positive multiple of 6 (three dense blocks of (L-4)/6 bottleneck "
     "layers), e.g. 100 or 250"),
    (["--depth", "40"], "--depth sets the paper's three equal blocks and --layers lists the blocks: pass one "
                        "(--layers '' to use --depth)"),
    (["--layers", "6,x"], "--layers takes 1 to 10 positive layer counts, e.g. 6,12,48,32; got '6,x'"),
    (["--layers", "1,1,1,1,1,1"], "6 dense blocks are too many for this input and --stem 7x7s2: the transitions "
                                  "would pool the feature map away; pass fewer --layers"),
    (["--compression", "1.5"], "--compression must be in (0, 1], got 1.5"),
    # these built for minutes and took gigabytes before they failed, if they did
    (["--layers", "99999999999999999999"], "--layers 99999999999999999999 makes a network of L = "
                                           "200000000000000000002 layers: at most 500 here (twice DenseNet-BC's "
                                           "L = 250, the paper's deepest); pass fewer layers"),
    (["--layers", "100000"], "--layers 100000 makes a network of L = 200002 layers: at most 500 here (twice "
                             "DenseNet-BC's L = 250, the paper's deepest); pass fewer layers"),
    (["--preset", "paper", "--depth", "1000000"], "--depth must be at most 500 (twice DenseNet-BC's L = 250, the "
                                                  "paper's deepest), got 1000000"),
    (["--preset", "paper", "--bc", "--depth", "99999999999999999998"], "--depth must be at most 500 (twice "
                                                                       "DenseNet-BC's L = 250, the paper's deepest), "
                                                                       "got 99999999999999999998"),
    (["--stem_channels", "160000"], "--stem_channels must be between 1 and 4096 (0: the default), got 160000"),
    (["--stem_channels", "-1"], "--stem_channels must be between 1 and 4096 (0: the default), got -1"),
    (["--growth_k", "0"], "--growth_k must be between 1 and 1024, got 0"),
    (["--dropout_rate", "1"], "--dropout_rate must be in [0, 1), got 1.0"),
    (["--dropout_rate", "-0.5"], "--dropout_rate must be in [0, 1), got -0.5"),
])
def test_bad_architecture_is_one_line_error(argv, message):
    code, out, err = run_main(Densenet, ["--summary"] + argv)
    assert code == 2 and err == "error: " + message + "\n"


def test_the_deepest_network_is_twice_the_paper_s_deepest():
    """L = 500 at most, by --depth or by --layers (each layer's convs, the transitions, the first conv and the
    classifier): every network of the paper (L = 250 the deepest) and the originals' layouts fit."""
    assert Densenet.architecture(resolve(["--preset", "paper", "--bc", "--depth", "496"]))["blocks"] == [82] * 3
    assert Densenet.architecture(resolve(["--preset", "paper", "--layers", "498"]))["blocks"] == [498]  # L = 500
    with pytest.raises(KitError) as e:
        Densenet.architecture(resolve(["--preset", "paper", "--layers", "499"]))
    assert str(e.value).startswith("--layers 499 makes a network of L = 501 layers: at most 500 here")
    assert Densenet.architecture(resolve(["--layers", "124,124"]))["blocks"] == [124, 124]  # bottleneck: L = 499


def test_mnist_stem_and_layout():
    """Densenet_MNIST.py: 7x7/2 conv, 3x3/2 max pool (VALID), blocks 4-4-32: 28 -> 14 -> 6 -> 3 -> 1;
    each transition convolves to k channels (`filter=self.filters`), whatever its input."""
    shapes, params, L = build(["--dataset", "mnist", "--layers", "1,2,1", "--growth_k", "2"])
    assert L == compare_depth(["--dataset", "mnist", "--layers", "1,2,1", "--growth_k", "2"]) == 2 * 4 + 2 + 2
    assert [shapes[n] for n in ("conv0", "dense_1", "trans_1", "dense_2", "trans_2", "dense_final", "logits")] == [
        [None, 6, 6, 4], [None, 6, 6, 6], [None, 3, 3, 2], [None, 3, 3, 6], [None, 1, 1, 2], [None, 1, 1, 4],
        [None, 10]]
    assert params == densenet_params((7, 4), [1, 2, 1], 2, True, 0.5, in_channels=1, conv_bias=True,
                                     transition_k=True)
    # --transition_k=false: the 2019 fix, half of the input channels
    shapes, params, _ = build(["--dataset", "mnist", "--layers", "1,2,1", "--growth_k", "2", "--transition_k=false"])
    assert (shapes["trans_1"], shapes["trans_2"]) == ([None, 3, 3, 3], [None, 1, 1, 3])
    assert params == densenet_params((7, 4), [1, 2, 1], 2, True, 0.5, in_channels=1, conv_bias=True)
    # the full preset, counted by hand (`Densenet.py --dataset mnist --summary` prints the same)
    _, params, L = build(["--dataset", "mnist"])
    assert densenet_params((7, 24), [4, 4, 32], 12, True, 0.5, in_channels=1, conv_bias=True,
                           transition_k=True) == MNIST_PARAMS == params
    assert L == compare_depth(["--dataset", "mnist"]) == 2 * (4 + 4 + 32) + 2 + 2


def test_cifar_training_lowers_the_loss_and_eval_reads_the_checkpoint(fake_cifar, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_main(Densenet, tiny_args(fake_cifar, run, *(TINY + ["--epochs", "3"])))
    assert code == 0, err
    history = [json.loads(l) for l in open(str(run / "metrics.jsonl"))]
    assert history[-1]["train_loss"] < history[0]["train_loss"], history
    cfg = json.load(open(str(run / "config.json")))
    assert cfg["num_params"] == densenet_params((7, 8), [2, 2], 4, True, 0.5)
    code, out, err = run_main(Densenet, ["--eval", "--run_dir", str(run), "--data_source", fake_cifar["py"],
                                         "--trust_data", "--threads", "1"] + TINY)
    assert code == 0, err
    acc = float([l for l in out.splitlines() if l.startswith("checkpoint ")][0].rsplit("accuracy", 1)[1])
    assert acc == pytest.approx(history[-1]["test_acc"], abs=5e-5)


def test_mnist_training_lowers_the_loss_and_eval_reads_the_checkpoint(fake_mnist, tmp_path):
    run = tmp_path / "run"
    flags = ["--dataset", "mnist", "--data_source", fake_mnist["folder"], "--trust_data", "--threads", "1",
             "--progress", "off", "--layers", "2,2,2", "--growth_k", "4", "--lr", "0.01"]
    code, out, err = run_main(Densenet, flags + ["--run_dir", str(run), "--epochs", "3"])
    assert code == 0, err
    assert "MNIST (unverified copy), 300 train / 100 test images" in out
    history = [json.loads(l) for l in open(str(run / "metrics.jsonl"))]
    assert [r["step"] for r in history] == [3, 6, 9]  # batch 100, the MNIST script's
    assert history[-1]["train_loss"] < history[0]["train_loss"], history
    # the MNIST script's stem (7x7/2 conv with bias, 3x3/2 max pool): 28 -> 14 -> 6
    assert json.load(open(str(run / "config.json")))["num_params"] == densenet_params(
        (7, 8), [2, 2, 2], 4, True, 0.5, in_channels=1, conv_bias=True, transition_k=True)
    code, out, err = run_main(Densenet, flags + ["--eval", "--run_dir", str(run)])
    assert code == 0, err
    acc = float([l for l in out.splitlines() if l.startswith("checkpoint ")][0].rsplit("accuracy", 1)[1])
    assert acc == pytest.approx(history[-1]["test_acc"], abs=5e-5)


def test_mnist_preset_feeds_pixels_in_unit_range(fake_mnist):
    hp = resolve(["--dataset", "mnist", "--data_source", fake_mnist["folder"], "--trust_data"])
    d = load_data(hp)
    x = fake_mnist["train"][0]
    assert d["train_x"].dtype == np.float32 and d["train_x"].shape == (300, 28, 28, 1)
    np.testing.assert_allclose(d["train_x"], x / 255.0, rtol=1e-6)
    assert d["test_x"].min() >= 0 and d["test_x"].max() <= 1


def test_paper_preset_trains_without_dropout_on_augmented_data_batch_64_for_300_epochs():
    """Huang et al. 2017 (arXiv 1608.06993), section 4.2 (papers.md): SGD with batch 64 for 300 epochs;
    dropout 0.2 only on the data without augmentation, so none on C10+, the standard augmentation."""
    p = resolve(["--preset", "paper"])
    assert (p["augment"], p["dropout_rate"]) == (True, 0.0)
    assert (p["batch_size"], p["epochs"]) == (64, 300)
    bc = resolve(["--preset", "paper", "--bc"])  # DenseNet-BC is trained the same way
    assert (bc["augment"], bc["dropout_rate"], bc["batch_size"], bc["epochs"]) == (True, 0.0, 64, 300)
