"""Shared fixtures: the labelled data folder (one setting) and package-shipped photos."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The ledger signing key defaults to $XDG_CONFIG_HOME/faceledger/: keep the tests' keys (in-process
# services and every server they spawn) out of the real home directory.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="faceledger-test-config-")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACELEDGER_DATA", REPO.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """A path under the shared data folder; skips the test when it is absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"test data {p} is absent (set FACELEDGER_DATA to ../shared/data)")
    return p


@pytest.fixture(scope="session")
def grace_hopper_bytes() -> bytes:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return fh.read()


@pytest.fixture(scope="session")
def engine():  # type: ignore[no-untyped-def]
    from faceledger.engine import Engine

    return Engine()


@pytest.fixture(scope="session")
def js_sdk():  # type: ignore[no-untyped-def]
    """The AWS SDK for JavaScript v3 (tests/js, installed by ``npm ci`` on first use); skips without node/npm."""
    from .js_sdk import install

    sdk, why = install()
    if sdk is None:
        pytest.skip(why)
    return sdk


# -- PostgreSQL (issue #14): one throwaway server per session, a fresh database per test or module ------

@pytest.fixture(scope="session")
def pg_server():  # type: ignore[no-untyped-def]
    """The URL of a PostgreSQL 18 + pgvector server for this session (scripts/pg-dev.sh's code, fsync off)."""
    from faceledger import testing_pg
    from faceledger.evaluation.server import free_port

    # Not under pytest's basetemp: every pytest session run as the same user chmods that back to 0700,
    # which locks the unprivileged `pgserver` user (PostgreSQL as root) out of a cluster started in it.
    root = Path(tempfile.mkdtemp(prefix="faceledger-pg-"))
    url = testing_pg.start(root, free_port(), fast=True)
    yield PgServer(url, root)
    testing_pg.stop(root)
    shutil.rmtree(root, ignore_errors=True)


class PgServer(str):
    """The server's URL (a str), with the directory it runs in (for restarts in fault tests)."""

    root: Path

    def __new__(cls, url: str, root: Path) -> PgServer:
        self = super().__new__(cls, url)
        self.root = root
        return self

    def fresh(self, label: str) -> str:
        """A new, empty database on this server; its URL."""
        import hashlib

        from faceledger import testing_pg

        return testing_pg.create_database(self, "t_" + hashlib.sha1(label.encode()).hexdigest()[:20])


@pytest.fixture
def pg_url(pg_server, request) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty PostgreSQL database for one test (FACELEDGER_STORE=this)."""
    return pg_server.fresh(request.node.nodeid)
