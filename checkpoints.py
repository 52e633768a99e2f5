"""Checkpoints written atomically and verified by their hashes, restored only where they fit
(their shapes, and the settings they were trained with); and the lock that keeps a second
process out of a run folder.
"""
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal

from compat import tf
import distributed
from settings import KitError, EXIT_DISK, as_recorded, with_policy


_reached = {}


def _test_point(name):
    """TEST HOOK, inert unless the environment sets KIT_TEST_KILL_AT=<name>:<n>.

    Then the process SIGKILLs itself the n-th time it reaches the point `name`
    ("checkpoint-files": TF files written, nothing renamed; "checkpoint-renamed": the
    step folder is in place, `latest` not yet updated; "evaluate": mid-evaluation), so
    tests/test_crash.py can crash inside windows too short to hit by timing.
    """
    spec = os.environ.get("KIT_TEST_KILL_AT")
    if spec and spec.rpartition(":")[0] == name:
        _reached[name] = _reached.get(name, 0) + 1
        if _reached[name] >= int(spec.rpartition(":")[2]):
            os.kill(os.getpid(), signal.SIGKILL)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def write_atomic(path, text):
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, say: the file keeps its old content, and no half-written copy stays
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(os.path.dirname(path) or ".")


def write_if_changed(path, text):
    """write_atomic, but a file that holds `text` already is left as it is."""
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except (OSError, IOError):
        pass  # missing or unreadable: written
    write_atomic(path, text)


class Checkpoints(object):
    """Atomic checkpoints in `run_dir/checkpoints`.

    A checkpoint is written into `.tmp-step-N/` (the TF files, then `meta.json` holding
    their SHA-256 and the run's state), fsynced, renamed to `step-N/`, and only then
    named in `latest` (itself replaced atomically). A crash at any moment leaves
    either the old `latest` or the new one, each pointing at a complete folder; on
    resume every candidate is checked against its hashes, newest first, and a damaged
    one is skipped with a message. `save` keeps the newest `keep` checkpoints but never
    counts or deletes one that `find` rejected: a damaged folder must not push an intact
    one out.
    """

    def __init__(self, run_dir, keep=3, log=print):
        self.dir = os.path.join(run_dir, "checkpoints")
        self.keep, self.log = keep, log
        self.seen = None  # (latest, steps) as `find` last saw them
        self.damaged = set()  # the folders `find` rejected: `save` neither counts nor prunes them

    def steps(self):
        if not os.path.isdir(self.dir):
            return []
        return sorted((int(n[5:]) for n in os.listdir(self.dir) if n.startswith("step-") and n[5:].isdigit()),
                      reverse=True)

    def path(self, step):
        return os.path.join(self.dir, "step-%08d" % step)

    def save(self, sess, saver, step, meta):
        os.makedirs(self.dir, exist_ok=True)
        final = self.path(step)
        tmp = os.path.join(self.dir, ".tmp-step-%08d" % step)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            os.makedirs(tmp)
            saver.save(sess, os.path.join(tmp, "model"), write_meta_graph=False, write_state=False)
            _test_point("checkpoint-files")
            files = sorted(f for f in os.listdir(tmp))
            meta = dict(meta, step=step, files={f: _sha256(os.path.join(tmp, f)) for f in files})
            with open(os.path.join(tmp, "meta.json"), "w") as f:
                json.dump(meta, f)
                f.flush()
                os.fsync(f.fileno())
            for f in files:
                with open(os.path.join(tmp, f), "rb") as fh:
                    os.fsync(fh.fileno())
            _fsync_dir(tmp)
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.rename(tmp, final)
            _fsync_dir(self.dir)
            _test_point("checkpoint-renamed")
            write_atomic(os.path.join(self.dir, "latest"), os.path.basename(final) + "\n")
        except (OSError, IOError, ValueError, tf.errors.OpError) as e:  # ValueError: Saver's folder gone
            shutil.rmtree(tmp, ignore_errors=True)
            good = self.latest_name()
            reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
            raise KitError("could not write the checkpoint of step %d in %s (%s): free space or fix the folder, then "
                           "run the same command to resume%s" % (step, self.dir, reason.splitlines()[0] if reason else e,
                                                                  "; %s is intact" % good if good else ""), EXIT_DISK)
        self.damaged.discard(final)  # replaced by this checkpoint
        # A run writes its steps in increasing order, so a folder numbered above this one is not
        # of its course (a damaged one, or one a crash left unnamed in `latest`): it is left for
        # the run to replace when it writes that step again. Counting it could prune the intact
        # ones this run resumed from, and even this one, which `latest` names.
        intact = [s for s in self.steps() if s <= step and self.path(s) not in self.damaged]
        for old in intact[self.keep:]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        return final

    def latest_name(self):
        """The step-N folder `latest` names, or None where it is missing or names anything else (bytes that
        are no name, a path out of this folder): such a `latest` is damaged, and `find` goes by the folders."""
        try:
            with open(os.path.join(self.dir, "latest"), "rb") as f:
                name = f.read(64).strip().decode("ascii", "replace")
        except (OSError, IOError):
            return None
        return name if name.startswith("step-") and name[5:].isdigit() and len(name) >= 13 else None

    def verify(self, folder):
        """meta dict if every file of the checkpoint in `folder` is present and intact, else None."""
        try:
            with open(os.path.join(folder, "meta.json")) as f:
                meta = json.load(f)
            if not (isinstance(meta, dict) and isinstance(meta.get("files"), dict) and
                    isinstance(meta.get("config", {}), dict) and isinstance(meta.get("history", []), list)):
                return None  # JSON, but not the meta.json `save` writes
            for name, digest in meta["files"].items():
                if _sha256(os.path.join(folder, name)) != digest:
                    return None
            return meta
        except (OSError, IOError, ValueError, KeyError):
            return None

    def find(self, evaluating=False):
        """(folder, meta) of the newest intact checkpoint, or (None, None). Removes the unfinished
        `.tmp-step-N/` folders a crash in `save` left behind. `evaluating`: for --eval, which says so,
        and leaves them: it holds no lock, and one may be the checkpoint a training is writing now."""
        for name in os.listdir(self.dir) if os.path.isdir(self.dir) and not evaluating else []:
            if name.startswith(".tmp-"):
                shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)
        named, steps = self.latest_name(), self.steps()
        self.seen = (named, steps)  # the names looked at, cheap to read again and compare
        candidates = ([os.path.join(self.dir, named)] if named else []) + [self.path(s) for s in steps]
        seen, bad, self.damaged = set(), [], set()  # damaged: bad's folders, kept for `save`
        if named is None and os.path.isfile(os.path.join(self.dir, "latest")):
            bad.append(os.path.join(self.dir, "latest"))  # it names no step-N folder here: said, never followed
        for folder in candidates:
            if folder in seen:
                continue
            seen.add(folder)
            meta = self.verify(folder)
            if meta is not None:
                if bad:
                    self.log("checkpoint %s is incomplete or damaged; %s %s instead"
                             % (", ".join(os.path.basename(b) for b in bad),
                                "evaluating" if evaluating else "resuming from", os.path.basename(folder)))
                return folder, meta
            bad.append(folder)
            self.damaged.add(folder)
        if bad:
            self.log("no intact checkpoint in %s (damaged: %s)%s" % (self.dir, ", ".join(
                os.path.basename(b) for b in bad), "" if evaluating else "; starting from scratch"))
        return None, None


