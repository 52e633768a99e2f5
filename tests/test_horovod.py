"""Data-parallel training (distributed.py, docs/horovod.md).

The sharding, learning-rate scaling and session hooks are checked in-process everywhere.
Where Horovod is installed (requirements/horovod.sh), real 2-process runs on loopback with
Gloo check that both ranks end with identical weights equal to a single process trained on
the combined batches, that rank 1 writes nothing, and that a killed run resumes.
"""
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from conftest import ROOT, checkpoint_variables, lr_at, run_main, settings
import distributed
from compat import tf
from batches import Batches
from checkpoints import Checkpoints
from graph import learning_rate
from settings import COMMON_DEFAULTS, EXIT_USAGE, KitError

HOROVODRUN = os.path.join(os.path.dirname(sys.executable), "horovodrun")
if importlib.util.find_spec("horovod") is None:
    NO_HOROVOD = "Horovod is not installed for %s: build it with `./kit bash requirements/horovod.sh`" % sys.executable
elif not os.path.exists(HOROVODRUN):
    NO_HOROVOD = "Horovod is installed but %s is missing" % HOROVODRUN
else:
    NO_HOROVOD = None
needs_horovod = pytest.mark.skipif(NO_HOROVOD is not None, reason=NO_HOROVOD or "")


def fake_hvd(rank=0, size=2, local_rank=None, local_size=None):
    """A stand-in for horovod.tensorflow that reports the topology given."""
    return types.SimpleNamespace(init=lambda: None, rank=lambda: rank, size=lambda: size,
                                 local_rank=lambda: rank if local_rank is None else local_rank,
                                 local_size=lambda: size if local_size is None else local_size)


def fake_dist(rank=0, size=2, batch_size=5, warmup_epochs=5.0, scale_lr=True, local_rank=None, local_size=None,
              threads=0):
    """The Horovod hook object a process of that topology builds from those flags, without Horovod."""
    hp = dict(batch_size=batch_size, hvd_warmup_epochs=warmup_epochs, hvd_scale_lr=scale_lr, threads=threads)
    return distributed.Horovod(hp, hvd=fake_hvd(rank, size, local_rank, local_size))


# ----------------------------------------------------------------------------- in-process

@pytest.mark.parametrize("n,size,bs", [(250, 2, 5), (103, 3, 4), (7, 4, 3), (2, 4, 3)])
def test_shard_gives_every_rank_the_same_steps_and_the_combined_batches(n, size, bs):
    order = np.random.RandomState(n).permutation(n)
    g = size * bs
    ids = np.arange(n)
    shards = [fake_dist(r, size, bs).shard(order) for r in range(size)]
    per_rank = [Batches(ids, ids, bs, 0, False, shard=fake_dist(r, size, bs).shard) for r in range(size)]
    # Equal steps on every rank, as many as a single process with batch size*bs takes.
    assert len(set(len(s) for s in shards)) == 1
    assert [b.steps_per_epoch for b in per_rank] == [int(math.ceil(n / float(g)))] * size
    padded = np.resize(order, len(shards[0]) * size)
    assert set(padded[n:]) <= set(order[:size])  # padding repeats the epoch's first images
    for k in range(per_rank[0].steps_per_epoch):
        union = np.concatenate([s[k * bs:(k + 1) * bs] for s in shards])
        assert sorted(union) == sorted(padded[k * g:(k + 1) * g])
    assert set(np.concatenate(shards)) == set(order)


def test_shard_is_what_batches_feed_each_rank():
    n, bs = 40, 4
    x = np.arange(n).reshape(n, 1, 1, 1).astype(np.float32)
    y = np.arange(n)
    single = Batches(x, y, 2 * bs, 3, False)
    ranks = [Batches(x, y, bs, 3, False, shard=fake_dist(r, 2, bs).shard, rank=r) for r in (0, 1)]
    for epoch in (0, 1):
        for k in range(single.steps_per_epoch):
            _, combined = single.batch(epoch, k)
            parts = [b.batch(epoch, k)[1] for b in ranks]
            assert not set(parts[0]) & set(parts[1])
            assert sorted(np.concatenate(parts)) == sorted(combined)


