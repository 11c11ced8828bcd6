"""The data directory is private: 0700, files 0600, and looser modes are fixed at open with a warning."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from faceledger.store import Catalog
from faceledger.store.perms import secure_data_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_catalog_is_private_from_creation(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a typical login umask: the catalog must not depend on it
    try:
        data = tmp_path / "data"
        with Catalog.open(data) as catalog, catalog.transaction() as tx:
            catalog.set_state(tx, "x", 1)
            names = sorted(p.name for p in data.iterdir())
            assert {"catalog.db", "catalog.db-wal", "catalog.db-shm", "master.key"} <= set(names)
            assert mode(data) == 0o700
            assert {n: mode(data / n) for n in names} == {n: 0o600 for n in names}
    finally:
        os.umask(old)


def test_looser_modes_left_by_older_versions_are_tightened_with_a_warning(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    with Catalog.open(data) as catalog, catalog.transaction() as tx:
        catalog.set_state(tx, "x", 1)
    (data / "jobs").mkdir()
    (data / "jobs" / "j1.json").write_text("{}")
    for p in [data, data / "jobs"]:
        os.chmod(p, 0o755)
    for p in [data / "catalog.db", data / "master.key", data / "jobs" / "j1.json"]:
        os.chmod(p, 0o644)
    with caplog.at_level(logging.WARNING, logger="faceledger.store"):
        with Catalog.open(data) as catalog:
            assert catalog.get_state("x") == 1
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "readable by other users" in warning and "catalog.db" in warning and "master.key" in warning
    assert mode(data) == 0o700 and mode(data / "jobs") == 0o700
    assert all(mode(p) == 0o600 for p in data.rglob("*") if p.is_file())
    caplog.clear()
    assert secure_data_dir(data) == [] and not caplog.records  # nothing left to fix: no warning


def test_tightening_keeps_the_owner_bits_and_leaves_links_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    os.chmod(outside, 0o644)
    (data / "link").symlink_to(outside)
    (data / "tool").write_text("#!/bin/sh\n")
    os.chmod(data / "tool", 0o755)
    assert secure_data_dir(data) == [data / "tool"]
    assert mode(data / "tool") == 0o700 and mode(outside) == 0o644


def test_a_file_we_cannot_chmod_is_reported_not_fatal(caplog) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import tempfile

    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root to hand files to other users")
    base = Path(tempfile.mkdtemp(prefix="faceledger-perms-"))
    os.chmod(base, 0o755)  # the service user below must be able to reach its data directory
    data = base / "data"
    data.mkdir(mode=0o700)
    for n in range(30):  # nobody's files (an operator's policy, a shared bucket), in another (service) user's dir
        theirs = data / f"policy{n:02d}.toml"
        theirs.write_text("x")
        os.chmod(theirs, 0o644)
        os.chown(theirs, 65534, 65534)
    os.chown(data, 65533, 65533)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                os.setgid(65533)
                os.setuid(65533)  # neither root nor the file's owner: chmod fails with EPERM
                with caplog.at_level(logging.WARNING, logger="faceledger.store"):
                    fixed = secure_data_dir(data)
                said = [r.getMessage() for r in caplog.records if "cannot make" in r.getMessage()]
                # one warning, however many files: a large bucket folder must not flood every start-up's log
                code = 0 if fixed == [] and len(said) == 1 and "policy00.toml" in said[0] \
                    and "and 10 more" in said[0] else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        shutil.rmtree(base)


def test_a_data_directory_reached_by_a_symbolic_link_is_itself_made_private(tmp_path: Path) -> None:
    real = tmp_path / "volume" / "faceledger"
    real.mkdir(parents=True)
    os.chmod(real, 0o755)
    data = tmp_path / "data"  # /var/lib/faceledger -> /srv/volume/faceledger, say
    data.symlink_to(real)
    with Catalog.open(data) as catalog, catalog.transaction() as tx:
        catalog.set_state(tx, "x", 1)
    assert mode(real) == 0o700
    assert data.is_symlink()


def test_a_file_that_vanishes_while_the_directory_is_checked_is_no_failure(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # a running server replaces its temp files (profile.tmp, video results) while a CLI command opens the catalog
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "kept").write_text("x")
    os.chmod(data / "kept", 0o644)
    real_walk = os.walk

    def walk_listing_a_gone_file(top, **kw):  # type: ignore[no-untyped-def]
        for root, dirs, files in real_walk(top, **kw):
            yield root, dirs, [*files, "results.tmp"]  # listed, then replaced before it is checked

    monkeypatch.setattr(os, "walk", walk_listing_a_gone_file)
    assert secure_data_dir(data) == [data / "kept"]
