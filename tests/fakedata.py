"""Tiny synthetic datasets in the official on-disk formats, for the tests.

The images are learnable (each class has its own mean colour plus noise) so that a few
training steps measurably lower the loss.
"""
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile

import numpy as np


def images(n, num_classes=10, seed=0, size=32, channels=3):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, num_classes, size=n).astype(np.uint8)
    colours = np.random.RandomState(123).randint(30, 225, size=(num_classes, channels))
    x = colours[y][:, None, None, :] + rng.randint(-30, 31, size=(n, size, size, channels))
    return np.clip(x, 0, 255).astype(np.uint8), y


def planar(x):
    return x.transpose(0, 3, 1, 2).reshape(len(x), -1)


def write_cifar10(root, n_train=250, n_test=100, seed=0, tarballs=True):
    """Write cifar-10-batches-py/ and -bin/ (5 train batches + test) under root, plus archives.

    Returns dict(py=folder, bin=folder, py_tar=path, bin_tar=path, train=(x, y), test=(x, y)).
    """
    tx, ty = images(n_train, seed=seed)
    vx, vy = images(n_test, seed=seed + 1)
    py = os.path.join(root, "cifar-10-batches-py")
    bn = os.path.join(root, "cifar-10-batches-bin")
    os.makedirs(py, exist_ok=True)
    os.makedirs(bn, exist_ok=True)
    parts = np.array_split(np.arange(n_train), 5)
    batches = [("data_batch_%d" % (i + 1), tx[p], ty[p]) for i, p in enumerate(parts)] + [("test_batch", vx, vy)]
    for name, x, y in batches:
        with open(os.path.join(py, name), "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": [int(v) for v in y], b"data": planar(x),
                         b"filenames": [b"f%d.png" % i for i in range(len(y))]}, f, protocol=2)
        with open(os.path.join(bn, name + ".bin"), "wb") as f:
            f.write(np.concatenate([y[:, None], planar(x)], axis=1).astype(np.uint8).tobytes())
    out = dict(py=py, bin=bn, train=(tx, ty), test=(vx, vy))
    if tarballs:
        for key, arc, folder in (("py_tar", "cifar-10-python.tar.gz", py), ("bin_tar", "cifar-10-binary.tar.gz", bn)):
            path = os.path.join(root, arc)
            with tarfile.open(path, "w:gz") as tar:
                tar.add(folder, arcname=os.path.basename(folder))
            out[key] = path
    return out


def mark_verified(folder, name):
    """Write into `folder` the marker a verified extraction of CIFAR archive `name` leaves (its MD5, as
    cifar10._extract_checked writes it), so that the kit reads the folder as the official data."""
    import cifar10
    with open(os.path.join(folder, cifar10.VERIFIED), "w") as f:
        f.write(cifar10.ARCHIVES[name][1] + "\n")


def write_cifar100(root, n_train=200, n_test=100, seed=0):
    tx, ty = images(n_train, num_classes=100, seed=seed)
    vx, vy = images(n_test, num_classes=100, seed=seed + 1)
    folder = os.path.join(root, "cifar-100-python")
    os.makedirs(folder, exist_ok=True)
    for name, x, y in (("train", tx, ty), ("test", vx, vy)):
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({b"fine_labels": [int(v) for v in y], b"coarse_labels": [int(v) // 5 for v in y],
                         b"data": planar(x)}, f, protocol=2)
    path = os.path.join(root, "cifar-100-python.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    return dict(folder=folder, tar=path, train=(tx, ty), test=(vx, vy))


def write_mnist(root, n_train=300, n_test=100, seed=0):
    """The four IDX .gz files of MNIST, with synthetic 28x28 digits-like images."""
    os.makedirs(root, exist_ok=True)
    tx, ty = images(n_train, seed=seed, size=28, channels=1)
    vx, vy = images(n_test, seed=seed + 1, size=28, channels=1)
    for prefix, x, y in (("train", tx, ty), ("t10k", vx, vy)):
        with gzip.open(os.path.join(root, "%s-images-idx3-ubyte.gz" % prefix), "wb") as f:
            f.write(struct.pack(">IIII", 2051, len(x), 28, 28) + x[..., 0].tobytes())
        with gzip.open(os.path.join(root, "%s-labels-idx1-ubyte.gz" % prefix), "wb") as f:
            f.write(struct.pack(">II", 2049, len(y)) + y.tobytes())
    return dict(folder=root, train=(tx, ty), test=(vx, vy))


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def add_member(tar_path, name, data=b"x", kind="file", linkname=None):
    """Write a gzip tar at tar_path holding one hostile member (for the safety tests)."""
    with tarfile.open(tar_path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, linkname or "/etc/passwd"
            tar.addfile(info)
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, linkname or "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
