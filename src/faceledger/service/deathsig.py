"""Die with the parent: engine worker processes must not outlive a killed server.

``die_with_parent()`` asks Linux to SIGKILL the calling process when its
parent dies, so a crashed or SIGKILLed ``faceledger serve`` leaves no orphaned
workers holding memory. Each engine worker calls it first thing, and the
forkserver that forks them does (:mod:`faceledger.service.forkserver_init`).
Importing this module does nothing: ``serve`` imports it too, and ``serve``
itself must outlive whatever started it (``nohup bash -c '... &'``).
Elsewhere than Linux it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
