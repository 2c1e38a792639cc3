"""Locking: one writer per file, and the check that a file can be written at all.

A process computing a file holds an exclusive flock on .FILE.lock beside it, so two processes on
the same spec never write the same file at once; a killed process loses its lock, and the next run
resumes from what it had finished. The holder removes the lock file when it is done (``locked``
re-checks after acquiring that the file it locked is still the one at the path). Reading a
complete file takes no lock: complete files are never modified (--force replaces the file), so a
complete result is served from a read-only cache, folder or file system.
"""
from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import LandscapeError


def lock_path(path: Path) -> Path:
    """The lock file of a file of the store: .NAME.lock in the same folder."""
    return path.with_name(f".{path.name}.lock")


@contextmanager
def locked(path: Path, on_wait=None):
    """An exclusive lock on lock_path(path) for the duration; calls on_wait() if it has to wait.
    The lock file is removed on release (while still held); a process that locked a file that
    was removed meanwhile sees that the path now names another file, and locks again."""
    lp = lock_path(path)
    waited = False
    while True:
        fh = _open_lock(lp)
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait and not waited:
                    on_wait()
                waited = True
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fh.fileno()), os.stat(lp))
            except FileNotFoundError:
                same = False
        except BaseException:
            fh.close()
            raise
        if same:
            break
        fh.close()
    try:
        yield
    finally:
        try:
            lp.unlink(missing_ok=True)
        except OSError:
            pass
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def _open_lock(lp: Path):
    """The lock file, opened (created if absent) without following a symlink planted at its name:
    a symlink there is refused in one line, never a file elsewhere created or opened."""
    try:
        fd = os.open(lp, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise LandscapeError(f"the lock file {lp} is a symlink; remove it (a lock file is a plain file "
                                 f"the writer creates)") from None
        raise
    return os.fdopen(fd, "r+b")


def lock_held(path: Path) -> bool:
    """Whether a process (this one included, through another lock) holds the lock of path now.
    Needs no write access: a read-only cache has no writers and answers False."""
    try:
        fh = os.fdopen(os.open(lock_path(Path(path)), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def check_writable(path: Path) -> None:
    """Fail before any computing if PATH cannot be written (tries a real file: root passes
    os.access checks even on read-only file systems)."""
    parent = path.parent
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder; give a file name ending in .h5")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".landscape-probe-"):
            pass
        if path.exists():
            with open(path, "r+b"):
                pass
    except OSError as err:
        raise LandscapeError(f"cannot write {path}: {err.strerror or err}") from None
