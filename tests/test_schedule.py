"""The learning-rate schedule, graph.learning_rate: the rate the graph gives at each step, against
the recipe written out by hand."""
import pytest

import ResNeXt
from conftest import lr_at
from settings import COMMON_DEFAULTS


def test_graph_schedule_switches_exactly_at_the_boundaries():
    hp = dict(COMMON_DEFAULTS, lr=0.1, lr_decay_steps="30,40", warmup_steps=5, warmup_lr=0.01)
    got = [lr_at(s, hp, 10) for s in range(50)]
    # chao-ji's rule: the update at global_step s uses 0.01 while s < 500 (here: 5)
    want = [0.01] * 5 + [0.1] * 25 + [0.1 * 0.1] * 10 + [0.1 * 0.1 ** 2] * 10
    assert got == want  # float64 in the graph: the very numbers the recipe gives
    assert got[4] == 0.01 and got[5] == 0.1 and got[29] == 0.1 and got[30] == pytest.approx(0.01)
    assert got[40] == pytest.approx(0.001)


def test_a_decay_inside_the_warm_up_shows_when_the_warm_up_ends():
    """chao-ji's composition (warm-up rate while step < 500, else the decayed rate) for any order
    of the boundaries: a decay at step 2, or at the warm-up's last step, must not break the graph."""
    hp = dict(COMMON_DEFAULTS, lr=0.1, lr_decay_steps="2,5", warmup_steps=5, warmup_lr=0.01)
    assert [lr_at(s, hp, 10) for s in (0, 1, 2, 4, 5, 6)] == [0.01, 0.01, 0.01, 0.01, 0.1 * 0.1 ** 2,
                                                              0.1 * 0.1 ** 2]


def test_decay_epochs_count_in_steps_per_epoch_and_decay_steps_win():
    hp = dict(COMMON_DEFAULTS, lr=0.5, lr_decay_factor=0.5, lr_decay_epochs="3,1", lr_decay_steps="", warmup_steps=0)
    assert [lr_at(s, hp, 7) for s in (0, 6, 7, 20, 21, 100)] == [0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    steps = dict(hp, lr_decay_steps="2")
    assert [lr_at(s, steps, 7) for s in (0, 1, 2, 21)] == [0.5, 0.5, 0.25, 0.25]
    assert [lr_at(s, dict(hp, lr_decay_epochs=""), 7) for s in (0, 10 ** 6)] == [0.5, 0.5]


def test_resnext_original_decays_at_the_start_of_its_150th_epoch():
    """taki0112's loop: `for epoch in range(1, 301): if epoch == 150 or epoch == 225: lr /= 10`."""
    hp = dict(COMMON_DEFAULTS, **ResNeXt.PRESETS["original"])
    spe = 391
    first_of_150th = 149 * spe
    assert lr_at(first_of_150th - 1, hp, spe) == pytest.approx(0.1)
    assert lr_at(first_of_150th, hp, spe) == pytest.approx(0.01)
    assert lr_at(224 * spe - 1, hp, spe) == pytest.approx(0.01)
    assert lr_at(224 * spe, hp, spe) == pytest.approx(0.001)
