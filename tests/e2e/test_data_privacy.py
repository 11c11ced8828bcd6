"""Another local user cannot read a running server's data: templates, WAL, keys, profile.

Runs ``sqlite3`` and ``cat`` as the user ``nobody`` (needs root and runuser;
skipped otherwise) against a data directory whose parent anyone may enter, as
/var/lib or a home directory often is.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from ..conftest import data_path
from .conftest import start_server

# at least these; every other file in the directory (the ledger signing key, page.key, ...) too
SECRETS = ("catalog.db", "catalog.db-wal", "catalog.db-shm", "master.key", "profile.json")


def as_nobody(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "nobody", "--", *argv], capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root and runuser")
def test_nobody_cannot_read_the_data_directory() -> None:
    parent = Path(tempfile.mkdtemp(prefix="faceledger-privacy-"))
    os.chmod(parent, 0o755)  # enterable by anyone: only the data directory's own modes protect it
    assert as_nobody("ls", str(parent)).returncode == 0, "the check itself must be able to fail"
    srv = start_server(parent / "data", workers=1)
    try:
        rek = srv.client()
        rek.create_collection(CollectionId="c")
        photo = data_path("lfw_dev", "Abel_Pacheco", "Abel_Pacheco_0001.jpg").read_bytes()
        rek.index_faces(CollectionId="c", Image={"Bytes": photo})
        # a client command run by the same user under a usual umask writes its journal in here too
        usual = os.umask(0o022)  # the CLI inherits it (an in-process Service.open may have set 077)
        try:
            enrol = srv.cli("index", "c", str(data_path("lfw_dev", "Abel_Pacheco", "Abel_Pacheco_0002.jpg")),
                            "--quiet")
        finally:
            os.umask(usual)
        assert enrol.returncode == 0, enrol.stderr
        data = srv.data_dir
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        files = sorted(p for p in data.rglob("*") if p.is_file())
        assert set(SECRETS) <= {p.name for p in files}, files
        assert any(p.parent.name == "journal" for p in files), files
        for folder in [p for p in data.rglob("*") if p.is_dir()]:
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            denied = as_nobody("cat", str(path))
            assert denied.returncode != 0 and "Permission denied" in denied.stderr, path
        if shutil.which("sqlite3"):
            query = as_nobody("sqlite3", str(data / "catalog.db"), "SELECT count(*) FROM faces")
            assert query.returncode != 0 and "1" not in query.stdout, query
    finally:
        srv.stop()
        shutil.rmtree(parent, ignore_errors=True)
