"""Crash safety: a run killed at any moment and resumed ends exactly where an
uninterrupted run ends.

Every training run here is a forked child of a server that imported TensorFlow once
(tests/crash_child.py), so a test can SIGKILL and resume a run twenty times in seconds;
one resume runs as a fresh `python ResNeXt.py` to show it ends at the same bits. The
kill moments come from a seeded RNG (how many checkpoints a child may write, then a
random fraction of two steps) and from the trainer's test hook KIT_TEST_KILL_AT, which
kills the child exactly inside the short windows of a checkpoint write or an evaluation.
Everything is compared bitwise, with --threads 1. The runs cut 64 images into batches of 10
both ways --batches can (epoch: the last batch of each epoch has 4 images; stream: every batch
10, some straddling two passes over the data), so resuming is exact for both. The disk-full
cases patch the writers in this process instead.
"""
import errno
import fcntl
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, checkpoint_variables, tiny_args
from crash_child import ForkServer
from checkpoints import Checkpoints
from conftest import lr_at

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash tests fork a TensorFlow process")

SEED = 20240601  # of the kill schedule; the training seed is the kit's default
TINY = ["--cardinality", "1", "--depth", "4", "--blocks", "1", "--stem_dim", "8", "--out_dims", "8,16,32"]
EPOCHS, SPE = 16, 7  # ceil(64 images / batch 10)
TOTAL = EPOCHS * SPE
TIMING_KEYS = ("images_per_sec", "wall_time")


def run_args(fake, run_dir, batches, *extra):
    return tiny_args(fake, run_dir) + TINY + [
        "--train_subset", "64", "--test_subset", "40", "--batch_size", "10", "--epochs", str(EPOCHS),
        "--ckpt_every_steps", "2", "--keep_checkpoints", "2", "--lr_decay_steps", "30,70",
        "--batches", batches] + list(extra)


@pytest.fixture(scope="module", params=["epoch", "stream"])
def batches(request):
    """--batches of every run of a test (the tests that use the fork server run for both)."""
    return request.param


@pytest.fixture(scope="module")
def server(fake_cifar, tmp_path_factory, batches):
    s = ForkServer(prime_argv=run_args(fake_cifar, tmp_path_factory.mktemp("prime"), batches))
    yield s
    s.close()


