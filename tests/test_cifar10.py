"""cifar10.py and downloads.py: both official layouts, verification, safe extraction, download, augmentation."""
import os
import shutil
import threading

import numpy as np
import pytest
from six.moves import BaseHTTPServer, SimpleHTTPServer

import cifar10
import downloads
import fakedata


def test_python_and_binary_layouts_read_the_same_images(fake_cifar):
    a = cifar10.load_python(fake_cifar["py"])
    b = cifar10.load_binary(fake_cifar["bin"])
    tx, ty = fake_cifar["train"]
    vx, vy = fake_cifar["test"]
    for got in (a, b):
        assert got[0].shape == (250, 32, 32, 3) and got[0].dtype == np.uint8
        np.testing.assert_array_equal(got[0], tx)  # channel-major rows -> NHWC, pixel for pixel
        np.testing.assert_array_equal(got[1], ty)
        np.testing.assert_array_equal(got[2], vx)
        np.testing.assert_array_equal(got[3], vy)


def test_cifar100_fine_labels(tmp_path):
    d = fakedata.write_cifar100(str(tmp_path))
    x, y, tx, ty = cifar10.load_python(d["folder"], "cifar100")
    np.testing.assert_array_equal(y, d["train"][1])
    assert y.max() > 9  # fine labels (0..99), not coarse


def test_verified_archive_loads_without_trust(fake_cifar, tmp_path, monkeypatch):
    monkeypatch.setitem(cifar10.ARCHIVES, "cifar10",
                        ("cifar-10-python.tar.gz", fakedata.md5(fake_cifar["py_tar"]), "cifar-10-batches-py"))
    d = cifar10.load("cifar10", str(tmp_path), source=fake_cifar["py_tar"])
    assert d["verified"] and d["train_x"].shape == (250, 32, 32, 3)
    assert os.path.exists(os.path.join(str(tmp_path), "cifar-10-batches-py", cifar10.VERIFIED))
    # a later run finds the verified extraction without a source
    again = cifar10.load("cifar10", str(tmp_path))
    assert again["verified"]


def test_a_marker_the_kit_did_not_write_does_not_make_a_copy_the_official_data(tmp_path):
    """A verified extraction's marker holds the archive's MD5. A copy given with --data_source whose marker is
    empty or other text (a re-encoded CIFAR-10 with one touched in, say) is an unverified copy: its run is
    labelled so and compare.py gives it a caveat, where it counted as the checksum-verified official data."""
    made = fakedata.write_cifar10(str(tmp_path), n_train=40, n_test=20, tarballs=False)
    for name, folder in (("cifar10", made["py"]), ("cifar10-bin", made["bin"])):
        marker = os.path.join(folder, cifar10.VERIFIED)
        for text in ("", "made by hand\n"):
            with open(marker, "w") as f:
                f.write(text)
            d = cifar10.load("cifar10", str(tmp_path / "dd"), source=folder, trust=True,
                             binary=name.endswith("bin"))
            assert not d["verified"], (name, text)
        if name == "cifar10":  # pickles from an unverified folder are read only with --trust_data
            with pytest.raises(cifar10.DataError, match="--trust_data"):
                cifar10.load("cifar10", str(tmp_path / "dd"), source=folder)
        with open(marker, "w") as f:  # what _extract_checked writes after the archive's MD5 matched
            f.write(cifar10.ARCHIVES[name][1] + "\n")
        assert cifar10.load("cifar10", str(tmp_path / "dd"), source=folder, binary=name.endswith("bin"))["verified"]


def test_wrong_checksum_is_refused(fake_cifar, tmp_path):
    with pytest.raises(cifar10.DataError) as e:
        cifar10.load("cifar10", str(tmp_path), source=fake_cifar["py_tar"])
    msg = str(e.value)
    assert "checksum mismatch" in msg and "--trust_data" in msg and "\n" not in msg
    assert not os.path.exists(os.path.join(str(tmp_path), "cifar-10-batches-py"))


BIN_GIVEN_PY = ("%s is the python version of CIFAR-10, and this run reads the binary version: pass it with "
                "--data_source and --binary=false to read it, or point --data_source at the extracted "
                "cifar-10-batches-bin folder or at cifar-10-binary.tar.gz")


