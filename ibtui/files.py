"""Reading files that anyone may have put in place: a runs directory on shared storage, an
experiments file given on the command line. Only regular files are read: a FIFO never blocks a
reader, a device is never read without end, and (where asked) a symbolic link is not followed.
The bottom layer: imports nothing from ibtui."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link"}


class TooBig(OSError):
    """A regular file larger than the reader's limit (`size`: its bytes), left unread."""

    def __init__(self, size: int, path: str) -> None:
        super().__init__(errno.EFBIG, f"{size:,} bytes", path)
        self.size = size


class NotRegularFile(OSError):
    """The path is no regular file (its kind is in the message), or a link where none is
    followed."""


def kind_of(mode: int) -> str:
    return KINDS.get(stat.S_IFMT(mode), "not a regular file")


def read_regular(path: Path | str, *, limit: int | None = None, follow: bool = True) -> bytes:
    """The bytes of the regular file at `path`. Raises NotRegularFile for anything else (the
    open itself never blocks: O_NONBLOCK), and for a symbolic link when `follow` is False
    (O_NOFOLLOW); FileNotFoundError and other OSErrors as open raises them. With `limit`, at
    most limit + 1 bytes are read (so a caller can tell "too big" without reading it all)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise NotRegularFile(errno.ELOOP, "a symbolic link (not followed)", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"{kind_of(st.st_mode)}, not a regular file",
                                 str(path))
        if limit is not None and st.st_size > limit:
            raise TooBig(st.st_size, str(path))
        want = st.st_size if limit is None else min(st.st_size, limit) + 1
        chunks, got = [], 0
        while limit is None or got <= limit:
            chunk = os.read(fd, max(want - got, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def lock_held(path: Path | str) -> bool:
    """Whether a live process holds an exclusive flock on the regular file at `path`: a shared
    probe, released at once. No file, a link or a special file: False (never blocks)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


class TolerantStream(io.TextIOBase):
    """stdout/stderr (a worker's or the scheduler's log) whose write errors are dropped: a full
    disk must not kill the process through a progress line (nor turn its exit status into 120
    at shutdown)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            self._stream.write(text)
        except (OSError, ValueError):
            pass
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")


def fsync_dir(path: Path | str) -> None:
    """Flush a directory's entries (a rename or a new name in it) to disk. Filesystems that
    cannot sync a directory (EINVAL on some network and FUSE ones) are left as they are."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in _NO_DIR_SYNC:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _NO_DIR_SYNC:
            raise
    finally:
        os.close(fd)


_NO_DIR_SYNC = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES,
                errno.EPERM, errno.EROFS}


def atomic_write(path: Path | str, data: bytes | Callable[[BinaryIO], object], *,
                 fsync: bool = True, mode: int | None = None) -> None:
    """Replace `path` with `data` atomically: readers see the old file or the new one, never a
    mix. `data` is the bytes, or a function that writes them to the open file (torch.save,
    np.savez). The new file is written under a temporary name in the same directory, flushed
    and fsynced, moved over `path` (os.replace), and the directory is fsynced so that the new
    name survives a crash too. fsync=False skips both flushes (enough for liveness writes: a
    crash may lose the write, never tear it; far cheaper on shared filesystems). `mode`: the
    file's permissions (mkstemp creates 0600). On any failure the temporary file is removed
    and `path` is as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)