def read(path):
    with open(path) as f:
        return f.read()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def wait_for_line(server, pid, log, text, timeout=120):
    """Wait until `text` is in the child's log: None, or the child's (code, signal) if it
    ended first (the server has then reaped it)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.exists(log) and text in read(log):
            return None
        done = server.poll(pid)
        if done is not None:
            return done
        time.sleep(0.005)
    raise AssertionError("%s never printed %r:\n%s" % (log, text, read(log)))


def latest(run_dir):
    try:
        return read(os.path.join(run_dir, "checkpoints", "latest")).strip()
    except IOError:
        return None


def step_of(name):
    """step-00000042 or .tmp-step-00000042 -> 42; None -> -1."""
    return int(name.rsplit("-", 1)[1]) if name else -1


def final_state(run_dir):
    """(variables, meta) of the checkpoint `latest` names, read without the trainer."""
    folder = os.path.join(run_dir, "checkpoints", latest(run_dir))
    with open(os.path.join(folder, "meta.json")) as f:
        return checkpoint_variables(folder), json.load(f)


def assert_same_run(run_dir, ref_dir):
    a, meta_a = final_state(run_dir)
    b, meta_b = final_state(ref_dir)
    assert sorted(a) == sorted(b)
    assert len(a) > 20  # weights, BN statistics, momentum slots, global_step
    different = [n for n in a if not np.array_equal(a[n], b[n])]
    assert not different, "variables differ from the uninterrupted run: %s" % different[:5]
    assert int(a["global_step"]) == int(b["global_step"]) == TOTAL
    strip = lambda h: [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in h]  # noqa: E731
    assert strip(meta_a["history"]) == strip(meta_b["history"])  # losses, accuracies, lr of every epoch
    assert [r["epoch"] for r in meta_a["history"]] == list(range(1, EPOCHS + 1))
    lrs = [r["lr"] for r in meta_a["history"]]
    assert lrs[-1] == lr_at(TOTAL - 1, meta_a["config"]["hparams"], SPE) == pytest.approx(0.001)
    assert len(set(lrs)) == 3  # the schedule really changed twice along the way
    no_speed = lambda path: [l.rsplit(", images/s", 1)[0] for l in read(path).splitlines()]  # noqa: E731
    assert no_speed(os.path.join(run_dir, "logs.txt")) == no_speed(os.path.join(ref_dir, "logs.txt"))
    assert len(no_speed(os.path.join(run_dir, "logs.txt"))) == EPOCHS


def truncate(path, keep=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


def start_damaged_copy(fake, ref_dir, root, batches):
    """Copy the finished run, truncate its newest checkpoint's weights, leave a .tmp folder
    that looks complete, and start `python ResNeXt.py` on it in a fresh process."""
    run_dir = str(root / "run")
    shutil.copytree(ref_dir, run_dir)
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    newest, previous = ["step-%08d" % s for s in sorted(
        int(d[5:]) for d in os.listdir(ckpt_dir) if d.startswith("step-"))[-2:][::-1]]
    assert latest(run_dir) == newest
    truncate(os.path.join(ckpt_dir, newest, "model.data-00000-of-00001"))
    tmp = os.path.join(ckpt_dir, ".tmp-step-%08d" % (TOTAL + 2))  # a step past the end: taking it would show
    shutil.copytree(os.path.join(ckpt_dir, previous), tmp)
    proc = subprocess.Popen([sys.executable, "ResNeXt.py"] + run_args(fake, run_dir, batches), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    return dict(proc=proc, run_dir=run_dir, newest=newest, previous=previous, tmp=tmp)


@pytest.fixture(scope="module")
def reference(server, fake_cifar, tmp_path_factory, batches):
    """An uninterrupted run and its pace (seconds per step, after the first epoch).

    Also starts the fresh process of test_damaged_newest_checkpoint_falls_back_in_a_fresh_process
    on a damaged copy of it, so that its TF start-up overlaps the kill test on the second core.
    """
    root = tmp_path_factory.mktemp("reference")
    run_dir, log = str(root / "run"), str(root / "log.txt")
    assert server.run(run_args(fake_cifar, run_dir, batches), log) == (0, None), read(log)
    history = [json.loads(l) for l in read(os.path.join(run_dir, "metrics.jsonl")).splitlines()]
    assert len(history) == EPOCHS
    assert json.loads(read(os.path.join(run_dir, "config.json")))["hparams"]["batches"] == batches
    epoch_seconds = [(64.0 if batches == "epoch" else 70.0) / r["images_per_sec"] for r in history[1:]]
    damaged = start_damaged_copy(fake_cifar, run_dir, tmp_path_factory.mktemp("damaged"), batches)
    yield dict(run_dir=run_dir, step=float(np.median(epoch_seconds)) / SPE, damaged=damaged)
    if damaged["proc"].poll() is None:
        damaged["proc"].kill()
        damaged["proc"].communicate()


def test_sigkill_at_random_moments_loses_nothing(server, reference, fake_cifar, tmp_path, batches):
    """22 SIGKILLs across one run, each followed by a resume: the final weights, step,
    learning rate, history and logs equal the uninterrupted run's, bit for bit."""
    rng = random.Random(SEED)
    # Named moments inside a checkpoint write and an evaluation, plus kills at random times.
    plan = [("checkpoint-files", 1), ("checkpoint-files", 3), ("checkpoint-renamed", 1), ("checkpoint-renamed", 2),
            ("evaluate", 1), ("evaluate", 2)] + [("time", None)] * 16
    rng.shuffle(plan)
    run_dir = str(tmp_path / "run")
    ckpts = Checkpoints(run_dir)
    # A timed kill waits for the child to write 0, 1 or 2 checkpoints, then lands at a random
    # moment of the next two steps: inside a step mostly, sometimes in an evaluation or a
    # checkpoint write. Counting checkpoints rather than seconds keeps every child's progress
    # small (the run outlasts all the kills) however fast or loaded the machine is.
    def kill_later(pid):
        """SIGKILL the child as planned; its (code, signal) if it ended before, else None."""
        seen, writes = latest(run_dir), rng.randint(0, 2)
        pause = rng.uniform(0, 2) * reference["step"]
        while writes:
            ended = server.poll(pid)
            if ended is not None:
                return ended
            if latest(run_dir) != seen:
                seen, writes = latest(run_dir), writes - 1
            time.sleep(0.002)
        time.sleep(pause)
        os.kill(pid, signal.SIGKILL)

    kills, logs, hit = 0, [], set()
    for i, (point, n) in enumerate(plan):
        log = str(tmp_path / ("log-%02d.txt" % i))
        logs.append(log)
        before = latest(run_dir)
        env = {"KIT_TEST_KILL_AT": "%s:%d" % (point, n)} if point != "time" else {}
        pid = server.start(run_args(fake_cifar, run_dir, batches), log, env)
        ended = wait_for_line(server, pid, log, "trainable parameters")
        if point == "time" and ended is None:
            ended = kill_later(pid)
        code, sig = ended or server.wait(pid)
        if before is not None:
            assert "resumed from %s:" % os.path.join(run_dir, "checkpoints", before) in read(log), read(log)
        assert code is None, "child %d (%s) finished before the kill: make the run longer\n%s" % (i, point, read(log))
        assert sig == signal.SIGKILL
        kills += 1
        # The guarantee itself: whatever the moment, `latest` names an intact checkpoint.
        now = latest(run_dir)
        if now is not None:
            assert ckpts.verify(os.path.join(ckpts.dir, now)) is not None, "after kill %d `latest` is damaged" % i
        partial = [d for d in os.listdir(ckpts.dir) if d.startswith(".tmp-")] if os.path.isdir(ckpts.dir) else []
        if point == "checkpoint-files":  # killed with a .tmp folder holding TF files: not the latest
            assert len(partial) == 1 and step_of(partial[0]) > step_of(now), (partial, now)
        if point == "checkpoint-renamed":  # killed with step-N in place, `latest` not yet naming it
            assert ckpts.steps()[0] > step_of(now), (ckpts.steps(), now)
        hit.add(point)
    assert kills >= 20 and hit == {"checkpoint-files", "checkpoint-renamed", "evaluate", "time"}
    log = str(tmp_path / "log-final.txt")
    assert server.run(run_args(fake_cifar, run_dir, batches), log) == (0, None), read(log)
    logs.append(log)
    for path in logs:  # `latest` was never damaged, so no resume had to fall back
        assert "damaged" not in read(path) and "Traceback" not in read(path), read(path)
    assert not [d for d in os.listdir(ckpts.dir) if d.startswith(".tmp-")]
    assert_same_run(run_dir, reference["run_dir"])