@contextlib.contextmanager
def run_lock(run_dir, held=True, look=False):
    """An exclusive lock on a run folder (its LOCK file, holding the pid), released by the OS
    even if the process is killed; creates the folder. `held=False` (a Horovod rank other than
    0, which leaves the folder to rank 0) takes nothing. `look=True` (RunState's first look, before
    the data is loaded): a folder not there yet is made only to see that it can be, and removed
    again at once, with any parent made for it, so that a run refused before it trains leaves no
    folder behind; nobody trains in a folder that is not there, so there is nothing to lock."""
    if not held:
        yield
        return
    path = os.path.join(run_dir, "LOCK")
    made, up = [], os.path.abspath(run_dir)
    while look and not os.path.lexists(up):
        made.append(up)
        up = os.path.dirname(up)
    try:
        os.makedirs(run_dir, exist_ok=True)
        fd = None if made else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except (OSError, IOError) as e:
        raise KitError("cannot use %s as the run folder (%s): pass --run_dir a folder you can write"
                       % (run_dir, e.strerror))
    finally:
        for folder in made:  # deepest first; rmdir leaves one that is not empty (another process's by now)
            try:
                os.rmdir(folder)
            except OSError:
                break
    if made:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (OSError, IOError) as e:
        other = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        raise KitError("run folder %s is in use by another training process (pid %s): wait for it to finish or "
                       "pass another --run_dir" % (run_dir, other))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def restore(sess, g, folder, meta, model_name, hp):
    """Restore `folder` into the session, or raise a one-line KitError if it does not fit."""
    prefix = os.path.join(folder, "model")
    saved = meta.get("config", {}) if meta else {}
    where = "%s --preset %s" % (saved.get("model", "?"), saved.get("preset", "?"))
    try:
        shapes = dict(tf.train.list_variables(prefix))
    except tf.errors.OpError as e:
        raise KitError("cannot read checkpoint %s (%s): pass another --run_dir or --ckpt_path" % (folder, e.message))
    with g.graph.as_default():
        for v in tf.global_variables():
            name = v.op.name
            if name not in shapes:
                raise KitError("checkpoint %s does not fit this model: it has no variable %s (it was written by %s); "
                               "use the same model and settings or another --run_dir" % (folder, name, where))
            if list(shapes[name]) != v.get_shape().as_list():
                raise KitError("checkpoint %s does not fit this model: %s is %s there and %s here (it was written by "
                               "%s); use the same model and settings or another --run_dir"
                               % (folder, name, list(shapes[name]), v.get_shape().as_list(), where))
    g.saver.restore(sess, prefix)


