"""DenseNet on CIFAR and MNIST (Huang et al. 2017, arXiv 1608.06993), as taki0112/Densenet-Tensorflow builds it.

    python Densenet.py                          # Cifar10/Densenet_Cifar10.py's network and recipe
    python Densenet.py --dataset mnist          # MNIST/Densenet_MNIST.py's network and recipe
    python Densenet.py --preset paper [--bc]    # DenseNet (L=40, k=12), or DenseNet-BC (L=100, k=12)
    python Densenet.py --summary                # stage shapes and parameter total, no data needed

Every layer of a `dense_block` reads the concatenation of the block's input and of all earlier
layers' outputs and adds `growth_k` (k) channels (`bottleneck_layer`, DenseNet-B, or
`plain_layer`); a `transition_layer` between blocks compresses and halves the resolution. The
network is data: `architecture(hp)` turns the flags into the table `Dense_net` walks.
What each preset builds and where it differs from the paper: docs/deviations.md ("Densenet.py",
and the DenseNet table).
"""
import math
import sys

from compat import tf
from ops import (conv_layer, Batch_Normalization, Relu, Drop_out, Concatenation, Average_pooling, Max_Pooling,
                 Global_Average_Pooling, Flatten, Linear, kernel_init, report)
import trainer
from batches import INPUT_SHAPES
from settings import KitError, int_list

STEMS = {
    # name: (kernel, stride, max pool after it)
    "7x7s2": (7, 2, False),        # Densenet_Cifar10.py
    "7x7s2_maxpool": (7, 2, True),  # Densenet_MNIST.py
    "3x3": (3, 1, False),           # the paper's CIFAR networks
}

MAX_DEPTH = 500  # L, every conv and the classifier: twice DenseNet-BC's 250, the deepest network of the paper

PRESETS = {
    # taki0112/Densenet-Tensorflow at dd2db93 (2019-03-04, its latest commit), Cifar10/Densenet_Cifar10.py.
    # --dataset mnist: MNIST/Densenet_MNIST.py as of 08b6cb9 (2017-12-14), the script before dd2db93 changed
    # its transitions: the README's 99.2 % sentence (2017) is older than that change, and dd2db93's
    # transitions cannot be built under TF 1.15 as written (--transition_k=false gives them).
    # Its blocks, 6,12,48,32, are DenseNet-201's (the paper's Table 1, an ImageNet network).
    "original": dict(growth_k=24, layers="6,12,48,32", depth=0, bc=True, compression=0.5, stem="7x7s2",
                     stem_channels=0, dropout_rate=0.2, conv_bias=False, init="glorot",
                     optimizer="adam", lr=1e-4, adam_epsilon=1e-4, weight_decay=0.0, batch_size=64,
                     epochs=300, lr_decay_epochs="149,224", normalization="channel", augment=True,
                     transition_k=False,
                     by_dataset={"mnist": dict(growth_k=12, layers="4,4,32", stem="7x7s2_maxpool", conv_bias=True,
                                               transition_k=True, dropout_rate=0.0, adam_epsilon=1e-8,
                                               batch_size=100, epochs=50,
                                               lr_decay_epochs="25", normalization="unit", augment=False)}),
    # Huang et al. 2017: DenseNet (L=40, k=12); DenseNet-BC (L=100, k=12) with --bc.
    "paper": dict(growth_k=12, layers="", depth=0, bc=False, compression=0.0, transition_k=False, stem="3x3",
                  stem_channels=0,
                  dropout_rate=0.0, conv_bias=False, init="he",
                  optimizer="momentum", momentum=0.9, nesterov=True, lr=0.1, weight_decay=1e-4, decay_on="all",
                  batch_size=64, epochs=300, lr_decay_epochs="150,225", normalization="channel", augment=True),
}


