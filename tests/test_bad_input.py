"""Hostile and broken input: every case ends in one line on stderr that names the problem
and the fix, with the documented exit code, no traceback, and no damage.

Most cases call a model script's main() in this process (conftest.run_main); two run
the real scripts as subprocesses to show what a user's terminal gets.
"""
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import fakedata
from conftest import ROOT, captured, run_main, tiny_args, usage_error

import cifar10
import trainer
import ResNeXt
from batches import load_data
from checkpoints import Checkpoints
from settings import KitError, build_parser, resolve

TINY = ["--cardinality", "1", "--depth", "4", "--blocks", "1", "--stem_dim", "8", "--out_dims", "8,16,32",
        "--train_subset", "60", "--test_subset", "40", "--batch_size", "10"]


def one_line_error(result, code=2):
    """The message of a run that must have failed with `code` and exactly one stderr line."""
    got, out, err = result
    assert got == code, (got, out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def train(fake, tmp_path, *flags):
    """ResNeXt.main on the tiny model in this process, run folder tmp_path/run."""
    return run_main(ResNeXt, tiny_args(fake, tmp_path / "run") + TINY + list(flags))


def copy(src, dst):
    shutil.copytree(src, str(dst))
    return str(dst)


# ----------------------------------------------------------------------------- flags

@pytest.mark.parametrize("flags, words", [
    (["--cardinality", "0"], "--cardinality must be between 1 and 64, got 0"),
    (["--batch_size", "0"], "--batch_size must be between 1 and 65536, got 0"),
    (["--lr", "-1"], "--lr must be in (0, 10], got -1.0"),
    (["--lr", "nan"], "--lr must be in (0, 10], got nan"),
    (["--lr", "1e30"], "--lr must be in (0, 10], got 1e+30"),
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--lr_decay_epochs", "80.7,120"], "--lr_decay_epochs has an item that is not a whole number: '80.7,120'; it "
                                        "must be whole numbers from 1 to 1000000000 (the rate changes between steps, "
                                        "so after whole epochs), comma-separated, each once, in any order, e.g. "
                                        "150,225, or '' for none"),
    (["--lr_decay_steps", ","], "--lr_decay_steps has an empty item: ','; it must be whole numbers from 1 to "
                                "1000000000 (the rate changes between steps, so after whole epochs), comma-separated, "
                                "each once, in any order, e.g. 150,225, or '' for none"),
    (["--dataset_label", "   "], "--dataset_label must be a name for the data, not blank, e.g. 'CIFAR-10 (JPEG)', "
                                  "got    "),  # the logs read "graph built in 1.0s;    , 64 train"
    (["--dataset_label", ""], "--dataset_label must be a name for the data, not blank, e.g. 'CIFAR-10 (JPEG)', got "),
])
def test_out_of_range_flags(flags, words, fake_cifar, tmp_path):
    msg = one_line_error(train(fake_cifar, tmp_path, *flags))
    assert msg == "error: " + words
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("flags, words", [
    (["--hvd_warmup_epochs", "2"], "--hvd_warmup_epochs is used only by a Horovod run (horovodrun, or --horovod): "
                                   "drop it, or start the script with horovodrun"),
    (["--hvd_scale_lr=false", "--hvd_warmup_epochs", "0"], "--hvd_scale_lr and --hvd_warmup_epochs are used only by "
                                                           "a Horovod run (horovodrun, or --horovod): drop them, or "
                                                           "start the script with horovodrun"),
])
def test_a_flag_only_horovod_reads_is_refused_not_ignored(flags, words, fake_cifar, tmp_path):
    msg = one_line_error(train(fake_cifar, tmp_path, *flags))
    assert msg == "error: " + words
    assert not (tmp_path / "run").exists()  # refused at the run folder's first look, which made none


def test_num_layers_not_6n_plus_2(fake_cifar, tmp_path):
    if not os.path.exists(os.path.join(ROOT, "ResNet.py")):
        pytest.skip("ResNet.py is not in this checkout")
    import ResNet
    msg = one_line_error(run_main(ResNet, tiny_args(fake_cifar, tmp_path / "run") + ["--num_layers", "21"]))
    assert "--num_layers=21 is not 6n+2" in msg and "use 20, 32, 44, 56, 110" in msg


