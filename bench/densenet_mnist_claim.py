"""Where Densenet-Tensorflow's MNIST claim comes from: its two MNIST networks, restated without the kit.

    python bench/densenet_mnist_claim.py --network first --data_source DIR       # TF 2.15, one core: about 70 min
    python bench/densenet_mnist_claim.py --network committed --data_source DIR   # TF 2.15, one core: about 30 min

taki0112/Densenet-Tensorflow's README says "(MNIST) The highest test accuracy is 99.2 %
(This result does not use dropout)" and "the number of dense block layers is fixed to 4".
The sentence is older than the MNIST script the kit's `--dataset mnist` preset follows:
it was first printed, "(epoch = 50)", when the repository's only MNIST code was a top-level
`Densenet.py` (dropout then lived in a separate `Densenet_dropout.py`).
`MNIST/Densenet_MNIST.py` came later, with a different network, and the sentence was carried
over unchanged. This script trains both networks on the same data, so that each can be set
beside the claim:

  first      `Densenet.py` of the repository's first commits, whose blocks are all "fixed
             to 4": 7x7 stride-1 conv to 2k, 3x3 stride-2 max pool (SAME); five
             (dense block, transition) pairs and a final dense block. Its dense block runs one
             bottleneck on the input and then four more on the growing concatenation (five
             layers), and returns only the last one's k channels, the bug its issue #6 later
             fixed. `tf.layers.batch_normalization` is called without `training`, so it always
             normalises with its moving statistics, which nothing updates: every "BN" is a
             learned per-channel affine map. The transition has no ReLU (BN, 1x1 conv to k,
             2x2 average pool, SAME). The head is a dense layer on the 1x1 map, no global pool.
             Adam lr 1e-4 (epsilon 1e-8), no schedule, batch 100. 219,430 parameters.
  committed  `MNIST/Densenet_MNIST.py` before 2019-03-04: the network of the kit's
             `Densenet.py --dataset mnist` original preset (552,634 parameters), written here
             again with the script's own layers (contrib `batch_norm` under `tf.cond`), as a
             check that the kit builds and trains the same thing. `batch_norm` is contrib's on
             TF 1, and on TF 2 the same function from tf_slim, through the kit's compat.py.
             Adam lr 1e-4 epsilon 1e-8, divided by 10 at epoch 25, batch 100,
             `--dropout_rate` (the script sets 0.2).

Both train, as `input_data` gives them, on the last 55,000 training images (the first 5,000
are its validation set), in a new random order each epoch, with pixels in [0, 1]; every epoch
ends with the accuracy on the 10,000 test images. The data goes through the kit's MNIST loader
(checksums), and TensorFlow and batch_norm through compat.py; nothing else of the kit is used.
"""
from __future__ import division, print_function

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mnist  # noqa: E402  (the kit's loader: find, verify and parse the four IDX files)

NETWORKS = ("first", "committed")
GROWTH_K = 12
BATCH = 100


def build_first(tf, images):
    """`Densenet.py` of the first commits; returns logits."""
    k = GROWTH_K

    def conv(x, filters, kernel):
        return tf.layers.conv2d(x, filters, kernel, 1, padding="SAME")

    def affine_bn(x):  # training defaults to False: moving mean 0 and variance 1 forever
        return tf.layers.batch_normalization(x)

    def bottleneck(x):
        x = conv(tf.nn.relu(affine_bn(x)), 4 * k, 1)
        return conv(tf.nn.relu(affine_bn(x)), k, 3)

    def dense_block(x, nb_layers):
        concat = [x]
        out = bottleneck(x)
        concat.append(out)
        for _ in range(nb_layers):
            out = bottleneck(tf.concat(concat, axis=3))
            concat.append(out)
        return out  # the last layer only

    def transition(x):
        return tf.layers.average_pooling2d(conv(affine_bn(x), k, 1), 2, 2, padding="SAME")

    x = conv(images, 2 * k, 7)
    x = tf.layers.max_pooling2d(x, 3, 2, padding="SAME")
    for _ in range(5):
        x = transition(dense_block(x, 4))
    x = dense_block(x, 4)
    return tf.reshape(tf.layers.dense(x, 10), [-1, 10])


def build_committed(tf, images, training, dropout_rate):
    """`MNIST/Densenet_MNIST.py` with each transition to k channels; returns logits."""
    from compat import batch_norm  # contrib's on TF 1; on TF 2 the same function from tf_slim
    k = GROWTH_K
    counter = [0]

    def bn(x):
        counter[0] += 1
        scope = "bn%d" % counter[0]
        kw = dict(scope=scope, updates_collections=None, decay=0.9, center=True, scale=True,
                  zero_debias_moving_mean=True)
        return tf.cond(training, lambda: batch_norm(x, is_training=True, reuse=None, **kw),
                       lambda: batch_norm(x, is_training=False, reuse=True, **kw))

    def conv(x, filters, kernel, stride=1):
        return tf.layers.conv2d(x, filters, kernel, stride, padding="SAME")

    def drop(x):
        return tf.layers.dropout(x, rate=dropout_rate, training=training)

    def bottleneck(x):
        x = drop(conv(tf.nn.relu(bn(x)), 4 * k, 1))
        return drop(conv(tf.nn.relu(bn(x)), k, 3))

    def dense_block(x, nb_layers):
        concat = [x]
        for _ in range(nb_layers):  # the first layer's concatenation is x alone
            concat.append(bottleneck(tf.concat(concat, axis=3)))
        return tf.concat(concat, axis=3)

    def transition(x):
        x = drop(conv(tf.nn.relu(bn(x)), k, 1))
        return tf.layers.average_pooling2d(x, 2, 2, padding="VALID")

    x = conv(images, 2 * k, 7, stride=2)
    x = tf.layers.max_pooling2d(x, 3, 2, padding="VALID")
    for nb_layers in (4, 4):
        x = transition(dense_block(x, nb_layers))
    x = dense_block(x, 32)
    x = tf.reduce_mean(tf.nn.relu(bn(x)), axis=[1, 2])
    return tf.layers.dense(x, 10)