def architecture(hp):
    """The network as data: dict(stem, stem_channels, blocks, bottleneck, compression, growth_k).

    Resolves the presets' automatic values (0 = auto) and raises a one-line KitError for
    an inconsistent combination (each setting's own range is its declaration's, settings.py).
    """
    k, bc = hp["growth_k"], bool(hp["bc"])
    if hp["layers"] and hp["depth"]:
        raise KitError("--depth sets the paper's three equal blocks and --layers lists the blocks: pass one "
                       "(--layers '' to use --depth)")
    if hp["layers"]:
        try:
            blocks = int_list(hp["layers"])
        except ValueError:
            blocks = []
        if not blocks or min(blocks) < 1 or len(blocks) > 10:
            raise KitError("--layers takes 1 to 10 positive layer counts, e.g. 6,12,48,32; got %r"
                           % hp["layers"])
        depth = (2 if bc else 1) * sum(blocks) + len(blocks) + 1  # the layers' convs, the transitions, stem, head
        if depth > MAX_DEPTH:
            raise KitError("--layers %s makes a network of L = %d layers: at most %d here (twice DenseNet-BC's "
                           "L = 250, the paper's deepest); pass fewer layers" % (hp["layers"], depth, MAX_DEPTH))
    else:
        depth = hp["depth"] or (100 if bc else 40)
        per = 6 if bc else 3  # a bottleneck layer holds two convs, a plain layer one
        if depth > MAX_DEPTH:
            raise KitError("--depth must be at most %d (twice DenseNet-BC's L = 250, the paper's deepest), got %d"
                           % (MAX_DEPTH, depth))
        if depth < 4 + per or (depth - 4) % per:
            raise KitError("--depth %d does not fit: L - 4 must be a positive multiple of %d (three dense "
                           "blocks of (L-4)/%d %s layers), e.g. %s" % (depth, per, per,
                           "bottleneck" if bc else "plain", "100 or 250" if bc else "40 or 100"))
        blocks = [(depth - 4) // per] * 3
    compression = hp["compression"] or (0.5 if bc else 1.0)
    if not 0 < compression <= 1:
        raise KitError("--compression must be in (0, 1], got %s" % hp["compression"])
    stem_channels = hp["stem_channels"] or (2 * k if bc else 16)
    if not 1 <= stem_channels <= 4096:  # a typo's extra digits would build for minutes and take GBs
        raise KitError("--stem_channels must be between 1 and 4096 (0: the default), got %d" % stem_channels)
    # the feature map's size after the stem and each transition (ceil: SAME padding), to refuse a
    # network whose transitions would pool it away before the last block
    kernel, stride, pool = STEMS[hp["stem"]]
    size = INPUT_SHAPES[hp["dataset"]][0][0]
    size = -(-size // stride)
    if pool:
        size = (size - 3) // 2 + 1
    for _ in blocks[1:]:
        size //= 2
    if size < 1:
        raise KitError("%d dense blocks are too many for this input and --stem %s: the transitions would "
                       "pool the feature map away; pass fewer --layers" % (len(blocks), hp["stem"]))
    return dict(stem=hp["stem"], stem_channels=stem_channels, blocks=blocks, bottleneck=bc,
                compression=compression, growth_k=k, transition_k=bool(hp["transition_k"]))


def validate(hp):
    architecture(hp)


def bottleneck_layer(x, training, hp, scope):
    """BN, ReLU, 1x1 conv to 4k, dropout, BN, ReLU, 3x3 conv to k, dropout: DenseNet-B's H_l
    (section 3, "Bottleneck layers"). `scope` prefixes the variables' names."""
    k = hp["growth_k"]
    x = Batch_Normalization(x, training=training, scope=scope + "_batch1", decay=hp["bn_decay"])
    x = Relu(x)
    x = _conv(x, 4 * k, 1, 1, hp, scope + "_conv1")
    x = Drop_out(x, rate=hp["dropout_rate"], training=training)
    x = Batch_Normalization(x, training=training, scope=scope + "_batch2", decay=hp["bn_decay"])
    x = Relu(x)
    x = _conv(x, k, 3, 1, hp, scope + "_conv2")
    return Drop_out(x, rate=hp["dropout_rate"], training=training)


def plain_layer(x, training, hp, scope):
    """BN, ReLU, 3x3 conv to k, dropout: the paper's composite function H_l without bottleneck
    (section 3, "Composite function")."""
    x = Batch_Normalization(x, training=training, scope=scope + "_batch1", decay=hp["bn_decay"])
    x = Relu(x)
    x = _conv(x, hp["growth_k"], 3, 1, hp, scope + "_conv1")
    return Drop_out(x, rate=hp["dropout_rate"], training=training)


def dense_block(input_x, nb_layers, training, hp, layer_name, bottleneck=True):
    """A dense block (Figure 1): `nb_layers` layers, each fed the concatenation of the input and
    every earlier output.

    Returns that whole concatenation: input channels + nb_layers * growth_k.
    Each layer, with the concatenation it reads, is a name scope bottleN_i (op names only; the
    original's name, kept for plain layers too).
    """
    layer = bottleneck_layer if bottleneck else plain_layer
    layers_concat = [input_x]
    with tf.name_scope("bottleN_0"):
        x = layer(input_x, training, hp, scope=layer_name + "_bottleN_0")
    layers_concat.append(x)
    for i in range(nb_layers - 1):
        with tf.name_scope("bottleN_" + str(i + 1)):
            x = Concatenation(layers_concat)
            x = layer(x, training, hp, scope=layer_name + "_bottleN_" + str(i + 1))
        layers_concat.append(x)
    return Concatenation(layers_concat)


def transition_layer(x, filters, training, hp, scope):
    """A transition between dense blocks (section 3, "Pooling layers"; Figure 2): BN, ReLU,
    1x1 conv to `filters` channels, dropout, 2x2 average pool (VALID).

    `filters` is floor(compression * in_channels), or growth_k with --transition_k.
    """
    x = Batch_Normalization(x, training=training, scope=scope + "_batch1", decay=hp["bn_decay"])
    x = Relu(x)
    x = _conv(x, filters, 1, 1, hp, scope + "_conv1")
    x = Drop_out(x, rate=hp["dropout_rate"], training=training)
    return Average_pooling(x, pool_size=[2, 2], stride=2, padding="VALID")


def Dense_net(input_x, training, hp, num_classes=10):
    """The DenseNet of Figure 2: first conv, dense blocks with transitions between them,
    BN-ReLU-pool-fc head; returns logits."""
    arch = architecture(hp)
    kernel, stride, pool = STEMS[arch["stem"]]
    x = _conv(input_x, arch["stem_channels"], kernel, stride, hp, "conv0")
    if pool:
        x = Max_Pooling(x, pool_size=[3, 3], stride=2)
    report("conv0", x)
    blocks = arch["blocks"]
    for i, nb_layers in enumerate(blocks):
        last = i == len(blocks) - 1
        name = "dense_final" if last else "dense_%d" % (i + 1)
        with tf.name_scope(name):  # stages are name scopes named as --summary reports them
            x = report(name, dense_block(x, nb_layers, training, hp, layer_name=name, bottleneck=arch["bottleneck"]))
        if not last:
            name = "trans_%d" % (i + 1)
            filters = arch["growth_k"] if arch["transition_k"] else int(math.floor(
                x.get_shape().as_list()[-1] * arch["compression"]))
            with tf.name_scope(name):
                x = report(name, transition_layer(x, filters, training, hp, scope=name))
    x = report("linear_batch", Relu(Batch_Normalization(x, training=training, scope="linear_batch",
                                                       decay=hp["bn_decay"])))
    x = report("global_average_pool", Flatten(Global_Average_Pooling(x)))
    return report("logits", Linear(x, units=num_classes, use_bias=True, layer_name="linear"))


def _conv(x, filters, kernel, stride, hp, name):
    return conv_layer(x, filter=filters, kernel=[kernel, kernel], stride=stride, layer_name=name,
                      use_bias=hp["conv_bias"], kernel_initializer=kernel_init(hp))


def main(argv=None):
    return trainer.main("Densenet", Dense_net, PRESETS, validate, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
