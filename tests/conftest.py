"""Shared fixtures: the labelled data folder (one setting) and package-shipped photos."""

from __future__ import annotations

import os
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
