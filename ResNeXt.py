"""ResNeXt-29 on CIFAR (Xie et al. 2017, arXiv 1611.05431), as taki0112/ResNeXt-Tensorflow builds it.

    python ResNeXt.py                    # the original repository's network and recipe
    python ResNeXt.py --preset paper     # ResNeXt-29 8x64d of the paper's Table 7
    python ResNeXt.py --summary          # stage shapes and parameter total, no data needed

A block is the paper's Figure 3(a): `split_layer` runs `cardinality` copies of `transform_layer`
on the same input and concatenates them; `transition_layer` projects the result back to the
block's width; the shortcut is added and passed through ReLU. Training uses the same function
written as Figure 3(c) (fused.py: fewer, wider ops, faster); `--formulation literal` runs the
code below instead. `hp` is the run's settings: settings.py's defaults, then the preset, then
the flags. What each preset builds and where it differs from the paper: docs/deviations.md.
"""
import sys

from compat import tf
from ops import (conv_layer, Batch_Normalization, Relu, Concatenation, Average_pooling,
                 Global_Average_Pooling, Flatten, Linear, kernel_init, report)
from fused import split_layer_fused
import trainer
from settings import KitError, int_list

PRESETS = {
    # taki0112/ResNeXt-Tensorflow at 60bfd72 (2018-08-14, its latest commit), ResNeXt.py module constants.
    "original": dict(cardinality=8, depth=64, blocks=3, stem_dim=64, out_dims="64,128,256", widen=False, stride_on="1x1",
                     shortcut="pad", fc_bias=False, init="glorot",
                     epochs=300, batch_size=128, optimizer="momentum", momentum=0.9, nesterov=True,
                     # Its loop counts epochs from 1 and divides when epoch == 150 or 225: the 150th
                     # epoch already runs at 0.01, i.e. after 149 and 224 completed epochs.
                     lr=0.1, lr_decay_epochs="149,224", weight_decay=5e-4, decay_on="all",
                     formulation="fused"),
    # Xie et al. 2017, Table 7 and its CIFAR recipe: ResNeXt-29 8x64d. The paper says "SGD with
    # momentum 0.9"; its released code (facebookresearch/ResNeXt, train.lua) uses Nesterov momentum
    # and decays all parameters, BN included. That code divides the rate once epoch/300 > 0.49 and
    # > 0.74; the preset keeps the paper's text, epochs 150 and 225.
    "paper": dict(cardinality=8, depth=64, blocks=3, stem_dim=64, out_dims="256,512,1024", widen=True, stride_on="3x3",
                  shortcut="projection", fc_bias=True, init="he",
                  epochs=300, batch_size=128, optimizer="momentum", momentum=0.9, nesterov=True,
                  lr=0.1, lr_decay_epochs="150,225", weight_decay=5e-4, decay_on="all",
                  formulation="fused"),
}


def validate(hp):
    try:
        dims = int_list(hp["out_dims"])
    except ValueError:
        dims = []
    if len(dims) != 3 or min(dims) < 1:
        raise KitError("--out_dims takes three positive channel counts, e.g. 64,128,256")
    if max(dims) > 4096:  # a typo's extra digits would build for minutes and take GBs (--stem_dim: the same cap)
        raise KitError("--out_dims takes channel counts of at most 4096 (four times the paper's widest stage, "
                       "1024), got %s" % hp["out_dims"])
    chain = [hp["stem_dim"]] + dims
    if hp["shortcut"] == "pad" and not all(b in (a, 2 * a) for a, b in zip(chain, chain[1:])):
        raise KitError("--shortcut pad needs every stage (after a %d-channel first_layer) as wide as the one "
                       "before or twice as wide; use --shortcut projection for --out_dims %s"
                       % (hp["stem_dim"], hp["out_dims"]))


def first_layer(x, training, hp, scope):
    """Stem: 3x3 conv to `stem_dim` (64) channels, BN, ReLU: the paper's CIFAR network (its appendix)
    begins with a single 3x3 conv."""
    x = conv_layer(x, filter=hp["stem_dim"], kernel=[3, 3], stride=1, layer_name=scope + "_conv1",
                   kernel_initializer=kernel_init(hp))
    x = Batch_Normalization(x, training=training, scope=scope + "_batch1", decay=hp["bn_decay"])
    return Relu(x)


def transform_layer(x, stride, depth, training, hp, scope):
    """One path of Figure 3(a): 1x1 conv to `depth`, BN, ReLU, 3x3 conv, BN, ReLU.

    depth: the path's width, the d of "8x64d" (the original's name; not the network's depth).
    stride: 2 in a stage's first block; the original downsamples with the 1x1 conv
    (stride_on='1x1'), the paper with the 3x3. scope: the variables' name prefix.
    """
    s1, s3 = (stride, 1) if hp["stride_on"] == "1x1" else (1, stride)
    x = conv_layer(x, filter=depth, kernel=[1, 1], stride=s1, layer_name=scope + "_conv1",
                   kernel_initializer=kernel_init(hp))
    x = Batch_Normalization(x, training=training, scope=scope + "_batch1", decay=hp["bn_decay"])
    x = Relu(x)
    x = conv_layer(x, filter=depth, kernel=[3, 3], stride=s3, layer_name=scope + "_conv2",
                   kernel_initializer=kernel_init(hp))
    x = Batch_Normalization(x, training=training, scope=scope + "_batch2", decay=hp["bn_decay"])
    return Relu(x)