@pytest.mark.parametrize("n,size,bs", [(43, 2, 4), (25, 3, 4), (5, 2, 4)])
def test_a_stream_deals_every_global_batch_over_the_ranks(n, size, bs):
    """--batches stream: step k of rank r is its r::size share of the single process's step k at
    batch size x bs, every rank batch full, across the ends of the passes."""
    x = np.zeros((n, 1, 1, 1), np.float32)
    y = np.arange(n)
    single = Batches(x, y, size * bs, 3, False, stream=True)
    ranks = [Batches(x, y, bs, 3, False, shard=fake_dist(r, size, bs).shard, rank=r, stream=True,
                     workers=size) for r in range(size)]
    spe = int(math.ceil(n / float(size * bs)))
    assert single.steps_per_epoch == spe and [b.steps_per_epoch for b in ranks] == [spe] * size
    for epoch in range(3):
        for k in range(single.steps_per_epoch):
            combined = single.batch(epoch, k)[1]
            parts = [b.batch(epoch, k)[1] for b in ranks]
            assert [len(p) for p in parts] == [bs] * size
            for r in range(size):
                assert np.array_equal(parts[r], combined[r::size])


def test_rank_zero_augments_like_a_single_process_and_rank_one_differently():
    x = np.random.RandomState(0).rand(16, 8, 8, 3).astype(np.float32)
    y = np.zeros(16, np.int64)
    plain = Batches(x, y, 16, 5, True).batch(2, 0)[0]
    assert np.array_equal(Batches(x, y, 16, 5, True, rank=0).batch(2, 0)[0], plain)
    assert not np.array_equal(Batches(x, y, 16, 5, True, rank=1).batch(2, 0)[0], plain)


def test_lr_scale_ramps_linearly_to_the_number_of_workers():
    d = fake_dist(size=4, warmup_epochs=2)
    spe = 10
    assert fake_dist(size=4, scale_lr=False).lr_scale(None, spe) is None
    assert fake_dist(size=1).lr_scale(None, spe) is None
    hp = dict(COMMON_DEFAULTS, lr=0.1, lr_decay_steps="30", warmup_steps=0)
    graph = tf.Graph()
    with graph.as_default():
        step = tf.placeholder(tf.int64, [])
        scale = d.lr_scale(step, spe)
        lr = learning_rate(step, hp, spe, d)
        zero = learning_rate(step, hp, spe, fake_dist(size=4, warmup_epochs=0))
        with tf.Session(graph=graph) as sess:
            assert [sess.run(scale, {step: s}) for s in (0, 5, 10, 20, 500)] == [1.0, 1.75, 2.5, 4.0, 4.0]
            for s in (0, 5, 19, 20, 29, 30, 31, 45):  # 30: the decay boundary
                want = (0.1 if s < 30 else 0.01) * (1.0 + 3.0 * min(s / 20.0, 1.0))
                assert lr_at(s, hp, spe) == (0.1 if s < 30 else 0.1 * 0.1)
                assert sess.run(lr, {step: s}) == pytest.approx(want, rel=1e-6)
            assert sess.run(zero, {step: 0}) == pytest.approx(0.4, rel=1e-6)
            assert sess.run(zero, {step: 31}) == pytest.approx(0.04, rel=1e-6)
    assert lr_at(31, hp, spe, fake_dist(size=4, scale_lr=False)) == lr_at(31, hp, spe)  # not scaled: unchanged


