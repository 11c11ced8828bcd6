"""Die with the parent: engine worker processes must not outlive a killed server.

Importing this module (the forkserver preloads it) and calling
``die_with_parent()`` (each engine worker does) asks Linux to SIGKILL the
process when its parent dies, so a crashed or SIGKILLed ``faceledger serve``
leaves no orphaned workers holding memory. Elsewhere it does nothing.
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


die_with_parent()  # the forkserver imports this module at start