def test_damaged_newest_checkpoint_falls_back_in_a_fresh_process(reference):
    """With the newest checkpoint's weights truncated and a complete-looking .tmp folder
    left behind, a new `python ResNeXt.py` says which checkpoint it skipped, resumes from
    the one before, removes the .tmp folder and ends bitwise where the uninterrupted run
    ended (which also shows a fresh process builds the very graph the forked ones use)."""
    d = reference["damaged"]
    out, err = d["proc"].communicate()
    assert d["proc"].returncode == 0, err
    assert "checkpoint %s is incomplete or damaged; resuming from %s instead" % (d["newest"], d["previous"]) in out
    assert "resumed from %s: step %d" % (os.path.join(d["run_dir"], "checkpoints", d["previous"]), TOTAL - 2) in out
    assert not os.path.exists(d["tmp"])
    assert "Traceback" not in err
    assert_same_run(d["run_dir"], reference["run_dir"])


def test_latest_naming_a_missing_folder_falls_back(server, reference, fake_cifar, tmp_path, batches):
    run_dir = str(tmp_path / "run")
    shutil.copytree(reference["run_dir"], run_dir)
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    newest = latest(run_dir)
    shutil.rmtree(os.path.join(ckpt_dir, newest))
    with open(os.path.join(ckpt_dir, "latest"), "w") as f:
        f.write(newest + "\n")
    log = str(tmp_path / "log.txt")
    assert server.run(run_args(fake_cifar, run_dir, batches), log) == (0, None), read(log)
    assert "checkpoint %s is incomplete or damaged; resuming from" % newest in read(log)
    assert_same_run(run_dir, reference["run_dir"])


def test_ctrl_c_checkpoints_at_the_next_step_and_a_second_one_stops_at_once(server, reference, fake_cifar, tmp_path,
                                                                             batches):
    """SIGTERM (or one Ctrl-C) stops at the next step with a checkpoint and exit code 130; a
    second signal stops at once with one line; either way the run resumes to the same end."""
    run_dir = str(tmp_path / "run")
    ckpts = Checkpoints(run_dir)
    log = str(tmp_path / "term.txt")
    pid = server.start(run_args(fake_cifar, run_dir, batches), log)
    assert wait_for_line(server, pid, log, "epoch: 1/") is None, read(log)
    os.kill(pid, signal.SIGTERM)
    assert server.wait(pid) == (130, None), read(log)
    m = re.search(r"interrupted at step (\d+): checkpoint written; run the same command to resume\n$", read(log))
    assert m, read(log)
    stopped = int(m.group(1))
    assert latest(run_dir) == "step-%08d" % stopped and ckpts.verify(ckpts.path(stopped)) is not None
    log = str(tmp_path / "twice.txt")
    pid = server.start(run_args(fake_cifar, run_dir, batches), log)
    assert wait_for_line(server, pid, log, "epoch: ") is None, read(log)
    assert "resumed from %s:" % ckpts.path(stopped) in read(log)
    os.kill(pid, signal.SIGINT)  # two different signals, so that Python runs the handler twice
    os.kill(pid, signal.SIGTERM)
    assert server.wait(pid) == (130, None), read(log)
    assert read(log).endswith("\nerror: stopped at once, without a new checkpoint; run the same command to resume "
                              "from the last one\n"), read(log)
    assert "Traceback" not in read(log)
    assert ckpts.verify(os.path.join(ckpts.dir, latest(run_dir))) is not None
    log = str(tmp_path / "final.txt")
    assert server.run(run_args(fake_cifar, run_dir, batches), log) == (0, None), read(log)
    assert_same_run(run_dir, reference["run_dir"])


