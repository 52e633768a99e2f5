"""Building blocks shared by the four model scripts.

The names and the batch-norm idiom are those of the original TF1 repositories
(taki0112/ResNeXt-Tensorflow, SENet-Tensorflow and Densenet-Tensorflow), so that a
reader can hold this file next to theirs. All tensors are NHWC.
"""
import contextlib
import io

from compat import tf, batch_norm, arg_scope

try:
    # The originals import tflearn for global_avg_pool. It prints "Scipy not supported!" on
    # import, and creates a variable (is_training) in the default graph: hence a graph of its own.
    with contextlib.redirect_stdout(io.StringIO()), tf.Graph().as_default():
        import tflearn
except Exception:  # not installed, or (TF 2.x) installed but unable to import
    tflearn = None

STAGES = "kit_stages"  # graph collection of (name, tensor) pairs that `--summary` prints


def report(name, x):
    """Record `x` as the output of stage `name` for `--summary`; returns `x` unchanged."""
    tf.add_to_collection(STAGES, (name, x))
    return x


def conv_layer(input, filter, kernel, stride=1, padding="SAME", layer_name="conv",
               kernel_initializer=None, use_bias=False):
    """2-D convolution (`tf.layers.conv2d`), without bias by default as most convs of the originals;
    use_bias=True for Densenet_MNIST.py's convs and chao-ji's 1x1 logits conv.

    filter: output channels; kernel: int or [kh, kw]; stride: int.
    kernel_initializer: None keeps tf.layers' default, Glorot uniform (the originals');
    the paper presets pass He initialisation.
    """
    return tf.layers.conv2d(inputs=input, filters=filter, kernel_size=kernel, strides=stride,
                            padding=padding, use_bias=use_bias,
                            kernel_initializer=kernel_initializer, name=layer_name)


def Batch_Normalization(x, training, scope, decay=0.9, epsilon=1e-3, scale=True, zero_debias_moving_mean=True):
    """Batch normalisation switched by a boolean tensor, exactly the originals' idiom.

    `tf.cond(training, ...)` builds `tf.contrib.layers.batch_norm` twice under one scope:
    the training branch creates the variables (`reuse=None`) and normalises with the
    batch's statistics while updating the moving averages in place
    (`updates_collections=None`); the inference branch reuses them (`reuse=True`) and
    normalises with the moving averages. One set of variables, no UPDATE_OPS to run.
    decay=0.9, center, scale, zero_debias_moving_mean=True and contrib's epsilon=1e-3
    are the originals' values. chao-ji/tf-resnet-cifar10 calls slim's batch_norm with
    zero_debias_moving_mean=False and decay 0.99 inside its convs, and with slim's
    defaults (decay 0.999, scale=False: no gamma) for its pre-activations; hence the
    `scale` and `zero_debias_moving_mean` arguments.

    One difference in how, not what: each branch passes `is_training` as a Python
    bool (the branch already knows its mode) where the originals pass the tensor
    again. That computes the same function but does not nest a second `cond` inside
    each branch, which makes the graph smaller and quicker to build.

    And one for memory: the inference branch is wrapped in `tf.stop_gradient`. Training
    differentiates the training branch only, but without the stop TF's cond gradient
    gives every BN a zero tensor the size of its input (the untaken branch's share), made
    as soon as the forward pass reaches the BN and held until backprop comes back to it:
    a third of ResNeXt's training memory. Outputs and training gradients are unchanged;
    gradients taken in inference mode are zero (nothing in the kit takes them).
    """
    # The name scope only groups the cond's ops under the BN's own name (one node in TensorBoard's
    # graph view instead of a cond_N beside it); variable names come from `scope` alone.
    with tf.name_scope(scope), arg_scope([batch_norm], scope=scope, updates_collections=None, decay=decay,
                                         epsilon=epsilon, center=True, scale=scale,
                                         zero_debias_moving_mean=zero_debias_moving_mean):
        return tf.cond(training,
                       lambda: batch_norm(inputs=x, is_training=True, reuse=None),
                       lambda: tf.stop_gradient(batch_norm(inputs=x, is_training=False, reuse=True)))


