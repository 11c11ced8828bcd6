"""A private data directory: the directory 0700, every file in it 0600 (or tighter).

Face templates, the master key, the ledger signing key and the client
profile all live in the data directory, so no other local user may read any
of it. New files are private from creation (:func:`create_private`, and the
service's ``umask 077``); files a looser faceledger or an operator left
behind are tightened at start-up with a warning naming them. This module
knows file modes only; it must not open the database or read any file.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from pathlib import Path

from faceledger.errors import StorageFullError

log = logging.getLogger("faceledger.store")

PRIVATE_UMASK = 0o077
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def secure_data_dir(path: Path) -> list[Path]:
    """Create ``path`` 0700 if absent; strip group/other bits from it and everything in it.

    Returns what had to be tightened (logged as a warning). Symbolic links are
    not followed: a link's target is not ours to change.
    """
    make_private_dir(path)
    # the directory itself even when reached by a link (/var/lib/faceledger -> a volume); links inside are not
    failed: list[tuple[Path, str]] = []
    fixed = ([path] if _tighten(path.resolve(), failed) else []) + [p for p in _walk(path) if _tighten(p, failed)]
    if fixed:
        log.warning(
            "data directory %s was readable by other users; removed group/other permissions from: %s",
            path, _names(path, fixed))
    if failed:  # another user's files (an operator's policy, a shared bucket): say so once, do not stop
        log.warning("cannot make %s private in data directory %s (%s); fix their owner or mode by hand",
                    _names(path, [p for p, _ in failed]), path, failed[0][1])
    return fixed


def _names(root: Path, paths: list[Path], most: int = 20) -> str:
    """Paths relative to ``root``, at most ``most`` of them: a large bucket folder must not flood the log."""
    def name(p: Path) -> str:
        try:
            return str(p.relative_to(root))
        except ValueError:  # the resolved directory behind a link
            return str(p)

    names = ", ".join(name(p) for p in paths[:most])
    return names + (f" and {len(paths) - most} more" if len(paths) > most else "")


def make_private_dir(path: Path) -> None:
    """Create ``path`` and each missing parent 0700 (whatever the umask); a full disk is StorageFullError."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for level in reversed(missing):
        try:
            level.mkdir(mode=0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            _raise_if_full(exc, level)
            raise
        os.chmod(level, 0o700)  # mkdir's mode is filtered by the umask


def copy_private(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` (atomically, via ``dest.part``), 0600 in 0700 folders whatever the umask."""
    make_private_dir(dest.parent)
    part = dest.with_name(dest.name + ".part")
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a leftover .part keeps its old mode through O_CREAT
        with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
            shutil.copyfileobj(fh, out, 1 << 20)
        os.replace(part, dest)
    except OSError as exc:
        part.unlink(missing_ok=True)
        _raise_if_full(exc, dest)
        raise


def create_private(path: Path) -> None:
    """Create an empty ``path`` with mode 0600 unless it exists (SQLite gives -wal/-shm its mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        _raise_if_full(exc, path)
        raise
    os.close(fd)


def _raise_if_full(exc: OSError, path: Path) -> None:
    if exc.errno == errno.ENOSPC:  # no block or no inode left for a directory or an empty file
        raise StorageFullError(
            f"The disk holding {path.parent} is full: could not create {path.name}; nothing was written. "
            "Free space there, then retry.") from exc


def append_private(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` (fsynced), creating it 0600 and its folder 0700 if absent.

    For files a client command keeps in the data directory (``faceledger index``'s
    journal): that process does not set the service's umask.
    """
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for top, dirs, files in os.walk(root, followlinks=False):
        out += [Path(top, name) for name in sorted(dirs + files)]
    return out


def _tighten(path: Path, failed: list[tuple[Path, str]]) -> bool:
    try:
        st = path.lstat()
    except FileNotFoundError:  # removed since it was listed (a running server's temp file)
        return False
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & _OTHERS:
        return False
    try:
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~_OTHERS)
    except FileNotFoundError:
        return False
    except OSError as exc:  # another user's file: reported by the caller
        failed.append((path, exc.strerror or str(exc)))
        return False
    return True
