"""Verify a ledger against what outside parties keep: trusted public keys and published heads.

The attacker this is built for holds the data directory: they can rewrite
SQLite at will and read everything in it. The chain alone then proves only
that records agree with each other, so a ledger is accepted only when

1. the hash chain holds (seq, prev_hash and hash of every record);
2. every ``Checkpoint`` is signed by a trusted key (given by the auditor, or
   endorsed in the ledger by a trusted key) and signs the hashes the chain has;
3. no more than ``checkpoint_every`` records follow the last signed record
   before the next checkpoint (a missing checkpoint is a failure; the tail
   after the last checkpoint may hold up to that many unsigned records);
4. every head published earlier (``audit anchor``) is still in the chain.

``first_bad_seq`` is the first record that fails; every record before it
passes every check that applies to it. A checkpoint lists the short hash of
each record it covers, so a rewrite is located at the exact record changed.
Records are fed one by one, so a read that fails half-way still reports the
last intact record. See docs/ledger.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..store.ledger import GENESIS_HASH, HASHED_FIELDS, Unreadable, record_hash
from .checkpoints import CHECKPOINT, SHORT_HASH, SIGNING_KEY
from .key_trust import Claim, KeyTrust, Record


@dataclass(frozen=True)
class Head:
    """A head published earlier: record ``seq`` had hash ``hash``."""

    seq: int
    hash: str


@dataclass
class _Entry:
    seq: Any
    prev: Any
    stored: Any
    computed: str | None
    operation: Any
    at: Any
    problem: str | None = None
    details: Any = None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    checked: int
    first_bad_seq: int | None
    reason: str
    head_hash: str
    last_intact: dict[str, Any] | None
    checkpoints: int
    last_signed_seq: int | None
    trusted_keys: list[str]
    heads_checked: int
    database: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "checked": self.checked,
                "first_bad_seq": self.first_bad_seq, "reason": self.reason, "head_hash": self.head_hash,
                "last_intact": self.last_intact, "checkpoints": self.checkpoints,
                "last_signed_seq": self.last_signed_seq, "trusted_keys": self.trusted_keys,
                "heads_checked": self.heads_checked, "database_problems": self.database}


def _entry(record: Any) -> _Entry:
    if isinstance(record, Unreadable) or not isinstance(record, dict):
        line = record.get("line") if isinstance(record, dict) else "?"
        return _Entry(None, None, None, None, None, None, f"line {line} is not a JSON ledger record")
    missing = [f for f in (*HASHED_FIELDS, "hash") if f not in record]
    entry = _Entry(record.get("seq"), record.get("prev_hash"), record.get("hash"), None,
                   record.get("operation"), record.get("at"))
    if missing:
        entry.problem = f"record lacks field(s) {', '.join(missing)}"
        return entry
    try:
        entry.computed = record_hash(record)
    except (TypeError, ValueError) as exc:
        entry.problem = f"record cannot be hashed: {exc}"
        return entry
    if entry.operation in (CHECKPOINT, SIGNING_KEY):
        entry.details = record.get("details")
    return entry


def _distinct(claims: list[Claim]) -> list[Claim]:
    """The first of each set of claims that say the same (a checkpoint copied across the ledger)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for c in claims:
        key = (c.seq, c.hash, c.start, tuple(c.hashes))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