def test_the_other_version_of_cifar10_is_named_with_the_flag_that_reads_it(fake_cifar, tmp_path, monkeypatch):
    """A python folder (or a folder holding only one, or the official python archive) where the binary
    version is read, and the other way round: the error says which version it is and how to read it."""
    with pytest.raises(cifar10.DataError) as e:
        cifar10.load("cifar10", str(tmp_path / "data"), source=fake_cifar["py"], binary=True)
    assert str(e.value) == BIN_GIVEN_PY % fake_cifar["py"]
    holder = tmp_path / "holder"
    holder.mkdir()
    os.symlink(fake_cifar["py"], str(holder / "cifar-10-batches-py"))
    with pytest.raises(cifar10.DataError) as e:
        cifar10.load("cifar10", str(tmp_path / "data"), source=str(holder), binary=True)
    assert str(e.value) == BIN_GIVEN_PY % (holder / "cifar-10-batches-py")
    with pytest.raises(cifar10.DataError) as e:
        cifar10.load("cifar10", str(tmp_path / "data"), source=fake_cifar["bin"])
    assert str(e.value) == ("%s is the binary version of CIFAR-10, and this run reads the python version: ResNet.py "
                            "reads it with --binary (the other scripts read only the python version), or point "
                            "--data_source at the extracted cifar-10-batches-py folder or at cifar-10-python.tar.gz"
                            % fake_cifar["bin"])
    # the official python archive is known by its MD5, and is not extracted even with --trust_data
    monkeypatch.setitem(cifar10.ARCHIVES, "cifar10",
                        ("cifar-10-python.tar.gz", fakedata.md5(fake_cifar["py_tar"]), "cifar-10-batches-py"))
    with pytest.raises(cifar10.DataError) as e:
        cifar10.load("cifar10", str(tmp_path / "data"), source=fake_cifar["py_tar"], trust=True, binary=True)
    assert str(e.value) == BIN_GIVEN_PY % fake_cifar["py_tar"]
    assert sorted(os.listdir(str(tmp_path))) == ["holder"]
    # a folder holding neither version is told what to hold
    with pytest.raises(cifar10.DataError) as e:
        cifar10.load("cifar10", str(tmp_path / "data"), source=str(tmp_path), binary=True)
    assert str(e.value) == ("%s has no cifar-10-batches-bin folder: point --data_source at the extracted "
                            "cifar-10-batches-bin folder or at cifar-10-binary.tar.gz" % tmp_path)


@pytest.mark.parametrize("binary", [True, False])
def test_an_unverified_copy_under_data_dir_is_named_with_the_flags_that_read_it(fake_cifar, tmp_path, monkeypatch,
                                                                                binary):
    """A cifar-10-batches-bin (or -py) folder under --data_dir without the kit's marker, extracted by hand, say:
    the kit went to download the archive, which offline said only "check the network" and online replaced the
    folder with the official one; now it names the folder and the flags that train on it, and leaves it be."""
    import shutil
    folder = str(tmp_path / "data" / ("cifar-10-batches-bin" if binary else "cifar-10-batches-py"))
    shutil.copytree(fake_cifar["bin" if binary else "py"], folder)
    before = sorted(os.listdir(folder))
    fetched = []

    def offline(url, dest, md5=None):
        fetched.append(url)
        raise downloads.DataError("could not download %s (offline): check the network" % url)

    monkeypatch.setattr(cifar10, "download", offline)
    with pytest.raises(cifar10.DataError) as e:
        cifar10.load("cifar10", str(tmp_path / "data"), binary=binary)
    vouch = "" if binary else " --trust_data if you vouch for it (its batches are pickles)"
    assert str(e.value) == (
        "%s is there but was not extracted from a verified archive: to train on it, pass --data_source %s%s, and "
        "the run is labelled an unverified copy; or move it away and run again to download the official %s"
        % (folder, folder, vouch, "cifar-10-binary.tar.gz" if binary else "cifar-10-python.tar.gz"))
    assert fetched == [] and sorted(os.listdir(folder)) == before
    # the flags it names read the folder: the binary batches without --trust_data, as they are no pickles
    d = cifar10.load("cifar10", str(tmp_path / "data"), source=folder, trust=not binary, binary=binary)
    assert d["folder"] == folder and not d["verified"] and len(d["train_y"]) == 250


