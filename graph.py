"""The graph of a run: placeholders, the model, the loss, the learning-rate schedule and the optimizer.

loss = mean cross-entropy + weight_decay * sum(l2_loss), and a learning rate computed *from
global_step*, so a resumed run cannot restart its schedule.
"""
import time

from compat import tf
import ops
from batches import INPUT_SHAPES
from settings import int_list


class Graph(object):
    """Placeholders, model, loss, metrics, learning rate and train op of one run."""

    def __init__(self, build_fn, hp, steps_per_epoch, dist=None):
        t0 = time.time()
        self.steps_per_epoch = steps_per_epoch  # the schedule's (and the run's) unit of --epochs
        shape, self.num_classes = INPUT_SHAPES[hp["dataset"]]
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(hp["seed"])
            self.x = tf.placeholder(tf.float32, [None] + list(shape), name="images")
            self.y = tf.placeholder(tf.int64, [None], name="labels")
            self.training = tf.placeholder(tf.bool, [], name="training")
            self.global_step = tf.train.get_or_create_global_step()
            self.logits = build_fn(self.x, self.training, hp, self.num_classes)
            # Name scopes (op names only) keep TensorBoard's graph view (--graph) to a few nodes.
            with tf.name_scope("metrics"):
                self.correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(self.logits, 1), self.y), tf.int32))
                self.predictions = tf.argmax(self.logits, 1)
            with tf.name_scope("loss"):
                self.xent = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.y,
                                                                                          logits=self.logits))
                decayed = [v for v in tf.trainable_variables()
                           if hp["decay_on"] == "all" or v.op.name.endswith("kernel")]
                l2 = tf.add_n([tf.nn.l2_loss(v) for v in decayed]) if decayed and hp["weight_decay"] else 0.0
                self.loss = self.xent + hp["weight_decay"] * l2
            with tf.name_scope("learning_rate"):
                self.lr = learning_rate(self.global_step, hp, steps_per_epoch, dist)
            if hp["optimizer"] == "adam":
                opt = tf.train.AdamOptimizer(self.lr, epsilon=hp["adam_epsilon"])
            else:
                opt = tf.train.MomentumOptimizer(self.lr, hp["momentum"], use_nesterov=hp["nesterov"])
            if dist is not None:
                opt = dist.wrap_optimizer(opt)
            # The usual TF1 idiom (lab/bn_update_ops.py); empty here, since the kit's BN updates its
            # moving averages in place (ops.Batch_Normalization: updates_collections=None)
            with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
                self.train_op = opt.minimize(self.loss, global_step=self.global_step)
            self.num_params = ops.count_params()
            self.stages = [(name, t.get_shape().as_list()) for name, t in tf.get_collection(ops.STAGES)]
            self.saver = tf.train.Saver(tf.global_variables(), max_to_keep=None, save_relative_paths=True)
            self.init = tf.global_variables_initializer()
            self.broadcast = dist.broadcast_op() if dist is not None else None
            self.stop_vote = dist.stop_vote() if dist is not None else None
            self.graph.finalize()
        self.build_seconds = time.time() - t0


def learning_rate(global_step, hp, steps_per_epoch, dist=None):
    """The schedule as a tensor of global_step: --lr, times --lr_decay_factor at each of
    --lr_decay_steps (or --lr_decay_epochs, in epochs), after --warmup_steps at --warmup_lr;
    times Horovod's ramp to the number of workers where `dist` scales it."""
    decay = int_list(hp["lr_decay_steps"]) or [e * steps_per_epoch for e in int_list(hp["lr_decay_epochs"])]
    warmup = int(hp["warmup_steps"])
    # chao-ji's composition: --warmup_lr before step --warmup_steps, the decayed --lr from there on,
    # so a decay that falls inside the warm-up shows once the warm-up ends
    bounds = sorted(set(int(b) for b in decay) | ({warmup} if warmup else set()))
    values = [hp["warmup_lr"] if s < warmup else hp["lr"] * hp["lr_decay_factor"] ** sum(b <= s for b in decay)
              for s in [0] + bounds]
    # The update made at step s (global_step == s before it) trains at the rate of the last
    # boundary b <= s, as chao-ji's `tf.less(global_step, 500)` does; piecewise_constant
    # switches only once global_step > its boundary, hence b - 1.
    # In float64 the tensor holds those numbers exactly, so the logs can read it; the
    # optimizers cast it to the variables' float32, the same value a float32 schedule would give.
    values = [tf.constant(v, tf.float64) for v in values]
    lr = tf.train.piecewise_constant(global_step, [tf.cast(b - 1, tf.int64) for b in bounds], values) \
        if bounds else values[0]
    scale = dist.lr_scale(global_step, steps_per_epoch) if dist is not None else None
    return lr if scale is None else tf.cast(lr, tf.float32) * scale
