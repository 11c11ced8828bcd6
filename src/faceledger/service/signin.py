"""Console sign-in: an API key (access key id and secret) checked against the sealed key store.

The console is a transport; whether a key id and secret admit someone, how
many failures lock sign-in out, and which ledger records that leaves are
rules, so they live here. Every sign-in, every failure (with why, and the key
id tried, or only its digest when it is not shaped like one; never the
secret) and every sign-out is a ledger record (``ConsoleSignIn``,
``ConsoleSignInFailed``, ``ConsoleSignOut``). Failures are counted per access key id and per client address in a sliding window;
past the limit sign-in is refused without looking at the secret.
Sessions themselves (cookies, expiry) are the console's job, not this module's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections import deque
from collections.abc import Callable

from ..errors import AccessDeniedError, InvalidParameterError, ThrottlingError
from .context import Principal
from .core import Service

MAX_FIELD = 128
KEY_ID = re.compile(r"AKIA[A-Z0-9]{16}")  # the shape of the access key ids faceledger issues
MAX_TRACKED = 100_000  # key ids and addresses with recent failures held at once
_DUMMY_SECRET = "x" * 40


def session_ref(session_id: str) -> str:
    """What the ledger says about a session: enough to pair sign-in and sign-out, not the cookie."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


class FailureWindow:
    """Failed attempts per key id and per address within ``window_s``; thread-safe, in memory.

    Only names with a failure inside the window are held, and at most
    ``max_tracked`` of them: anyone can send sign-ins under made-up key ids,
    and each must not cost memory for ever.
    """

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic,
                 max_tracked: int = MAX_TRACKED) -> None:
        self.limit, self.window_s, self._clock, self.max_tracked = limit, window_s, clock, max_tracked
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, name: str, now: float) -> int:
        q = self._fails.get(name)
        if q is None:
            return 0
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[name]
        return len(q)

    def locked(self, *names: str) -> bool:
        with self._lock:
            now = self._clock()
            return self.limit > 0 and any(self._recent(n, now) >= self.limit for n in names)

    def fail(self, *names: str) -> None:
        with self._lock:
            now = self._clock()
            for n in names:
                q = self._fails.pop(n, None) or deque()  # re-inserted: the dict stays in order of last failure
                q.append(now)
                while len(q) > max(1, self.limit):  # failures older than the last ``limit`` add nothing
                    q.popleft()
                self._fails[n] = q
            if len(self._fails) > self.max_tracked:
                for stale in list(self._fails):
                    self._recent(stale, now)
                while len(self._fails) > self.max_tracked:  # still full: forget the longest quiet first
                    del self._fails[next(iter(self._fails))]

    def tracked(self) -> int:
        with self._lock:
            return len(self._fails)

    def clear(self, *names: str) -> None:
        with self._lock:
            for n in names:
                self._fails.pop(n, None)


class SignIn:
    """Checks console credentials for one service and writes the ledger records of sessions."""

    def __init__(self, svc: Service, clock: Callable[[], float] = time.monotonic) -> None:
        self.svc = svc
        self.failures = FailureWindow(svc.settings.console_signin_failures,
                                      svc.settings.console_signin_window_s, clock)

    def sign_in(self, access_key_id: str, secret: str, remote: str | None, session_id: str) -> Principal:
        """The key's principal, or the error to show; every outcome is in the ledger."""
        key_id = (access_key_id or "").strip()
        if not key_id or not secret or len(key_id) > MAX_FIELD or len(secret) > MAX_FIELD:
            self._failed(key_id[:MAX_FIELD], remote, "malformed")
            raise InvalidParameterError("Enter an access key id and its secret access key.")
        names = (f"key:{key_id}", f"addr:{remote or '-'}")
        if self.failures.locked(*names):
            self._failed(key_id, remote, "rate-limited")
            raise ThrottlingError(
                f"Too many failed sign-ins for this key or address; wait "
                f"{int(self.failures.window_s)} seconds and try again.")
        principal = self.svc.lookup_key(key_id)
        expected = principal.secret if principal is not None else _DUMMY_SECRET
        secret_ok = hmac.compare_digest(expected.encode(), secret.encode())
        why = "unknown-key" if principal is None else "wrong-secret" if not secret_ok else \
            "revoked" if principal.revoked else None
        if why is not None or principal is None:
            self.failures.fail(*names)
            self._failed(key_id, remote, why or "unknown-key")
            raise AccessDeniedError("The access key id or secret is wrong, or the key is revoked.")
        self.failures.clear(f"key:{key_id}")
        self._append("ConsoleSignIn", principal.access_key_id, {
            "role": principal.role, "remote": remote, "session": session_ref(session_id)})
        return principal

    def sign_out(self, principal_id: str, remote: str | None, session_id: str, ended: str,
                 ref: str | None = None) -> None:
        """``ended``: ``sign-out`` (asked for), ``replaced`` (signed in again), ``idle`` or ``expired``.

        ``ref``: the session's ledger reference when the cookie itself is not known (a session the store
        ended unseen keeps only digests of it).
        """
        self._append("ConsoleSignOut", principal_id, {
            "remote": remote, "session": ref or session_ref(session_id), "ended": ended})

    def _failed(self, key_id: str, remote: str | None, reason: str) -> None:
        self._append("ConsoleSignInFailed", None, {**self._tried(key_id), "remote": remote, "reason": reason})

    def _tried(self, key_id: str) -> dict[str, str]:
        """The key id tried, when it is one; otherwise only a digest of it. People paste a secret into the
        key id field, and the ledger is permanent: what does not look like a key id is not written out."""
        if not key_id:
            return {}
        if KEY_ID.fullmatch(key_id) or self.svc.lookup_key(key_id) is not None:
            return {"access_key_id": key_id}
        return {"access_key_id_sha256": hashlib.sha256(key_id.encode()).hexdigest()[:16]}

    def _append(self, operation: str, principal: str | None, details: dict) -> None:
        with self.svc.catalog.transaction() as tx:
            self.svc.ledger.append(tx, operation=operation, principal=principal, collection_id=None,
                                   details={k: v for k, v in details.items() if v is not None})
