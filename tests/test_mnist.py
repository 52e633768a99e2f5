"""mnist.py: IDX parsing, content checksums, one-line errors for damaged files, mirror download."""
import gzip
import os
import shutil
import struct

import numpy as np
import pytest

import cifar10
import Densenet
import mnist
from conftest import SHARED, run_main

REAL = os.path.join(SHARED, "datasets", "mnist")


def copy_of(fake, tmp_path):
    folder = str(tmp_path / "copy")
    shutil.copytree(fake["folder"], folder)
    return folder


def rewrite(path, data):
    with gzip.open(path, "wb") as f:
        f.write(data)


def one_line_error(folder, trust=True):
    with pytest.raises(cifar10.DataError) as e:
        mnist.load("unused", source=folder, trust=trust)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_reads_the_fake_idx_files(fake_mnist):
    d = mnist.load("unused", source=fake_mnist["folder"], trust=True)
    (tx, ty), (vx, vy) = fake_mnist["train"], fake_mnist["test"]
    assert d["train_x"].shape == (300, 28, 28, 1) and d["train_x"].dtype == np.uint8
    assert d["test_x"].shape == (100, 28, 28, 1) and d["train_y"].dtype == np.int64
    np.testing.assert_array_equal(d["train_x"], tx)
    np.testing.assert_array_equal(d["test_x"], vx)
    np.testing.assert_array_equal(d["train_y"], ty)
    np.testing.assert_array_equal(d["test_y"], vy)
    assert d["num_classes"] == 10 and d["verified"] is False and d["folder"] == fake_mnist["folder"]


def test_wrong_checksum_is_refused_without_trust(fake_mnist, tmp_path):
    message = one_line_error(fake_mnist["folder"], trust=False)
    assert message.startswith("checksum mismatch for %s (content MD5 " % os.path.join(fake_mnist["folder"],
                                                                                      "t10k-images-idx3-ubyte.gz"))
    assert "expected 2646ac647ad5339dbf082846283269ea" in message and "--trust_data" in message
    # the files are the user's (--data_source): the way out is other files, not deleting theirs
    assert message.endswith("pass --trust_data if you vouch for this copy (and --dataset_label to say what it is), "
                            "or point --data_source at the official files")
    code, out, err = run_main(Densenet, ["--dataset", "mnist", "--data_source", fake_mnist["folder"], "--threads",
                                         "1", "--run_dir", str(tmp_path / "run")])
    assert code == 2 and err.startswith("error: checksum mismatch for ") and err.count("\n") == 1


def test_wrong_checksum_in_the_data_folder_says_to_delete_the_file(fake_mnist, tmp_path):
    """A file in --data_dir's mnist/ is the kit's to download: deleting it gets the official one."""
    shutil.copytree(fake_mnist["folder"], str(tmp_path / "data" / mnist.FOLDER))
    with pytest.raises(cifar10.DataError) as e:
        mnist.load(str(tmp_path / "data"))
    assert str(e.value).endswith("(and --dataset_label to say what it is), or delete it to download the official one")


def test_truncated_gzip_is_one_line_error(fake_mnist, tmp_path):
    folder = copy_of(fake_mnist, tmp_path)
    path = os.path.join(folder, "train-images-idx3-ubyte.gz")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    message = one_line_error(folder)
    assert message.startswith("%s is truncated or not a gzip file (" % path)
    assert message.endswith("delete it and download it again")


def test_truncated_content_is_one_line_error(fake_mnist, tmp_path):
    folder = copy_of(fake_mnist, tmp_path)
    path = os.path.join(folder, "train-images-idx3-ubyte.gz")
    rewrite(path, gzip.open(path).read()[:-28])  # a whole gzip stream, one image row short
    assert one_line_error(folder) == ("%s is truncated or corrupt (235172 bytes of pixels for 300 images of 28x28): "
                                      "delete it and download it again" % path)
    path = os.path.join(folder, "t10k-labels-idx1-ubyte.gz")
    rewrite(path, gzip.open(path).read()[:5])
    assert one_line_error(folder).startswith("%s is too short to be an IDX label file (5 bytes)" % path)


