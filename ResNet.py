"""ResNet on CIFAR (He et al. 2015, "Deep Residual Learning for Image Recognition", arXiv
1512.03385, section 4.2) with either of its units: the original post-activation unit of that
paper or the "full pre-activation" unit of He et al. 2016 ("Identity Mappings in Deep Residual
Networks", arXiv 1603.05027), the latter as chao-ji/tf-resnet-cifar10 builds it; and the plain
nets of He et al. 2015 (Figure 6).

    python ResNet.py --path cifar-10-batches-bin                 # chao-ji's pre-activation ResNet-20 and recipe
    python ResNet.py --path cifar-10-batches-bin --num_layers=110
    python ResNet.py --path cifar-10-batches-bin --shortcut_connections=False   # plain-20
    python ResNet.py --preset paper --num_layers=56              # He et al. 2015, Table 6
    python ResNet.py --preset paper --unit preact --num_layers=110   # He et al. 2016, pre-activation ResNet-110
    python ResNet.py --summary --num_layers=110                  # stage shapes and parameter total
    python ResNet.py --eval --ckpt_path runs/.../checkpoints/step-N --path cifar-10-batches-bin

The network (`--num_layers` = 6n+2): a 3x3 conv to 16 channels, three stages of n units at
16, 32 and 64 channels (STAGES; stride 2 in the first unit of stages 2 and 3), a mean over
height and width and a linear layer to the classes (the softmax is in the loss). The shortcut
is option A of He et al. 2015: the identity, or for a unit that widens, the halved map
zero-padded to the new width; it has no parameters. `--unit` picks the unit (UNITS):

  original  He et al. 2015, Figure 2 and section 4.2: conv-BN-ReLU-conv-BN, add the shortcut,
            ReLU (BN right after each conv, before its ReLU). The stem conv has its own
            BN-ReLU and the last unit's ReLU feeds the pool.
  preact    He et al. 2016, Figure 4(e): BN-ReLU-conv-BN-ReLU-conv, add the shortcut, nothing
            after the addition. The stem conv is bare (the first unit's BN-ReLU follows it)
            and a BN-ReLU precedes the pool.

With `--shortcut_connections=False` there is no addition at all, and either unit gives the
2015 paper's plain net (Figure 6, left): a stack of 3x3 conv-BN-ReLU layers, the stem's
included (in the preact form the stem and each unit's second conv take their BN-ReLU from the
next unit's pre-activation, the last one from the head). Both units have the same parameter
total with gamma in every BN, 97216 n - 21926: 269,722 for ResNet-20 (Table 6: 0.27M). The
272,474 often quoted for ResNet-20 counts option-B projection shortcuts (a 1x1 conv and a BN
in the two widening units: 2,752 more).

Presets (the deviations from the papers are in the README's table):
  original  chao-ji's run_trainer.py defaults, and its pre-activation unit (`--unit preact`):
            64000 steps of batch 128, Momentum 0.9 (no Nesterov), lr 0.01 for 500 steps
            then 0.1, 0.01 from step 32000, 0.001 from 48000; 2e-4 * l2_loss on conv kernels
            only (slim's l2_regularizer); Glorot (Xavier) initialisation; BN decay 0.99
            inside the units' first conv and slim's defaults (decay 0.999, no gamma) for the
            stand-alone pre-activations; per-pixel mean subtraction; the BINARY CIFAR-10
            files (`--path`, as the original's flag); 2x2 average pool in the widening
            shortcuts; a 1x1 conv as the classifier.
  paper     He et al. 2015, section 4.2 and Table 6, with its original unit (`--unit
            original`): lr 0.1, divided by 10 at 32k and 48k steps, stop at 64k; batch 128;
            momentum 0.9; weight decay 1e-4 on all parameters (the paper says "weight decay
            of 0.0001"; fb.resnet.torch, the implementation He et al. 2016 builds on, hands
            every parameter to optim.sgd with weightDecay, batch-norm scale/shift and the fc
            bias included, and its wd * w gradient is the kit's wd * l2_loss); He
            initialisation; warm-up at lr 0.01 for 400 steps for ResNet-110 and deeper only;
            per-pixel mean; option-A shortcuts as the paper defines them (identity with
            stride 2, zero-padded channels); every BN has gamma and beta, decay 0.9 (Torch's
            momentum 0.1); a fully connected classifier.
            `--preset paper --unit preact` is the pre-activation ResNet of He et al. 2016,
            trained with this same recipe (ResNet-110: 6.37 % test error). Its units stay
            chao-ji's: the shortcut leaves from the pre-activation only in the very first
            unit, where fb.resnet.torch's preresnet.lua does so in the first unit of every
            stage.

Differences of the harness from chao-ji's (same model and recipe, different loop):
  * the original's `--epochs 64000` counts steps; here the presets hold `steps=64000`, and
    `--epochs N` counts passes over the training set (an explicit --epochs replaces the
    preset's step budget; --epochs 10000 and more is refused as a likely step count);
  * the original streams tf.data (`repeat -> shuffle(50000) -> batch(128)`), so every step
    has 128 images; so does the preset (`--batches stream`: the passes' permutations end to
    end, step n taking images 128n to 128n + 127). The order differs: here each pass over
    the data is a permutation of its own, where the shuffle buffer lets neighbouring passes
    mix. An epoch of the logs is 391 steps (50,048 images);
  * the original never evaluates while training (run_evaluator.py, a separate program,
    scores the 10000 test images as one batch); the kit evaluates every epoch in inference
    mode, and `--eval` does what run_evaluator.py did. Its `--ckpt_path` named a checkpoint
    to load, while run_trainer.py's `--ckpt_path` named where to save: here `--ckpt_path`
    is for `--eval` only (it does not imply it) and training with it is refused, since the
    checkpoints go to `--run_dir`;
  * the README's plain-net command says `--shortcut_connections=False` but the flag was
    `--shortcut_connection`, and tf.app.run ignored the unknown one (so that command
    trained a ResNet); here both spellings work and an unknown flag is an error. Its
    run_evaluator.py never passed the flag on, so it scored a plain net's weights as a
    ResNet; here `--eval` refuses a checkpoint recorded with other shortcut settings;
  * the original accepts only 20/32/44/56/110 layers; here any 6n+2.
The original's README figure reads about 8.9 / 7.1 / 6.4 % test error for ResNet-20/56/110;
He et al. 2015 Table 6 gives 8.75 / 6.97 / 6.43 % (`--preset paper`), He et al. 2016 gives
6.37 % for the pre-activation ResNet-110 (`--preset paper --unit preact`).
"""
import sys

