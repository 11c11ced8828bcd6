"""Preloaded by the engine workers' forkserver only: it dies with ``serve``, as the workers do.

Nothing else may import this module: it sets parent-death SIGKILL on whoever imports it.
"""

from __future__ import annotations

from .deathsig import die_with_parent

die_with_parent()
