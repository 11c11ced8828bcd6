"""Which keys a ledger verification trusts, where each may sign, and the claims its checkpoints make.

Trust starts from the keys the auditor gives (the published history, or on the
service host the configured key) and grows only in ways rooted in them: a
rotation endorsed by a trusted key, and a ``SigningKey`` record inside the
prefix a trusted checkpoint vouches for. Each key signs only while the ledger
says it is in force. A forger with the data directory can make records, not
signatures; this module must never trust a key on the strength of a record
alone. Used by :mod:`.verification`; see docs/ledger.md (key custody).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..store.ledger import GENESIS_HASH
from .checkpoints import (
    CHECKPOINT,
    SIGNING_KEY,
    checkpoint_verifies,
    endorsement_verifies,
    fingerprint,
    load_public_key,
)


@dataclass
class Claim:
    """Signed (or published) evidence: record ``seq`` has ``hash``; optionally the short hashes from ``start``."""

    source: str
    seq: int
    hash: str
    pos: int | None = None  # position of the checkpoint record that made it (None: a published head)
    start: int = 0
    hashes: list[str] = field(default_factory=list)



class Record(NamedTuple):
    """What trust needs of a ledger record: its operation and, for checkpoints and keys, its details."""

    operation: Any
    details: Any


class KeyTrust:
    """The trusted keys of one verification (it grows while :meth:`evidence` runs)."""

    def __init__(self, trusted: Iterable[Ed25519PublicKey]) -> None:
        self._trusted = {fingerprint(k): k for k in trusted}
        self._given = set(self._trusted)
        self._endorsed: set[int] = set()
        self._verified: dict[tuple[bytes, str, str], bool] = {}  # signature checks, across rounds
        self._records: list[Record] = []
        self._computed_of: Callable[[int], str | None] = lambda seq: None

    def fingerprints(self) -> list[str]:
        return sorted(self._trusted)

    def _key_windows(self, vouched: int) -> dict[str, list[tuple[int, int]]]:
        """Where each key named by a SigningKey record was in force: from its record (the first one: from
        seq 1, so checkpoints older than the first SigningKey count) to the next SigningKey record.

        Any record closes a window, but only a record a forger cannot have made opens one: the first
        naming of a key the auditor gave, a rotation endorsed by the key in force just before it, or a
        record inside the vouched prefix. Otherwise a forger could name a leaked old key again at the
        tail and sign with it, or have a retired key endorse a key of their own.
        """
        named = [(j, e.details) for j, e in enumerate(self._records, start=1)
                 if e.operation == SIGNING_KEY and isinstance(e.details, dict)]
        windows: dict[str, list[tuple[int, int]]] = {}
        in_force: str | None = None  # the key the previous SigningKey record put in force, if it opened
        for i, (j, d) in enumerate(named):
            fp = d.get("key_fingerprint")
            end = named[i + 1][0] if i + 1 < len(named) else len(self._records) + 1
            if not isinstance(fp, str):
                in_force = None
                continue
            # a given key opens its first window itself; naming it again needs the same proof as any
            first_given = fp in self._given and fp not in windows
            endorsed = in_force is not None and self._endorse(j, d, in_force)
            if endorsed:
                self._endorsed.add(j)
            opens = first_given or j <= vouched or endorsed
            periods = windows.setdefault(fp, [])  # named, so it signs only inside its periods
            if opens:  # only opened periods are kept: a forger's namings would make every lookup long
                periods.append((1 if i == 0 else j, end))
            in_force = fp if opens else None
        return windows

    def evidence(self, records: list[Record], chain_ok: int,
                 computed: Callable[[int], str | None]) -> tuple[list[Claim], list[tuple[int, str]]]:
        """Valid signed claims from checkpoints, and the checkpoints that are not valid.

        Trust starts from the auditor's keys and grows two ways, both rooted in them: a rotation
        endorsed by a trusted key, and a SigningKey record inside the prefix a trusted checkpoint
        vouches for (it is then the service's own record of its earlier key).
        """
        self._records, self._computed_of = records, computed
        vouched = 0
        while True:  # each round trusts more keys or vouches for more records, so it ends
            claims, bad = self._checkpoints(self._key_windows(vouched))
            now = min(chain_ok, max((c.seq for c in claims if self._computed_of(c.seq) == c.hash), default=0))
            learned = [self._learn(e.details) for e in self._records[:now]
                       if e.operation == SIGNING_KEY and isinstance(e.details, dict)
                       and e.details.get("key_fingerprint") not in self._trusted]
            if not any(learned) and now == vouched:
                return claims, bad
            vouched = now

    def _checkpoints(self, windows: dict[str, list[tuple[int, int]]]) -> tuple[list[Claim], list[tuple[int, str]]]:
        claims: list[Claim] = []
        bad: list[tuple[int, str]] = []
        for j, e in enumerate(self._records, start=1):
            if e.operation != CHECKPOINT:
                continue
            d = e.details
            if not isinstance(d, dict):
                bad.append((j, "holds no signature details"))
                continue
            fp = d.get("key_fingerprint")
            key = self._trusted.get(fp) if isinstance(fp, str) else None
            if key is None:
                bad.append((j, f"is signed by key {fp} which is not trusted (pass the published key history "
                               "with --public-key)"))
                continue
            if not checkpoint_verifies(d, key, self._verified):
                bad.append((j, "has a signature that does not verify"))
                continue
            if fp in windows and not any(start <= j < end for start, end in windows[fp]):
                bad.append((j, f"is signed by key {fp} outside the period the ledger says it was in force"))
                continue
            # covers_from and record_hashes are signed only in a version-2 checkpoint; in a version-1 one
            # they are whatever a forger added, so they are not read
            hashes = d.get("record_hashes") if "record_hashes" in d else None
            claims.append(Claim(f"checkpoint #{j}", int(d["signed_seq"]), str(d["signed_hash"]), j,
                                 int(d["covers_from"]) if hashes is not None else 0,
                                 [str(h) for h in hashes] if isinstance(hashes, list) else []))
        return claims, bad

    def _learn(self, d: dict[str, Any]) -> bool:
        fp, pem = d.get("key_fingerprint"), d.get("public_key")
        try:
            key = load_public_key(pem) if isinstance(pem, str) else None
        except Exception:  # noqa: BLE001 - a malformed key simply earns no trust
            key = None
        if key is None or fingerprint(key) != fp:
            return False
        self._trusted[str(fp)] = key
        return True

    def _endorse(self, j: int, d: dict[str, Any], in_force: str) -> bool:
        """Trust the key that the key in force endorsed at record ``j``, over the record just before it;
        True when this record is such an endorsement. A retired key endorses nothing: its period is over."""
        by, fp, pem = d.get("endorsed_by"), d.get("key_fingerprint"), d.get("public_key")
        if not (isinstance(by, str) and by == in_force and by in self._trusted and isinstance(pem, str)):
            return False
        before = self._computed_of(j - 1) if j > 1 else GENESIS_HASH
        if d.get("endorsed_seq") != j - 1 or before is None or d.get("endorsed_hash") != before:
            return False  # an endorsement copied from elsewhere in the ledger
        try:
            new = load_public_key(pem)
        except Exception:  # noqa: BLE001 - a malformed key simply earns no trust
            return False
        if fingerprint(new) != fp or not endorsement_verifies(d, self._trusted[by]):
            return False
        self._trusted.setdefault(fp, new)
        return True
