"""The learning-rate schedule: the graph's value equals graph.lr_at at every step."""
import pytest

from compat import tf
import ResNeXt
from graph import learning_rate, lr_at
from settings import COMMON_DEFAULTS


def graph_rates(hp, steps_per_epoch, steps):
    g = tf.Graph()
    with g.as_default():
        gs = tf.train.get_or_create_global_step()
        lr = learning_rate(gs, hp, steps_per_epoch)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            out = []
            for s in steps:
                sess.run(tf.assign(gs, s))
                out.append(float(sess.run(lr)))
    return out


def test_graph_schedule_switches_exactly_at_the_boundaries():
    hp = dict(COMMON_DEFAULTS, lr=0.1, lr_decay_steps="30,40", warmup_steps=5, warmup_lr=0.01)
    steps = list(range(0, 50))
    got = graph_rates(hp, 10, steps)
    want = [lr_at(s, hp, 10) for s in steps]
    assert got == pytest.approx(want, rel=1e-6)
    # chao-ji's rule: the update at global_step s uses 0.01 while s < 500
    assert want[4] == 0.01 and want[5] == 0.1 and want[29] == 0.1 and want[30] == pytest.approx(0.01)
    assert want[40] == pytest.approx(0.001)


def test_resnext_original_decays_at_the_start_of_its_150th_epoch():
    """taki0112's loop: `for epoch in range(1, 301): if epoch == 150 or epoch == 225: lr /= 10`."""
    hp = dict(COMMON_DEFAULTS, **ResNeXt.PRESETS["original"])
    spe = 391
    first_of_150th = 149 * spe
    assert lr_at(first_of_150th - 1, hp, spe) == pytest.approx(0.1)
    assert lr_at(first_of_150th, hp, spe) == pytest.approx(0.01)
    assert lr_at(224 * spe, hp, spe) == pytest.approx(0.001)
    assert graph_rates(hp, spe, [first_of_150th - 1, first_of_150th]) == pytest.approx([0.1, 0.01], rel=1e-6)
