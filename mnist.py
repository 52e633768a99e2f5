"""MNIST: find or download the four IDX files, verify them, parse them.

The four files are the standard gzip-compressed IDX files of LeCun, Cortes and Burges:

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

Where they come from, in order:
  1. `source` (the `--data_source` flag, else the KIT_DATA_SOURCE environment variable):
     a local folder holding the four files, or a mirror URL (its folder; file:// works);
  2. `data_dir/mnist/`, where an earlier run put them;
  3. the default mirror, MIRROR below.
A download goes to a temporary name, is verified, and only then renamed into place.

Each file is verified by the MD5 of its *decompressed* content, not of the .gz bytes:
mirrors recompress the files, which changes the .gz bytes but not what they hold. The
four digests below are the ones published for the original files. A file that does
not match is an error unless the user vouches for it (`trust=True`, `--trust_data`);
the run is then labelled as an unverified copy.

The original DenseNet MNIST script reads the same files through
`tensorflow.examples.tutorials.mnist.input_data`, which keeps the first 5,000 training
images apart as a validation set and trains on the other 55,000; this loader returns
all 60,000 (the test set, 10,000 images, is the same).
"""
import gzip
import hashlib
import os
import struct
import zlib

import numpy as np

from downloads import (DOWNLOAD_AGAIN, DataError, checksum_mismatch, data_folder, download, mirror_not_needed, _is_url,
                       _remove)

MIRROR = "https://storage.googleapis.com/cvdf-datasets/mnist/"
FOLDER = "mnist"  # under data_dir

# file -> MD5 of the decompressed IDX content (the digests published with the originals)
FILES = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def read_gz(path):
    """The decompressed bytes of `path`, or a one-line DataError saying what to do."""
    if not os.path.exists(path):
        raise DataError("missing MNIST file %s: put the four IDX .gz files there, or point --data_source at a "
                        "folder or mirror that has them" % path)
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError("%s is truncated or not a gzip file (%s): delete it and download it again"
                        % (path, str(e).splitlines()[0] if str(e) else type(e).__name__))


def parse_images(path, raw):
    """IDX3 bytes -> uint8 array (N, 28, 28, 1), after checking magic number, dimensions and size."""
    if len(raw) < 16:
        raise DataError("%s is too short to be an IDX image file (%d bytes): delete it and download it again"
                        % (path, len(raw)))
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != IMAGES_MAGIC:
        raise DataError("%s is not an MNIST image file (magic number %d, expected %d): check the file names in "
                        "the data folder" % (path, magic, IMAGES_MAGIC))
    if (rows, cols) != (28, 28):
        raise DataError("%s holds %dx%d images, expected 28x28: it is not MNIST" % (path, rows, cols))
    if len(raw) != 16 + n * rows * cols:
        raise DataError("%s is truncated or corrupt (%d bytes of pixels for %d images of %dx%d): delete it and "
                        "download it again" % (path, len(raw) - 16, n, rows, cols))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols, 1).copy()


def parse_labels(path, raw):
    """IDX1 bytes -> int64 array (N,), after checking magic number, size and the range 0..9."""
    if len(raw) < 8:
        raise DataError("%s is too short to be an IDX label file (%d bytes): delete it and download it again"
                        % (path, len(raw)))
    magic, n = struct.unpack(">II", raw[:8])
    if magic != LABELS_MAGIC:
        raise DataError("%s is not an MNIST label file (magic number %d, expected %d): check the file names in "
                        "the data folder" % (path, magic, LABELS_MAGIC))
    if len(raw) != 8 + n:
        raise DataError("%s is truncated or corrupt (%d label bytes for %d labels): delete it and download it "
                        "again" % (path, len(raw) - 8, n))
    y = np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)
    if y.size and y.max() > 9:
        raise DataError("%s has labels outside 0..9 (found %d): it is not MNIST" % (path, y.max()))
    return y


def _fetch(url, dest, md5, trust):
    """Download `url` to `dest` through a temporary name; rename only once the content is verified."""
    tmp = dest + ".download"
    download(url, tmp)  # itself writes through tmp.part, so `dest` never holds a partial file
    try:
        got = hashlib.md5(read_gz(tmp)).hexdigest()
        if got != md5 and not trust:
            raise checksum_mismatch("%s from %s" % (os.path.basename(dest), url), "content MD5 " + got, md5,
                                    "MNIST file", DOWNLOAD_AGAIN)
    except DataError:
        _remove(tmp)
        raise
    os.replace(tmp, dest)


def locate(data_dir, source=None, trust=False):
    """(folder, own): the folder holding the four files, downloading whatever is missing into
    data_dir/mnist; `own` is True for that folder of the kit's, False for one the user named."""
    source = source or os.environ.get("KIT_DATA_SOURCE") or None
    if source and not _is_url(source):
        folder = os.path.expanduser(source)
        if not os.path.isdir(folder):
            raise DataError("data source %s %s: point --data_source at the folder holding the four MNIST .gz files, "
                            "or at a mirror URL" % (source, "is not a folder" if os.path.exists(folder)
                                                    else "does not exist"))
        if not os.path.exists(os.path.join(folder, "train-images-idx3-ubyte.gz")) and \
                os.path.isdir(os.path.join(folder, FOLDER)):
            folder = os.path.join(folder, FOLDER)
        return folder, False
    folder = os.path.join(os.path.expanduser(data_dir), FOLDER)
    missing = [name for name in sorted(FILES) if not os.path.exists(os.path.join(folder, name))]
    if source and not missing:
        mirror_not_needed(folder, "the four MNIST files", source)
    if missing:
        base = (source or MIRROR).rstrip("/") + "/"
        with data_folder(folder):  # a failed download leaves no folder made for it (the files fetched stay)
            for name in missing:
                _fetch(base + name, os.path.join(folder, name), FILES[name], trust)
    return folder, True


def load(data_dir="data", source=None, trust=False):
    """Fetch (if needed), verify and load MNIST.

    Returns the same dict as cifar10.load: train_x/test_x uint8 (N, 28, 28, 1),
    train_y/test_y int64, num_classes 10, `verified` (every file's content matches the
    published MD5) and `folder`.
    """
    folder, own = locate(data_dir, source, trust)
    verified, arrays = True, {}
    for name, md5 in sorted(FILES.items()):
        path = os.path.join(folder, name)
        raw = read_gz(path)
        got = hashlib.md5(raw).hexdigest()
        if got != md5:
            if not trust:
                raise checksum_mismatch(path, "content MD5 " + got, md5, "MNIST file",
                                        "delete it to download the official one" if own
                                        else "point --data_source at the official files")
            verified = False
        arrays[name] = parse_images(path, raw) if "images" in name else parse_labels(path, raw)
    out = dict(num_classes=10, verified=verified, folder=folder)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = arrays[prefix + "-images-idx3-ubyte.gz"], arrays[prefix + "-labels-idx1-ubyte.gz"]
        if len(x) != len(y):
            raise DataError("%s: %d images but %d labels in the %s files: one of them is from another copy; "
                            "download both again" % (folder, len(x), len(y), prefix))
        out[split + "_x"], out[split + "_y"] = x, y
    return out
