"""CIFAR-10 / CIFAR-100: download, verify, extract, load, normalise, augment.

Where the data comes from, in order:
  1. `source` (the `--data_source` flag, else the KIT_DATA_SOURCE environment variable):
     a local archive, an already-extracted folder, or a URL (a mirror, or file://);
  2. an earlier verified extraction under `data_dir` (an unverified one there is named, with the
     flags that read it, rather than downloaded over);
  3. the official archive on the CIFAR home page.
An archive is downloaded to a temporary name, checked against its published MD5 and
only then renamed into place. Extraction refuses absolute paths, `..` members, links
and special files, and moves the folder into place only once it is complete.

The python version of CIFAR is a pickle, and unpickling runs code. The kit unpickles
only batches that came out of an archive whose checksum matched, or from a folder the
user vouches for (`trust=True`, the `--trust_data` flag), and even then through an
unpickler that can build nothing but the plain containers and NumPy arrays a CIFAR
batch holds. The binary version has no such problem and is read directly.
"""
import gc
import os
import pathlib
import pickle
import sys

import numpy as np

from downloads import (DataError, checksum_mismatch, data_folder, download, md5sum, mirror_not_needed, safe_extract,
                       _is_url, _remove)

HOME = "https://www.cs.toronto.edu/~kriz/"

# name -> (archive, published MD5, folder inside the archive)
ARCHIVES = {
    "cifar10": ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py"),
    "cifar10-bin": ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", "cifar-10-batches-bin"),
    "cifar100": ("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python"),
}

# CIFAR-10's two versions: what each is called, the other one, and how a run given the other one reads it
VERSIONS = {"cifar10": ("python", "cifar10-bin",
                        "ResNet.py reads it with --binary (the other scripts read only the python version)"),
            "cifar10-bin": ("binary", "cifar10", "pass it with --data_source and --binary=false to read it")}

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
VERIFIED = ".kit-verified"  # marker written into a folder extracted from a verified archive


def fetch_archive(name, data_dir, source=None, trust=False):
    """Return (folder, verified): the extracted folder of dataset archive `name`.

    `verified` is True when the bytes came from an archive whose MD5 matched the
    published one (now or in an earlier run, remembered by a marker file).
    """
    archive, md5, folder = ARCHIVES[name]
    # A folder is the official data when its marker holds the archive's MD5, as _extract_checked writes it;
    # an empty or hand-made marker beside a copy (CIFAR-10 re-encoded as JPEG, say) does not make it so.
    marked = lambda path: os.path.isfile(os.path.join(path, VERIFIED)) and \
        pathlib.Path(path, VERIFIED).read_text().strip() == md5  # noqa: E731
    source = source or os.environ.get("KIT_DATA_SOURCE") or None
    if source and not _is_url(source):
        source = os.path.expanduser(source)
        if os.path.isdir(source):
            found = source if os.path.basename(os.path.normpath(source)) == folder or \
                _looks_like(name, source) else os.path.join(source, folder)
            if not os.path.isdir(found):
                raise other_version(name, source) or DataError(
                    "%s has no %s folder: point --data_source at the extracted %s folder or at %s"
                    % (source, folder, folder, archive))
            return found, marked(found)
        if not os.path.exists(source):
            raise DataError("data source %s does not exist: pass an archive (%s), an extracted folder, or a URL"
                            % (source, archive))
        return _extract_checked(name, source, data_dir, trust, "point --data_source at the official " + archive)

    data_dir = os.path.expanduser(data_dir)
    done = os.path.join(data_dir, folder)
    if marked(done):
        if source:
            mirror_not_needed(done, "the verified official " + archive, source)
        return done, True
    local = os.path.join(data_dir, archive)
    if source or not os.path.exists(local):  # a mirror URL, or no archive yet: download it
        if os.path.isdir(done):  # extracting the download would replace this copy, and offline it goes unnamed
            raise unmarked_copy(name, done)
        url = source if source else HOME + archive
        if source and not source.endswith((".tar.gz", ".tgz")):  # a mirror folder: append the file name
            url = source.rstrip("/") + "/" + archive
        # A mirror the user vouches for (--trust_data) may serve another copy: it is kept, and the
        # run is labelled an unverified copy, as for a local archive.
        with data_folder(data_dir):  # a failed download leaves no folder made for it
            download(url, local, None if trust else md5)
    # a downloaded archive matched or is vouched for: the remedy is for one an earlier run left
    return _extract_checked(name, local, data_dir, trust, "delete it to download the official one")


