"""Server-side console sessions: an opaque cookie names a session held in memory.

A session holds the access key id it was opened with, a per-session CSRF
token, and two clocks: it ends when unused for ``idle_s`` seconds and
``max_s`` seconds after sign-in whatever happens. Sessions live in the
server process only, so a restart signs everyone out (documented in
docs/console.md); the key is looked up again on every request, so a revoked
key loses its sessions at once. This module holds no rules about who may
sign in; that is :mod:`faceledger.service.signin`.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "fl_session"
SIGNIN_COOKIE = "fl_signin"  # double-submit token guarding the sign-in form itself
PATH = "/console"
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    key_id: str
    created: float
    seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def csrf_ok(self, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, idle_s: float, max_s: float, clock: Callable[[], float] = time.time) -> None:
        self.idle_s, self.max_s, self._clock = idle_s, max_s, clock
        self._by_id: dict[str, Session] = {}
        self._ended: list[tuple[Session, str]] = []  # dropped unseen: their ConsoleSignOut is still owed
        self._lock = threading.Lock()

    def new_id(self) -> str:
        return secrets.token_urlsafe(32)

    def open(self, session_id: str, key_id: str) -> Session:
        now = self._clock()
        with self._lock:
            self._prune(now)
            if len(self._by_id) >= MAX_SESSIONS:  # end the least recently used rather than grow without bound
                oldest = min(self._by_id.values(), key=lambda s: s.seen)
                del self._by_id[oldest.id]
                self._ended.append((oldest, "evicted"))
            session = Session(session_id, key_id, now, now)
            self._by_id[session_id] = session
            return session

    def get(self, session_id: str | None) -> tuple[Session | None, str | None]:
        """(the live session, None), or (None, why it ended: ``idle``/``expired``) or (None, None)."""
        if not session_id:
            return None, None
        now = self._clock()
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None, None
            ended = self._ended_why(session, now)
            if ended:
                del self._by_id[session_id]
                return session, ended
            session.seen = now
            return session, None

    def close(self, session_id: str) -> Session | None:
        with self._lock:
            return self._by_id.pop(session_id, None)

    def _ended_why(self, s: Session, now: float) -> str | None:
        if now - s.created >= self.max_s:
            return "expired"
        if now - s.seen >= self.idle_s:
            return "idle"
        return None

    def take_ended(self) -> list[tuple[Session, str]]:
        """Sessions that ended without a request noticing (idle, expired, evicted), once each, with why."""
        with self._lock:
            out, self._ended = self._ended, []
            return out

    def _prune(self, now: float) -> None:
        for sid, s in list(self._by_id.items()):
            why = self._ended_why(s, now)
            if why:
                del self._by_id[sid]
                self._ended.append((s, why))