def test_second_run_on_a_run_folder_is_refused_until_the_first_dies(server, fake_cifar, tmp_path, batches):
    run_dir = str(tmp_path / "run")
    first = server.start(run_args(fake_cifar, run_dir, batches), str(tmp_path / "first.txt"))
    assert wait_for_line(server, first, str(tmp_path / "first.txt"), "trainable parameters") is None
    second_log = str(tmp_path / "second.txt")
    assert server.run(run_args(fake_cifar, run_dir, batches), second_log) == (2, None)
    lines = read(second_log).splitlines()
    assert lines == ["error: run folder %s is in use by another training process (pid %d): wait for it to finish "
                     "or pass another --run_dir" % (run_dir, first)]
    assert server.poll(first) is None  # the refused run left the first one alone
    os.kill(first, signal.SIGKILL)
    assert server.wait(first) == (None, signal.SIGKILL)
    fd = os.open(os.path.join(run_dir, "LOCK"), os.O_RDWR)
    try:  # the OS dropped the dead process's lock although the LOCK file is still there
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except (IOError, OSError) as e:
        pytest.fail("LOCK still held after SIGKILL: %s" % errno.errorcode.get(e.errno))
    finally:
        os.close(fd)
    third_log = str(tmp_path / "third.txt")
    third = server.start(run_args(fake_cifar, run_dir, batches), third_log)
    assert wait_for_line(server, third, third_log, "trainable parameters") is None, read(third_log)
    os.kill(third, signal.SIGKILL)
    server.wait(third)


# ----------------------------------------------------------------------------- disk full (in this process)

def no_space(path=None):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


@pytest.mark.parametrize("where", ["tf files", "latest", "logs"])
def test_disk_full_at_checkpoint_time_keeps_the_last_checkpoint(where, fake_cifar, tmp_path, monkeypatch):
    """Out of space while writing step 4's checkpoint (TF's files, or `latest`), or the
    epoch's log lines right after it: exit 3 with one line, the last checkpoint intact, no
    .tmp folder left, and the same command resumes once there is space again."""
    import ResNeXt
    from compat import tf
    from conftest import run_main
    if where == "tf files":
        real_save, calls = tf.train.Saver.save, []

        def save(saver, sess, path, *args, **kwargs):  # step 2 is written; step 4 gets a partial file
            calls.append(path)
            if len(calls) == 1:
                return real_save(saver, sess, path, *args, **kwargs)
            with open(path + ".data-00000-of-00001", "wb") as f:
                f.write(b"\0" * 100)
            raise tf.errors.ResourceExhaustedError(None, None, "%s; No space left on device" % path)
        monkeypatch.setattr(tf.train.Saver, "save", save)
    elif where == "latest":
        import checkpoints
        real_write = checkpoints.write_atomic

        def write_atomic(path, text):  # the first checkpoint names itself; the second cannot
            if os.path.basename(path) == "latest" and os.path.exists(path):
                raise no_space(path + ".tmp")
            return real_write(path, text)
        monkeypatch.setattr(checkpoints, "write_atomic", write_atomic)
    else:
        def append_logs(run_dir, rec, epochs):
            raise no_space(os.path.join(run_dir, "metrics.jsonl"))
        import runlogs
        monkeypatch.setattr(runlogs, "append_logs", append_logs)
    run = tmp_path / "run"
    argv = tiny_args(fake_cifar, run) + TINY + ["--train_subset", "60", "--test_subset", "40", "--batch_size", "10",
                                                 "--steps", "4", "--ckpt_every_steps", "2"]
    code, out, err = run_main(ResNeXt, argv)
    assert code == 3 and "Traceback" not in err and len(err.splitlines()) == 1, (code, err)
    assert err.startswith("error: ") and "No space left on device" in err
    assert "free space" in err and "run the same command to resume" in err
    ck = Checkpoints(str(run))
    kept = "step-00000004" if where == "logs" else "step-00000002"
    assert ck.latest_name() == kept and ck.verify(os.path.join(ck.dir, kept)) is not None
    if where != "logs":
        assert "could not write the checkpoint of step 4" in err and "%s is intact" % kept in err
    assert not [d for d in os.listdir(ck.dir) if d.startswith(".tmp-")]
    monkeypatch.undo()
    code, out, err = run_main(ResNeXt, argv)
    assert code == 0, err
    assert "resumed from %s" % os.path.join(ck.dir, kept) in out
    assert ck.latest_name() == "step-00000004" and ck.verify(ck.path(4)) is not None
    assert len(read(str(run / "logs.txt")).splitlines()) == 1  # the epoch's line, whichever run wrote it