def unmarked_copy(name, folder):
    """The DataError for `folder`, an extraction of dataset archive `name` under --data_dir that no
    verified archive of the kit's made (extracted by hand, say): how to train on it, or make way."""
    # binary batches are read as bytes; python batches are pickles, unpickled only from a vouched-for folder
    flags = folder if name.endswith("-bin") else folder + " --trust_data if you vouch for it (its batches are pickles)"
    return DataError("%s is there but was not extracted from a verified archive: to train on it, pass --data_source "
                     "%s, and the run is labelled an unverified copy; or move it away and run again to download "
                     "the official %s" % (folder, flags, ARCHIVES[name][0]))


def _looks_like(name, path):
    probe = "data_batch_1.bin" if name.endswith("-bin") else ("train" if name == "cifar100" else "data_batch_1")
    return os.path.exists(os.path.join(path, probe))


def other_version(name, source, digest=None):
    """The DataError for `source`, a folder (or an archive of MD5 `digest`), holding the other version
    of CIFAR-10 than dataset archive `name`, which says how to read that one; None for any other data."""
    if name not in VERSIONS:
        return None
    reads, other, remedy = VERSIONS[name]
    _, md5, folder = ARCHIVES[other]
    if digest is not None:
        seen = source if digest == md5 else None
    else:
        seen = next((p for p in (source, os.path.join(source, folder)) if os.path.isdir(p) and (
            os.path.basename(os.path.normpath(p)) == folder or _looks_like(other, p))), None)
    if seen is None:
        return None
    return DataError("%s is the %s version of CIFAR-10, and this run reads the %s version: %s, or point --data_source "
                     "at the extracted %s folder or at %s" % (seen, VERSIONS[other][0], reads, remedy,
                                                              ARCHIVES[name][2], ARCHIVES[name][0]))


def _extract_checked(name, archive, data_dir, trust, otherwise):
    _, md5, folder = ARCHIVES[name]
    got = md5sum(archive)
    verified = got == md5
    wrong = None if verified else other_version(name, archive, got)  # even with --trust_data: it cannot be read
    if wrong is not None:
        raise wrong
    if not verified and not trust:
        raise checksum_mismatch(archive, "MD5 " + got, md5, "archive", otherwise)
    safe_extract(archive, data_dir, otherwise)
    out = os.path.join(data_dir, folder)
    if not os.path.isdir(out):
        raise DataError("%s does not contain the %s folder: it is not the expected dataset archive" % (archive, folder))
    marker = os.path.join(out, VERIFIED)
    if verified:
        with open(marker, "w") as f:
            f.write(got + "\n")
    else:
        _remove(marker)
    return out, verified


# ----------------------------------------------------------------------------- loading

class _Refused(pickle.UnpicklingError):
    pass


