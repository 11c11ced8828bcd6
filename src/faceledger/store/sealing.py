"""Sealing API-key secrets and face vectors with the data directory's master key.

Secrets and face vectors are encrypted with AES-256-GCM under a key kept in
``<data_dir>/master.key`` (mode 0600), separate from ``catalog.db``, so a
copied database alone reveals no secret and no face template. The access key id is bound in as
associated data, so a sealed secret moved to another key's row will not
open; a vector is bound to its face id the same way. This module must not
store anything in the database itself.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceledger.errors import FaceledgerError, StorageFullError
from faceledger.store.schema import VECTOR_BYTES

MASTER_KEY_FILE = "master.key"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_VECTOR_CONTEXT = b"faceledger-vector-v1\0"  # never a valid access key id: contexts cannot collide


class SealError(FaceledgerError):
    """The master key is missing, malformed, or not the one secrets were sealed with."""


class Sealer:
    """Encrypts and decrypts small secrets with one master key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise SealError(f"master key must be {_KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        # A fingerprint is safe to store: it identifies the key, reveals nothing of it.
        self.fingerprint = hashlib.sha256(b"faceledger-master-key-v1" + key).hexdigest()

    def __repr__(self) -> str:
        return f"Sealer(fingerprint={self.fingerprint[:12]}…)"

    def seal(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def seal_bytes(self, plaintext: bytes, context: str) -> bytes:
        """Like :meth:`seal`, for binary data (face thumbnails)."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open_bytes(self, sealed: bytes, context: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise SealError("a stored thumbnail does not decrypt with master.key: the key file was "
                            "replaced or the row was altered") from exc

    def open(self, sealed: bytes, context: str) -> str:
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, context.encode()).decode()
        except InvalidTag as exc:
            raise SealError(
                "a stored secret does not decrypt with master.key: the key file was "
                "replaced or the row was altered"
            ) from exc


    def seal_vector(self, blob: bytes, face_id: str) -> bytes:
        """A face's vector (``4 * dim`` bytes), encrypted and bound to its face id (28 bytes more)."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, blob, _VECTOR_CONTEXT + face_id.encode())

    def open_vector(self, stored: bytes, face_id: str, plain_bytes: int = VECTOR_BYTES) -> bytes:
        """The ``plain_bytes`` plaintext bytes of a stored vector (a not-yet-sealed legacy row passes through).

        ``plain_bytes`` is ``4 * dim`` of the face's collection: a sealed vector is 28 bytes longer
        than its plaintext, so only the collection's dim tells the two apart (a sealed 121-d vector
        is as long as a plaintext 128-d one). Legacy plaintext rows are all 128-d (before schema v3).
        """
        if plain_bytes == VECTOR_BYTES and len(stored) == VECTOR_BYTES:
            return stored
        nonce, body = stored[:_NONCE_BYTES], stored[_NONCE_BYTES:]
        try:
            plain = self._aead.decrypt(nonce, body, _VECTOR_CONTEXT + face_id.encode())
        except InvalidTag as exc:
            raise SealError(
                f"the vector of face {face_id} does not decrypt with master.key: the key file was "
                "replaced or the row was altered or moved"
            ) from exc
        if len(plain) != plain_bytes:
            raise SealError(f"the vector of face {face_id} has {len(plain) // 4} floats; its collection "
                            f"holds {plain_bytes // 4}-d vectors")
        return plain


def load_or_create_master_key(data_dir: Path, *, create: bool) -> bytes:
    """Read ``master.key``; create it (0600, atomically) when allowed and absent."""
    path = data_dir / MASTER_KEY_FILE
    if not path.exists():
        if not create:
            raise SealError(
                f"{path} is missing but the catalog already holds sealed secrets; "
                "restore the master.key that belongs with this catalog.db"
            )
        _create_key_file(path)
    text = path.read_text(encoding="ascii").strip()
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise SealError(f"{path} is not a base64 master key") from exc
    if len(key) != _KEY_BYTES:
        raise SealError(f"{path} holds {len(key)} bytes; expected {_KEY_BYTES}")
    return key


def _create_key_file(path: Path) -> None:
    # Write a private temp file, then hard-link it into place: the link fails if
    # another process won the race, and nobody ever reads a half-written key.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(base64.b64encode(os.urandom(_KEY_BYTES)).decode() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StorageFullError(
                f"The disk holding {path.parent} is full: could not write {path.name}; nothing was "
                "written. Free space there, then retry.") from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