# ----------------------------------------------------------------------------- damaged checkpoints (in this process)

def damaged_run(fake, tmp_path, damage):
    """ResNeXt trained 6 steps with a checkpoint every step (3 kept: steps 6, 5, 4), then the
    weights of the steps in `damage` truncated; returns (argv without --steps, Checkpoints)."""
    import ResNeXt
    from conftest import run_main
    argv = tiny_args(fake, tmp_path / "run") + TINY + ["--train_subset", "60", "--test_subset", "40",
                                                       "--batch_size", "10", "--keep_checkpoints", "3"]
    code, out, err = run_main(ResNeXt, argv + ["--steps", "6", "--ckpt_every_steps", "1"])
    assert code == 0, err
    ck = Checkpoints(str(tmp_path / "run"))
    assert ck.steps() == [6, 5, 4] and ck.latest_name() == "step-00000006"
    for step in damage:
        os.truncate(os.path.join(ck.path(step), "model.data-00000-of-00001"), 100)
        assert ck.verify(ck.path(step)) is None
    return argv, ck


def intact(ck):
    return [s for s in ck.steps() if ck.verify(ck.path(s)) is not None]


def test_damaged_checkpoints_do_not_crowd_out_a_restart(fake_cifar, tmp_path):
    """With every checkpoint damaged the run starts again from scratch; its new checkpoints are
    kept (the damaged ones, numbered above them, neither count nor go), so the next command
    resumes from them, and the run goes on to replace the damaged ones."""
    import ResNeXt
    from conftest import run_main
    argv, ck = damaged_run(fake_cifar, tmp_path, damage=[4, 5, 6])
    code, out, err = run_main(ResNeXt, argv + ["--steps", "2", "--ckpt_every_steps", "1"])
    assert code == 0, err
    assert "no intact checkpoint in %s (damaged: step-00000006, step-00000005, step-00000004); starting from " \
           "scratch" % ck.dir in out
    assert ck.steps() == [6, 5, 4, 2, 1] and intact(ck) == [2, 1] and ck.latest_name() == "step-00000002"
    # This process has not looked at steps 4 to 6: its first checkpoints must not make way for them.
    code, out, err = run_main(ResNeXt, argv + ["--steps", "4", "--ckpt_every_steps", "1"])
    assert code == 0, err
    assert "resumed from %s: step 2" % ck.path(2) in out and "incomplete or damaged" not in out
    assert ck.steps() == [6, 5, 4, 3, 2] and intact(ck) == [4, 3, 2] and ck.latest_name() == "step-00000004"
    code, out, err = run_main(ResNeXt, argv + ["--steps", "6", "--ckpt_every_steps", "1"])
    assert code == 0, err
    assert "resumed from %s: step 4" % ck.path(4) in out
    assert ck.steps() == intact(ck) == [6, 5, 4] and ck.latest_name() == "step-00000006"


def test_a_damaged_checkpoint_neither_counts_nor_goes(fake_cifar, tmp_path):
    """Steps 6 and 5 damaged: the run resumes from step 4 and checkpoints every other step.
    Step 5, not written again, stays as evidence and does not count, so step 4 stays until three
    intact ones are newer; step 6, written again, counts like any other."""
    import ResNeXt
    from conftest import run_main
    argv, ck = damaged_run(fake_cifar, tmp_path, damage=[5, 6])
    code, out, err = run_main(ResNeXt, argv + ["--steps", "10", "--ckpt_every_steps", "2"])
    assert code == 0, err
    assert "checkpoint step-00000006, step-00000005 is incomplete or damaged; resuming from step-00000004" in out
    assert ck.steps() == [10, 8, 6, 5] and intact(ck) == [10, 8, 6] and ck.latest_name() == "step-00000010"