def test_scripts_print_one_line_and_exit_2(tmp_path):
    """The real command line: exit code 2, one stderr line, nothing on stdout, no traceback."""
    cases = {"--cardinality": "0", "--lr": "nan"}
    procs = [(flag, subprocess.Popen([sys.executable, "ResNeXt.py", flag, value, "--data_dir", str(tmp_path)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     universal_newlines=True)) for flag, value in cases.items()]
    for flag, p in procs:
        out, err = p.communicate()
        assert (p.returncode, out) == (2, "")
        assert err.startswith("error: %s must be" % flag) and err.count("\n") == 1, err


def test_ctrl_c_while_tensorflow_loads_is_one_line(tmp_path):
    """Ctrl-C in the second TensorFlow takes to import (here a stand-in package that raises it at once):
    exit 130 and one line, as a Ctrl-C once training runs gives, not Python's traceback."""
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(u"raise KeyboardInterrupt\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    for script in ("ResNet.py", "Densenet.py"):
        p = subprocess.run([sys.executable, script, "--run_dir", str(tmp_path / "run")], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        line = one_line_error((p.returncode, p.stdout, p.stderr), code=130)
        assert line == "error: stopped while TensorFlow was loading, before anything was read or written: run the " \
                       "same command again"
    assert os.listdir(str(tmp_path)) == ["tensorflow"]


@pytest.mark.parametrize("typed", ["/usr/local/bin/kit-resnext", "ResNeXt.py"])
def test_usage_names_the_command_the_user_typed(typed, monkeypatch, capsys):
    """The console script setup.py installs is kit-resnext, `python ResNeXt.py` is ResNeXt.py: the
    usage line and argparse's error name the one that was run; main(argv) from Python says ResNeXt.py."""
    name = os.path.basename(typed)
    err = usage_error(ResNeXt, typed, monkeypatch, capsys)
    assert err.startswith("usage: %s [-h]" % name), err
    assert err.splitlines()[-1] == "%s: error: unrecognized arguments: --no-such-flag" % name
    with pytest.raises(SystemExit):
        ResNeXt.main(["--no-such-flag"])
    assert capsys.readouterr().err.startswith("usage: ResNeXt.py [-h]")


# ----------------------------------------------------------------------------- data folders and batches

def test_a_data_error_from_kit_data_source_says_the_source_came_from_the_environment(tmp_path, monkeypatch):
    """The messages advise on --data_source; a user who set only KIT_DATA_SOURCE is told that is it."""
    nowhere = str(tmp_path / "nowhere")
    monkeypatch.setenv("KIT_DATA_SOURCE", nowhere)
    msg = one_line_error(run_main(ResNeXt, ["--run_dir", str(tmp_path / "run")]))
    assert msg == ("error: data source %s does not exist: pass an archive (cifar-10-python.tar.gz), an extracted "
                   "folder, or a URL (here --data_source is KIT_DATA_SOURCE=%s, from the environment)" % (nowhere, nowhere))
    given = str(tmp_path / "given")  # a flag outvotes the variable: its message has no such words
    msg = one_line_error(run_main(ResNeXt, ["--run_dir", str(tmp_path / "run"), "--data_source", given]))
    assert msg.startswith("error: data source %s does not exist" % given) and "KIT_DATA_SOURCE" not in msg


def test_missing_data_folder(fake_cifar, tmp_path):
    missing = str(tmp_path / "nowhere")
    msg = one_line_error(train(fake_cifar, tmp_path, "--data_source", missing))
    assert "data source %s does not exist" % missing in msg and "pass an archive" in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = one_line_error(train(fake_cifar, tmp_path, "--data_source", str(empty)))
    assert "%s has no cifar-10-batches-py folder" % empty in msg and "point --data_source at" in msg


def test_a_run_refused_for_its_data_leaves_no_folder_it_made(fake_cifar, tmp_path):
    """The run folder (and runs/, made for it) is gone again after a refusal; a folder that was
    there stays, with what it held."""
    run_dir = tmp_path / "runs" / "x"
    argv = tiny_args(fake_cifar, run_dir) + TINY + ["--data_source", str(tmp_path / "nowhere")]
    assert "does not exist" in one_line_error(run_main(ResNeXt, argv))
    assert not (tmp_path / "runs").exists()
    run_dir.mkdir(parents=True)
    (run_dir / "notes.txt").write_text(u"mine")
    assert "does not exist" in one_line_error(run_main(ResNeXt, argv))
    assert (run_dir / "notes.txt").read_text() == u"mine"


def test_ctrl_c_before_training_says_resume_only_where_a_checkpoint_is(fake_cifar, tmp_path, monkeypatch):
    """Ctrl-C while the data loads stops at once (exit 130): the advice is to start again in a run
    folder without a checkpoint, to resume in one that holds one."""
    def interrupted(hp):
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer, "load_data", interrupted)
    run_dir = tmp_path / "run"
    argv = tiny_args(fake_cifar, run_dir) + TINY
    code, _, err = run_main(ResNeXt, argv)
    assert (code, err) == (130, "error: stopped at once, without a new checkpoint; run the same command to start "
                                "again\n")
    (run_dir / "checkpoints" / "step-00000004").mkdir(parents=True)
    monkeypatch.setattr(trainer, "RunState", lambda *a, **k: interrupted(None))  # the folder's checkpoint is fake
    code, _, err = run_main(ResNeXt, argv)
    assert (code, err) == (130, "error: stopped at once, without a new checkpoint; run the same command to resume "
                                "from the last one\n")


def test_ctrl_c_during_eval_says_to_evaluate_again(fake_cifar, tmp_path, monkeypatch):
    """--eval writes no checkpoint and resumes nothing: Ctrl-C says to run it again (exit 130)."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer, "run_eval", interrupted)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "step-00000004").mkdir(parents=True)
    code, _, err = run_main(ResNeXt, tiny_args(fake_cifar, run_dir, "--eval") + TINY)
    assert (code, err) == (130, "error: stopped; run the same command to evaluate again\n")
    assert os.listdir(str(run_dir / "checkpoints")) == ["step-00000004"]


def test_truncated_and_corrupt_python_batches(fake_cifar, tmp_path):
    py = copy(fake_cifar["py"], tmp_path / "cifar-10-batches-py")
    path = os.path.join(py, "data_batch_3")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    msg = one_line_error(train(fake_cifar, tmp_path, "--data_source", py))
    assert "%s is truncated or corrupt" % path in msg and "download the archive again" in msg
    with open(path, "wb") as f:
        f.write(noise(0))  # not a pickle at all
    msg = one_line_error(train(fake_cifar, tmp_path, "--data_source", py))
    assert path in msg and "download the archive again" in msg


def noise(seed, size=4096):
    """`size` reproducible random bytes (random.Random(seed).randbytes on Python >= 3.9)."""
    import random
    return random.Random(seed).getrandbits(8 * size).to_bytes(size, "little")


def test_noise_that_makes_the_unpickler_run_out_of_memory_is_one_clean_error(tmp_path, capfd):
    """Streams that declare huge objects: CPython >= 3.8 raises MemoryError and, freeing the
    half-built bytearray, prints a SystemError of its own; the kit's one line must stay alone."""
    path = str(tmp_path / "data_batch_1")
    failures = set()
    for seed in (454, 622, 802, 1236, 1251, 1546, 1851, 1974, 2065, 2743):  # MemoryError on Python 3.11
        with open(path, "wb") as f:
            f.write(noise(seed))
        with pytest.raises(cifar10.DataError) as e:
            cifar10.read_pickle(path)
        assert str(e.value).startswith(path + " is truncated or corrupt (")
        failures.add(str(e.value).split("(", 1)[1].split(":", 1)[0])
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    if sys.version_info >= (3, 9):
        assert "MemoryError" in failures, failures


def test_truncated_binary_batch(fake_cifar, tmp_path):
    if not os.path.exists(os.path.join(ROOT, "ResNet.py")):
        pytest.skip("ResNet.py (the script that reads the binary layout) is not in this checkout")
    import ResNet
    bn = copy(fake_cifar["bin"], tmp_path / "cifar-10-batches-bin")
    path = os.path.join(bn, "data_batch_2.bin")
    with open(path, "r+b") as f:
        f.truncate(3073 * 10 + 500)  # ten records and part of an eleventh
    argv = ["--path", bn, "--run_dir", str(tmp_path / "run"), "--threads", "1", "--progress", "off",
            "--num_layers", "8"]
    msg = one_line_error(run_main(ResNet, argv))
    assert "%s is truncated or corrupt (31230 bytes, not a whole number of 3073-byte records)" % path in msg
    assert "extract the archive again" in msg


def test_a_folder_named_as_a_binary_batch_is_one_line(fake_cifar, tmp_path):
    """A folder where data_batch_4.bin should be (a home-made copy): named, not IsADirectoryError."""
    import ResNet
    bn = copy(fake_cifar["bin"], tmp_path / "cifar-10-batches-bin")
    path = os.path.join(bn, "data_batch_4.bin")
    os.remove(path)
    os.mkdir(path)
    argv = ["--path", bn, "--run_dir", str(tmp_path / "run"), "--threads", "1", "--progress", "off",
            "--num_layers", "8"]
    msg = one_line_error(run_main(ResNet, argv))
    assert msg == ("error: cannot read data file %s (Is a directory): point --path/--data_source at a complete "
                   "cifar-10-batches-bin folder or at the binary archive" % path)


def write_batch(path, data, labels):
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": data}, f, protocol=2)


@pytest.mark.parametrize("data, labels, words", [
    (np.zeros((50, 1024), np.uint8), [0] * 50, "holds images of shape (50, 1024) and type uint8, expected (N, 3072)"),
    (np.zeros((50, 3072), np.float64), [0] * 50, "holds images of shape (50, 3072) and type float64"),
    (np.zeros((50, 3072), np.uint8), [0] * 49, "holds 49 labels for 50 images"),
    (np.zeros((50, 3072), np.uint8), [3] * 49 + [10], "has labels outside 0..9 (found 3..10)"),
    (np.zeros((50, 3072), np.uint8), [-1] + [3] * 49, "has labels outside 0..9 (found -1..3)"),
    (np.zeros((50, 3072), np.uint8), ["cat"] * 50,
     "has labels that are not whole numbers (<U3, such as 'cat'): wrong dataset or damaged batch; check --dataset"),
    (np.zeros((50, 3072), np.uint8), [3] * 49 + [2.5], "has labels that are not whole numbers (float64, such as 2.5)"),
])
def test_batches_with_wrong_shapes_or_labels(data, labels, words, fake_cifar, tmp_path):
    py = copy(fake_cifar["py"], tmp_path / "cifar-10-batches-py")
    path = os.path.join(py, "data_batch_4")
    write_batch(path, data, labels)
    msg = one_line_error(train(fake_cifar, tmp_path, "--data_source", py))
    assert path + " " + words in msg


class Payload(object):
    """Unpickling this calls `func(*args)`: what a hostile data batch would do."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("how", ["os.system", "builtins.open", "inside a numpy object array"])
def test_pickle_with_a_payload_is_refused_and_never_runs(how, fake_cifar, tmp_path):
    import builtins
    marker = tmp_path / "payload-ran"
    if how == "os.system":
        payload = Payload(os.system, ("touch %s" % marker,))
    elif how == "builtins.open":
        payload = Payload(builtins.open, (str(marker), "w"))
    else:
        payload = np.array([Payload(os.system, ("touch %s" % marker,))], dtype=object)
    py = copy(fake_cifar["py"], tmp_path / "cifar-10-batches-py")
    path = os.path.join(py, "data_batch_1")
    with open(path, "wb") as f:
        pickle.dump({b"labels": [0] * 50, b"data": payload}, f, protocol=2)
    # Even a folder the user vouches for (--trust_data) is read by a restricted unpickler.
    msg = one_line_error(train(fake_cifar, tmp_path, "--data_source", py))
    assert path in msg and "refusing" in msg and ("posix.system" in msg or "io.open" in msg), msg
    assert not marker.exists()
    # Without --trust_data the unverified pickles are not even opened.
    argv = [a for a in tiny_args(fake_cifar, tmp_path / "run") if a != "--trust_data"] + TINY + ["--data_source", py]
    msg = one_line_error(run_main(ResNeXt, argv))
    assert "was not extracted from a verified archive" in msg and "--trust_data" in msg
    assert not marker.exists()


@pytest.mark.parametrize("under", ["", "sub"])
def test_a_run_folder_that_cannot_be_made_is_one_line(fake_cifar, tmp_path, under):
    """--run_dir naming a file (or a folder under one): the lock cannot be taken there."""
    blocker = tmp_path / "file"
    blocker.write_text(u"mine")
    run_dir = blocker / under if under else blocker
    msg = one_line_error(run_main(ResNeXt, tiny_args(fake_cifar, run_dir) + TINY))
    assert msg == "error: cannot use %s as the run folder (%s): pass --run_dir a folder you can write" % (
        run_dir, "Not a directory" if under else "File exists")
    assert blocker.read_text() == u"mine"


@pytest.mark.parametrize("dataset", ["cifar10", "mnist"])
def test_a_data_folder_that_cannot_be_made_is_one_line(fake_cifar, tmp_path, dataset):
    """--data_dir naming a file: nothing can be downloaded or extracted into it."""
    blocker = tmp_path / "file"
    blocker.write_text(u"mine")
    argv = ["--dataset", dataset, "--data_dir", str(blocker), "--run_dir", str(tmp_path / "run")] + TINY
    if dataset == "cifar10":
        argv += ["--data_source", fake_cifar["py_tar"], "--trust_data"]
    msg = one_line_error(run_main(ResNeXt, argv))
    folder = blocker if dataset == "cifar10" else blocker / "mnist"
    assert msg == "error: cannot write the data into %s (%s): pass --data_dir a folder you can write" % (
        folder, "File exists" if dataset == "cifar10" else "Not a directory")
    assert blocker.read_text() == u"mine"



@pytest.mark.parametrize("dataset", ["cifar10", "mnist"])
@pytest.mark.parametrize("source", ["file:///nonexistent/", "http://127.0.0.1:9/"])
def test_a_failed_download_leaves_no_folder_it_made(fake_cifar, tmp_path, dataset, source):
    """--data_dir data/here, made for a download that fails, is gone again (data/ with it); a
    --data_dir that was there stays, empty or with what it held."""
    if dataset == "cifar10":
        source += "x.tar.gz"
    data_dir = tmp_path / "data" / "here"
    base = ["--dataset", dataset, "--data_source", source, "--run_dir", str(tmp_path / "run")] + TINY
    msg = one_line_error(run_main(ResNeXt, base + ["--data_dir", str(data_dir)]))
    assert msg.startswith("error: could not download %s" % source) and "check the network" in msg, msg
    assert os.listdir(str(tmp_path)) == []
    data_dir.mkdir(parents=True)
    assert "could not download" in one_line_error(run_main(ResNeXt, base + ["--data_dir", str(data_dir)]))
    assert os.listdir(str(data_dir)) == [] and os.listdir(str(tmp_path)) == ["data"]  # MNIST's data/here/mnist: gone
    (data_dir / "notes.txt").write_text(u"mine")
    assert "could not download" in one_line_error(run_main(ResNeXt, base + ["--data_dir", str(data_dir)]))
    assert os.listdir(str(data_dir)) == ["notes.txt"] and (data_dir / "notes.txt").read_text() == u"mine"


# ----------------------------------------------------------------------------- archives and checksums

def test_wrong_checksum_without_trust_data(fake_cifar, tmp_path):
    data_dir = tmp_path / "data"
    argv = ["--data_source", fake_cifar["py_tar"], "--data_dir", str(data_dir), "--run_dir", str(tmp_path / "run")]
    argv += TINY
    msg = one_line_error(run_main(ResNeXt, argv))
    assert "checksum mismatch for %s" % fake_cifar["py_tar"] in msg
    assert "expected %s" % cifar10.ARCHIVES["cifar10"][1] in msg and "pass --trust_data" in msg
    # the archive is the user's: the way out is the official one, not deleting theirs
    assert msg.endswith("pass --trust_data if you vouch for this copy (and --dataset_label to say what it is), or "
                        "point --data_source at the official cifar-10-python.tar.gz")
    assert not (data_dir / "cifar-10-batches-py").exists()


def hostile_tar(path, members):
    """A gzip tar of (name, kind, payload): kind 'file' (payload = bytes), 'dir', 'symlink'
    or 'hardlink' (payload = link target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            if kind != "dir":
                info.linkname = payload
            tar.addfile(info)
    return path


def snapshot(root):
    """Every path under root with its size and content hash, to prove nothing changed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            out[p] = (os.path.islink(p), None if os.path.isdir(p) else fakedata.md5(p) if os.path.isfile(p) else 0)
    return out


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "hardlink"])
def test_hostile_archive_members_write_nothing_anywhere(kind, fake_cifar, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text(u"precious\n")
    good = ("cifar-10-batches-py/readme.txt", "file", b"a harmless member first\n")
    members = {
        "absolute": [good, (str(outside / "planted.txt"), "file", b"owned\n")],
        "dotdot": [good, ("cifar-10-batches-py/../../../outside/planted.txt", "file", b"owned\n")],
        # a link out of the folder, then a file written through it
        "symlink": [good, ("cifar-10-batches-py/out", "symlink", str(outside)),
                    ("cifar-10-batches-py/out/planted.txt", "file", b"owned\n")],
        # a hard link to a file outside, then a member that would overwrite it through the link
        "hardlink": [good, ("cifar-10-batches-py/victim.txt", "hardlink", str(victim)),
                     ("cifar-10-batches-py/victim.txt", "file", b"owned\n")],
    }[kind]
    arc = hostile_tar(str(tmp_path / "cifar-10-python.tar.gz"), members)
    data_dir = tmp_path / "data"
    before = snapshot(str(tmp_path))
    argv = ["--data_source", arc, "--trust_data", "--data_dir", str(data_dir), "--run_dir", str(tmp_path / "run")]
    argv += TINY
    msg = one_line_error(run_main(ResNeXt, argv))
    assert "unsafe archive" in msg and "refusing to extract it" in msg
    assert {"absolute": "absolute path", "dotdot": "outside the target folder",
            "symlink": "link or special file", "hardlink": "link or special file"}[kind] in msg
    assert victim.read_text() == u"precious\n"
    assert not (outside / "planted.txt").exists() and not (tmp_path / "planted.txt").exists()
    assert not data_dir.exists()  # not even the harmless member, the temporary folder or the folder made for them
    after = snapshot(str(tmp_path))
    new = set(after) - set(before)
    assert all(p.startswith((str(data_dir), str(tmp_path / "run"))) for p in new), sorted(new)
    assert {p: after[p] for p in before} == before


def test_unverified_python_folder_needs_trust_data(fake_cifar, tmp_path):
    py = copy(fake_cifar["py"], tmp_path / "cifar-10-batches-py")
    argv = ["--data_source", py, "--run_dir", str(tmp_path / "run"), "--progress", "off"] + TINY
    msg = one_line_error(run_main(ResNeXt, argv))
    assert "%s was not extracted from a verified archive" % py in msg and "pass --trust_data" in msg
    hp = resolve(build_parser("ResNeXt", ResNeXt.PRESETS, "").parse_args(
        argv + ["--trust_data"]), ResNeXt.PRESETS)
    d = load_data(hp)  # what training does next, with the user's word for the folder
    assert d["train_x"].shape == (60, 32, 32, 3) and d["label"] == "CIFAR-10 (unverified copy)"


def test_an_unreadable_archive_named_by_the_user_is_not_to_be_deleted(fake_cifar, tmp_path):
    """A file that is no tar archive, vouched for: --data_source's own file is the user's, so the
    advice is the official archive, not "delete it"; the kit's copy in --data_dir may be deleted."""
    wrong = tmp_path / "notes.txt"
    wrong.write_text("not an archive\n")
    argv = ["--run_dir", str(tmp_path / "run"), "--data_dir", str(tmp_path / "data"), "--trust_data",
            "--progress", "off"] + TINY
    msg = one_line_error(run_main(ResNeXt, argv + ["--data_source", str(wrong)]))
    assert msg.startswith("error: %s is not a readable tar archive (" % wrong)
    assert msg.endswith("): point --data_source at the official cifar-10-python.tar.gz"), msg
    assert wrong.read_text() == "not an archive\n"
    (tmp_path / "data").mkdir(exist_ok=True)
    own = tmp_path / "data" / "cifar-10-python.tar.gz"
    own.write_text("not an archive\n")
    msg = one_line_error(run_main(ResNeXt, argv))
    assert msg.startswith("error: %s is not a readable tar archive (" % own)
    assert msg.endswith("): delete it to download the official one"), msg


def test_a_subset_larger_than_the_dataset_is_refused(fake_cifar, tmp_path):
    """--train_subset/--test_subset past the end used to train on every image while config.json and
    compare.py said "only N images"; now one line says how many there are (250 train / 100 test)."""
    base = tiny_args(fake_cifar, tmp_path / "run") + TINY
    for flag, n, words in (("--train_subset", "251", "250 training"), ("--test_subset", "101", "100 test")):
        msg = one_line_error(run_main(ResNeXt, base + [flag, n]))
        assert msg == ("error: %s %s is more than the %s images of CIFAR-10 (unverified copy): pass at most %s (0 "
                       "takes them all)" % (flag, n, words, words.split()[0]))
    assert not (tmp_path / "run" / "checkpoints").exists()
    parser = build_parser("ResNeXt", ResNeXt.PRESETS, "")
    hp = resolve(parser.parse_args(base + ["--train_subset", "250", "--test_subset", "100"]), ResNeXt.PRESETS)
    d = load_data(hp)  # the whole set, named exactly, is accepted
    assert d["train_x"].shape[0] == 250 and d["test_x"].shape[0] == 100
    # --eval takes --train_subset from the checkpoint: one trained with too large a subset still evaluates
    hp = resolve(parser.parse_args(base + ["--eval", "--test_subset", "30"]), ResNeXt.PRESETS)
    d = load_data(dict(hp, train_subset=1000))
    assert d["train_x"].shape[0] == 250 and d["test_x"].shape[0] == 30


def test_archive_with_the_official_checksum_needs_no_trust_data(fake_cifar, tmp_path, monkeypatch):
    monkeypatch.setitem(cifar10.ARCHIVES, "cifar10",
                        ("cifar-10-python.tar.gz", fakedata.md5(fake_cifar["py_tar"]), "cifar-10-batches-py"))
    argv = ["--data_source", fake_cifar["py_tar"], "--data_dir", str(tmp_path / "data"), "--run_dir",
            str(tmp_path / "run"), "--progress", "off"] + TINY
    hp = resolve(build_parser("ResNeXt", ResNeXt.PRESETS, "").parse_args(argv),
                 ResNeXt.PRESETS)
    assert not hp["trust_data"]
    d = load_data(hp)
    assert d["verified"] and d["label"] == "CIFAR-10"
    np.testing.assert_array_equal(d["train_y"], fake_cifar["train"][1][:60])
    # the extraction is remembered as verified: the next run needs neither the archive nor the flag
    hp["data_source"] = None
    assert load_data(hp)["verified"]


# ----------------------------------------------------------------------------- checkpoints and training

def first_checkpoint(run_dir):
    ck = Checkpoints(str(run_dir))
    return ck, ck.latest_name()


def folder_contents(root):
    """{relative path: bytes (None for a folder)} of everything under `root`."""
    found = {}
    for here, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(here, name)
            found[os.path.relpath(path, str(root))] = None if os.path.isdir(path) else open(path, "rb").read()
    return found


def test_a_run_folder_with_logs_but_no_checkpoint_is_refused_not_overwritten(fake_cifar, tmp_path):
    """Checkpoints deleted to free space, the logs kept for compare.py: the same command (or another)
    would start a new run over them. It is refused, and the folder stays as it was."""
    run = tmp_path / "run"
    base = tiny_args(fake_cifar, run) + TINY + ["--steps", "2"]
    assert run_main(ResNeXt, base)[0] == 0
    shutil.rmtree(str(run / "checkpoints"))
    before = folder_contents(run)
    assert before["metrics.jsonl"].count(b"\n") == 1
    for flags in ([], ["--lr", "0.05"], ["--fresh"]):
        msg = one_line_error(run_main(ResNeXt, base + flags))
        assert msg == ("error: %s holds the logs of a run (metrics.jsonl, logs.txt) but no checkpoint to resume it "
                       "from: pass another --run_dir to keep them, or move them away to start again in this folder"
                       % run)
        assert folder_contents(run) == before
    # A run killed before its first epoch ended (config.json, empty logs) starts again as before.
    (run / "metrics.jsonl").write_text(u"")
    assert run_main(ResNeXt, base)[0] == 0
    assert (run / "metrics.jsonl").read_text().count("\n") == 1


def test_run_dir_given_a_checkpoints_folder_is_refused(fake_cifar, tmp_path):
    """--run_dir pointed at a run's checkpoints/ (or a checkpoint in it), meant for --ckpt_path: no
    new run starts among the checkpoints; the message names the run folder to pass."""
    run = tmp_path / "run"
    base = tiny_args(fake_cifar, run) + TINY + ["--steps", "2"]
    assert run_main(ResNeXt, base)[0] == 0
    before = folder_contents(run)
    step = Checkpoints(str(run)).latest_name()
    for given, where in ((run / "checkpoints", "a"), (run / "checkpoints" / step, "in a")):
        msg = one_line_error(run_main(ResNeXt, base + ["--run_dir", str(given)]))
        assert msg == ("error: %s is %s run's checkpoints folder: pass the run folder, --run_dir %s, to resume it (or a "
                       "checkpoint with --eval --ckpt_path to evaluate it)" % (given, where, run))
    assert folder_contents(run) == before


def test_resuming_with_another_model_is_refused_and_keeps_the_checkpoint(fake_cifar, tmp_path):
    """Resuming under other settings, another preset or another model: one line naming the
    checkpoint and what differs; the checkpoint, config.json and logs stay as they were."""
    run = tmp_path / "run"
    base = tiny_args(fake_cifar, run) + TINY + ["--steps", "2"]
    assert run_main(ResNeXt, base + ["--depth", "4"])[0] == 0
    ck, name = first_checkpoint(run)
    folder = os.path.join(ck.dir, name)
    config = (run / "config.json").read_text()
    logs = (run / "logs.txt").read_text()
    others = [(ResNeXt, ["--depth", "8"], ["--depth 4", "--depth 8"]),
              (ResNeXt, ["--depth", "4", "--preset", "paper"],
               ["with --preset original,", "has --preset paper (", " --shortcut ", "give --preset original to"])]
    for module, flags, words in others:
        msg = one_line_error(run_main(module, base + flags))
        assert "checkpoint %s does not fit this" % folder in msg and "another --run_dir" in msg
        assert all(w in msg for w in words), msg
    se = os.path.exists(os.path.join(ROOT, "SE_ResNeXt.py"))
    if se:  # its flags are ResNeXt's and more: the model is named before any of them
        import SE_ResNeXt
        msg = one_line_error(run_main(SE_ResNeXt, base + ["--depth", "4", "--reduction_ratio", "4"]))
        assert msg == ("error: checkpoint %s was trained by ResNeXt.py, not SE_ResNeXt.py: pass another --run_dir "
                       "(or run ResNeXt.py to resume it)" % folder)
    # A checkpoint without the recorded settings and model is still caught, by its variables.
    meta_path = os.path.join(folder, "meta.json")
    with open(meta_path) as f:
        meta = json.load(f)
    meta["config"].pop("hparams")
    meta["config"].pop("model")
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    msg = one_line_error(run_main(ResNeXt, base + ["--depth", "8"]))
    assert "checkpoint %s does not fit this model" % folder in msg
    assert "is [1, 1, 8, 4] there and [1, 1, 8, 8] here" in msg and "another --run_dir" in msg
    if se:
        msg = one_line_error(run_main(SE_ResNeXt, base + ["--depth", "4", "--reduction_ratio", "4"]))
        assert "checkpoint %s does not fit this model: it has no variable squeeze_layer" % folder in msg
    assert ck.latest_name() == name and ck.verify(folder) is not None
    assert (run / "config.json").read_text() == config and (run / "logs.txt").read_text() == logs


def test_a_run_folder_of_another_model_is_refused_in_one_line(fake_cifar, tmp_path):
    """Densenet.py on a folder ResNet.py trained in: the model is named at once, not a list of
    flags to give that would only fail later, at restore; the folder stays as it was."""
    import Densenet
    import ResNet
    run = tmp_path / "run"
    argv = tiny_args(fake_cifar, run) + ["--train_subset", "60", "--test_subset", "40", "--batch_size", "10",
                                          "--steps", "1"]
    assert run_main(ResNet, argv + ["--binary=false", "--num_layers", "8"])[0] == 0
    ck, name = first_checkpoint(run)
    before = {p: (run / p).read_text() for p in ("config.json", "logs.txt", "checkpoints/latest")}
    msg = one_line_error(run_main(Densenet, argv))
    assert msg == ("error: checkpoint %s was trained by ResNet.py, not Densenet.py: pass another --run_dir (or run "
                   "ResNet.py to resume it)" % os.path.join(ck.dir, name))
    folder = os.path.join(ck.dir, name)
    # --eval of that checkpoint, found in the folder or named: the same line, not a traceback from
    # building Densenet with ResNet's recorded settings (--depth 0 divided by zero in an initializer)
    for where in (["--run_dir", str(run)], ["--ckpt_path", folder]):
        msg = one_line_error(run_main(Densenet, argv[:-2] + ["--eval"] + where))
        assert msg == ("error: checkpoint %s was trained by ResNet.py, not Densenet.py: pass a checkpoint of this "
                       "script (or run ResNet.py --eval on it)" % folder)
    assert ck.steps() == [1] and ck.verify(folder) is not None
    assert {p: (run / p).read_text() for p in before} == before
    assert not (run / "confusion_matrix.png").exists()


@pytest.fixture(scope="module")
def evaluated_run(fake_cifar, tmp_path_factory):
    """A run folder with one checkpoint (step 2) of the tiny ResNeXt, for --eval."""
    run = tmp_path_factory.mktemp("evaluated") / "run"
    code, _, err = run_main(ResNeXt, tiny_args(fake_cifar, run) + TINY + ["--steps", "2"])
    assert code == 0, err
    return run


def test_eval_leaves_a_checkpoint_being_written_alone(evaluated_run, fake_cifar):
    """--eval takes no lock, so a training may be writing its next checkpoint into .tmp-step-N/ in the
    same folder while it evaluates: deleting that folder, as a resume cleans up a crash's leftovers,
    killed the training with a traceback from Saver.save."""
    ck = Checkpoints(str(evaluated_run))
    tmp = os.path.join(ck.dir, ".tmp-step-00000099")
    os.makedirs(tmp)
    try:
        with open(os.path.join(tmp, "model.index"), "wb") as f:
            f.write(b"being written")
        code, out, err = run_main(ResNeXt, tiny_args(fake_cifar, evaluated_run, "--eval") + TINY)
        assert code == 0 and "checkpoint %s on " % ck.path(2) in out, err
        assert open(os.path.join(tmp, "model.index"), "rb").read() == b"being written"
    finally:
        shutil.rmtree(tmp)


def test_eval_given_a_folder_of_the_other_flag_says_which_flag_takes_it(evaluated_run, fake_cifar, tmp_path):
    """--run_dir takes a run folder and --ckpt_path one checkpoint; given the other's folder (or one that is not
    there), --eval says which to pass, rather than that there is no checkpoint or that it is damaged."""
    run, ckpts = str(evaluated_run), os.path.join(str(evaluated_run), "checkpoints")
    step = os.path.join(ckpts, "step-00000002")
    base = ["--data_source", fake_cifar["py"], "--trust_data", "--threads", "1", "--eval"] + TINY
    cases = [
        (["--run_dir", ckpts], "%s is a run's checkpoints folder: pass the run folder, --run_dir %s (or one checkpoint "
                               "in it with --ckpt_path)" % (ckpts, run)),
        (["--run_dir", step], "%s is a checkpoint, not a run folder: pass it with --ckpt_path" % step),
        (["--ckpt_path", run], "%s is a run's folder, not one checkpoint: pass --run_dir %s to evaluate its newest "
                               "checkpoint, or --ckpt_path one of %s" % (run, run, os.path.join(ckpts, "step-N"))),
        (["--ckpt_path", ckpts], "%s is a run's checkpoints folder, not one checkpoint: pass --run_dir %s to evaluate "
                                 "its newest checkpoint, or --ckpt_path one of %s" % (ckpts, run,
                                                                                     os.path.join(ckpts, "step-N"))),
        (["--ckpt_path", os.path.join(ckpts, "latest")], "%s is the file naming a run's newest checkpoint, not a "
                                                         "checkpoint: pass --ckpt_path %s"
                                                         % (os.path.join(ckpts, "latest"), step)),
        (["--ckpt_path", str(tmp_path / "gone")], "%s does not exist: pass a runs/.../checkpoints/step-N folder"
                                                   % (tmp_path / "gone")),
    ]
    for flags, said in cases:
        assert one_line_error(run_main(ResNeXt, base + flags)) == "error: " + said
    assert sorted(os.listdir(ckpts)) == ["latest", "step-00000002"]


def test_eval_that_cannot_find_the_data_names_the_source_the_run_trained_with(evaluated_run, fake_cifar, tmp_path,
                                                                              monkeypatch):
    """--eval reads the data from the command's --data_source or --data_dir, not from the checkpoint's record;
    where it finds none there, the error says where the run's training found it."""
    monkeypatch.delenv("KIT_DATA_SOURCE", raising=False)
    def offline(url, dest, md5=None):
        raise cifar10.DataError("could not download %s (offline): check the network" % url)
    monkeypatch.setattr(cifar10, "download", offline)
    argv = ["--eval", "--run_dir", str(evaluated_run), "--data_dir", str(tmp_path / "empty"), "--threads", "1"] + TINY
    msg = one_line_error(run_main(ResNeXt, argv))
    assert msg.endswith(" (the run trained with --data_source %s)" % fake_cifar["py"]), msg


def test_a_checkpoint_folder_removed_while_saving_is_one_line(tmp_path):
    """Saver.save raises ValueError where the folder it writes into is gone (removed by hand, or by
    another process): one line that says the checkpoint was not written, exit 3, like a full disk."""
    class Saver(object):
        def save(self, sess, path, **kwargs):
            raise ValueError("Parent directory of %s doesn't exist, can't save." % path)
    ck = Checkpoints(str(tmp_path / "run"))
    with pytest.raises(KitError) as e:
        ck.save(None, Saver(), 4, {})
    assert e.value.code == 3 and str(e.value).startswith("could not write the checkpoint of step 4 in %s (Parent "
                                                         "directory of " % ck.dir)
    assert os.listdir(ck.dir) == []


@pytest.mark.parametrize("where", ["a file", "under a file", "EROFS", "EACCES", "ENOSPC"])
def test_eval_that_cannot_write_its_report_is_one_line(where, evaluated_run, fake_cifar, tmp_path, monkeypatch):
    """--eval prints the accuracy, then writes confusion_matrix.png and TensorBoard's image into the run
    folder. A folder it cannot write there (a file in the way, a read-only mount, no permission) ends in one
    line that says to pass a --run_dir it can write (exit 2); a full disk in the exit 3 of any full disk.
    The checkpoint stays as it was."""
    import errno
    import report
    ck = Checkpoints(str(evaluated_run))
    folder = ck.path(2)
    before = {name: open(os.path.join(folder, name), "rb").read() for name in os.listdir(folder)}
    blocker = tmp_path / "file"
    blocker.write_text(u"mine")
    run_dir, code, reason = {"a file": (blocker, 2, "File exists"),
                             "under a file": (blocker / "new", 2, "Not a directory")}.get(
        where, (tmp_path / "report", 3 if where == "ENOSPC" else 2, None))
    if reason is None:
        number = getattr(errno, where)
        reason = os.strerror(number)

        def refused(matrix, names, path, title=""):
            raise OSError(number, reason, path)
        monkeypatch.setattr(report, "confusion_png", refused)
    argv = tiny_args(fake_cifar, run_dir, "--eval", "--ckpt_path", folder) + TINY
    got, out, err = run_main(ResNeXt, argv)
    assert "checkpoint %s on " % folder in out  # the evaluation itself was done and said
    msg = one_line_error((got, out, err), code)
    if where == "ENOSPC":
        assert msg == ("error: No space left on device writing %s: free space, then run the same command to "
                       "evaluate again" % (run_dir / "confusion_matrix.png"))
    else:
        assert msg == ("error: cannot write the report into %s (%s): pass --run_dir a folder you can write, where "
                       "the report goes (the accuracy above is measured)" % (run_dir, reason))
    assert blocker.read_text() == u"mine"
    assert {name: open(os.path.join(folder, name), "rb").read() for name in os.listdir(folder)} == before
    assert ck.latest_name() == "step-00000002" and ck.steps() == [2]


def nan_from(step):
    """ResNeXt whose logits turn NaN once global_step reaches `step` (a diverging run)."""
    from compat import tf

    def build(x, training, hp, num_classes=10):
        logits = ResNeXt.Build_ResNext(x, training, hp, num_classes)
        bad = tf.train.get_global_step() >= step
        return logits * tf.cond(bad, lambda: tf.constant(float("nan")), lambda: tf.constant(1.0))
    return build


def test_nan_loss_stops_keeps_the_last_good_checkpoint_and_resumes(fake_cifar, tmp_path):
    run = tmp_path / "run"
    argv = tiny_args(fake_cifar, run) + TINY + ["--steps", "9", "--ckpt_every_steps", "2"]
    with captured() as (out, err):
        code = trainer.main("ResNeXt", nan_from(5), ResNeXt.PRESETS, ResNeXt.validate, argv)
    msg = one_line_error((code, out.getvalue(), err.getvalue()), code=4)
    assert "loss is nan at step 6 (epoch 1)" in msg
    assert "the last good checkpoint (step-00000004) is kept" in msg and "new --run_dir with a lower --lr" in msg
    ck = Checkpoints(str(run))
    assert ck.latest_name() == "step-00000004" and ck.steps() == [4, 2]
    assert ck.verify(ck.path(4)) is not None
    code, out, err = run_main(ResNeXt, argv)
    assert code == 0, err
    assert "resumed from %s: step 4" % ck.path(4) in out
    assert ck.latest_name() == "step-00000009"


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_a_bad_step_limit_is_one_line_and_leaves_the_checkpoint(value, fake_cifar, tmp_path, monkeypatch):
    assert train(fake_cifar, tmp_path, "--steps", "2")[0] == 0
    before = sorted(os.listdir(str(tmp_path / "run" / "checkpoints")))
    monkeypatch.setenv("KIT_MAX_STEPS", value)
    msg = one_line_error(train(fake_cifar, tmp_path, "--steps", "4"))
    assert "KIT_MAX_STEPS must be a positive whole number of steps, got %r" % value in msg
    assert sorted(os.listdir(str(tmp_path / "run" / "checkpoints"))) == before


def test_a_folder_that_changes_while_a_run_starts_is_refused_and_left_alone(fake_cifar, tmp_path):
    """The run folder is checked before the data and the graph, and again under the lock that the
    session then holds: a checkpoint that appeared in between (another process trained there) stops
    the run with one line, and the folder stays as it is, free for the next command."""
    import runstate
    from conftest import settings
    assert train(fake_cifar, tmp_path, "--steps", "2")[0] == 0
    other = tmp_path / "other"
    hp = settings(ResNeXt, tiny_args(fake_cifar, other) + TINY + ["--steps", "4"])
    run = runstate.RunState("ResNeXt", hp, log=lambda *a: None)
    assert run.folder is None  # nothing there yet
    shutil.copytree(str(tmp_path / "run" / "checkpoints"), str(other / "checkpoints"))
    with pytest.raises(KitError) as e:
        with run:
            pass
    assert str(e.value) == ("%s changed while this run was starting (another process trained in it): run the same "
                            "command again" % other)
    assert sorted(os.listdir(str(other / "checkpoints"))) == sorted(os.listdir(str(tmp_path / "run" / "checkpoints")))
    again = runstate.RunState("ResNeXt", hp, log=lambda *a: None)  # the lock was let go
    assert os.path.basename(again.folder) == "step-00000002"


def test_a_resume_hashes_its_checkpoint_once(fake_cifar, tmp_path, monkeypatch):
    """The second look at the run folder, when the session starts, reads names only: the
    checkpoint found (and hashed file by file) before the data and graph is not hashed again."""
    import checkpoints
    assert train(fake_cifar, tmp_path, "--steps", "2")[0] == 0
    verified, real = [], checkpoints.Checkpoints.verify

    def verify(self, folder):
        verified.append(os.path.basename(folder))
        return real(self, folder)
    monkeypatch.setattr(checkpoints.Checkpoints, "verify", verify)
    code, out, err = train(fake_cifar, tmp_path, "--steps", "4")
    assert code == 0, err
    assert "resumed from" in out and verified == ["step-00000002"]