def test_truncated_batches_are_refused(fake_cifar, tmp_path):
    import shutil
    py = str(tmp_path / "py")
    shutil.copytree(fake_cifar["py"], py)
    path = os.path.join(py, "data_batch_3")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(cifar10.DataError, match="data_batch_3 is truncated or corrupt"):
        cifar10.load_python(py)
    bn = str(tmp_path / "bin")
    shutil.copytree(fake_cifar["bin"], bn)
    with open(os.path.join(bn, "test_batch.bin"), "ab") as f:
        f.write(b"\0" * 100)
    with pytest.raises(cifar10.DataError, match="test_batch.bin is truncated or corrupt"):
        cifar10.load_binary(bn)


def test_dotdot_member_is_refused_and_nothing_lands_outside(tmp_path):
    arc = str(tmp_path / "evil.tar.gz")
    fakedata.add_member(arc, "cifar-10-batches-py/../../escaped.txt")
    target = tmp_path / "data"
    with pytest.raises(cifar10.DataError, match="outside the target folder"):
        downloads.safe_extract(arc, str(target))
    assert not (tmp_path / "escaped.txt").exists()
    assert not target.exists()  # the temporary folder is gone too, and the folder made for it


def _serve(folder):
    class Handler(SimpleHTTPServer.SimpleHTTPRequestHandler):  # `directory=` needs Python 3.7
        def translate_path(self, path):
            return os.path.join(folder, os.path.basename(path.split("?", 1)[0]))

        def log_message(self, *args):
            pass

    server = BaseHTTPServer.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_download_from_a_mirror_verifies_then_renames(fake_cifar, tmp_path, monkeypatch, capsys):
    server = _serve(os.path.dirname(fake_cifar["py_tar"]))
    try:
        url = "http://127.0.0.1:%d/" % server.server_address[1]
        good = fakedata.md5(fake_cifar["py_tar"])
        monkeypatch.setitem(cifar10.ARCHIVES, "cifar10", ("cifar-10-python.tar.gz", good, "cifar-10-batches-py"))
        d = cifar10.load("cifar10", str(tmp_path / "ok"), source=url)  # a mirror folder URL
        assert d["verified"] and len(d["train_y"]) == 250
        assert os.path.exists(str(tmp_path / "ok" / "cifar-10-python.tar.gz"))
        # The next run (a resume) finds the verified folder: the mirror, even one that is not there now,
        # is not contacted, and a line says so rather than leaving the flag silently unused.
        gone = "file://%s/nowhere/cifar-10-python.tar.gz" % tmp_path
        d = cifar10.load("cifar10", str(tmp_path / "ok"), source=gone, trust=True)
        assert d["verified"] and d["folder"] == str(tmp_path / "ok" / "cifar-10-batches-py")
        assert capsys.readouterr().err == (
            "note: %s holds the verified official cifar-10-python.tar.gz, so %s was not downloaded (pass another "
            "--data_dir to train on the copy it serves)\n" % (d["folder"], gone))
        # a download whose checksum does not match leaves neither the archive nor the .part file
        monkeypatch.setitem(cifar10.ARCHIVES, "cifar10", ("cifar-10-python.tar.gz", "0" * 32, "cifar-10-batches-py"))
        with pytest.raises(cifar10.DataError, match="checksum mismatch"):
            cifar10.load("cifar10", str(tmp_path / "bad"), source=url + "cifar-10-python.tar.gz")
        assert not (tmp_path / "bad").exists()  # nor the folder made for them
        with pytest.raises(cifar10.DataError, match="could not download"):
            downloads.download(url + "missing.tar.gz", str(tmp_path / "m.tar.gz"))
    finally:
        server.shutdown()