def test_a_meta_json_of_the_wrong_shape_is_a_damaged_checkpoint(fake_cifar, tmp_path):
    """A meta.json that is JSON but not what `save` writes (a list, a string, "files" that is no
    dict, a "config" that is none): the checkpoint is skipped as a damaged one, by --eval and by a
    resume, which use the one before; no checkpoint is touched."""
    import ResNeXt
    from conftest import run_main
    argv, ck = damaged_run(fake_cifar, tmp_path, damage=[])
    for text in ('[]', '"x"', '{"files": 5}', '{"files": {}, "config": []}'):
        with open(os.path.join(ck.path(6), "meta.json"), "w") as f:
            f.write(text)
        before = folder_state(ck.dir)
        code, out, err = run_main(ResNeXt, argv + ["--eval"])
        assert code == 0 and "Traceback" not in err, (text, err)
        assert "checkpoint step-00000006 is incomplete or damaged; evaluating step-00000005 instead" in out, text
        assert "checkpoint %s on " % ck.path(5) in out
        code, out, err = run_main(ResNeXt, argv + ["--steps", "5"])
        assert code == 0 and "Traceback" not in err, (text, err)
        assert "checkpoint step-00000006 is incomplete or damaged; resuming from step-00000005 instead" in out, text
        assert "resumed from %s: step 5" % ck.path(5) in out
        assert folder_state(ck.dir) == before


def test_eval_of_a_damaged_checkpoint_says_it_evaluates_the_one_before(fake_cifar, tmp_path):
    """--eval resumes nothing: it names the checkpoint it evaluates instead, and with none intact
    it says so without "starting from scratch"; the checkpoints stay as they were."""
    import ResNeXt
    from conftest import run_main
    argv, ck = damaged_run(fake_cifar, tmp_path, damage=[6])
    before = folder_state(ck.dir)
    code, out, err = run_main(ResNeXt, argv + ["--eval"])
    assert code == 0, err
    assert "checkpoint step-00000006 is incomplete or damaged; evaluating step-00000005 instead\n" in out
    assert "checkpoint %s on " % ck.path(5) in out and "resum" not in out
    assert folder_state(ck.dir) == before
    for step in (5, 4):
        os.truncate(os.path.join(ck.path(step), "model.data-00000-of-00001"), 100)
    before = folder_state(ck.dir)
    code, out, err = run_main(ResNeXt, argv + ["--eval"])
    assert (code, err) == (2, "error: no checkpoint in %s: train first, or pass --run_dir/--ckpt_path\n"
                           % os.path.dirname(ck.dir))
    assert "no intact checkpoint in %s (damaged: step-00000006, step-00000005, step-00000004)\n" % ck.dir in out
    assert "scratch" not in out
    assert folder_state(ck.dir) == before


@pytest.mark.parametrize("kind", ["no name", "out of the folder"])
def test_a_latest_that_names_no_checkpoint_folder_here_is_damaged(kind, fake_cifar, tmp_path):
    """`latest` holding bytes that are no name, or a path out of this run's checkpoints folder (into
    another run): it is not followed; the run says it is damaged and resumes from its newest intact
    checkpoint, and neither run's checkpoints are touched."""
    import ResNeXt
    from conftest import run_main
    argv, ck = damaged_run(fake_cifar, tmp_path, damage=[])
    other = str(tmp_path / "other")
    shutil.copytree(os.path.dirname(ck.dir), other)
    texts = {"no name": [b"\xff\xfe\x80\x00garbage\n", b"step-x\n", b"\n"],
             "out of the folder": [b"../../other/checkpoints/step-00000004\n",
                                   os.path.join(other, "checkpoints", "step-00000004").encode() + b"\n",
                                   b"step-00000006/../../../other/checkpoints/step-00000004\n"]}[kind]
    for text in texts:
        with open(os.path.join(ck.dir, "latest"), "wb") as f:
            f.write(text)
        assert ck.latest_name() is None, text
        before, theirs = folder_state(ck.dir), folder_state(other)
        code, out, err = run_main(ResNeXt, argv + ["--steps", "6"])
        assert code == 0 and "Traceback" not in err, (text, err)
        assert "checkpoint latest is incomplete or damaged; resuming from step-00000006 instead" in out, text
        assert "resumed from %s: step 6" % ck.path(6) in out, text
        assert folder_state(ck.dir) == before and folder_state(other) == theirs


# ----------------------------------------------------------------------------- an error making a batch

