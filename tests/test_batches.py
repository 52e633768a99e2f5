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
