"""ResNeXt's split_layer written as Figure 3(c) of Xie et al. 2017: the same function as
ResNeXt.py's Figure 3(a) code, in fewer, wider ops (about 5x fewer graph nodes, and faster).

The C paths' 1x1 convs read the same input, so they are one conv to C*depth channels (their
kernels side by side); batch norm is per channel, so the C per-path BNs are one BN over the
C*depth channels; the paths' 3x3 convs are one grouped convolution, path i reading only its own
depth channels. Same parameters, stored as the fused kernels [1, 1, in, C*d] and [3, 3, d, C*d]
and one BN per layer, so a checkpoint resumes only with the formulation it was written with.
tests/test_fast_equivalence.py checks that both give the same outputs, gradients and moving
averages on the same weights. ResNeXt.py uses it unless `--formulation literal`.
"""
from compat import tf
from ops import conv_layer, Batch_Normalization, Relu, Concatenation, kernel_init


def split_layer_fused(x, stride, depth, training, hp, layer_name):
    """split_layer computed with fewer, wider ops: the same function, about 5x fewer graph nodes.

    It is Figure 3(c). The C paths' 1x1 convs read the same input: one conv to C*depth
    channels (its kernel is theirs side by side). BN normalises each channel with its own
    statistics and parameters, so one BN over the C*depth channels is the C per-path
    BNs. The 3x3 convs are a grouped convolution: path i sees only channels
    i*depth..(i+1)*depth-1 (group_conv_layer). One BN and ReLU then finish all paths.
    Kernels are drawn from the literal paths' distributions (_per_path).
    """
    c = hp["cardinality"]
    s1, s3 = (stride, 1) if hp["stride_on"] == "1x1" else (1, stride)
    x = conv_layer(x, filter=c * depth, kernel=[1, 1], stride=s1, layer_name=layer_name + "_conv1",
                   kernel_initializer=_per_path(kernel_init(hp), c))
    x = Batch_Normalization(x, training=training, scope=layer_name + "_batch1", decay=hp["bn_decay"])
    x = group_conv_layer(x, c, filter=c * depth, kernel=[3, 3], stride=s3, layer_name=layer_name + "_conv2",
                         kernel_initializer=_per_path(kernel_init(hp), c),
                         activation=Relu)  # the paths' first ReLU, applied per group (memory: group_conv_layer)
    x = Batch_Normalization(x, training=training, scope=layer_name + "_batch2", decay=hp["bn_decay"])
    return Relu(x)


def group_conv_layer(x, groups, filter, kernel, stride, layer_name, kernel_initializer=None, activation=None):
    """Grouped convolution: `groups` convs side by side, group i reading input slice i only.

    The kernel is one variable [kh, kw, in/groups, filter], the layout of a grouped
    convolution's kernel. TF 1.15 has no grouped convolution on the CPU, so it runs as one
    tf.nn.conv2d per group on the split input and kernel, concatenated. `activation`, if
    given, is applied to each input slice first: ReLU after the split rather than before
    keeps backprop to one stored tensor per group instead of the ReLU output and its copy.
    """
    in_dim = x.get_shape().as_list()[-1]
    with tf.variable_scope(layer_name):
        w = tf.get_variable("kernel", list(kernel) + [in_dim // groups, filter], initializer=kernel_initializer)
        outs = []
        for xi, wi in zip(tf.split(x, groups, axis=3), tf.split(w, groups, axis=3)):
            if activation is not None:
                xi = activation(xi)
            outs.append(tf.nn.conv2d(xi, wi, strides=[1, stride, stride, 1], padding="SAME"))
        return Concatenation(outs)


def _per_path(init, paths):
    """An initializer for `paths` kernels side by side, drawn as the literal paths' kernels are.

    Glorot and He draw each weight independently with a variance set by the kernel's fans,
    and a path's output width is depth, not the fused kernel's paths*depth: the fused
    kernel is one draw with the variance of one path's kernel. None stands for tf.layers'
    default, Glorot uniform.
    """
    init = init or tf.glorot_uniform_initializer()

    def initializer(shape, dtype=tf.float32, partition_info=None):
        # The fans of a kernel [.., in, out] are in and out times its receptive field, which
        # cancels in the ratio: only `out` differs, paths*depth here and depth in one path.
        fan_in, fan_out = shape[-2], shape[-1]
        fans = {"fan_in": 1.0, "fan_out": float(paths), "fan_avg": (fan_in + fan_out) / (fan_in + fan_out / paths)}
        return tf.variance_scaling_initializer(scale=init.scale * fans[init.mode], mode=init.mode,
                                               distribution=init.distribution, seed=init.seed)(shape, dtype=dtype)
    return initializer