def test_configure_pins_one_gpu_per_process_and_shares_the_cpus():
    config = tf.ConfigProto()
    fake_dist(rank=3, size=4, local_rank=1, local_size=2).configure(config)
    assert config.gpu_options.visible_device_list == "1"
    cpus = __import__("multiprocessing").cpu_count()
    assert config.intra_op_parallelism_threads == max(1, cpus // 2)
    assert config.inter_op_parallelism_threads == min(max(1, cpus // 2), 2)
    config = tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)  # --threads 1
    fake_dist(threads=1).configure(config)
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (1, 1)


def test_flag_defaults_and_a_bad_warm_up_is_a_one_line_error(tmp_path):
    d = distributed.Horovod(dict(batch_size=7), hvd=fake_hvd(rank=1, size=3))
    assert (d.rank, d.size, d.is_chief, d.batch_size, d.warmup_epochs, d.scale_lr) == (1, 3, False, 7, 5.0, True)
    for bad in ("-1", "nan"):
        with pytest.raises(KitError, match="--hvd_warmup_epochs must be a number >= 0, got %s" % bad):
            distributed.Horovod(dict(batch_size=7, hvd_warmup_epochs=float(bad)))  # before any Horovod import
    import ResNeXt
    code, out, err = run_main(ResNeXt, ["--horovod", "--hvd_warmup_epochs", "-2", "--run_dir", str(tmp_path / "run")])
    assert code == EXIT_USAGE and err.startswith("error: --hvd_warmup_epochs must be a number >= 0, got -2")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_horovod_is_used_only_under_a_multi_process_launch_or_with_the_flag(monkeypatch):
    for k in ("HOROVOD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert not distributed.requested({})
    assert distributed.requested({"horovod": True})
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")  # mpirun -np 1: a single process after all
    assert not distributed.requested({})
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")  # horovodrun on an MPI build, or mpirun -np 4
    assert distributed.requested({})
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    monkeypatch.setenv("HOROVOD_RANK", "0")  # horovodrun --gloo
    assert distributed.requested({})


def test_a_checkpoint_resumes_only_with_the_number_of_processes_that_wrote_it():
    single, two = {"config": {"model": "ResNeXt"}}, {"config": {"workers": 2}}
    distributed.check_workers("ck", single, None)
    distributed.check_workers("ck", two, fake_dist(size=2))
    with pytest.raises(KitError, match=r"^checkpoint ck was trained by 2 processes and this run has 1: "
                                       r"resume it with horovodrun -np 2, or pass another --run_dir$"):
        distributed.check_workers("ck", two, None)
    with pytest.raises(KitError, match="by 1 process and this run has 4: resume it with a plain python"):
        distributed.check_workers("ck", single, fake_dist(size=4))


def test_the_horovod_flags_at_their_defaults_resume_a_run_started_without_them():
    """--hvd_scale_lr and --hvd_warmup_epochs 5 train as no flag does, in either direction; another warm-up
    is still a change of the run."""
    import ResNeXt
    from checkpoints import check_resume
    without = settings(ResNeXt, [])
    written = settings(ResNeXt, ["--hvd_scale_lr", "--hvd_warmup_epochs", "5"])
    for saved, here in ((without, written), (written, without)):
        check_resume({"config": {"model": "ResNeXt", "hparams": dict(saved)}}, here, "ck", "ResNeXt")
    with pytest.raises(KitError) as e:
        check_resume({"config": {"model": "ResNeXt", "hparams": dict(without)}},
                     settings(ResNeXt, ["--hvd_warmup_epochs", "2"]), "ck", "ResNeXt")
    assert str(e.value) == ("checkpoint ck does not fit this command: it was trained with --hvd_warmup_epochs 5.0, "
                            "this command has --hvd_warmup_epochs 2.0; give --hvd_warmup_epochs 5.0 to resume it, or "
                            "pass another --run_dir")


def test_missing_horovod_is_a_one_line_error(monkeypatch, fake_cifar, tmp_path):
    import ResNeXt
    monkeypatch.setitem(sys.modules, "horovod.tensorflow", None)  # makes the import fail
    monkeypatch.setenv("HOROVOD_RANK", "0")
    code, out, err = run_main(ResNeXt, ["--data_source", fake_cifar["py"], "--trust_data", "--run_dir",
                                        str(tmp_path / "run"), "--steps", "1"])
    assert code == EXIT_USAGE
    assert err.startswith("error: Horovod is not installed") and "requirements/horovod.sh" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    # The build command is that of the environment the script runs in: the default one's builds into .venv-tf1
    for prefix, command in (("/k/.venv-tf1", "./kit bash"), ("/k/.venv-tf2", "KIT_ENV=tf2 ./kit bash"),
                            ("/usr", "PYTHON=%s bash" % sys.executable)):
        monkeypatch.setattr(sys, "prefix", prefix)
        code, out, err = run_main(ResNeXt, ["--run_dir", str(tmp_path / "run"), "--steps", "1"])
        assert code == EXIT_USAGE and ": run `%s requirements/horovod.sh` to build it, or" % command in err, err
    # an interpreter's path with a space is quoted, as a shell that the command is pasted into needs it
    monkeypatch.setattr(sys, "executable", "/opt/my python/bin/python3")
    code, out, err = run_main(ResNeXt, ["--run_dir", str(tmp_path / "run"), "--steps", "1"])
    assert "run `PYTHON='/opt/my python/bin/python3' bash requirements/horovod.sh` to build it" in err, err


@pytest.mark.parametrize("flag", ["--eval", "--summary"])
def test_eval_and_summary_under_horovodrun_are_a_one_line_error(flag, monkeypatch, fake_cifar, tmp_path):
    """Every rank would evaluate (or draw the graph) and write the same files at the same moment."""
    import ResNeXt
    monkeypatch.setenv("HOROVOD_RANK", "1")
    run = tmp_path / "run"
    code, out, err = run_main(ResNeXt, ["--data_source", fake_cifar["py"], "--trust_data", "--run_dir", str(run), flag])
    assert code == EXIT_USAGE and out == ""
    assert err == ("error: %s works in one process: run the same command without horovodrun (or mpirun) and without "
                   "--horovod\n" % flag)
    assert not run.exists()


class BroadcastSession(object):
    """What RunState.start asks of a session: global_step is this rank's own until the broadcast
    brings rank 0's."""

    def __init__(self, own_step, rank0_step):
        self.own_step, self.rank0_step, self.ran = own_step, rank0_step, []

    def run(self, fetch):
        self.ran.append(fetch)
        step = self.rank0_step if "broadcast" in self.ran else self.own_step
        return {"global_step": step, "lr": 0.1, "broadcast": None}[fetch]


def test_every_rank_skips_a_finished_run_and_only_rank_zero_says_so(tmp_path):
    """Rank 0 resumes a finished 2-process run (step 4 of 4): both ranks still run the broadcast (a
    rank that skipped it would leave the other waiting in it forever), both skip the loop, rank 0
    says so in one line, rank 1 says nothing, and neither writes into its run folder."""
    import ResNeXt
    import runlogs
    import runstate
    from conftest import settings
    g = types.SimpleNamespace(steps_per_epoch=2, global_step="global_step", lr="lr", broadcast="broadcast",
                              num_params=1, build_seconds=0.0)
    data = dict(label="CIFAR-10", verified=True, train_x=np.zeros(4), test_x=np.zeros(4))
    rec = dict(epoch=2, step=4, train_loss=2.0, train_acc=0.5, test_loss=2.0, test_acc=0.5, lr=0.1,
               images_per_sec=100.0)
    for rank, own_step in ((0, 4), (1, 0)):
        run_dir = tmp_path / ("rank%d" % rank)
        hp = settings(ResNeXt, ["--run_dir", str(run_dir), "--epochs", "2"])
        if rank == 0:  # its checkpoint of step 4 and its records; no weights, since nothing restores them here
            (run_dir / "checkpoints" / "step-00000004").mkdir(parents=True)
            config = dict(hparams=dict(hp), workers=2, total_steps=4, epochs_planned=2)
            meta = dict(files={}, step=4, history=[rec], config=config)
            (run_dir / "checkpoints" / "step-00000004" / "meta.json").write_text(json.dumps(meta))
            (run_dir / "checkpoints" / "latest").write_text("step-00000004\n")
            runlogs.rewrite_records(str(run_dir), config, [rec], 2)
            written = {f: os.stat(str(run_dir / f)).st_mtime_ns for f in ("config.json", "logs.txt", "metrics.jsonl")}
        said, sess = [], BroadcastSession(own_step, 4)
        with runstate.RunState("ResNeXt", hp, fake_dist(rank=rank, size=2), log=said.append) as run:
            run.start(sess, g, data)
            assert "broadcast" in sess.ran and run.step == 4 and list(run.epochs_left()) == []
        if rank == 0:
            assert said[-1] == ("%s is finished: step 4 of 4 (--epochs 2) done; pass a larger --epochs (or --steps) to "
                                "train on, or --eval to evaluate it" % run_dir)
            assert said[0].startswith("resumed from ") and len(said) == 2 and run.rec == rec
            files = sorted(os.path.relpath(os.path.join(d, f), str(run_dir)) for d, _, fs in os.walk(str(run_dir))
                           for f in fs)
            assert files == ["LOCK", "checkpoints/latest", "checkpoints/step-00000004/meta.json", "config.json",
                             "logs.txt", "metrics.jsonl"]
            assert {f: os.stat(str(run_dir / f)).st_mtime_ns for f in written} == written
        else:
            assert said == [] and run.rec is None and not run_dir.exists()


class VoteSession(BroadcastSession):
    """BroadcastSession that also answers the ranks' stop vote: whether this rank feeds that Ctrl-C or
    SIGTERM reached it, or another rank did at a vote from `others_from` (1-based) on."""

    def __init__(self, others_from=None):
        super(VoteSession, self).__init__(0, 0)
        self.others_from, self.fed = others_from, []

    def run(self, fetch, feed_dict=None):
        if fetch != "any_asked":
            return super(VoteSession, self).run(fetch)
        self.fed.append(feed_dict["asked"])
        return feed_dict["asked"] or (self.others_from is not None and len(self.fed) >= self.others_from)


@pytest.mark.parametrize("others_from,signal_after,trained,fed", [
    (2, None, 2, [False, False]),  # another rank's Ctrl-C: this one stops after the same step
    (None, 2, 3, [False, False, True]),  # its own, after the vote of step 2: at the next vote, with the others
])
def test_every_rank_stops_after_the_step_the_ranks_agree_on(others_from, signal_after, trained, fed, tmp_path):
    """A rank that stopped on its own signal would leave the others waiting in the next step's allreduce,
    to fail there when it exits (rank 0 without writing its checkpoint): every rank stops after the
    first step at whose end any rank had been asked to, and says it was interrupted (exit 130)."""
    import ResNeXt
    import runstate
    from conftest import settings
    g = types.SimpleNamespace(steps_per_epoch=10, global_step="global_step", lr="lr", broadcast="broadcast",
                              stop_vote=("asked", "any_asked"), num_params=1, build_seconds=0.0)
    data = dict(label="CIFAR-10", verified=True, train_x=np.zeros(4), test_x=np.zeros(4))
    hp = settings(ResNeXt, ["--run_dir", str(tmp_path / "rank1"), "--epochs", "2", "--progress", "off"])
    batches = types.SimpleNamespace(iterate=lambda epoch, start, end: ((i, "x", "y") for i in range(start, end)))
    sess, steps = VoteSession(others_from), 0
    with pytest.raises(KitError) as e:
        with runstate.RunState("ResNeXt", hp, fake_dist(rank=1, size=2), log=lambda line: None) as run:
            run.start(sess, g, data)
            for _ in run.batches(batches, 0):
                run.after_step(1.0, 0, 5, 0.1)
                steps += 1
                if steps == signal_after:
                    run._on_signal(signal.SIGTERM, None)
            run.end_epoch()
    assert e.value.code == 130 and (steps, sess.fed) == (trained, fed)
    assert not (tmp_path / "rank1").exists()


# ----------------------------------------------------------------------------- horovodrun

# A model without batch normalisation: with it, a process's batch statistics come from its own
# shard, and the 2-process run would equal a single process only with per-shard ("ghost") BN.
TINY_MODEL = '''
import sys
sys.path.insert(0, %r)
from compat import tf
import trainer


def build(x, training, hp, num_classes):
    x = tf.layers.conv2d(x, 4, 3, strides=2, activation=tf.nn.relu, name="conv")
    return tf.layers.dense(tf.reduce_mean(x, axis=[1, 2]), num_classes, name="linear")


def main(argv=None):
    return trainer.main("Tiny", build, {"original": {}}, lambda g: None, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
'''


def horovodrun(script_args, run_root):
    """horovodrun -np 2 over loopback; rank R trains in run_root/rankR, as if on its own machine."""
    wrapper = 'exec "$0" "$@" --run_dir "$KIT_TEST_RUN_ROOT/rank$HOROVOD_RANK"'
    return [HOROVODRUN, "-np", "2", "-H", "localhost:2", "--gloo", "--network-interfaces", "lo",
            "sh", "-c", wrapper, sys.executable] + list(script_args)


def run_env(run_root):
    return dict(os.environ, KIT_TEST_RUN_ROOT=str(run_root), KIT_DUMP_VARIABLES=str(run_root / "dump"),
                PYTHONUNBUFFERED="1")


def checkpoint_values(run_dir):
    """The variables of the checkpoint `latest` names."""
    return checkpoint_variables(os.path.join(run_dir, "checkpoints", Checkpoints(run_dir).latest_name()))


def latest_step(run_dir):
    name = Checkpoints(run_dir).latest_name()  # step-00000042, or None
    return int(name[5:]) if name else None


@needs_horovod
def test_two_ranks_train_like_one_process_on_the_combined_batches(tmp_path, fake_cifar):
    script = tmp_path / "tiny_model.py"
    script.write_text(TINY_MODEL % ROOT)
    common = ["--data_source", fake_cifar["py"], "--trust_data", "--threads", "1", "--progress", "off",
              "--train_subset", "100", "--test_subset", "20", "--augment=false", "--steps", "6"]
    # 2 ranks x 5 images at lr 0.05 x 2 (no warm-up) against 1 process x 10 images at lr 0.1.
    root = tmp_path / "hvd"
    p = subprocess.run(horovodrun([str(script)] + common + ["--batch_size", "5", "--lr", "0.05",
                                                            "--hvd_warmup_epochs", "0"], root),
                       env=run_env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out[-3000:]

    assert not (root / "rank1").exists(), "rank 1 wrote into its run folder"
    rank0 = root / "rank0"
    assert latest_step(str(rank0)) == 6
    assert sorted(os.listdir(str(rank0))) == ["LOCK", "checkpoints", "config.json", "logs.txt", "metrics.jsonl", "tb"]
    config = json.load(open(str(rank0 / "config.json")))
    assert config["workers"] == 2 and config["steps_per_epoch"] == 10
    rec = [json.loads(line) for line in open(str(rank0 / "metrics.jsonl"))][-1]
    assert rec["step"] == 6 and rec["lr"] == pytest.approx(0.1)

    dumps = [np.load(str(root / ("dump-rank%d.npz" % r))) for r in (0, 1)]
    assert sorted(dumps[0].files) == sorted(dumps[1].files)
    for name in dumps[0].files:
        assert np.array_equal(dumps[0][name], dumps[1][name]), name
    assert int(dumps[0]["global_step"]) == 6
    saved = checkpoint_values(str(rank0))
    for name in dumps[0].files:
        assert np.array_equal(saved[name], dumps[0][name]), name

    spec = importlib.util.spec_from_file_location("tiny_model", str(script))
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    single = {}
    for lr in ("0.1", "0.05"):  # the second one is what a run without lr scaling would have matched
        code, _, err = run_main(tiny, common + ["--batch_size", "10", "--lr", lr, "--run_dir", str(tmp_path / lr)])
        assert code == 0, err
        single[lr] = checkpoint_values(str(tmp_path / lr))
    moved = False
    for name in ("conv/kernel", "conv/bias", "linear/kernel", "linear/bias"):
        np.testing.assert_allclose(dumps[0][name], single["0.1"][name], rtol=1e-4, atol=1e-6, err_msg=name)
        moved = moved or not np.allclose(dumps[0][name], single["0.05"][name], rtol=1e-3, atol=1e-5)
    assert moved, "the 2-rank run also matches a single process at the unscaled learning rate"


def _running(proc):
    import psutil
    try:
        return proc.status() != psutil.STATUS_ZOMBIE  # an orphan nobody reaped has still ended
    except psutil.NoSuchProcess:
        return False


@needs_horovod
def test_killed_two_rank_run_resumes_from_rank_zero_checkpoint(tmp_path, fake_cifar):
    import psutil  # a Horovod dependency
    args = [os.path.join(ROOT, "ResNeXt.py"), "--data_source", fake_cifar["py"], "--trust_data", "--threads", "1",
            "--progress", "off", "--cardinality", "2", "--depth", "4", "--blocks", "1", "--stem_dim", "8",
            "--out_dims", "8,16,32", "--train_subset", "100", "--test_subset", "20", "--batch_size", "5",
            "--epochs", "3", "--ckpt_every_steps", "5", "--hvd_warmup_epochs", "1"]
    total = 3 * 10  # 100 images in global batches of 10
    root = tmp_path / "hvd"
    rank0 = str(root / "rank0")
    with open(str(tmp_path / "first.log"), "wb") as log:
        p = subprocess.Popen(horovodrun(args, root), env=run_env(root), stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        deadline = time.time() + 120
        while (latest_step(rank0) or 0) < 10 and p.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        workers = psutil.Process(p.pid).children(recursive=True) if p.poll() is None else []
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    first = open(str(tmp_path / "first.log"), "rb").read().decode(errors="replace")
    # horovodrun's per-worker watchdog stops the workers (SIGTERM, then SIGKILL) once it is gone.
    _, alive = psutil.wait_procs(workers, timeout=30)
    alive = [proc for proc in alive if _running(proc)]
    for proc in alive:
        proc.kill()
    assert not alive, "workers outlived horovodrun: %s" % alive
    killed_at = latest_step(rank0)
    assert killed_at is not None and 10 <= killed_at < total, (killed_at, first[-3000:])
    assert not (root / "rank1").exists()

    p = subprocess.run(horovodrun(args, root), env=run_env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=240)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out[-3000:]
    assert latest_step(rank0) == total, out[-3000:]
    assert "resumed from %s: step %d" % (os.path.join(rank0, "checkpoints", "step-%08d" % killed_at), killed_at) in out
    assert not (root / "rank1").exists(), "rank 1 wrote into its run folder"
    assert [json.loads(line)["epoch"] for line in open(os.path.join(rank0, "metrics.jsonl"))] == [1, 2, 3]

    dumps = [np.load(str(root / ("dump-rank%d.npz" % r))) for r in (0, 1)]
    assert int(dumps[0]["global_step"]) == int(dumps[1]["global_step"]) == total
    trainable = [n for n in dumps[0].files if "moving_" not in n]
    assert any(n.endswith("Momentum") for n in trainable)
    for name in trainable:
        assert np.array_equal(dumps[0][name], dumps[1][name]), name
    # Batch-norm moving averages are each rank's own (per-worker BN); rank 0's are saved.
    moving = [n for n in dumps[0].files if "moving_mean" in n]
    assert moving and any(not np.array_equal(dumps[0][n], dumps[1][n]) for n in moving)

    import ResNeXt  # one process cannot take over the 2-process run: its steps are other steps
    code, _, err = run_main(ResNeXt, args[1:] + ["--run_dir", rank0])
    assert code == EXIT_USAGE and "was trained by 2 processes and this run has 1" in err, err

    # A rank's exit code reaches the user only through horovodrun's line for it: horovodrun itself
    # exits 1 after a traceback, as docs/horovod.md says.
    p = subprocess.run(horovodrun(args[:-1] + ["2"], root), env=run_env(root), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=240)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 1 and "Process 0 exit with status code 2." in out, out[-3000:]
    assert "[0]<stderr>:error: checkpoint %s" % os.path.join(rank0, "checkpoints", "step-%08d" % total) in out
    assert "RuntimeError" in out and latest_step(rank0) == total
    doc = " ".join(open(os.path.join(ROOT, "docs", "horovod.md")).read().split())
    assert "prints `Process 0 exit with status code 130.`, stops the other processes, and then exits with code 1" in doc
