"""The data directory's pagination key (Service._page_secret): one key however many processes start together."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from types import SimpleNamespace

import pytest

from faceledger.errors import InvalidParameterError
from faceledger.service.core import Service


def _secret(data_dir: str) -> bytes:
    return Service._page_secret(SimpleNamespace(settings=SimpleNamespace(data_dir=data_dir)))  # type: ignore[arg-type]


def test_processes_starting_together_agree_on_one_key_and_leave_nothing_aside(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(6) as pool:
        keys = pool.map(_secret, [str(tmp_path)] * 24)
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert [p.name for p in tmp_path.iterdir()] == ["page.key"]
    assert (tmp_path / "page.key").stat().st_mode & 0o777 == 0o600


def test_a_half_written_key_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "page.key").write_bytes(b"")  # what O_EXCL-then-write could leave visible
    with pytest.raises(InvalidParameterError, match="damaged"):
        _secret(str(tmp_path))
