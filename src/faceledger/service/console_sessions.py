"""Console sessions kept in the store: every API process of a deployment knows every session.

:class:`StoredSessions` is the backend ``console/sessions.py`` uses in a
server. Cookies are stored only as SHA-256 digests; a session's last use is
written at most every ``TOUCH_S`` seconds (a console page view is a read, and
an idle limit of minutes does not need a write per request), so a session may
end as idle up to that much early. Pop and prune delete inside one write
transaction and return only what they deleted, so when two processes end the
same session only one of them writes its ConsoleSignOut. Whether a session
has ended is the console's rule; this module only keeps them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..store import sessions as rows
from .core import Service
from .signin import session_ref

TOUCH_S = 10.0


@dataclass
class Session:
    id: str  # the cookie; "" for a session ended unseen (the store keeps only digests of cookies)
    key_id: str
    created: float
    seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    ref: str = ""  # what the ledger calls it: session_ref(id)

    def __post_init__(self) -> None:
        if not self.ref and self.id:
            self.ref = session_ref(self.id)

    def csrf_ok(self, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.csrf.encode())


def ended_why(s: Session, now: float, idle_s: float, max_s: float) -> str | None:
    if now - s.created >= max_s:
        return "expired"
    if now - s.seen >= idle_s:
        return "idle"
    return None


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _session(row: dict[str, Any], session_id: str = "") -> Session:
    return Session(session_id, row["key_id"], float(row["created_at"]), float(row["seen_at"]), row["csrf"],
                   row["ledger_ref"])


class StoredSessions:
    def __init__(self, svc: Service) -> None:
        self.catalog = svc.catalog

    def put(self, session: Session) -> None:
        with self.catalog.transaction() as tx:
            rows.put(self.catalog.write_connection(tx), {
                "digest": _digest(session.id), "ledger_ref": session.ref, "key_id": session.key_id,
                "csrf": session.csrf, "created_at": session.created, "seen_at": session.seen})

    def get(self, session_id: str) -> Session | None:
        row = rows.get(self.catalog.connection(), _digest(session_id))
        return None if row is None else _session(row, session_id)

    def touch(self, session: Session, now: float) -> None:
        if now - session.seen < TOUCH_S:
            return
        with self.catalog.transaction() as tx:
            rows.touch(self.catalog.write_connection(tx), _digest(session.id), now)
        session.seen = now

    def pop(self, session_id: str) -> Session | None:
        digest = _digest(session_id)
        with self.catalog.transaction() as tx:
            conn = self.catalog.write_connection(tx)
            row = rows.get(conn, digest)
            if row is None or not rows.delete(conn, [digest]):
                return None
        return _session(row, session_id)

    def prune(self, now: float, idle_s: float, max_s: float) -> list[tuple[Session, str]]:
        with self.catalog.transaction() as tx:
            conn = self.catalog.write_connection(tx)
            found = rows.ended(conn, now, idle_s, max_s)
            rows.delete(conn, [r["digest"] for r in found])
        out = []
        for r in found:
            s = _session(r)
            out.append((s, ended_why(s, now, idle_s, max_s) or "idle"))
        return out

    def evict(self, keep: int) -> list[Session]:
        with self.catalog.transaction() as tx:
            conn = self.catalog.write_connection(tx)
            found = rows.beyond(conn, keep)
            rows.delete(conn, [r["digest"] for r in found])
        return [_session(r) for r in found]
