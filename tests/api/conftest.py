"""Fixtures for the transport tests: a fake service behind a real uvicorn server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The helpers sit next to the tests; make them importable under any import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_fakes import FakeService, serve  # noqa: E402
from api_raw import make_client  # noqa: E402

from faceledger.api import create_app  # noqa: E402


@pytest.fixture(scope="module")
def service() -> FakeService:
    return FakeService()


@pytest.fixture(scope="module")
def server_url(service: FakeService) -> Iterator[str]:
    with serve(create_app(service, max_inflight=4, max_queue=8)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server_url: str) -> Any:
    return make_client(server_url)
