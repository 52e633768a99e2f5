"""Fetching a dataset's files safely, for cifar10.py and mnist.py: download through a temporary
name with a checksum, extract an archive only after checking every member, and one-line
errors (DataError) that say what to do.
"""
import contextlib
import errno
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import zlib


class DataError(Exception):
    """A problem with the data the user can fix; the message is one line saying how."""


@contextlib.contextmanager
def data_folder(path):
    """`with data_folder(path):` the folder the data is written into, made with its parents for the
    block. A block that fails leaves no folder it made, unless one holds something by then (an
    archive already downloaded stays, and its folder with it); a folder that was there stays."""
    made, up = [], os.path.abspath(path)
    while not os.path.lexists(up):
        made.append(up)
        up = os.path.dirname(up)
    try:
        try:
            os.makedirs(path, exist_ok=True)
            if not os.access(path, os.W_OK | os.X_OK):
                raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        except OSError as e:
            raise DataError("cannot write the data into %s (%s): pass --data_dir a folder you can write"
                            % (path, e.strerror))
        yield path
    except BaseException:
        for folder in made:  # deepest first; rmdir leaves one that is not empty
            try:
                os.rmdir(folder)
            except OSError:
                break
        raise


def one_line(e):
    """An exception's text on one line: Python 3.11's tarfile lists each method it tried on a line of its own."""
    return " ".join(str(e).split())


DOWNLOAD_AGAIN = "download it again (a download cut short is corrupt), or use another mirror"


def checksum_mismatch(path, digest, md5, what, otherwise):
    """The error for a file that is not the official one. `otherwise`: the other way out than vouching
    for it, which depends on where the file is (downloaded, the kit's to fetch again, or one the user
    named)."""
    return DataError("checksum mismatch for %s (%s, expected %s): it is not the official %s; pass --trust_data if "
                     "you vouch for this copy (and --dataset_label to say what it is), or %s"
                     % (path, digest, md5, what, otherwise))


def md5sum(path, chunk=1 << 20):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _progress(total, desc):
    try:
        from tqdm import tqdm
        return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not sys.stderr.isatty())
    except ImportError:
        return None


def download(url, dest, md5=None):
    """Fetch `url` to `dest` through `dest.part`; rename only if the MD5 matches."""
    from six.moves.urllib.request import urlopen
    part = dest + ".part"
    try:
        with urlopen(url, timeout=60) as r, open(part, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            bar = _progress(total, os.path.basename(dest))
            for block in iter(lambda: r.read(1 << 16), b""):
                f.write(block)
                if bar is not None:
                    bar.update(len(block))
            if bar is not None:
                bar.close()
    except Exception as e:
        _remove(part)
        raise DataError("could not download %s (%s): check the network, or pass --data_source with a local "
                        "archive or a mirror URL" % (url, str(e).splitlines()[0] if str(e) else type(e).__name__))
    if md5 is not None:
        got = md5sum(part)
        if got != md5:
            _remove(part)
            raise checksum_mismatch("%s from %s" % (os.path.basename(dest), url), "MD5 " + got, md5, "archive",
                                    DOWNLOAD_AGAIN)
    os.replace(part, dest)
    return dest


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def check_member(member, root):
    """Raise DataError unless tar `member` is a plain file or folder that stays inside `root`."""
    name = member.name
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError("unsafe archive: member %r has an absolute path; refusing to extract it" % name)
    target = os.path.realpath(os.path.join(root, name))
    if target != os.path.realpath(root) and not target.startswith(os.path.realpath(root) + os.sep) \
            or ".." in name.replace("\\", "/").split("/"):
        raise DataError("unsafe archive: member %r would land outside the target folder; refusing to extract it" % name)
    if not (member.isfile() or member.isdir()):
        raise DataError("unsafe archive: member %r is a link or special file; refusing to extract it" % name)


def safe_extract(archive, dest_dir, remedy="delete it and download it again"):
    """Extract every member of `archive` into `dest_dir`, atomically per top-level folder.

    Members are checked before anything is written; the archive goes to a temporary
    folder next to `dest_dir`, and its top-level entries are renamed into place at the end.
    `remedy` ends the error of an unreadable archive: deleting is advice only for the kit's own copy.
    """
    try:
        tar = tarfile.open(archive)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError("%s is not a readable tar archive (%s): %s" % (archive, one_line(e), remedy))
    with data_folder(dest_dir), tar:  # a failed extraction leaves no folder made for it
        tmp = tempfile.mkdtemp(prefix=".extract-", dir=dest_dir)
        try:
            try:
                members = tar.getmembers()
            except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
                raise DataError("%s is truncated or corrupt (%s): %s" % (archive, one_line(e), remedy))
            for m in members:
                check_member(m, tmp)
            for m in members:
                try:
                    tar.extract(m, tmp)
                except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
                    raise DataError("%s is truncated or corrupt at %s (%s): %s"
                                    % (archive, m.name, one_line(e), remedy))
            tops = []
            for entry in sorted(os.listdir(tmp)):
                final = os.path.join(dest_dir, entry)
                if os.path.isdir(final):
                    shutil.rmtree(final)
                elif os.path.exists(final):
                    os.remove(final)
                os.replace(os.path.join(tmp, entry), final)
                tops.append(final)
            return tops
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def mirror_not_needed(folder, what, source):
    """Say that mirror `source` was not contacted, since `folder` already holds `what`: the mirror is
    for downloading, and the flag is not left silently unused."""
    sys.stderr.write("note: %s holds %s, so %s was not downloaded (pass another --data_dir to train on the copy it "
                     "serves)\n" % (folder, what, source))


def _is_url(s):
    """A source urlopen reads; anything else is a local path, so that `notaurl://x` is refused as one
    that does not exist rather than taken for a mirror and never contacted."""
    return s.lower().startswith(("http://", "https://", "ftp://", "file://"))
