"""batches.Batches.iterate: the thread that makes batches one step ahead hands over every batch in
order and then ends; an exception it meets reaches the loop at the step that needed the batch,
and a loop that stops early leaves no thread behind.

Each consumer runs in a thread of its own, joined with a generous timeout, so that a hang fails
the test instead of stopping the suite."""
import threading
import time
import traceback

import numpy as np
import pytest

from batches import Batches

WAIT = 30  # seconds: not a speed limit, only how long "forever" is here


class BatchError(Exception):
    pass


class Breaking(Batches):
    """100 images in batches of 10, of which batch `bad` of every epoch raises `error`."""

    def __init__(self, bad, error, stream=False):
        x = np.arange(100, dtype=np.float32).reshape(100, 1)
        super(Breaking, self).__init__(x, np.arange(100), 10, 3, False, stream=stream)
        self.bad, self.error = bad, error

    def batch(self, epoch, index, order=None):
        if index == self.bad:
            raise self.error
        return super(Breaking, self).batch(epoch, index, order)


def consume(items):
    """Drain `items` in a thread: (indices received, the exception raised or None, True if still waiting)."""
    got, raised = [], []

    def drain():
        try:
            for item in items:
                got.append(item[0])
        except BaseException as e:
            raised.append(e)
    t = threading.Thread(target=drain)
    t.daemon = True
    t.start()
    t.join(timeout=WAIT)
    return got, raised[0] if raised else None, t.is_alive()


def test_every_batch_in_order_then_the_end():
    b = Breaking(None, None)
    got, raised, waiting = consume(b.iterate(0, 2))
    assert not waiting and raised is None and got == list(range(2, 10))
    assert got == [i for i, _, _ in b.iterate(0, 2)]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("bad, start", [(0, 0), (4, 0), (9, 0), (6, 3)])
def test_an_error_making_a_batch_is_raised_at_its_step(bad, start, stream):
    error = BatchError("Seed must be between 0 and 2**32 - 1")
    got, raised, waiting = consume(Breaking(bad, error, stream).iterate(1, start))
    assert not waiting, "the loop still waits for batch %d after %d s" % (bad, WAIT)
    assert got == list(range(start, bad))  # every batch before it, none after
    assert raised is error and str(raised) == "Seed must be between 0 and 2**32 - 1"
    # the traceback still shows where in the thread it came from
    assert "batch" in [frame.name for frame in traceback.extract_tb(raised.__traceback__)]


def test_a_loop_that_stops_early_leaves_no_thread_behind():
    """The loop takes one batch of three and stops: the thread, whose queue is full by then, ends."""
    before = set(threading.enumerate())
    b = Breaking(None, None)
    b.steps_per_epoch = 3
    items = b.iterate(0, 0)
    assert next(items)[0] == 0
    time.sleep(0.5)  # time for the thread to fill the queue and block on what follows
    items.close()
    t0 = time.time()
    while set(threading.enumerate()) - before and time.time() - t0 < WAIT:
        time.sleep(0.05)
    left = set(threading.enumerate()) - before
    assert not left, "still running %d s after the loop stopped: %s" % (WAIT, left)


# --- the originals' harness switches (settings.py, group HARNESS; docs/deviations.md, "what is fixed") ---

def harness_settings(fake, *flags):
    """ResNeXt's settings (original preset) reading the fake CIFAR-10, with `flags`."""
    import ResNeXt
    from conftest import settings
    return settings(ResNeXt, ["--data_source", fake["py"], "--trust_data"] + list(flags))


def channel_normalised(x, stats_of):
    """(x - mean) / std per channel, the statistics taken from the uint8 images `stats_of`."""
    s = stats_of.reshape(-1, stats_of.shape[-1]).astype(np.float64)
    return (x.astype(np.float64) - s.mean(axis=0)) / s.std(axis=0)


@pytest.mark.parametrize("own", [False, True])
def test_the_test_set_is_normalised_with_the_training_set_statistics_unless_test_own_stats(own, fake_cifar):
    """taki0112's color_preprocessing normalises the test set with its own mean and std
    (docs/originals: "the test set is normalised with its own statistics"); the kit uses the training
    set's by default and brings the bug back with --test_own_stats."""
    from batches import load_data
    d = load_data(harness_settings(fake_cifar, *(["--test_own_stats"] if own else [])))
    (tx, _), (vx, _) = fake_cifar["train"], fake_cifar["test"]
    np.testing.assert_allclose(d["train_x"], channel_normalised(tx, tx), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d["test_x"], channel_normalised(vx, vx if own else tx), rtol=1e-5, atol=1e-5)
    other = channel_normalised(vx, tx if own else vx)
    assert np.abs(d["test_x"] - other).max() > 0.05  # the two statistics give measurably different inputs
    # only with its own statistics is the test set itself of mean 0 and std 1 per channel
    flat = d["test_x"].reshape(-1, 3).astype(np.float64)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    if own:
        np.testing.assert_allclose(mean, 0, atol=1e-4)
        np.testing.assert_allclose(std, 1, atol=1e-4)
    else:
        assert np.abs(mean).max() > 0.01 or np.abs(std - 1).max() > 0.01, (mean, std)


@pytest.mark.parametrize("once", [False, True])
def test_each_epoch_is_a_new_permutation_unless_shuffle_once(once):
    """taki0112's loops shuffle the training set once at load time, so every epoch sees the same order
    (docs/deviations.md, "what is fixed"); the kit draws a new permutation per epoch, and --shuffle_once
    brings the fixed order back."""
    import ResNeXt
    from batches import make_batches
    from conftest import settings
    hp = settings(ResNeXt, ["--batch_size", "10"] + (["--shuffle_once"] if once else []))
    assert hp["shuffle_once"] is once
    b = make_batches(hp, dict(train_x=np.zeros((100, 1, 1, 1), np.float32), train_y=np.arange(100)))
    orders = [b.order(e) for e in range(4)]
    for o in orders:
        assert sorted(o) == list(range(100))  # each epoch is a permutation of the whole set
    assert not np.array_equal(orders[0], np.arange(100))  # shuffled, even when only once
    first_batches = [b.batch(e, 0)[1] for e in range(4)]  # the labels say which images a batch took
    if once:
        for o, fb in zip(orders[1:], first_batches[1:]):
            assert np.array_equal(o, orders[0]) and np.array_equal(fb, first_batches[0])
    else:
        assert len({tuple(o) for o in orders}) == 4 and not np.array_equal(first_batches[0], first_batches[1])
