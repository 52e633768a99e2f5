"""ResNeXt on CIFAR (Xie et al. 2017, "Aggregated Residual Transformations for Deep Neural
Networks", arXiv 1611.05431), as taki0112/ResNeXt-Tensorflow builds it.

    python ResNeXt.py                    # the original repository's network and recipe
    python ResNeXt.py --preset paper     # ResNeXt-29 8x64d of the paper's Table 7
    python ResNeXt.py --summary          # stage shapes and parameter total, no data needed

A block is the paper's Figure 3(a): `split_layer` runs `cardinality` copies of
`transform_layer` on the same input and concatenates them; `transition_layer` projects
the result back to the block's width; the shortcut is added and passed through ReLU.

The two presets differ exactly where the original code differs from the paper (see the
deviations table in the README):
  original  every path is 1x1 -> 3x3 at `depth` = 64 channels in *every* stage, block
            outputs 64/128/256, stride 2 on the path's 1x1 conv, and the shortcut of a
            widening block is a 2x2 average pool plus zero-padding of the channels;
  paper     path width doubles per stage (64, 128, 256: 8x64d), block outputs
            256/512/1024, stride 2 on the 3x3 conv, projection shortcuts (1x1 conv + BN)
            where the shape changes, He initialisation, fc with bias.
"""
import sys

from compat import tf
from ops import (conv_layer, Batch_Normalization, Relu, Concatenation, Average_pooling,
                 Global_Average_Pooling, Flatten, Linear, he_normal, report)
import trainer

PRESETS = {
    # taki0112/ResNeXt-Tensorflow, ResNeXt.py module constants.
    "original": dict(cardinality=8, depth=64, blocks=3, out_dims="64,128,256", widen=False, stride_on="1x1",
                     shortcut="pad", fc_bias=False, init="glorot",
                     epochs=300, batch_size=128, optimizer="momentum", momentum=0.9, nesterov=True,
                     lr=0.1, lr_decay_epochs="150,225", weight_decay=5e-4, decay_on="all"),
    # Xie et al. 2017, section 5.3 and Table 7: ResNeXt-29 8x64d.
    "paper": dict(cardinality=8, depth=64, blocks=3, out_dims="256,512,1024", widen=True, stride_on="3x3",
                  shortcut="projection", fc_bias=True, init="he",
                  epochs=300, batch_size=128, optimizer="momentum", momentum=0.9, nesterov=False,
                  lr=0.1, lr_decay_epochs="150,225", weight_decay=5e-4, decay_on="all"),
}


def add_flags(g):
    g.add_argument("--cardinality", type=int, default=None, help="number of paths in split_layer (C)")
    g.add_argument("--depth", type=int, default=None, help="channels of each path in the first stage (d)")
    g.add_argument("--blocks", type=int, default=None, help="residual blocks per stage (3 for ResNeXt-29)")
    g.add_argument("--out_dims", default=None, help="block output channels of the three stages, comma-separated")
    trainer.bool_flag(g, "widen", "double the path width at every stage, as the paper does")
    g.add_argument("--stride_on", choices=["1x1", "3x3"], default=None, help="which conv of a path downsamples")
    g.add_argument("--shortcut", choices=["pad", "projection"], default=None,
                   help="widening shortcut: average pool + zero-pad (original) or 1x1 conv + BN (paper)")
    trainer.bool_flag(g, "fc_bias", "bias in the final fully connected layer")


def validate(hp):
    if not 1 <= hp["cardinality"] <= 64:
        raise trainer.KitError("--cardinality must be between 1 and 64, got %d" % hp["cardinality"])
    if not 1 <= hp["depth"] <= 1024:
        raise trainer.KitError("--depth must be between 1 and 1024, got %d" % hp["depth"])
    if not 1 <= hp["blocks"] <= 100:
        raise trainer.KitError("--blocks must be between 1 and 100, got %d" % hp["blocks"])
    dims = trainer.int_list(hp["out_dims"])
    if len(dims) != 3 or min(dims) < 1:
        raise trainer.KitError("--out_dims takes three positive channel counts, e.g. 64,128,256")
    if hp["shortcut"] == "pad" and not all(b in (a, 2 * a) for a, b in zip(dims, dims[1:])):
        raise trainer.KitError("--shortcut pad needs each stage as wide as the last or twice as wide; "
                               "use --shortcut projection for %s" % hp["out_dims"])


def first_layer(x, training, hp, scope):
    """Stem: 3x3 conv to 64 channels, BN, ReLU (the paper's "conv1" for CIFAR)."""
    x = conv_layer(x, filter=64, kernel=[3, 3], stride=1, layer_name=scope + "_conv1", kernel_initializer=_init(hp))
    x = Batch_Normalization(x, training=training, scope=scope + "_batch1")
    return Relu(x)