def build(network, dropout_rate=0.0, seed=1):
    """The graph of one network, in a tf.Graph of its own: dict of the graph, its placeholders and ops,
    and the trainable parameter count."""
    from compat import tf  # TF 1, or TF 2's compat.v1 in graph mode, with Keras set up for tf.layers
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        x = tf.placeholder(tf.float32, [None, 28, 28, 1], name="x")
        y = tf.placeholder(tf.int64, [None], name="y")
        training = tf.placeholder(tf.bool, [], name="training")
        lr = tf.placeholder(tf.float32, [], name="lr")
        if network == "first":
            logits = build_first(tf, x)
        else:
            logits = build_committed(tf, x, training, dropout_rate)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = tf.train.AdamOptimizer(lr, epsilon=1e-8).minimize(loss)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.int64))
        params = sum(int(np.prod(v.shape.as_list())) for v in tf.trainable_variables())
        init = tf.global_variables_initializer()
    return dict(tf=tf, graph=graph, x=x, y=y, training=training, lr=lr, logits=logits, train=train,
                correct=correct, init=init, params=params)


def learning_rate(network, epoch, epochs):
    """The scripts' rate for 0-based `epoch`: constant in the first; /10 where epoch == epochs * 0.5 or
    * 0.75 in the committed one (50 epochs: only epoch 25 matches, 37.5 never does)."""
    rate = 1e-4
    if network == "committed":
        for e in range(epoch + 1):
            if e == epochs * 0.5 or e == epochs * 0.75:
                rate /= 10
    return rate


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--network", choices=NETWORKS, required=True)
    p.add_argument("--data_source", default=None, help="folder holding the four MNIST .gz files")
    p.add_argument("--data_dir", default="data")
    p.add_argument("--trust_data", action="store_true", help="accept files whose checksum does not match")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--train_images", type=int, default=55000,
                   help="train on the last N training images (input_data: 55,000)")
    p.add_argument("--dropout_rate", type=float, default=0.0, help="committed network only (its script: 0.2)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.network == "first" and args.dropout_rate:
        p.error("--dropout_rate: the first network has no dropout")
    if args.epochs < 1 or args.train_images < BATCH:
        p.error("--epochs must be at least 1 and --train_images at least %d" % BATCH)
    # checked here: TensorFlow and NumPy take these only once the data is read and the graph built
    if not 0 <= args.dropout_rate < 1:
        p.error("--dropout_rate is the share of units dropped: at least 0 and below 1 (the script's: 0.2)")
    if args.threads < 0:
        p.error("--threads must be at least 0 (0: TensorFlow picks, one per core)")
    if not 0 <= args.seed < 2 ** 32:
        p.error("--seed must be between 0 and 4294967295 (NumPy's seed range)")
    try:
        data = mnist.load(args.data_dir, args.data_source, args.trust_data)
    except mnist.DataError as e:
        raise SystemExit("error: %s" % e)
    if args.train_images > len(data["train_x"]):
        p.error("--train_images: the training file has only %d images" % len(data["train_x"]))
    train_x = data["train_x"][-args.train_images:].astype(np.float32) / 255.0
    train_y = data["train_y"][-args.train_images:]
    test_x, test_y = data["test_x"].astype(np.float32) / 255.0, data["test_y"]

    g = build(args.network, args.dropout_rate, args.seed)
    tf = g["tf"]
    print("network %s: %d parameters, %d training images, %d epochs%s" % (
        args.network, g["params"], len(train_x), args.epochs,
        ", dropout %g" % args.dropout_rate if args.network == "committed" else ""))
    print("epoch  lr       train acc %  test acc %  best %  seconds")
    rng = np.random.RandomState(args.seed)
    config = tf.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=args.threads)
    steps = len(train_x) // BATCH  # next_batch's epoch: the whole batches only
    best, start = 0.0, time.time()
    with tf.Session(graph=g["graph"], config=config) as sess:
        sess.run(g["init"])
        for epoch in range(args.epochs):
            rate = learning_rate(args.network, epoch, args.epochs)
            order = rng.permutation(len(train_x))
            right = 0
            for step in range(steps):
                idx = order[step * BATCH:(step + 1) * BATCH]
                _, c = sess.run([g["train"], g["correct"]], {g["x"]: train_x[idx], g["y"]: train_y[idx],
                                                            g["training"]: True, g["lr"]: rate})
                right += c
            test_right = sum(sess.run(g["correct"], {g["x"]: test_x[i:i + 1000], g["y"]: test_y[i:i + 1000],
                                                     g["training"]: False})
                             for i in range(0, len(test_x), 1000))
            acc = 100.0 * test_right / len(test_x)
            best = max(best, acc)
            print("%5d  %.0e  %11.2f  %10.2f  %6.2f  %7.0f" % (epoch + 1, rate, 100.0 * right / (steps * BATCH), acc, best,
                                                              time.time() - start))
            sys.stdout.flush()
    print("best test accuracy %.2f %%, final %.2f %% (the README's claim: 99.2 %%)" % (best, acc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
