"""A full disk under a real server: a clear, retryable StorageFullException, nothing half-written.

The data directory is a small tmpfs (needs root to mount; skipped otherwise),
filled with a filler file so SQLite meets ENOSPC for real.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from ..conftest import data_path
from .conftest import start_server


def photo(person: str, n: int) -> bytes:
    return data_path("lfw_dev", person, f"{person}_{n:04d}.jpg").read_bytes()


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    mount = tmp_path / "data"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of the disk's free space."""
    filler = disk / "filler.bin"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def test_disk_full_is_retryable_and_leaves_nothing_half_written(small_disk: Path) -> None:
    srv = start_server(small_disk, workers=1)
    try:
        rek = srv.client(retries={"total_max_attempts": 1, "mode": "standard"})
        rek.create_collection(CollectionId="c")
        kept = rek.index_faces(CollectionId="c", Image={"Bytes": photo("Abel_Pacheco", 1)})["FaceRecords"]
        filler = fill(small_disk, leave=8192)
        err = None
        for i in range(400):  # write until the WAL can no longer grow
            try:
                rek.create_collection(CollectionId=f"pad{i}", Tags={f"k{j}": "x" * 200 for j in range(40)})
            except ClientError as exc:
                err = exc
                break
        assert err is not None, "the disk never filled"
        assert err.response["Error"]["Code"] == "StorageFullException", err.response
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert "full" in err.response["Error"]["Message"] and "retry" in err.response["Error"]["Message"]
        with pytest.raises(ClientError) as again:
            rek.index_faces(CollectionId="c", Image={"Bytes": photo("Aaron_Peirsol", 1)})
        assert again.value.response["Error"]["Code"] == "StorageFullException"
        # reads are ledgered too, so they wait for space; the file shows what was kept
        with sqlite3.connect(small_disk / "catalog.db") as db:
            assert db.execute("SELECT face_id FROM faces").fetchall() == [(kept[0]["Face"]["FaceId"],)]
            assert db.execute("SELECT COUNT(*) FROM ledger WHERE operation = 'IndexFaces'").fetchone() == (1,)
        # botocore treats the 503 as transient: with retries on, it tries again by itself
        retrying = srv.client(retries={"total_max_attempts": 2, "mode": "standard"})
        with pytest.raises(ClientError) as retried:
            retrying.index_faces(CollectionId="c", Image={"Bytes": photo("Aaron_Peirsol", 1)})
        assert retried.value.response["ResponseMetadata"]["RetryAttempts"] == 1
        filler.unlink()  # space freed: the same call now succeeds
        assert rek.describe_collection(CollectionId="c")["FaceCount"] == 1
        hits = rek.search_faces_by_image(CollectionId="c", Image={"Bytes": photo("Aaron_Peirsol", 1)})
        assert hits["FaceMatches"] == []  # the refused face never reached the index
        rek.index_faces(CollectionId="c", Image={"Bytes": photo("Aaron_Peirsol", 1)})
        assert rek.describe_collection(CollectionId="c")["FaceCount"] == 2
    finally:
        srv.stop()


def test_serve_on_a_full_disk_says_so_and_exits_14(small_disk: Path) -> None:
    import sys

    fill(small_disk, leave=0)
    done = subprocess.run([sys.executable, "-m", "faceledger.cli.main", "serve", "--port", "0", "--data",
                           str(small_disk / "data"), "--workers", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 14, done.stderr
    assert "error: StorageFullException: The disk holding" in done.stderr and "Traceback" not in done.stderr


def test_key_and_profile_files_on_a_full_disk_are_storage_full_and_leave_no_partial_file(small_disk: Path) -> None:
    from faceledger.errors import StorageFullError
    from faceledger.profile import Profile, write_profile
    from faceledger.store.sealing import load_or_create_master_key

    filler = fill(small_disk, leave=0)
    before = sorted(p.name for p in small_disk.iterdir())
    with pytest.raises(StorageFullError, match="master.key"):
        load_or_create_master_key(small_disk, create=True)
    with pytest.raises(StorageFullError, match="profile.json"):
        write_profile(small_disk / "profile.json", Profile("http://x", "AKIA", "s" * 4096 * 4))
    assert sorted(p.name for p in small_disk.iterdir()) == before  # no key, no profile, no temp file
    filler.unlink()
    assert len(load_or_create_master_key(small_disk, create=True)) == 32


@pytest.fixture
def no_inodes_left(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A tmpfs with free blocks but no free inode: creating a directory or an empty file is ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,nr_inodes=16", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        (mount / "kept").mkdir()
        for i in range(64):
            try:
                (mount / f"f{i}").touch()
            except OSError:
                break
        else:
            pytest.skip("this tmpfs did not run out of inodes")
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_no_room_for_the_data_directory_or_an_empty_catalog_is_storage_full(no_inodes_left: Path) -> None:
    import sys

    from faceledger.errors import StorageFullError
    from faceledger.store import Catalog

    with pytest.raises(StorageFullError, match="could not create data"):
        Catalog.open(no_inodes_left / "data")  # a new data directory
    with pytest.raises(StorageFullError, match="could not create catalog.db"):
        Catalog.open(no_inodes_left / "kept")  # an existing, empty one
    for cmd in (["serve", "--port", "0", "--workers", "1"], ["keys", "list"]):
        done = subprocess.run([sys.executable, "-m", "faceledger.cli.main", *cmd, "--data",
                               str(no_inodes_left / "data")], capture_output=True, text=True, timeout=120)
        assert done.returncode == 14, (cmd, done.stderr)
        assert "error: StorageFullException: The disk holding" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in (no_inodes_left / "kept").iterdir()) == []