def test_an_error_making_a_batch_ends_the_run_at_that_step_and_keeps_the_checkpoint(fake_cifar, tmp_path,
                                                                                    monkeypatch):
    """An exception in the thread that makes batches one step ahead comes out of the run at the
    step that needed the batch, as itself, instead of leaving the loop waiting for a batch that
    never comes; the last checkpoint stays as it was."""
    import ResNeXt
    from batches import Batches
    from conftest import run_main
    run = tmp_path / "run"
    argv = tiny_args(fake_cifar, run) + TINY + ["--train_subset", "60", "--test_subset", "40", "--batch_size", "10",
                                                 "--ckpt_every_steps", "2"]
    assert run_main(ResNeXt, argv + ["--steps", "4"])[0] == 0
    ck = Checkpoints(str(run))
    kept = {name: read_bytes(os.path.join(ck.path(4), name)) for name in os.listdir(ck.path(4))}
    real, made = Batches.batch, []

    def batch(self, epoch, index, order=None):  # the sixth step's batch cannot be made
        made.append(epoch * self.steps_per_epoch + index)
        if made[-1] == 5:
            raise ValueError("Seed must be between 0 and 2**32 - 1")
        return real(self, epoch, index, order)
    monkeypatch.setattr(Batches, "batch", batch)

    def hung(signum, frame):
        raise AssertionError("the run still waits for the batch that failed")
    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        with pytest.raises(ValueError, match=r"Seed must be between 0 and 2\*\*32 - 1"):
            run_main(ResNeXt, argv + ["--steps", "8"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert made == [4, 5]  # resumed at step 4; the fifth trained, no batch after the one that failed
    assert ck.steps() == [4, 2] and ck.latest_name() == "step-00000004"
    assert {name: read_bytes(os.path.join(ck.path(4), name)) for name in os.listdir(ck.path(4))} == kept


# ----------------------------------------------------------------------------- a run with nothing left to train

def folder_state(run_dir):
    """{path: (bytes, inode, mtime)} of every file of a run folder but LOCK, which each command rewrites
    with its pid: a file rewritten with the same bytes (replaced atomically) shows too."""
    found = {}
    for root, _, files in os.walk(str(run_dir)):
        for name in files:
            path = os.path.join(root, name)
            if os.path.relpath(path, str(run_dir)) != "LOCK":
                st = os.stat(path)
                found[os.path.relpath(path, str(run_dir))] = (read_bytes(path), st.st_ino, st.st_mtime_ns)
    return found


def short_args(fake, run_dir, *extra):
    """The tiny ResNeXt, 2 steps per epoch (20 images in batches of 10)."""
    return tiny_args(fake, run_dir) + TINY + ["--train_subset", "20", "--test_subset", "20", "--batch_size", "10",
                                              "--epochs", "2"] + list(extra)


@pytest.fixture(scope="module")
def finished(fake_cifar, tmp_path_factory):
    """A run trained to its end: --epochs 2, step 4."""
    import ResNeXt
    from conftest import run_main
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    code, out, err = run_main(ResNeXt, short_args(fake_cifar, run_dir))
    assert code == 0, err
    return run_dir


@pytest.mark.parametrize("flags, line", [
    ([], "{} is finished: step 4 of 4 (--epochs 2) done; pass a larger --epochs (or --steps) to train on, or --eval "
         "to evaluate it"),
    (["--steps", "3"], "{} is finished: it was trained to step 4, past this command's --steps 3; pass a larger "
                       "--steps to train on, or --eval to evaluate it"),
    (["--epochs", "1"], "{} is finished: it was trained to step 4, past this command's --epochs 1 (step 2); pass a "
                        "larger --epochs (or --steps) to train on, or --eval to evaluate it"),
])
def test_a_finished_run_is_left_as_it_is(flags, line, finished, fake_cifar, tmp_path, monkeypatch):
    """The same command again, or one with a shorter length, finds nothing to train: it says so in
    one line, exits 0 and leaves every file as it was (config.json and logs.txt once took the new
    length, contradicting the run they describe), and `train` still returns the last epoch's record."""
    import ResNeXt
    import runlogs
    import trainer
    from conftest import run_main, settings
    real, opened = runlogs.Scalars, []
    monkeypatch.setattr(runlogs, "Scalars", lambda logdir: opened.append(logdir) or real(logdir))
    run_dir = tmp_path / "run"
    shutil.copytree(str(finished), str(run_dir))
    before = folder_state(run_dir)
    code, out, err = run_main(ResNeXt, short_args(fake_cifar, run_dir, *flags))
    assert code == 0 and "Traceback" not in err, err
    assert out.splitlines()[-2].startswith("resumed from %s: step 4 " % os.path.join(str(run_dir), "checkpoints",
                                                                                      "step-00000004"))
    assert out.splitlines()[-1] == line.format(run_dir), out
    assert folder_state(run_dir) == before
    said = []
    rec = trainer.train("ResNeXt", ResNeXt.Build_ResNext, settings(ResNeXt, short_args(fake_cifar, run_dir, *flags)),
                        log=said.append)
    assert said[-1] == line.format(run_dir)
    assert rec == json.loads(read(str(run_dir / "metrics.jsonl")).splitlines()[-1]) and rec["step"] == 4
    assert folder_state(run_dir) == before and opened == []  # no TensorBoard writer either


def test_a_finished_run_gets_back_the_log_lines_a_crash_left_out(finished, fake_cifar, tmp_path):
    """Killed between its last checkpoint and that epoch's log lines (or out of space there): the next
    command finds nothing to train and writes the lines back from the checkpoint, with the run's own
    epoch count, not this command's; config.json, which matches the checkpoint, is not touched."""
    import ResNeXt
    from conftest import run_main
    run_dir = tmp_path / "run"
    shutil.copytree(str(finished), str(run_dir))
    before = folder_state(run_dir)
    for name in ("logs.txt", "metrics.jsonl"):
        with open(str(run_dir / name), "w") as f:
            f.write(read(str(finished / name)).splitlines(True)[0])
    code, out, err = run_main(ResNeXt, short_args(fake_cifar, run_dir, "--epochs", "1"))
    assert code == 0 and out.splitlines()[-1].startswith("%s is finished: it was trained to step 4" % run_dir), err
    after = folder_state(run_dir)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert read(str(run_dir / "logs.txt")).splitlines()[1].startswith("epoch: 2/2, ")
    assert after["config.json"] == before["config.json"]

def test_a_run_at_its_step_limit_is_left_as_it_is_and_goes_on_without_it(fake_cifar, tmp_path, monkeypatch):
    """KIT_MAX_STEPS=3 stops a 4-step run at step 3; the same command under the same limit, or a
    lower one, finds nothing to train, says which limit holds it and changes nothing; without the
    limit the run goes on to its end."""
    import ResNeXt
    from conftest import run_main
    run_dir = tmp_path / "run"
    monkeypatch.setenv("KIT_MAX_STEPS", "3")
    assert run_main(ResNeXt, short_args(fake_cifar, run_dir))[0] == 0
    before = folder_state(run_dir)
    assert Checkpoints(str(run_dir)).latest_name() == "step-00000003"
    for limit, where in (("3", "at step 3"), ("2", "at step 3, past step 2")):
        monkeypatch.setenv("KIT_MAX_STEPS", limit)
        code, out, err = run_main(ResNeXt, short_args(fake_cifar, run_dir))
        assert code == 0 and "Traceback" not in err, err
        assert out.splitlines()[-1] == ("%s is %s, where KIT_MAX_STEPS=%s ends this run: nothing to train; unset "
                                        "KIT_MAX_STEPS or raise it to train on to step 4" % (run_dir, where, limit))
        assert folder_state(run_dir) == before
    monkeypatch.delenv("KIT_MAX_STEPS")
    code, out, err = run_main(ResNeXt, short_args(fake_cifar, run_dir))
    assert code == 0, err
    assert [l.split(",")[0] for l in read(str(run_dir / "logs.txt")).splitlines()] == ["epoch: 1/2", "epoch: 2/2"]
    assert Checkpoints(str(run_dir)).latest_name() == "step-00000004"


def test_config_json_is_written_one_way_and_an_empty_record_leaves_it(tmp_path):
    """config.json as a fresh run writes it (write_atomic) and as a finished one writes it back
    (write_if_changed): one serialisation, so the second finds the first's bytes and leaves the file;
    a checkpoint with no config record leaves config.json as it is."""
    import runlogs
    from checkpoints import write_if_changed
    config = dict(model="ResNeXt", hparams=dict(lr=0.1, batch_size=128), epochs_planned=2)
    runlogs.rewrite_records(str(tmp_path), config, [], 2)
    path = str(tmp_path / "config.json")
    assert read(path) == ('{\n "epochs_planned": 2,\n "hparams": {\n  "batch_size": 128,\n  "lr": 0.1\n },\n'
                          ' "model": "ResNeXt"\n}\n')
    st = os.stat(path)
    for record in (dict(config), {}):
        runlogs.rewrite_records(str(tmp_path), record, [], 2, write=write_if_changed)
        assert (os.stat(path).st_ino, os.stat(path).st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert json.loads(read(path)) == config


def test_a_write_the_disk_refuses_keeps_the_old_file_and_leaves_no_half_copy(tmp_path, monkeypatch):
    """config.json and logs are written through write_atomic: on a full disk the old file stays as it
    was, and the half-written `.tmp` beside it is gone, so the folder holds nothing the next run trips on."""
    from checkpoints import write_atomic
    path = str(tmp_path / "config.json")
    write_atomic(path, "old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as e:
        write_atomic(path, "new\n")
    assert e.value.errno == errno.ENOSPC
    assert read(path) == "old\n" and sorted(os.listdir(str(tmp_path))) == ["config.json"]