from compat import tf
from ops import (conv_layer, Batch_Normalization, Relu, Average_pooling, Global_Average_Pooling, Linear,
                 he_normal, report)
import trainer

# The three stages as chao-ji's resnet_model.py lists its resnet_v2_block specs (He et al. 2015,
# section 4.2: 32x32, 16x16 and 8x8 maps): (scope, depth of both convs of every unit, stride of
# the first unit).
STAGES = (("block1", 16, 1), ("block2", 32, 2), ("block3", 64, 2))
MAX_UNITS = 400  # n per stage; 6 * 400 + 2 = 2402 layers, twice ResNet-1202

PRESETS = {
    # chao-ji/tf-resnet-cifar10 at 4720bb2 (2019-12-18, its latest commit; the TF1 files last changed in eb6c1d8,
    # 2018-08-22): run_trainer.py flags, dataset.py, utils/resnet_utils.py, utils/model_utils.py.
    "original": dict(num_layers=20, unit="preact", shortcut_connections=True, shortcut_downsample="avg_pool",
                     preact_bn_scale=False, preact_bn_decay=0.999, head="conv", binary=True,
                     steps=64000, epochs=164,  # 164 = ceil(64000 / 391 steps per epoch), used only without steps
                     batch_size=128, optimizer="momentum", momentum=0.9, nesterov=False,
                     lr=0.1, warmup_steps=500, warmup_lr=0.01, warmup_min_layers=0,
                     lr_decay_epochs="", lr_decay_steps="32000,48000", lr_decay_factor=0.1,
                     weight_decay=2e-4, decay_on="kernels", init="glorot", bn_decay=0.99,
                     normalization="pixel_mean", augment=True,
                     batches="stream"),  # dataset.py: repeat -> shuffle -> batch, every step 128 images
    # He et al. 2015 section 4.2 / Table 6 (the same recipe He et al. 2016 use for ResNet-110;
    # preact_bn_* apply to --unit preact only).
    "paper": dict(num_layers=20, unit="original", shortcut_connections=True, shortcut_downsample="subsample",
                  preact_bn_scale=True, preact_bn_decay=0.0, head="dense", binary=True,
                  steps=64000, epochs=164,
                  batch_size=128, optimizer="momentum", momentum=0.9, nesterov=False,
                  lr=0.1, warmup_steps=400, warmup_lr=0.01, warmup_min_layers=110,
                  lr_decay_epochs="", lr_decay_steps="32000,48000", lr_decay_factor=0.1,
                  weight_decay=1e-4, decay_on="all", init="he", bn_decay=0.9,
                  normalization="pixel_mean", augment=True),
}