def transition_layer(x, out_dim, training, hp, scope):
    """Figure 3(a)'s closing 1x1 conv, from the concatenated paths to the block's width `out_dim`,
    then BN and no ReLU (that comes after the add). The original's name; not DenseNet's transition."""
    x = conv_layer(x, filter=out_dim, kernel=[1, 1], stride=1, layer_name=scope + "_conv1",
                   kernel_initializer=kernel_init(hp))
    return Batch_Normalization(x, training=training, scope=scope + "_batch1", decay=hp["bn_decay"])


def split_layer(x, stride, depth, training, hp, layer_name):
    """`cardinality` transform_layers on the same input, concatenated along channels (arguments:
    transform_layer's; `layer_name` prefixes each path's scope).

    Figure 3(a)'s split-transform-merge; with concatenation before the 1x1 transition
    it is the same function as Figure 3(b) and as the grouped convolution of 3(c).
    """
    paths = [transform_layer(x, stride, depth, training, hp, scope=layer_name + "_splitN_" + str(i))
             for i in range(hp["cardinality"])]
    return Concatenation(paths)


def shortcut(x, out_dim, stride, training, hp, scope):
    """The identity, or what a block that changes shape adds instead.

    pad (original): 2x2 average pool with stride 2 (SAME), then zero channels added,
    (out_dim - in_dim) / 2 on each side (in_dim // 2 where the width doubles, as `validate`
    requires): parameter-free like the ResNet paper's option A.
    projection (paper): 1x1 conv with the block's stride to out_dim, then BN (option B).
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
                   kernel_initializer=kernel_init(hp))
    return Batch_Normalization(x, training=training, scope=scope + "_batch1", decay=hp["bn_decay"])


def residual_layer(input_x, out_dim, depth, first_stride, training, hp, layer_num, excite=None):
    """One stage of the paper's CIFAR network (appendix): `blocks` residual blocks; the first
    may downsample and widen.

    layer_num: "1" to "3", part of the variables' names. The original decides the stride from the
    shapes (input_dim * 2 == out_dim); Build_ResNext passes it (1 for the first stage, 2 for the
    others), which gives the same strides for the original's widths.
    `excite(x, out_dim, layer_name)`, if given, rescales each block's transition output
    before the add (SE_ResNeXt.py passes its squeeze_excitation_layer).
    """
    split = split_layer_fused if hp.get("formulation", "fused") == "fused" else split_layer  # Fig. 3(c) or 3(a)
    for i in range(hp["blocks"]):
        stride = first_stride if i == 0 else 1
        name = layer_num + "_" + str(i)
        with tf.name_scope("block_%d" % i):  # op names only: the variables keep the original's names
            x = split(input_x, stride, depth, training, hp, layer_name="split_layer_" + name)
            x = transition_layer(x, out_dim, training, hp, scope="trans_layer_" + name)
            if excite is not None:
                x = excite(x, out_dim, "squeeze_layer_" + name)
            input_x = Relu(x + shortcut(input_x, out_dim, stride, training, hp, scope="shortcut_" + name))
    # Before 2018-01-19 both originals' residual_layer returned the last block's tensor before
    # the add and ReLU (ResNeXt-Tensorflow fixed it in 04e6595, SENet-Tensorflow in afa2529);
    # SE_ResNeXt.py's --pre_merge_output brings that back.
    return x if hp.get("pre_merge_output") else input_x


def Build_ResNext(input_x, training, hp, num_classes=10, excite=None):
    """ResNeXt-29 for CIFAR (the paper's appendix; results in Table 7): stem, three stages,
    global average pool, fully connected layer; returns logits.

    `excite` is passed to every residual_layer (see there). Each stage is a name scope named
    as `--summary` reports it (TensorBoard's graph view and docs/architecture group by them)."""
    out_dims = int_list(hp["out_dims"])
    with tf.name_scope("first_layer"):
        x = report("first_layer", first_layer(input_x, training, hp, scope="first_layer"))
    for s, out_dim in enumerate(out_dims):
        depth = hp["depth"] * (2 ** s if hp["widen"] else 1)
        stage = "residual_layer_%d" % (s + 1)
        with tf.name_scope(stage):
            x = residual_layer(x, out_dim, depth, 1 if s == 0 else 2, training, hp, layer_num=str(s + 1),
                               excite=excite)
            report(stage, x)
    x = report("global_average_pool", Flatten(Global_Average_Pooling(x)))
    return report("logits", Linear(x, units=num_classes, use_bias=hp["fc_bias"], layer_name="linear"))


def main(argv=None):
    return trainer.main("ResNeXt", Build_ResNext, PRESETS, validate, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
