"""ResNet on CIFAR (He et al. 2015, arXiv 1512.03385) with its original unit or the pre-activation
unit of He et al. 2016 (arXiv 1603.05027), as chao-ji/tf-resnet-cifar10 builds it; and the plain nets.

    python ResNet.py                                  # chao-ji's pre-activation ResNet-20 and recipe
    python ResNet.py --shortcut_connections=False     # the plain net of the same depth
    python ResNet.py --preset paper --num_layers 56   # He et al. 2015, Table 6
    python ResNet.py --summary --num_layers 110       # stage shapes and parameter total

`--num_layers` = 6n+2: a 3x3 conv to 16 channels, three stages (`resnet_block`) of n units at
16, 32 and 64 channels, a global mean and a linear classifier. `unit_fn_v1` is Figure 2 of the
2015 paper, `unit_fn_v2` Figure 4(e) of the 2016 one; shortcuts are option A (identity, or
zero-padded channels). What each preset builds and where it differs from the papers:
docs/deviations.md ("ResNet.py", and the ResNet table).
"""
import sys

from compat import tf
from ops import (conv_layer, Batch_Normalization, Relu, Average_pooling, Global_Average_Pooling, Linear,
                 kernel_init, report)
import trainer
from settings import KitError

# The three stages as chao-ji's resnet_model.py lists its resnet_v2_block specs (He et al. 2015,
# section 4.2: 32x32, 16x16 and 8x8 maps): (scope, depth of both convs of every unit, stride of
# the first unit). Not ops.STAGES, the graph collection --summary reads.
STAGES = (("block1", 16, 1), ("block2", 32, 2), ("block3", 64, 2))
MAX_UNITS = 400  # n per stage; 6 * 400 + 2 = 2402 layers, about twice ResNet-1202

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


def validate(hp):
    """One-line errors for bad settings, then the settings that follow from others."""
    layers = hp["num_layers"]
    if layers < 8 or (layers - 2) % 6 or (layers - 2) // 6 > MAX_UNITS:
        raise KitError("--num_layers=%d is not 6n+2: use 20, 32, 44, 56, 110 or 1202 (any 6n+2 from 8 to %d)"
                       % (layers, 6 * MAX_UNITS + 2))
    if hp["dataset"] == "mnist":
        raise KitError("ResNet.py builds the CIFAR network of He et al. (32x32 images, stages at 32, 16 and 8 "
                       "pixels), not one for MNIST: use --dataset cifar10 or cifar100")
    if not (hp["preact_bn_decay"] == 0 or 0 < hp["preact_bn_decay"] < 1):
        raise KitError("--preact_bn_decay must be 0 (same as --bn_decay) or in (0, 1), got %s"
                       % hp["preact_bn_decay"])
    if hp["epochs"] >= 10000:
        e = hp["epochs"]
        raise KitError("--epochs=%d counts passes over the training set here (the original's --epochs "
                       "counted steps): for %d steps pass --steps %d" % (e, e, e))
    given = getattr(hp, "given", ())  # the flags given on the command line (settings.Hparams)
    if hp.get("path"):
        if "binary" in given and not hp["binary"]:
            raise KitError("--path names the binary CIFAR-10 folder, and --binary=false asks for the pickles: drop "
                           "one of them (--data_source takes either)")
        if hp["dataset"] != "cifar10":
            raise KitError("--path names the CIFAR-10 binary folder; for %s use --data_source" % hp["dataset"])
        if hp.get("data_source") and hp["data_source"] != hp["path"]:
            raise KitError("--path and --data_source name different data (%s, %s): pass one of them"
                           % (hp["path"], hp["data_source"]))
        hp["data_source"], hp["binary"] = hp["path"], True
    if "binary" in given and hp["binary"] and hp["dataset"] != "cifar10":
        raise KitError("--binary reads CIFAR-10's binary files, and %s is read from its pickles here: drop --binary"
                       % hp["dataset"])
    hp["binary"] = bool(hp["binary"]) and hp["dataset"] == "cifar10"  # the preset's binary: CIFAR-10 only
    # He et al. warm up only ResNet-110 (and deeper): the preset's warm-up, not one given on the command line
    if "warmup_min_layers" in given and "warmup_steps" in given:
        raise KitError("--warmup_min_layers says which nets get the preset's warm-up, and --warmup_steps gives this "
                       "net its own: drop one of them")
    if layers < hp["warmup_min_layers"] and "warmup_steps" not in given:
        if "warmup_lr" in given:
            raise KitError("--warmup_lr is used only with a warm-up, and the %s preset warms up only nets of %d "
                           "layers or more: drop it, or add --warmup_steps N" % (hp["preset"], hp["warmup_min_layers"]))
        hp["warmup_steps"] = 0


def init_conv(x, training, hp):
    """The first layer: 3x3 conv to 16 channels, no bias (He et al. 2015, section 4.2; the
    original's `init_conv`). unit=original: followed by BN-ReLU, as every conv of that paper;
    unit=preact: bare, its BN-ReLU is the first unit's pre-activation (UNITS, below)."""
    if UNITS[hp["unit"]]["stem_bn_relu"]:
        return Relu(conv_bn(x, 16, 1, "init_conv", training, hp))
    return conv_layer(x, filter=16, kernel=[3, 3], stride=1, layer_name="init_conv", kernel_initializer=kernel_init(hp))


def conv_bn(x, depth, stride, name, training, hp):
    """A 3x3 conv without bias (the BN's beta takes its place), then BN with gamma and beta
    and decay --bn_decay: He et al. 2015 put BN "right after each convolution and before
    activation" (section 3.4); chao-ji's conv1 and conv1/BatchNorm."""
    x = conv_layer(x, filter=depth, kernel=[3, 3], stride=stride, layer_name=name, kernel_initializer=kernel_init(hp))
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
    conv-BN-ReLU layers of the plain net (section 4.2; its curves: Figure 6). `after_stem`
    changes nothing here, since the stem ends in its own BN-ReLU.
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
    unit of the plain net (He et al. 2015, section 4.2; its curves: Figure 6).
    Both convs have no bias (a BN follows the first, the next unit's BN the second).
    """
    preact = bn_relu(x, training, hp, scope="preact")
    residual = Relu(conv_bn(preact, depth, stride, "conv1", training, hp))
    residual = conv_layer(residual, filter=depth, kernel=[3, 3], stride=1, layer_name="conv2",
                          kernel_initializer=kernel_init(hp))
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
    `num_units` units at `depth` channels; the first has the stage's stride. `first_stage`: the
    stage right after init_conv, whose first unit gets `after_stem` (see unit_fn_v2)."""
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


def main(argv=None):
    return trainer.main("ResNet", Build_ResNet, PRESETS, validate, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
