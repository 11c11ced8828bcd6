"""Console sessions: an opaque cookie names a session kept by a backend (the store, for a server).

A session holds the access key id it was opened with, a per-session CSRF
token, and two clocks: it ends when unused for ``idle_s`` seconds and
``max_s`` seconds after sign-in whatever happens. The server keeps sessions
in the store (service/console_sessions.py), so every API process of one
deployment knows every session and a restart signs nobody out; a
:class:`MemorySessions` backend (one process, gone at restart) serves tests
and embedded uses. The key is looked up again on every request, so a revoked
key loses its sessions at once. This module holds no rules about who may
sign in; that is :mod:`faceledger.service.signin`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..service.console_sessions import Session, ended_why

COOKIE = "fl_session"
SIGNIN_COOKIE = "fl_signin"  # double-submit token guarding the sign-in form itself
PATH = "/console"
MAX_SESSIONS = 10_000


class SessionBackend(Protocol):
    """Where sessions live. Each call is atomic; ``pop`` and ``prune`` hand a session to one caller only."""

    def put(self, session: Session) -> None: ...
    def get(self, session_id: str) -> Session | None: ...
    def touch(self, session: Session, now: float) -> None: ...
    def pop(self, session_id: str) -> Session | None: ...
    def prune(self, now: float, idle_s: float, max_s: float) -> list[tuple[Session, str]]: ...
    def evict(self, keep: int) -> list[Session]: ...


class MemorySessions:
    """Sessions in this process's memory (tests, a console without a store)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def put(self, session: Session) -> None:
        with self._lock:
            self._by_id[session.id] = session

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            return self._by_id.get(session_id)

    def touch(self, session: Session, now: float) -> None:
        session.seen = now

    def pop(self, session_id: str) -> Session | None:
        with self._lock:
            return self._by_id.pop(session_id, None)

    def prune(self, now: float, idle_s: float, max_s: float) -> list[tuple[Session, str]]:
        with self._lock:
            out = [(s, why) for s in self._by_id.values() if (why := ended_why(s, now, idle_s, max_s))]
            for s, _ in out:
                del self._by_id[s.id]
            return out

    def evict(self, keep: int) -> list[Session]:
        with self._lock:
            out = []
            while len(self._by_id) > keep:  # end the least recently used rather than grow without bound
                oldest = min(self._by_id.values(), key=lambda s: s.seen)
                del self._by_id[oldest.id]
                out.append(oldest)
            return out


class Sessions:
    def __init__(self, idle_s: float, max_s: float, clock: Callable[[], float] = time.time,
                 backend: SessionBackend | None = None) -> None:
        self.idle_s, self.max_s, self._clock = idle_s, max_s, clock
        self.backend: SessionBackend = backend or MemorySessions()
        self._ended: list[tuple[Session, str]] = []  # dropped unseen: their ConsoleSignOut is still owed
        self._lock = threading.Lock()

    def new_id(self) -> str:
        return secrets.token_urlsafe(32)

    def open(self, session_id: str, key_id: str) -> Session:
        now = self._clock()
        ended = self.backend.prune(now, self.idle_s, self.max_s)
        ended += [(s, "evicted") for s in self.backend.evict(MAX_SESSIONS - 1)]
        session = Session(session_id, key_id, now, now)
        self.backend.put(session)
        with self._lock:
            self._ended.extend(ended)
        return session

    def get(self, session_id: str | None) -> tuple[Session | None, str | None]:
        """(the live session, None), or (None, why it ended: ``idle``/``expired``) or (None, None)."""
        if not session_id:
            return None, None
        now = self._clock()
        session = self.backend.get(session_id)
        if session is None:
            return None, None
        ended = ended_why(session, now, self.idle_s, self.max_s)
        if ended:
            # only the caller that removes it reports it (another process may be ending it too)
            return (session, ended) if self.backend.pop(session_id) is not None else (None, None)
        self.backend.touch(session, now)
        return session, None

    def close(self, session_id: str) -> Session | None:
        return self.backend.pop(session_id) if session_id else None

    def take_ended(self) -> list[tuple[Session, str]]:
        """Sessions that ended without a request noticing (idle, expired, evicted), once each, with why."""
        with self._lock:
            out, self._ended = self._ended, []
            return out