def test_a_mirror_url_of_another_copy_loads_with_trust_data_as_unverified(fake_cifar, tmp_path):
    """The fake archive is not the official one: refused by default, kept and labelled with --trust_data."""
    server = _serve(os.path.dirname(fake_cifar["bin_tar"]))
    try:
        url = "http://127.0.0.1:%d/cifar-10-binary.tar.gz" % server.server_address[1]
        with pytest.raises(cifar10.DataError) as e:
            cifar10.load("cifar10", str(tmp_path / "plain"), source=url, binary=True)
        assert str(e.value).startswith("checksum mismatch for cifar-10-binary.tar.gz from %s (MD5 " % url)
        assert str(e.value).endswith("pass --trust_data if you vouch for this copy (and --dataset_label to say what it "
                                     "is), or " + downloads.DOWNLOAD_AGAIN)
        d = cifar10.load("cifar10", str(tmp_path / "vouched"), source=url, trust=True, binary=True)
        assert not d["verified"] and len(d["train_y"]) == 250
        assert not os.path.exists(os.path.join(d["folder"], cifar10.VERIFIED))
        # the kept archive is not mistaken for the official one by a later run without the flag
        with pytest.raises(cifar10.DataError, match="checksum mismatch .*pass --trust_data.* or delete it to download "
                                                    "the official one$"):
            cifar10.load("cifar10", str(tmp_path / "vouched"), binary=True)
    finally:
        server.shutdown()


@pytest.mark.parametrize("source", ["notaurl://host/cifar-10-python.tar.gz", "s3://bucket/cifar-10-python.tar.gz"])
def test_a_source_no_download_can_read_is_a_path_that_does_not_exist(source, fake_cifar, tmp_path):
    """Only http, https, ftp and file URLs are mirrors; anything else is refused even where the data is
    already there, rather than taken for a mirror that is never contacted."""
    data_dir = tmp_path / "data"
    shutil.copytree(fake_cifar["py"], str(data_dir / "cifar-10-batches-py"))
    fakedata.mark_verified(str(data_dir / "cifar-10-batches-py"), "cifar10")
    assert cifar10.fetch_archive("cifar10", str(data_dir)) == (str(data_dir / "cifar-10-batches-py"), True)
    with pytest.raises(cifar10.DataError) as e:
        cifar10.load("cifar10", str(data_dir), source=source)
    assert str(e.value) == ("data source %s does not exist: pass an archive (cifar-10-python.tar.gz), an extracted "
                            "folder, or a URL" % source)


def test_official_urls_and_checksums():
    # https://www.cs.toronto.edu/~kriz/cifar.html lists these MD5s
    assert cifar10.HOME == "https://www.cs.toronto.edu/~kriz/"
    assert cifar10.ARCHIVES["cifar10"][:2] == ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
    assert cifar10.ARCHIVES["cifar10-bin"][:2] == ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")
    assert cifar10.ARCHIVES["cifar100"][:2] == ("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85")


def test_augmentation_keeps_shape_and_really_crops_and_flips():
    rng = np.random.RandomState(0)
    batch = rng.rand(64, 32, 32, 3).astype(np.float32)
    out = cifar10.augment(batch, np.random.RandomState(1))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert not np.shares_memory(out, batch)
    flipped = shifted = 0
    for i in range(64):
        if np.array_equal(out[i], batch[i]):
            continue
        # find the (flip, dy, dx) that explains the output: it must exist and be a crop of the padded image
        padded = np.pad(batch[i], ((4, 4), (4, 4), (0, 0)), mode="constant")
        found = None
        for f in (False, True):
            for dy in range(9):
                for dx in range(9):
                    crop = padded[dy:dy + 32, dx:dx + 32]
                    if np.array_equal(out[i], crop[:, ::-1] if f else crop):
                        found = (f, dy, dx)
        assert found is not None
        flipped += found[0]
        shifted += found[1:] != (4, 4)
    assert 15 < flipped < 49 and shifted > 40
    # the same generator state gives the same batch (resume determinism)
    np.testing.assert_array_equal(out, cifar10.augment(batch, np.random.RandomState(1)))


def test_training_statistics_normalise_the_test_set():
    x = np.zeros((4, 2, 2, 3), np.uint8)
    x[..., 0] = [[[10, 20], [30, 40]]] * 4
    mean, std = cifar10.channel_stats(x)
    assert mean[0] == 25 and mean[1] == 0
    out = cifar10.normalize(x, mean, np.where(std > 0, std, 1))
    np.testing.assert_allclose(out[..., 0].mean(), 0, atol=1e-6)