class _BatchUnpickler(pickle.Unpickler):
    """Builds only what a CIFAR batch holds: dicts, lists, bytes/str, ints and NumPy arrays."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super(_BatchUnpickler, self).find_class(module, name)
        raise _Refused("it asks to build %s.%s, which a data batch never holds" % (module, name))


def read_pickle(path):
    if not os.path.exists(path):
        raise DataError("missing data file %s: the dataset folder is incomplete; delete it and extract or "
                        "download the archive again" % path)
    # A damaged pickle can declare a huge bytearray and then end. CPython 3.8+ then raises
    # MemoryError and, when the half-built bytearray is freed, also prints "SystemError:
    # deallocated bytearray object has exported buffers" on stderr. The error below already says
    # the file is damaged, so that second message is kept off stderr: the hooks CPython prints
    # it through are silenced until the failed load's objects are gone.
    hooks = {name: getattr(sys, name) for name in ("excepthook", "unraisablehook") if hasattr(sys, name)}
    for name in hooks:
        setattr(sys, name, lambda *args: None)
    try:
        try:
            with open(path, "rb") as f:
                return _BatchUnpickler(f, encoding="bytes").load()
        except _Refused as e:
            message = "refusing to load %s: %s; delete the folder and download the archive again" % (path, e)
        except Exception as e:
            message = ("%s is truncated or corrupt (%s: %s): delete the folder and download the archive again"
                       % (path, type(e).__name__, e))
        gc.collect()  # the failed load's objects, freed here while the hooks are silent
    finally:
        for name, hook in hooks.items():
            setattr(sys, name, hook)
    raise DataError(message)


def _checked(path, x, y, num_classes):
    """A batch's (N, 3072) channel-major rows, as CIFAR stores them, and labels, checked; returns
    the images as (N, 32, 32, 3) uint8 and the labels as int64."""
    x, y = np.asarray(x), np.asarray(y)
    flat = y.ravel()
    wrong = flat[np.mod(flat, 1) != 0] if y.dtype.kind == "f" else flat[:0] if y.dtype.kind in "iu" else flat
    if wrong.size:  # strings or fractions, say: no class index
        raise DataError("%s has labels that are not whole numbers (%s, such as %r): wrong dataset or damaged "
                        "batch; check --dataset and the data folder" % (path, y.dtype, wrong[:1].tolist()[0]))
    if x.ndim != 2 or x.shape[1] != 3072 or x.dtype != np.uint8:
        raise DataError("%s holds images of shape %s and type %s, expected (N, 3072) uint8: not a CIFAR batch; "
                        "delete the folder and download the archive again" % (path, x.shape, x.dtype))
    if y.shape != (x.shape[0],):
        raise DataError("%s holds %d labels for %d images: the batch is damaged; delete the folder and "
                        "download the archive again" % (path, y.shape[0] if y.ndim else 0, x.shape[0]))
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError("%s has labels outside 0..%d (found %d..%d): wrong dataset or damaged batch; check "
                        "--dataset and the data folder" % (path, num_classes - 1, y.min(), y.max()))
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y.astype(np.int64)


def load_python(folder, dataset="cifar10"):
    """Read the pickled python version; returns (train_x, train_y, test_x, test_y) as uint8 NHWC / int64."""
    if dataset == "cifar100":
        parts = {"train": ["train"], "test": ["test"]}
        label_key, num_classes = "fine_labels", 100
    else:
        parts = {"train": ["data_batch_%d" % i for i in range(1, 6)], "test": ["test_batch"]}
        label_key, num_classes = "labels", 10
    out = []
    for split in ("train", "test"):
        xs, ys = [], []
        for name in parts[split]:
            path = os.path.join(folder, name)
            d = read_pickle(path)
            try:  # Python 2 wrote the keys as bytes (b"data"), later pickles as str
                d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
                x, y = d["data"], d[label_key]
            except (KeyError, TypeError, AttributeError, UnicodeDecodeError):
                raise DataError("%s lacks the 'data' or '%s' entry: not a %s batch; check --dataset and the data "
                                "folder" % (path, label_key, dataset))
            x, y = _checked(path, x, y, num_classes)
            xs.append(x)
            ys.append(y)
        out += [np.concatenate(xs), np.concatenate(ys)]
    return tuple(out)


def load_binary(folder, dataset="cifar10"):
    """Read the binary version: records of <label byte(s)><3072 image bytes>."""
    if dataset == "cifar100":
        parts = {"train": ["train.bin"], "test": ["test.bin"]}
        label_bytes, label_index, num_classes = 2, 1, 100  # coarse, fine
    else:
        parts = {"train": ["data_batch_%d.bin" % i for i in range(1, 6)], "test": ["test_batch.bin"]}
        label_bytes, label_index, num_classes = 1, 0, 10
    record = label_bytes + 3072
    out = []
    for split in ("train", "test"):
        xs, ys = [], []
        for name in parts[split]:
            path = os.path.join(folder, name)
            if not os.path.exists(path):
                raise DataError("missing data file %s: point --path/--data_source at a complete cifar-10-batches-bin "
                                "folder or at the binary archive" % path)
            try:
                raw = np.fromfile(path, dtype=np.uint8)
            except (OSError, IOError) as e:  # a folder of that name, say, or a file this user may not read
                raise DataError("cannot read data file %s (%s): point --path/--data_source at a complete "
                                "cifar-10-batches-bin folder or at the binary archive" % (path, e.strerror or e))
            if raw.size == 0 or raw.size % record:
                raise DataError("%s is truncated or corrupt (%d bytes, not a whole number of %d-byte records): "
                                "delete it and extract the archive again" % (path, raw.size, record))
            raw = raw.reshape(-1, record)
            x, y = _checked(path, raw[:, label_bytes:], raw[:, label_index], num_classes)
            xs.append(x)
            ys.append(y)
        out += [np.concatenate(xs), np.concatenate(ys)]
    return tuple(out)


def load(dataset="cifar10", data_dir="data", source=None, trust=False, binary=False):
    """Fetch (if needed) and load a CIFAR dataset.

    Returns a dict with train_x/test_x (uint8 NHWC), train_y/test_y (int64),
    num_classes, and `verified` (whether the bytes match the published archive).
    """
    name = dataset + ("-bin" if binary else "")
    if name not in ARCHIVES:
        raise DataError("no %s version of %s: use the python version (drop the binary option)"
                        % ("binary" if binary else "python", dataset))
    folder, verified = fetch_archive(name, data_dir, source, trust)
    if binary:
        arrays = load_binary(folder, dataset)
    else:
        if not verified and not trust:
            raise DataError("%s was not extracted from a verified archive, and its batches are pickles: pass "
                            "--trust_data if you vouch for this folder, or point --data_source at the archive" % folder)
        arrays = load_python(folder, dataset)
    train_x, train_y, test_x, test_y = arrays
    return dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                num_classes=100 if dataset == "cifar100" else 10, verified=verified, folder=folder)


# ----------------------------------------------------------------------------- preprocessing

def channel_stats(x):
    """Per-channel mean and std of uint8 NHWC images, in the 0..255 scale."""
    x = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return x.mean(axis=0), x.std(axis=0)


def normalize(x, mean, std=None):
    """(x - mean) / std as float32; `mean` may be per channel or per pixel, std=None skips the division."""
    out = x.astype(np.float32) - np.asarray(mean, np.float32)
    if std is not None:
        out /= np.asarray(std, np.float32)
    return out


def augment(batch, rng, pad=4, flip=True):
    """Standard CIFAR augmentation: random horizontal flip, zero-pad `pad`, random crop back.

    `batch` is float NHWC and is not modified (the originals flip in place, which
    makes flips persist across epochs). `rng` is a numpy RandomState.
    """
    n, h, w, c = batch.shape
    flips = rng.rand(n) < 0.5 if flip else np.zeros(n, bool)
    ox = rng.randint(0, 2 * pad + 1, size=n)
    oy = rng.randint(0, 2 * pad + 1, size=n)
    padded = np.zeros((n, h + 2 * pad, w + 2 * pad, c), batch.dtype)
    padded[:, pad:pad + h, pad:pad + w] = batch
    out = np.empty_like(batch)
    for i in range(n):
        crop = padded[i, oy[i]:oy[i] + h, ox[i]:ox[i] + w]
        out[i] = crop[:, ::-1] if flips[i] else crop
    return out
