"""Custody of the ledger signing key: where it lives, how it is created, the one an old version left behind.

The key signs checkpoints, so whoever can read it can forge them. It therefore
never lives in the data directory: the default is
``~/.config/faceledger/ledger_signing.key`` (``$XDG_CONFIG_HOME``), mode 0600 in a
0700 folder, created on first start so that ``make serve`` stays one command;
``FACELEDGER_LEDGER_KEY_FILE`` points elsewhere (a secret mount, another
user's file). A path inside the data directory is refused. A key left in the
data directory by an older faceledger is found here and retired by the
service (a rotation to a fresh key outside, then the old file is deleted).
This module only handles files; which records name the key is decided in
:mod:`faceledger.service.checkpoints`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import InvalidParameterError
from ..settings import Settings

LEGACY_KEY_FILE = "ledger_signing.key"  # where faceledger <= 0.x kept it: <data_dir>/ledger_signing.key
log = logging.getLogger("faceledger.ledger")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def key_path(settings: Settings) -> Path:
    """The configured key path; refused when it lies inside the data directory."""
    path = settings.ledger_key_path()
    if _inside(path, Path(settings.data_dir)):
        raise InvalidParameterError(
            f"FACELEDGER_LEDGER_KEY_FILE={path} lies inside the data directory: whoever holds the data "
            "could forge checkpoints. Keep the signing key elsewhere (docs/ledger.md, key custody).")
    return path


def write_new_key(path: Path) -> Ed25519PrivateKey:
    """Create a fresh key at ``path`` (0600, folder 0700); refuses to overwrite one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # atomic and exclusive: two first starts never see half a key
    except FileExistsError:
        raise InvalidParameterError(f"{path} already exists; not overwriting a signing key.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return key


def read_key(path: Path) -> Ed25519PrivateKey:
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidParameterError(f"{path} is not a readable PEM private key: {exc}.") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InvalidParameterError(f"{path} is not an Ed25519 private key.")
    return loaded


def take_legacy_key(settings: Settings) -> Ed25519PrivateKey | None:
    """A key an older faceledger left in the data directory, when no key exists at the configured path.

    The caller retires it (``audit_trail.retire_legacy_key``): whoever held the data could read it.
    """
    legacy = Path(settings.data_dir) / LEGACY_KEY_FILE
    if not legacy.is_file():
        return None
    path = key_path(settings)
    if path.exists():
        log.warning("%s is a signing key inside the data directory; faceledger ignores it (it uses %s). "
                    "Delete it: whoever reads it can forge checkpoints it signed.", legacy, path)
        return None
    return read_key(legacy)


def load_signing_key(settings: Settings, *, create: bool) -> Ed25519PrivateKey:
    """The configured signing key; created when ``create`` and absent, else a clear error."""
    path = key_path(settings)
    if not path.exists():
        if not create:
            hint = (" Start the service once: it retires the old key it finds in the data directory."
                    if (Path(settings.data_dir) / LEGACY_KEY_FILE).is_file() else "")
            raise InvalidParameterError(
                f"No ledger signing key at {path}: set FACELEDGER_LEDGER_KEY_FILE to the service's key.{hint}")
        try:
            return write_new_key(path)
        except InvalidParameterError:
            pass  # another process created it first: read theirs
    return read_key(path)
