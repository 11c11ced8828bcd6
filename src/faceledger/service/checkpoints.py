"""Signed ledger checkpoints and signing-key records: what they hold and how a signature is checked.

A checkpoint is itself a ledger record (operation ``Checkpoint``) whose details
hold the signed sequence number and hash, the short hash of every record since
the previous checkpoint (``record_hashes``, so a verifier can name the exact
record a forger changed), the signature and the public key's fingerprint. The
hash chain catches an edit, a deletion or a reordering; a signature catches
someone with the file rewriting history and recomputing every hash after it.

A ``SigningKey`` record publishes each key the service signs with, in the
ledger itself: the first one when a ledger starts, and each rotation endorsed
(signed) by the key before it. The root of trust is still outside the system:
the public keys an auditor was given (``audit verify --public-key``).
See docs/ledger.md. Key files are handled by :mod:`.signing_key`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import InvalidParameterError

CHECKPOINT = "Checkpoint"
SIGNING_KEY = "SigningKey"
SHORT_HASH = 16  # hex chars of each record hash a checkpoint lists (64 bits: enough to locate an edit)
_PEM = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def _canon(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def head_message(seq: int, head_hash: str) -> bytes:
    """What a version-1 checkpoint signs (checkpoints written before ``record_hashes``)."""
    return _canon({"seq": seq, "hash": head_hash})


def anchor_message(seq: int, head_hash: str) -> bytes:
    """What an anchor signs: tagged, so that an anchor (published, kept outside) cannot be passed off as
    a version-1 checkpoint by someone who copies its signature into a ledger record."""
    return _canon({"anchor": "faceledger ledger head", "seq": seq, "hash": head_hash})


def _checkpoint_message(details: dict[str, Any]) -> bytes:
    if "record_hashes" not in details:
        return head_message(int(details["signed_seq"]), details["signed_hash"])
    return _canon({"seq": int(details["signed_seq"]), "hash": details["signed_hash"],
                   "from": int(details["covers_from"]), "hashes": list(details["record_hashes"])})


def _sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode()


def checkpoint_details(key: Ed25519PrivateKey, seq: int, head_hash: str, covers_from: int,
                       hashes: list[str]) -> dict[str, Any]:
    """Details of a checkpoint signing record ``seq`` and listing records ``covers_from..seq``."""
    details: dict[str, Any] = {
        "signed_seq": seq, "signed_hash": head_hash, "covers_from": covers_from,
        "record_hashes": [h[:SHORT_HASH] for h in hashes], "key_fingerprint": fingerprint(key),
    }
    details["signature"] = _sign(key, _checkpoint_message(details))
    return details


def _endorsement_message(details: dict[str, Any]) -> bytes:
    return _canon({"rotate_to": details["key_fingerprint"], "public_key": details["public_key"],
                   "seq": int(details["endorsed_seq"]), "hash": details["endorsed_hash"]})


def signing_key_details(new: Ed25519PrivateKey | Ed25519PublicKey, previous: Ed25519PrivateKey | None,
                        previous_fingerprint: str | None, head: dict[str, Any] | None) -> dict[str, Any]:
    """A SigningKey record: the new public key, endorsed by ``previous`` when it is at hand."""
    details: dict[str, Any] = {"public_key": public_pem(new), "key_fingerprint": fingerprint(new),
                               "previous_fingerprint": previous_fingerprint}
    if previous is not None:
        details["endorsed_seq"] = head["seq"] if head else 0
        details["endorsed_hash"] = head["hash"] if head else "0" * 64
        details["endorsed_by"] = fingerprint(previous)
        details["endorsement"] = _sign(previous, _endorsement_message(details))
    return details


def anchor(key: Ed25519PrivateKey, head: dict[str, Any], at: float) -> dict[str, Any]:
    """A signed head for an auditor to keep outside the system (``audit anchor``)."""
    return {"seq": head["seq"], "hash": head["hash"], "anchored_at": at, "key_fingerprint": fingerprint(key),
            "signature": _sign(key, anchor_message(head["seq"], head["hash"]))}


def _verifies(public: Ed25519PublicKey, signature: object, message: bytes) -> bool:
    try:
        public.verify(base64.b64decode(str(signature), validate=True), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def checkpoint_verifies(details: Any, public: Ed25519PublicKey,
                        seen: dict[tuple[bytes, str, str], bool] | None = None) -> bool:
    """Whether ``public`` signed this checkpoint; ``seen`` remembers answers across calls (copies of one
    checkpoint are checked once, whatever unsigned fields each carries)."""
    try:
        message = _checkpoint_message(details)
    except (KeyError, ValueError, TypeError, AttributeError):
        return False
    if seen is None:
        return _verifies(public, details.get("signature"), message)
    memo = (message, fingerprint(public), str(details.get("signature")))
    if memo not in seen:
        seen[memo] = _verifies(public, details.get("signature"), message)
    return seen[memo]


def endorsement_verifies(details: Any, previous: Ed25519PublicKey) -> bool:
    try:
        message = _endorsement_message(details)
    except (KeyError, ValueError, TypeError, AttributeError):
        return False
    return _verifies(previous, details.get("endorsement"), message)


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise InvalidParameterError(f"Not a PEM public key: {exc}.") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidParameterError("The public key is not an Ed25519 key.")
    return key


def load_public_keys(text: bytes) -> list[Ed25519PublicKey]:
    """Every PEM public key in ``text`` (a key history file holds several)."""
    blocks = _PEM.findall(text)
    if not blocks:
        raise InvalidParameterError("No PEM public key found (expected -----BEGIN PUBLIC KEY----- blocks).")
    return [load_public_key(b) for b in blocks]