def test_bad_magic_number_is_one_line_error(fake_mnist, tmp_path):
    folder = copy_of(fake_mnist, tmp_path)
    path = os.path.join(folder, "train-images-idx3-ubyte.gz")
    raw = gzip.open(path).read()
    rewrite(path, struct.pack(">I", 2049) + raw[4:])  # a label file's magic number on the images
    assert one_line_error(folder) == ("%s is not an MNIST image file (magic number 2049, expected 2051): check the "
                                      "file names in the data folder" % path)


def test_labels_outside_0_to_9_are_refused(fake_mnist, tmp_path):
    folder = copy_of(fake_mnist, tmp_path)
    path = os.path.join(folder, "t10k-labels-idx1-ubyte.gz")
    raw = bytearray(gzip.open(path).read())
    raw[8] = 10
    rewrite(path, bytes(raw))
    assert one_line_error(folder) == "%s has labels outside 0..9 (found 10): it is not MNIST" % path


def test_images_and_labels_must_agree_in_number(fake_mnist, tmp_path):
    folder = copy_of(fake_mnist, tmp_path)
    path = os.path.join(folder, "t10k-labels-idx1-ubyte.gz")
    rewrite(path, struct.pack(">II", 2049, 99) + gzip.open(path).read()[8:107])
    assert "100 images but 99 labels in the t10k files" in one_line_error(folder)


def test_download_from_a_mirror_goes_through_a_temporary_name(fake_mnist, tmp_path, monkeypatch, capsys):
    mirror = "file://" + fake_mnist["folder"]
    data_dir = str(tmp_path / "data")
    with pytest.raises(cifar10.DataError) as e:  # not the official files: nothing is put in place
        mnist.load(data_dir, source=mirror)
    assert "checksum mismatch for t10k-images-idx3-ubyte.gz from %s/t10k-images-idx3-ubyte.gz" % mirror in str(e.value)
    assert str(e.value).endswith("--trust_data if you vouch for this copy (and --dataset_label to say what it is), or "
                                 "download it again (a download cut short is corrupt), or use another mirror")
    assert not os.path.exists(data_dir)  # nor data/mnist and data/, made for them
    d = mnist.load(data_dir, source=mirror, trust=True)
    assert sorted(os.listdir(os.path.join(data_dir, "mnist"))) == sorted(mnist.FILES)
    assert d["folder"] == os.path.join(data_dir, "mnist") and len(d["train_x"]) == 300
    # the next run finds them there, with no source at all
    monkeypatch.delenv("KIT_DATA_SOURCE", raising=False)
    capsys.readouterr()
    assert len(mnist.load(data_dir, trust=True)["test_y"]) == 100
    assert capsys.readouterr().err == ""
    # or with the mirror again (a resume): not downloaded again, and a line says so
    assert len(mnist.load(data_dir, source=mirror, trust=True)["test_y"]) == 100
    assert capsys.readouterr().err == ("note: %s/mnist holds the four MNIST files, so %s was not downloaded (pass "
                                       "another --data_dir to train on the copy it serves)\n" % (data_dir, mirror))


def test_missing_folder_is_one_line_error(tmp_path):
    """A path that is not there is said not to exist; one that is a file, not to be a folder."""
    with pytest.raises(cifar10.DataError) as e:
        mnist.load("unused", source=str(tmp_path / "nowhere"))
    assert str(e.value) == ("data source %s does not exist: point --data_source at the folder holding the four "
                            "MNIST .gz files, or at a mirror URL" % (tmp_path / "nowhere"))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"mine")
    with pytest.raises(cifar10.DataError) as e:
        mnist.load("unused", source=str(tmp_path / "train-images-idx3-ubyte.gz"))
    assert str(e.value) == ("data source %s is not a folder: point --data_source at the folder holding the four "
                            "MNIST .gz files, or at a mirror URL" % (tmp_path / "train-images-idx3-ubyte.gz"))
    assert os.listdir(str(tmp_path)) == ["train-images-idx3-ubyte.gz"]


@pytest.mark.skipif(not os.path.isdir(REAL), reason="no MNIST copy at %s" % REAL)
def test_real_mnist():
    d = mnist.load("unused", source=REAL)
    assert d["verified"] is True
    assert d["train_x"].shape == (60000, 28, 28, 1) and d["test_x"].shape == (10000, 28, 28, 1)
    assert np.bincount(d["train_y"]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(d["test_y"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert d["train_x"].max() == 255 and d["train_x"].min() == 0
