"""Signed ledger checkpoints: the head hash signed with the service's Ed25519 key.

A checkpoint is itself a ledger record (operation ``Checkpoint``) whose details
hold the signed sequence number and hash, the signature and the public key's
fingerprint. The hash chain catches an edit, a deletion or a reordering; a
signature catches the one thing a chain alone cannot: someone with the file
rewriting history and recomputing every hash after it. ``verify_signatures``
needs only the public key, so an exported ledger can be checked on another
machine (``faceledger audit verify --file F --public-key K``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import InvalidParameterError

KEY_FILE = "ledger_signing.key"
CHECKPOINT = "Checkpoint"


def load_or_create_key(data_dir: Path) -> Ed25519PrivateKey:
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InvalidParameterError(f"{path} is not an Ed25519 private key.")
    return loaded


def public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def _message(seq: int, head_hash: str) -> bytes:
    return json.dumps({"seq": seq, "hash": head_hash}, sort_keys=True, separators=(",", ":")).encode()


def checkpoint_details(key: Ed25519PrivateKey, seq: int, head_hash: str) -> dict[str, Any]:
    return {
        "signed_seq": seq,
        "signed_hash": head_hash,
        "signature": base64.b64encode(key.sign(_message(seq, head_hash))).decode(),
        "key_fingerprint": fingerprint(key.public_key()),
    }


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise InvalidParameterError(f"Not a PEM public key: {exc}.") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidParameterError("The public key is not an Ed25519 key.")
    return key


@dataclass(frozen=True)
class SignatureResult:
    ok: bool
    checkpoints: int
    last_signed_seq: int | None
    first_bad_seq: int | None
    reason: str


def verify_signatures(records: Iterable[dict[str, Any]], public: Ed25519PublicKey) -> SignatureResult:
    """Check every Checkpoint record's signature and that it signs the hash the chain has."""
    hashes: dict[int, str] = {}
    count, last = 0, None
    for rec in records:
        hashes[int(rec["seq"])] = rec["hash"]
        if rec["operation"] != CHECKPOINT:
            continue
        d = rec["details"]
        try:
            public.verify(base64.b64decode(d["signature"]), _message(int(d["signed_seq"]), d["signed_hash"]))
        except (InvalidSignature, KeyError, ValueError, TypeError):
            return SignatureResult(False, count, last, int(rec["seq"]),
                                   f"checkpoint {rec['seq']}: the signature does not verify with this public key")
        if hashes.get(int(d["signed_seq"])) != d["signed_hash"]:
            return SignatureResult(False, count, last, int(d["signed_seq"]),
                                   f"checkpoint {rec['seq']} signed a different hash for record {d['signed_seq']}")
        count, last = count + 1, int(d["signed_seq"])
    return SignatureResult(True, count, last, None, "ok" if count else "no checkpoints to check")