def add_flags(g):
    g.add_argument("--num_layers", type=int, default=None,
                   help="weighted layers, 6n+2: 20, 32, 44, 56, 110, 1202 (n units per stage)")
    g.add_argument("--unit", choices=sorted(UNITS), default=None,
                   help="original: He et al. 2015's unit (Figure 2), conv-BN-ReLU-conv-BN, add, ReLU; "
                        "preact: He et al. 2016's full pre-activation unit (Figure 4(e)), BN-ReLU-conv-BN-ReLU-conv, "
                        "add; default: the preset's (--preset original: preact, --preset paper: original)")
    # The original's README spells the flag with an s, its code without: accept both.
    g.add_argument("--shortcut_connections", "--shortcut_connection", dest="shortcut_connections",
                   type=trainer.str2bool, nargs="?", const=True, default=None,
                   help="add the shortcut in every unit; false gives the plain net of He et al. 2015, Figure 6")
    g.add_argument("--shortcut_downsample", choices=["avg_pool", "subsample"], default=None,
                   help="how a widening unit's shortcut halves the map: 2x2 average pool (original) or "
                        "identity with stride 2 (the paper's option A)")
    trainer.bool_flag(g, "preact_bn_scale", "--unit preact: learn a gamma in the stand-alone BN-ReLUs (pre-activations "
                                            "and head); the original's slim defaults have none")
    g.add_argument("--preact_bn_decay", type=float, default=None,
                   help="--unit preact: moving-average decay of the stand-alone BN-ReLUs (0: the same as --bn_decay)")
    g.add_argument("--batch_norm_decay", dest="bn_decay", type=float, default=None,
                   help="the original's name for --bn_decay: decay of the BNs that follow a conv")
    g.add_argument("--head", choices=["conv", "dense"], default=None,
                   help="classifier: the original's 1x1 conv with bias, or a dense layer with bias (the same function)")
    trainer.bool_flag(g, "binary", "read the binary CIFAR-10 files (cifar-10-batches-bin) instead of the pickles")
    g.add_argument("--path", default=None,
                   help="the original's flag: the cifar-10-batches-bin folder (or the binary archive); "
                        "the same as --data_source with --binary")
    g.add_argument("--warmup_min_layers", type=int, default=None,
                   help="apply --warmup_steps only to nets at least this deep (paper: 110; 0: always)")


def validate(hp):
    """One-line errors for bad settings, then the settings that follow from others."""
    layers = hp["num_layers"]
    if layers < 8 or (layers - 2) % 6 or (layers - 2) // 6 > MAX_UNITS:
        raise trainer.KitError("--num_layers=%d is not 6n+2: use 20, 32, 44, 56, 110 or 1202 (any 6n+2 from 8 to %d)"
                               % (layers, 6 * MAX_UNITS + 2))
    if hp["dataset"] == "mnist":
        raise trainer.KitError("ResNet.py builds the CIFAR network for 32x32 images (MNIST's 7x7 maps do not halve "
                               "evenly in stage 3): use --dataset cifar10 or cifar100")
    if not (hp["preact_bn_decay"] == 0 or 0 < hp["preact_bn_decay"] < 1):
        raise trainer.KitError("--preact_bn_decay must be 0 (same as --bn_decay) or in (0, 1), got %s"
                               % hp["preact_bn_decay"])
    if hp["epochs"] >= 10000:
        e = hp["epochs"]
        raise trainer.KitError("--epochs=%d counts passes over the training set here (the original's --epochs "
                               "counted steps): for %d steps pass --steps %d" % (e, e, e))
    if hp.get("ckpt_path") and not (hp["eval"] or hp["summary"]):
        raise trainer.KitError("--ckpt_path names a checkpoint to evaluate: add --eval (training writes its "
                               "checkpoints to --run_dir)")
    if hp.get("path"):
        if hp["dataset"] != "cifar10":
            raise trainer.KitError("--path names the CIFAR-10 binary folder; for %s use --data_source" % hp["dataset"])
        if hp.get("data_source") and hp["data_source"] != hp["path"]:
            raise trainer.KitError("--path and --data_source name different data (%s, %s): pass one of them"
                                   % (hp["path"], hp["data_source"]))
        hp["data_source"], hp["binary"] = hp["path"], True
    hp["binary"] = bool(hp["binary"]) and hp["dataset"] == "cifar10"  # CIFAR-100 has no binary layout here
    preset = PRESETS[hp["preset"]]
    if hp["epochs"] != preset["epochs"] and hp["steps"] == preset["steps"]:
        hp["steps"] = 0  # an explicit --epochs replaces the preset's step budget
    if layers < hp["warmup_min_layers"]:
        hp["warmup_steps"] = 0  # He et al. warm up only ResNet-110 (and deeper)