class LedgerVerifier:
    """Feed records in ledger order with :meth:`add`, then :meth:`finish`."""

    def __init__(self, trusted: Iterable[Ed25519PublicKey], checkpoint_every: int,
                 heads: Iterable[Head] = ()) -> None:
        self._trust = KeyTrust(trusted)
        self._every = max(0, int(checkpoint_every))
        self._heads = list(heads)
        self._entries: list[_Entry] = []

    def add(self, record: Any) -> None:
        self._entries.append(_entry(record))

    # -- the checks --------------------------------------------------------
    def _chain(self, cands: list[tuple[int, str]]) -> int | None:
        """Seq, link and hash of each record; returns the seq a broken link leaves in doubt."""
        prev = GENESIS_HASH
        for j, e in enumerate(self._entries, start=1):
            if e.problem:
                cands.append((j, f"seq {j}: {e.problem}"))
                return None
            if e.seq != j:
                if isinstance(e.seq, int) and not isinstance(e.seq, bool) and e.seq > j:
                    cands.append((j, f"seq {j}: expected seq {j}, found {e.seq}: record(s) missing"))
                else:
                    cands.append((j, f"seq {j}: expected seq {j}, found {e.seq!r}: records out of order "
                                     "or renumbered"))
                return None
            if e.computed != e.stored:
                cands.append((j, f"seq {j}: hash does not match the record's contents: the record was edited"))
                return None
            if e.prev != prev:  # a self-consistent record that does not follow its predecessor
                if j == 1:
                    cands.append((1, "seq 1: prev_hash is not the genesis hash: records before it were removed"))
                    return None
                cands.append((j - 1, f"seq {j - 1}: its hash is not the prev_hash record {j} holds: record "
                                     f"{j - 1} was edited and re-hashed, or record {j} was altered or put in "
                                     "place of another"))
                return j - 1
            prev = e.stored
        return None

    def _computed(self, seq: int) -> str | None:
        return self._entries[seq - 1].computed if 1 <= seq <= len(self._entries) else None

    def _locate(self, claim: Claim, matched: list[Claim], signed: dict[int, str]) -> int:
        """The first record a failed claim's short-hash list does not recognise."""
        for offset, short in enumerate(claim.hashes):
            seq = claim.start + offset
            actual = self._computed(seq)
            if seq >= 1 and (actual is None or actual[:SHORT_HASH] != short):
                return seq
        return self._vouched_after(max((c.seq for c in matched if c.seq < claim.seq), default=0), signed,
                                   claim.seq) + 1

    def _vouched_after(self, seq: int, signed: dict[int, str], limit: int | None = None) -> int:
        """Extend a vouched prefix ``1..seq`` over records a signed short-hash list confirms."""
        while limit is None or seq + 1 < limit:
            actual = self._computed(seq + 1)
            if actual is None or signed.get(seq + 1) != actual[:SHORT_HASH]:
                break
            seq += 1
        return seq

    def finish(self, read_error: str | None = None, database: Iterable[str] = ()) -> Verdict:
        n = len(self._entries)
        cands: list[tuple[int, str]] = []
        doubtful = self._chain(cands)
        chain_ok = min((seq for seq, _ in cands), default=n + 1) - 1
        claims, bad = self._trust.evidence([Record(e.operation, e.details) for e in self._entries], chain_ok,
                                           self._computed)
        signing = list(claims)  # checkpoints with a trusted, valid signature (matching or not)
        claims = _distinct(claims)  # copies of one checkpoint say the same once (or n copies cost n^2)
        signed = {c.start + i: h for c in claims for i, h in enumerate(c.hashes)}
        claims += [Claim(f"published head #{h.seq}", h.seq, h.hash) for h in self._heads]
        matched = [c for c in claims if 1 <= c.seq <= n and self._computed(c.seq) == c.hash]
        for c in claims:
            if 1 <= c.seq <= n and self._computed(c.seq) == c.hash:
                continue
            if c.seq > n or c.seq < 1:
                cands.append((n + 1, f"{c.source} vouches for record #{c.seq} (hash {c.hash[:16]}…), but the "
                                     f"ledger ends at #{n}: records were cut off the end or the ledger emptied"))
            else:
                k = self._locate(c, matched, signed)
                cands.append((k, f"seq {k}: not the record {c.source} signed for #{c.seq} (it signed a "
                                 "different hash): it was edited, removed or replaced and the chain re-hashed"))
        if doubtful is not None:  # a signature that vouches for the first of the two settles it
            actual = self._computed(doubtful)
            if actual is not None and (signed.get(doubtful) == actual[:SHORT_HASH]
                                       or any(c.seq == doubtful for c in matched)):
                settled = (doubtful + 1, f"seq {doubtful + 1}: it does not follow record {doubtful}, which a "
                                         "checkpoint vouches for: it was altered or put in place of another")
                cands = [settled if s == doubtful else (s, r) for s, r in cands]
        for j, why in bad[:1]:  # what a later invalid checkpoint leaves vouched for is never less
            v = self._vouched_after(max((c.seq for c in matched if c.pos is not None and c.pos < j), default=0),
                                    signed, j)
            cands.append((v + 1, f"checkpoint #{j} {why}: no record after #{v} can be vouched for"))
        last_signed = self._interval(signing, matched, cands, chain_ok)
        if read_error is not None:
            cands.append((n + 1, f"the database is damaged: reading the ledger stopped after record #{n} "
                                 f"({read_error})"))
        problems = list(database)
        return self._verdict(cands, matched, last_signed, problems)

    def _interval(self, signing: list[Claim], matched: list[Claim], cands: list[tuple[int, str]],
                  chain_ok: int) -> int:
        """Every interval holds a validly signed checkpoint (whether what it signs matches is checked apart).

        Only a checkpoint that signs the record just before it restarts the interval; any other record,
        a copied or stray ``Checkpoint`` included, counts towards it (or a forger could append any number
        of them, unsigned fields and all). Records after the first broken one are not counted: their
        positions mean nothing.
        """
        by_pos = {c.pos: c.seq for c in signing if c.pos is not None}
        last = 0
        for j in range(1, min(len(self._entries), chain_ok) + 1):
            if by_pos.get(j) == j - 1:
                last = j - 1
                continue
            if self._every and j - last > self._every:
                cands.append((last + 1, f"no valid checkpoint signs records #{last + 1}..#{j - 1} (one is "
                                        f"required every {self._every} records; record #{j} follows them "
                                        "unsigned): checkpoints were removed or never written"))
                break
        return max((c.seq for c in matched if c.pos is not None), default=0)

    def _verdict(self, cands: list[tuple[int, str]], matched: list[Claim], last_signed: int,
                 problems: list[str]) -> Verdict:
        n = len(self._entries)
        first = min(cands, key=lambda c: c[0]) if cands else None
        checked = first[0] - 1 if first else n
        last = self._entries[checked - 1] if checked >= 1 else None
        checkpoints = sum(1 for c in matched if c.pos is not None)
        heads = sum(1 for c in matched if c.pos is None)
        if first:
            reason = first[1]
        else:
            reason = (f"{n} record(s) intact; {checkpoints} signed checkpoint(s)"
                      + (f", the last signs #{last_signed}" if last_signed else "")
                      + f"; {heads} published head(s) found in the chain")
            if not self._every:  # say so: with the rule off, a ledger stripped of its checkpoints passes
                reason += "; the checkpoint interval was NOT checked (checkpoint_every 0)"
            elif n > last_signed:
                reason += (f"; records #{last_signed + 1}..#{n} await the next checkpoint (allowed: up to "
                           f"{self._every} unsigned)")
        if problems:
            reason = f"the catalog database fails its integrity check ({problems[0][:200]}); " + reason
        return Verdict(
            ok=first is None and not problems, records=n, checked=checked,
            first_bad_seq=first[0] if first else None, reason=reason,
            head_hash=str(last.stored) if last else GENESIS_HASH,
            last_intact=None if last is None else {"seq": last.seq, "hash": last.stored,
                                                   "operation": last.operation, "at": last.at},
            checkpoints=checkpoints, last_signed_seq=last_signed or None,
            trusted_keys=self._trust.fingerprints(), heads_checked=len(self._heads), database=problems)