def transform_layer(x, stride, depth, training, hp, scope):
    """One path of Figure 3(a): 1x1 conv to `depth`, BN, ReLU, 3x3 conv, BN, ReLU.

    The original downsamples with the 1x1 conv (stride_on='1x1'), the paper with the 3x3.
    """
    s1, s3 = (stride, 1) if hp["stride_on"] == "1x1" else (1, stride)
    x = conv_layer(x, filter=depth, kernel=[1, 1], stride=s1, layer_name=scope + "_conv1", kernel_initializer=_init(hp))
    x = Batch_Normalization(x, training=training, scope=scope + "_batch1")
    x = Relu(x)
    x = conv_layer(x, filter=depth, kernel=[3, 3], stride=s3, layer_name=scope + "_conv2", kernel_initializer=_init(hp))
    x = Batch_Normalization(x, training=training, scope=scope + "_batch2")
    return Relu(x)


def transition_layer(x, out_dim, training, hp, scope):
    """1x1 conv from the concatenated paths to the block's width, BN, no ReLU (before the add)."""
    x = conv_layer(x, filter=out_dim, kernel=[1, 1], stride=1, layer_name=scope + "_conv1", kernel_initializer=_init(hp))
    return Batch_Normalization(x, training=training, scope=scope + "_batch1")


def split_layer(x, stride, depth, training, hp, layer_name):
    """`cardinality` transform_layers on the same input, concatenated along channels.

    Figure 3(a)'s split-transform-merge; with concatenation before the 1x1 transition
    it is the same function as Figure 3(b) and as the grouped convolution of 3(c).
    """
    paths = [transform_layer(x, stride, depth, training, hp, scope=layer_name + "_splitN_" + str(i))
             for i in range(hp["cardinality"])]
    return Concatenation(paths)


def shortcut(x, out_dim, stride, training, hp, scope):
    """The identity, or what a block that changes shape adds instead.

    pad (original): 2x2 average pool with stride 2 (SAME), then zero-pad the channels by
    in_dim // 2 on each side, parameter-free like the ResNet paper's option A.
    projection (paper): 1x1 conv with the block's stride to out_dim, then BN.
    """
    in_dim = x.get_shape().as_list()[-1]
    if in_dim == out_dim and stride == 1:
        return x
    if hp["shortcut"] == "pad":
        if stride == 2:
            x = Average_pooling(x, pool_size=[2, 2], stride=2, padding="SAME")
        extra = out_dim - in_dim
        return tf.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])
    x = conv_layer(x, filter=out_dim, kernel=[1, 1], stride=stride, layer_name=scope + "_conv1",
                   kernel_initializer=_init(hp))
    return Batch_Normalization(x, training=training, scope=scope + "_batch1")


def residual_layer(input_x, out_dim, depth, first_stride, training, hp, layer_num):
    """One stage: `blocks` residual blocks; the first may downsample and widen.

    The original decides the stride from the shapes (input_dim * 2 == out_dim); the
    stage table passes it explicitly, which gives the same strides for its widths.
    """
    for i in range(hp["blocks"]):
        stride = first_stride if i == 0 else 1
        name = layer_num + "_" + str(i)
        x = split_layer(input_x, stride, depth, training, hp, layer_name="split_layer_" + name)
        x = transition_layer(x, out_dim, training, hp, scope="trans_layer_" + name)
        input_x = Relu(x + shortcut(input_x, out_dim, stride, training, hp, scope="shortcut_" + name))
    return input_x


def Build_ResNext(input_x, training, hp, num_classes=10):
    """Stem, three stages, global average pool, fully connected layer; returns logits."""
    out_dims = trainer.int_list(hp["out_dims"])
    x = report("first_layer", first_layer(input_x, training, hp, scope="first_layer"))
    for s, out_dim in enumerate(out_dims):
        depth = hp["depth"] * (2 ** s if hp["widen"] else 1)
        x = residual_layer(x, out_dim, depth, 1 if s == 0 else 2, training, hp, layer_num=str(s + 1))
        report("residual_layer_%d" % (s + 1), x)
    x = report("global_average_pool", Flatten(Global_Average_Pooling(x)))
    return report("logits", Linear(x, units=num_classes, use_bias=hp["fc_bias"], layer_name="linear"))


def _init(hp):
    return he_normal() if hp["init"] == "he" else None


def main(argv=None):
    return trainer.main("ResNeXt", Build_ResNext, PRESETS, add_flags, validate, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