def init_conv(x, training, hp):
    """The first layer: 3x3 conv to 16 channels, no bias (He et al. 2015, section 4.2; the
    original's `init_conv`). unit=original: followed by BN-ReLU, as every conv of that paper;
    unit=preact: bare, its BN-ReLU is the first unit's pre-activation."""
    if UNITS[hp["unit"]]["stem_bn_relu"]:
        return Relu(conv_bn(x, 16, 1, "init_conv", training, hp))
    return conv_layer(x, filter=16, kernel=[3, 3], stride=1, layer_name="init_conv", kernel_initializer=_init(hp))


def conv_bn(x, depth, stride, name, training, hp):
    """A 3x3 conv without bias (the BN's beta takes its place), then BN with gamma and beta
    and decay --bn_decay: He et al. 2015 put BN "right after each convolution and before
    activation" (section 3.4); chao-ji's conv1 and conv1/BatchNorm."""
    x = conv_layer(x, filter=depth, kernel=[3, 3], stride=stride, layer_name=name, kernel_initializer=_init(hp))
    return Batch_Normalization(x, training=training, scope=name + "/BatchNorm", decay=hp["bn_decay"],
                               zero_debias_moving_mean=False)


def bn_relu(x, training, hp, scope):
    """A stand-alone BN-ReLU: the pre-activation of a unit (He et al. 2016, Figure 4(e)) or
    the head's (`postnorm`). The original calls slim's batch_norm here with its defaults,
    so there is no gamma and the decay is 0.999 (preact_bn_scale, preact_bn_decay)."""
    decay = hp["preact_bn_decay"] or hp["bn_decay"]
    x = Batch_Normalization(x, training=training, scope=scope, decay=decay, scale=hp["preact_bn_scale"],
                            zero_debias_moving_mean=False)
    return Relu(x)


def shortcut(x, depth, stride, hp):
    """The identity, or for a unit that widens, option A of He et al. 2015 (section 3.3):
    halve the map, then zero-pad the channels by (depth - depth_in) // 2 on each side.

    avg_pool (original): a 2x2 average pool with stride 2, VALID;
    subsample (paper): identity with stride 2, every other pixel (fb.resnet.torch's
    SpatialAveragePooling(1, 1, 2, 2)).
    No parameters either way.
    """
    depth_in = x.get_shape().as_list()[-1]
    if depth == depth_in and stride == 1:
        return x
    if hp["shortcut_downsample"] == "avg_pool":
        x = Average_pooling(x, pool_size=[2, 2], stride=2, padding="VALID")
    else:
        x = x[:, ::stride, ::stride, :]
    pad = (depth - depth_in) // 2
    return tf.pad(x, [[0, 0], [0, 0], [0, 0], [pad, pad]])


def unit_fn_v1(x, depth, stride, after_stem, training, hp):
    """One unit, the original one (He et al. 2015, Figure 2 and section 4.2):
    residual = 3x3 conv (stride), BN, ReLU, 3x3 conv, BN; output = ReLU(residual +
    shortcut(x)). Without shortcut connections the output is ReLU(residual): two
    conv-BN-ReLU layers of the plain net (Figure 6). `after_stem` changes nothing here,
    since the stem ends in its own BN-ReLU.
    """
    residual = Relu(conv_bn(x, depth, stride, "conv1", training, hp))
    residual = conv_bn(residual, depth, 1, "conv2", training, hp)
    if hp["shortcut_connections"]:
        residual = tf.add(residual, shortcut(x, depth, stride, hp), name="add")
    return Relu(residual)


