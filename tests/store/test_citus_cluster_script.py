"""scripts/citus-cluster.sh: a smoke search on Citus where it is installed, a clear skip where it is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "citus-cluster.sh"


def test_citus_cluster_runs_or_says_why_not(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "citus"), "2", "9750"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    if done.stdout.startswith("skipped: Citus not installed ("):
        assert "citus.control" in done.stdout  # names what it looked for, and where
    else:
        assert "citus smoke: exact search equals the embedded index" in done.stdout, done.stdout