def setting_conflicts(saved, hp, ignore):
    """Names of the settings recorded with a checkpoint (`saved`) that `hp` sets differently."""
    return sorted(k for k in saved if k not in ignore and k in hp and saved[k] != hp[k])


def _flags(keys, values):
    """The settings `keys` as the flags that give them `values`, each value quoted for a POSIX shell
    (advice such as `--lr_decay_epochs ''` is pasted as written) and a bool as the parser reads it.
    None is a flag that was not given, which no value can say: those come last, as "and no --name"."""
    words = []
    for k in keys:
        v = values[k]
        if v is not None:
            words.append("--%s %s" % (k, shlex.quote(str(v).lower() if isinstance(v, bool) else str(v))))
    absent = ["--" + k for k in keys if values[k] is None]
    if absent:
        words.append(("and no " if words else "no ") + " ".join(absent))
    return " ".join(words)


def recorded_settings(meta):
    """The settings the checkpoint `meta` was trained with (settings.as_recorded of its record)."""
    return as_recorded((meta.get("config") or {}).get("hparams") or {})


def refuse_other_model(meta, folder, model_name, remedy):
    """No flags of this script rebuild another one's network: a checkpoint another model script
    trained is refused before any setting is compared. `remedy` names the other script as %s."""
    model = (meta.get("config") or {}).get("model")
    if model and model != model_name:
        raise KitError("checkpoint %s was trained by %s.py, not %s.py: %s" % (folder, model, model_name, remedy % model))


def check_resume(meta, hp, folder, model_name):
    """Refuse to resume a checkpoint under other settings, or of another model: they would
    silently change the run.

    Shapes alone cannot catch this (--stride_on or --shortcut_connections change the
    function, not the variables), so the settings recorded with the checkpoint are compared.
    """
    refuse_other_model(meta, folder, model_name, "pass another --run_dir (or run %s.py to resume it)")
    # --hvd_warmup_epochs 5 is the run that gave none: only a value that trains otherwise is a change
    given = getattr(hp, "given", frozenset())
    saved, hp = distributed.as_meant(recorded_settings(meta)), distributed.as_meant(hp)
    resumable = with_policy("resumable")
    conflicts = setting_conflicts(saved, hp, resumable)
    if not conflicts:
        return
    advice, count = conflicts, ""
    overrides = (meta.get("config") or {}).get("overrides")
    if "preset" in conflicts and isinstance(overrides, dict):
        # Another preset changes a dozen settings at once: its name says them all. Besides it, the
        # flags this command gives differently and those the checkpoint's command gave that this one
        # does not; every other setting then comes from the checkpoint's preset, as it did there.
        own = (set(conflicts) & set(given)) | (set(overrides) - set(given))
        advice = ["preset"] + sorted(k for k in own if k in saved and k not in resumable and k != "preset")
        count = " (%d settings differ: %s)" % (len(conflicts), " ".join("--" + k for k in conflicts))
    raise KitError("checkpoint %s does not fit this command: it was trained with %s, this command has %s%s; give "
                   "%s to resume it, or pass another --run_dir"
                   % (folder, _flags(advice, saved), _flags(advice, hp), count, _flags(advice, saved)))


def adopt_checkpoint_settings(meta, hp, explicit, log, folder, model_name):
    """--eval: build the network the checkpoint `folder` was trained as, if `model_name` trained it.

    Settings the command did not give are taken from the checkpoint's record; one the
    command gives differently is refused rather than silently evaluated as another network.
    What the evaluation measures (--test_subset) is the command's.
    """
    refuse_other_model(meta, folder, model_name, "pass a checkpoint of this script (or run %s.py --eval on it)")
    saved = recorded_settings(meta)
    training_only = with_policy("training_only")
    conflicts = setting_conflicts(saved, hp, with_policy("resumable") | training_only | with_policy("evaluation"))
    given = [k for k in conflicts if k in explicit]
    if given:
        raise KitError("the checkpoint was trained with %s, this command says %s: drop those flags or pass the "
                       "checkpoint's values" % (_flags(given, saved), _flags(given, hp)))
    if conflicts:
        log("evaluating with the checkpoint's settings: %s" % _flags(conflicts, saved))
    unused = sorted(k for k in explicit if k in training_only)
    if unused:  # said, so that `--eval --epochs 10` is not mistaken for an evaluation at epoch 10
        log("--eval ignores %s: %s training, not the network the checkpoint computes"
            % (_flags(unused, hp), "it shapes" if len(unused) == 1 else "they shape"))
    hp = dict(hp)
    hp.update((k, saved[k]) for k in conflicts)
    return hp
