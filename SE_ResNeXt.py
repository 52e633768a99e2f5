"""SE-ResNeXt on CIFAR (Hu et al., arXiv 1709.01507), as taki0112/SENet-Tensorflow builds it.

    python SE_ResNeXt.py                    # the original repository's network and recipe
    python SE_ResNeXt.py --preset paper     # ResNeXt-29 8x64d with SE blocks, r = 16
    python SE_ResNeXt.py --summary          # stage shapes and parameter total, no data needed

The network is ResNeXt.py's (imported, not copied) with the SE block of the paper's Figure 3
in every residual block, applied to the transition's output before the shortcut is added:
global average pool -> fc to C/r -> ReLU -> fc to C -> sigmoid -> scale the channels.
What each preset builds and where it differs from the paper: docs/deviations.md ("SE_ResNeXt.py",
and the SE-ResNeXt table).
"""
import sys

from compat import tf
from ops import Global_Average_Pooling, Linear, Relu, Sigmoid
import ResNeXt
import trainer
from settings import KitError, int_list

PRESETS = {
    # taki0112/SENet-Tensorflow at 41b12c4 (2018-08-14, its latest commit): SE_ResNeXt.py's module
    # constants, training loop and residual_layer, which returns the merged output since afa2529.
    "original": dict(ResNeXt.PRESETS["original"], reduction_ratio=4, stride_on="3x3", pre_merge_output=False,
                     epochs=100, lr_decay_epochs="29,59,89"),
    # ResNeXt-29 8x64d as in ResNeXt.py's paper preset, plus SE with the SE paper's r = 16.
    "paper": dict(ResNeXt.PRESETS["paper"], reduction_ratio=16, pre_merge_output=False),
}


def validate(hp):
    ResNeXt.validate(hp)
    r = hp["reduction_ratio"]
    smallest = min(int_list(hp["out_dims"]))
    if not 1 <= r <= smallest:
        raise KitError("--reduction_ratio must be between 1 and the narrowest stage (%d channels), got %d"
                       % (smallest, r))


def squeeze_excitation_layer(input_x, out_dim, ratio, layer_name):
    """The SE block (Figure 1; placed in a residual block as Figure 3 shows): rescale the channels
    of `input_x` by weights computed from their global averages.

    out_dim: the channels of `input_x`; ratio: the paper's reduction ratio r. As the original: tflearn's global average pool, two bias-free dense layers
    (out_dim -> out_dim // ratio -> out_dim) with ReLU between and sigmoid after.
    """
    squeeze = Global_Average_Pooling(input_x)
    excitation = Linear(squeeze, units=out_dim // ratio, layer_name=layer_name + "_fully_connected1")
    excitation = Relu(excitation)
    excitation = Linear(excitation, units=out_dim, layer_name=layer_name + "_fully_connected2")
    excitation = Sigmoid(excitation)
    excitation = tf.reshape(excitation, [-1, 1, 1, out_dim])
    return input_x * excitation


def Build_SEnet(input_x, training, hp, num_classes=10):
    """ResNeXt.Build_ResNext with squeeze_excitation_layer in every block; returns logits."""
    def excite(x, out_dim, layer_name):
        return squeeze_excitation_layer(x, out_dim, hp["reduction_ratio"], layer_name)
    return ResNeXt.Build_ResNext(input_x, training, hp, num_classes, excite=excite)


def main(argv=None):
    return trainer.main("SE_ResNeXt", Build_SEnet, PRESETS, validate, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