def Global_Average_Pooling(x, use_tflearn=True):
    """Mean over height and width: [N, H, W, C] -> [N, C].

    The originals call `tflearn.layers.conv.global_avg_pool`, which is a `reduce_mean`
    over axes 1 and 2; it is used where tflearn imports, the same op otherwise
    (tflearn 0.5 does not import on TF 2.x). Tests check the two agree.
    """
    if use_tflearn and tflearn is not None:
        return tflearn.layers.conv.global_avg_pool(x, name="Global_avg_pooling")
    return tf.reduce_mean(x, axis=[1, 2], name="Global_avg_pooling")


def Average_pooling(x, pool_size=(2, 2), stride=2, padding="VALID"):
    return tf.layers.average_pooling2d(inputs=x, pool_size=pool_size, strides=stride, padding=padding)


def Max_Pooling(x, pool_size=(3, 3), stride=2, padding="VALID"):
    return tf.layers.max_pooling2d(inputs=x, pool_size=pool_size, strides=stride, padding=padding)


def Relu(x):
    return tf.nn.relu(x)


def Sigmoid(x):
    return tf.nn.sigmoid(x)


def Concatenation(layers):
    """Concatenate along channels (axis 3), as split_layer and dense_block do."""
    return tf.concat(layers, axis=3)


def Drop_out(x, rate, training):
    """Dropout with drop probability `rate`, active only where `training` is true.

    The originals call `tf.layers.dropout`, whose random stream restarts with every new
    session, so a run resumed from a checkpoint would replay the masks of its first
    steps. Here the mask is drawn from a stateless generator keyed by (graph seed,
    layer index, global step): same distribution, and a resumed run draws exactly the
    masks an uninterrupted one would.
    """
    if not rate:
        return x
    with tf.name_scope("dropout"):  # one node in TensorBoard's graph view
        index = len(tf.get_collection("kit_dropout"))
        tf.add_to_collection("kit_dropout", x)
        step = tf.cast(tf.train.get_or_create_global_step(), tf.int64)
        base = tf.get_default_graph().seed or 0
        seed = tf.stack([tf.constant(base * 1000 + index, tf.int64), step])
        noise = tf.random.stateless_uniform(tf.shape(x), seed=seed, dtype=x.dtype)
        kept = x * tf.cast(noise >= rate, x.dtype) / (1.0 - rate)
        # stop_gradient: as in Batch_Normalization, it spares backprop a zero tensor per layer for the untaken branch
        return tf.cond(training, lambda: kept, lambda: tf.stop_gradient(x))


def Linear(x, units, use_bias=False, layer_name="linear"):
    """Fully connected layer, without bias by default (the original ResNeXt/SE heads, the SE block's
    layers); callers pass use_bias (DenseNet's and ResNet's heads, the paper presets' ResNeXt head)."""
    return tf.layers.dense(inputs=x, units=units, use_bias=use_bias, name=layer_name)


def Flatten(x):
    return tf.layers.flatten(x)


def he_normal():
    """He et al. 2015 initialisation as in fb.resnet.torch: N(0, 2 / (k*k*out_channels))."""
    return tf.variance_scaling_initializer(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def kernel_init(hp):
    """The kernels' initializer --init names: he (he_normal) or glorot (None: tf.layers' default,
    Glorot uniform, which is slim's xavier_initializer too)."""
    return he_normal() if hp["init"] == "he" else None


def count_params(variables=None):
    """Total number of scalars in `variables` (default: all trainable variables)."""
    variables = tf.trainable_variables() if variables is None else variables
    total = 0
    for v in variables:
        n = 1
        for d in v.get_shape().as_list():
            n *= d
        total += n
    return total