def unit_fn_v2(x, depth, stride, after_stem, training, hp):
    """One unit, "full pre-activation" (He et al. 2016, Figure 4(e)):
    preact = BN-ReLU(x); residual = 3x3 conv (stride), BN, ReLU, 3x3 conv; output =
    residual + shortcut. The shortcut starts from preact only in the very first unit
    (`after_stem`, right after init_conv), from x everywhere else. Without shortcut
    connections the output is the residual alone: with the next unit's pre-activation, a
    unit of the plain net (He et al. 2015, Figure 6).
    Both convs have no bias (a BN follows the first, the next unit's BN the second).
    """
    preact = bn_relu(x, training, hp, scope="preact")
    residual = Relu(conv_bn(preact, depth, stride, "conv1", training, hp))
    residual = conv_layer(residual, filter=depth, kernel=[3, 3], stride=1, layer_name="conv2",
                          kernel_initializer=_init(hp))
    if not hp["shortcut_connections"]:
        return residual
    return tf.add(residual, shortcut(preact if after_stem else x, depth, stride, hp), name="add")


# The two units (--unit) and what each needs around the stages: a BN-ReLU after the stem conv
# unless the first unit begins with one, and a BN-ReLU before the pool where the last unit ends
# in an addition.
UNITS = {
    "original": dict(unit_fn=unit_fn_v1, stem_bn_relu=True, head_bn_relu=False),  # He et al. 2015, Figure 2
    "preact": dict(unit_fn=unit_fn_v2, stem_bn_relu=False, head_bn_relu=True),    # He et al. 2016, Figure 4(e)
}


def resnet_block(x, scope, depth, stride, num_units, first_stage, training, hp):
    """One stage (chao-ji's resnet_v2_block, slim's resnet_v1_block for unit=original):
    `num_units` units at `depth` channels; the first has the stage's stride."""
    unit_fn = UNITS[hp["unit"]]["unit_fn"]
    with tf.variable_scope(scope):
        for i in range(num_units):
            with tf.variable_scope("unit_%d" % (i + 1)):
                x = unit_fn(x, depth, stride if i == 0 else 1, first_stage and i == 0, training, hp)
    return x


def logits_layer(x, training, hp, num_classes):
    """Head: BN, ReLU (unit=preact only: the original unit ends in a ReLU already), mean over
    height and width, affine map to the classes.

    conv (original): the mean keeps its 1x1 map and a 1x1 conv with bias (Glorot kernel,
    zero bias, its kernel weight-decayed like every conv) gives the logits, squeezed;
    dense (paper): the same function as a fully connected layer with bias.
    """
    if UNITS[hp["unit"]]["head_bn_relu"]:
        x = report("postnorm", bn_relu(x, training, hp, scope="postnorm"))
    if hp["head"] == "conv":
        x = report("global_average_pool", tf.reduce_mean(x, [1, 2], keepdims=True, name="global_average_pooling"))
        x = conv_layer(x, filter=num_classes, kernel=[1, 1], stride=1, layer_name="logits", use_bias=True)
        return tf.squeeze(x, axis=[1, 2])
    x = report("global_average_pool", Global_Average_Pooling(x))
    return Linear(x, units=num_classes, use_bias=True, layer_name="logits")


def Build_ResNet(input_x, training, hp, num_classes=10):
    """init_conv, the three stages of STAGES with units of kind --unit (UNITS), the head;
    returns the logits."""
    num_units = (hp["num_layers"] - 2) // 6
    x = report("init_conv", init_conv(input_x, training, hp))
    for s, (scope, depth, stride) in enumerate(STAGES):
        x = report(scope, resnet_block(x, scope, depth, stride, num_units, s == 0, training, hp))
    return report("logits", logits_layer(x, training, hp, num_classes))


def _init(hp):
    return he_normal() if hp["init"] == "he" else None  # None: tf.layers' Glorot uniform = slim's xavier


def main(argv=None):
    return trainer.main("ResNet", Build_ResNet, PRESETS, add_flags, validate, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
