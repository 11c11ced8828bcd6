"""A private data directory: the directory 0700, every file in it 0600 (or tighter).

Face templates, the master key, the ledger signing key and the client
profile all live in the data directory, so no other local user may read any
of it. New files are private from creation (:func:`create_private`, and the
service's ``umask 077``); files a looser faceledger or an operator left
behind are tightened at start-up with a warning naming them. This module
knows file modes only; it must not open the database or read any file.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("faceledger.store")

PRIVATE_UMASK = 0o077
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def secure_data_dir(path: Path) -> list[Path]:
    """Create ``path`` 0700 if absent; strip group/other bits from it and everything in it.

    Returns what had to be tightened (logged as a warning). Symbolic links are
    not followed: a link's target is not ours to change.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    # the directory itself even when reached by a link (/var/lib/faceledger -> a volume); links inside are not
    fixed = ([path] if _tighten(path.resolve()) else []) + [p for p in _walk(path) if _tighten(p)]
    if fixed:
        log.warning(
            "data directory %s was readable by other users; removed group/other permissions from: %s",
            path, ", ".join(str(p.relative_to(path)) or "." for p in fixed))
    return fixed


def create_private(path: Path) -> None:
    """Create an empty ``path`` with mode 0600 unless it exists (SQLite gives -wal/-shm its mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def append_private(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` (fsynced), creating it 0600 and its folder 0700 if absent.

    For files a client command keeps in the data directory (``faceledger index``'s
    journal): that process does not set the service's umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for top, dirs, files in os.walk(root, followlinks=False):
        out += [Path(top, name) for name in dirs + files]
    return out


def _tighten(path: Path) -> bool:
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
    except OSError as exc:  # another user's file (an operator's policy, say): say so, do not stop
        log.warning("cannot make %s private (%s); fix its owner or mode by hand", path, exc.strerror)
        return False
    return True
