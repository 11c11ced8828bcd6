"""``faceledger serve`` and ``faceledger keys``: run the service, manage API keys."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import IO, Any, cast

import click

from ..errors import InvalidParameterError
from ..profile import Profile, read_profile, write_profile
from ..service.context import ROLES
from ..settings import Settings
from ..store.opening import open_catalog
from ..store.protocols import CatalogStore
from .output import emit, handle_errors

data_option = click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
                           help="Data directory (default: $FACELEDGER_DATA_DIR or ~/.local/share/faceledger).")


def settings_for(data_dir: str | None, **overrides: Any) -> Settings:
    return Settings.from_env(None, data_dir=data_dir, **overrides)


def profile_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "profile.json"


def ensure_admin(settings: Settings, catalog: CatalogStore, endpoint: str) -> tuple[Profile, bool]:
    """The bootstrap admin key: created and written to the profile on first start."""
    path = profile_path(settings)
    if path.is_file():
        try:
            prof = read_profile(path)
            key = catalog.get_key(prof.access_key_id)
            if key is not None and not key.get("revoked"):
                prof = Profile(endpoint, prof.access_key_id, prof.secret_access_key, settings.region)
                write_profile(path, prof)
                return prof, False
        except Exception:  # an unreadable profile is replaced, not fatal
            pass
    with catalog.transaction() as tx:
        key_id, secret = catalog.create_key(tx, "admin", "bootstrap admin", None)
    prof = Profile(endpoint, key_id, secret, settings.region)
    write_profile(path, prof)
    return prof, True


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8765; 0 picks a free one).")
@data_option
@click.option("--workers", type=int, default=None,
              help="Engine worker processes per API process (default: the cores shared out among the API processes).")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="API processes serving the one port, each with its own engine workers (default 1).")
@click.option("--listen-fd", type=int, default=None, hidden=True,
              help="Accept on this inherited listening socket (set by --processes for each API process).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the start-up details as one JSON object (then serve; logs go to stderr).")
@handle_errors
def serve(host: str | None, port: int | None, data_dir: str | None, workers: int | None, processes: int | None,
          listen_fd: int | None, as_json: bool) -> None:
    """Run the Rekognition-compatible service on the embedded store."""
    settings = settings_for(data_dir, host=host, port=port, workers=workers, processes=processes)
    if listen_fd is not None:
        _serve_one(settings, as_json, listen_fd)
    elif settings.processes > 1:
        _supervise(settings, as_json)
    else:
        _serve_one(settings, as_json, None)


def _free_port(settings: Settings) -> int:
    import socket

    if settings.port != 0:
        return settings.port
    with socket.socket() as s:
        s.bind((settings.host, 0))
        return int(s.getsockname()[1])


def _started(settings: Settings, endpoint: str, model_version: str, prof: Profile, created: bool) -> dict:
    return {"Endpoint": endpoint, "Region": settings.region, "DataDir": str(settings.data_dir),
            "Profile": str(profile_path(settings)), "ModelVersion": model_version,
            "AccessKeyId": prof.access_key_id, "KeyCreated": created,
            "SecretAccessKey": prof.secret_access_key if created else None,
            "Console": f"{endpoint}/console/",
            "LedgerKeyFile": str(settings.ledger_key_path())}


def _supervise(settings: Settings, as_json: bool) -> None:
    """Bind once, create the admin key once, then run ``settings.processes`` API processes on the socket."""
    from ..service.core import Service, default_workers
    from ..store.perms import PRIVATE_UMASK, make_private_dir
    from .supervisor import Supervisor, listen

    sock = listen(settings.host, settings.port)
    port_ = int(sock.getsockname()[1])
    endpoint = f"http://{settings.host}:{port_}"
    os.umask(PRIVATE_UMASK)
    make_private_dir(settings.data_dir)
    catalog = open_catalog(settings)  # migrates the catalog before any API process opens it
    try:
        prof, created = ensure_admin(settings, catalog, endpoint)
    finally:
        catalog.close()
    started = _started(settings, endpoint, Service.engine_settings_for(settings).model_version, prof, created)
    workers_each = settings.workers or default_workers(settings.processes)
    started.update(Processes=settings.processes, WorkersPerProcess=workers_each)
    emit(started, as_json, lambda o: startup_text(o) + f"\n{o['Processes']} API processes, "
         f"{o['WorkersPerProcess']} engine worker(s) each")
    child_args = ["--host", settings.host, "--port", str(port_), "--data", str(settings.data_dir),
                  "--workers", str(workers_each)]
    code = Supervisor(child_args, settings.processes, sock, endpoint).run()
    if code:
        raise SystemExit(code)


def _serve_one(settings: Settings, as_json: bool, listen_fd: int | None) -> None:
    import socket

    from ..api.app import create_app
    from ..api.connections import ConnectionLimits
    from ..api.server import run
    from ..console import mount_console
    from ..service import open_service
    from ..service.deathsig import die_with_parent

    sock = None
    if listen_fd is not None:  # one of several API processes: the supervisor owns the port and the profile
        die_with_parent()
        sock = socket.socket(fileno=listen_fd)
        port_ = int(sock.getsockname()[1])
    else:
        port_ = _free_port(settings)
    endpoint = f"http://{settings.host}:{port_}"
    service = open_service(settings)
    if sock is None:
        prof, created = ensure_admin(settings, service.catalog, endpoint)
        emit(_started(settings, endpoint, service.model_version, prof, created), as_json, startup_text)
    app = create_app(cast(Any, service), max_body_bytes=settings.max_body_bytes,
                     max_inflight=2 * max(1, service.engines.processes), max_queue=settings.max_queue,
                     admission_wait_s=settings.admission_wait_s, body_timeout_s=settings.body_timeout_s,
                     max_buffered_bytes=settings.max_buffered_bytes, clock_skew_s=settings.clock_skew_s)
    limits = ConnectionLimits(settings.max_connections, settings.max_connections_per_address,
                              settings.header_timeout_s)
    mount_console(app, service)
    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit
    # lets the finally below close the engine workers instead of orphaning them.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        run(app, settings.host, port_, limits=limits, sock=sock)
    finally:
        service.close()


def startup_text(o: dict) -> str:
    """What `serve` prints at start: the endpoint, the key, and the three ways to use it."""
    region, endpoint = o["Region"], o["Endpoint"]
    lines = [f"faceledger {o['ModelVersion']} serving on {endpoint}  (data: {o['DataDir']})"]
    if o["KeyCreated"]:
        lines.append("Created the admin key (saved in the profile; shown once here):")
    lines.append(f"  profile: {o['Profile']}")
    lines.append(f"  console: {o['Console']} (sign in with an access key id and secret)")
    lines.append(f"  ledger signing key: {o['LedgerKeyFile']} (publish `faceledger audit public-key`)")
    lines.append("AWS CLI and SDKs: these variables (or `aws configure --profile faceledger` with the same values):")
    lines.append(f"  export AWS_ACCESS_KEY_ID={o['AccessKeyId']}")
    lines.append(f"  export AWS_SECRET_ACCESS_KEY={secret_line(o)}")
    lines.append(f"  export AWS_DEFAULT_REGION={region}")
    lines.append(f"  aws rekognition list-collections --endpoint-url {endpoint}")
    lines.append("boto3:")
    lines.append("  import boto3")
    lines.append(f"  rek = boto3.client('rekognition', endpoint_url='{endpoint}', region_name='{region}',")
    lines.append("                     aws_access_key_id=KEY, aws_secret_access_key=SECRET)")
    lines.append("  print(rek.list_collections())")
    return "\n".join(lines)


def secret_line(o: dict) -> str:
    """The secret on first start; after that a shell expression that reads it from the profile.

    Later starts do not print the secret, and the old placeholder (``<secret ... profile>``)
    pasted into a shell was a redirection error, not a key.
    """
    import shlex

    if o["KeyCreated"]:
        return str(o["SecretAccessKey"])
    read = 'import json,sys; print(json.load(open(sys.argv[1]))["secret_access_key"])'
    return f'"$(python3 -c {shlex.quote(read)} {shlex.quote(o["Profile"])})"'


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (works on the data directory directly)."""


@keys.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--label", default=None, help="Who or what the key is for.")
@click.option("--purpose", default=None, help="Default purpose for this key's searches.")
@click.option("--case", default=None, help="Default case reference for this key's searches.")
@click.option("--save", "save_to", type=click.Path(dir_okay=False), default=None,
              help="Also write the key to this file (mode 0600), for client commands' --key-file.")
@data_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def keys_create(role: str, label: str | None, purpose: str | None, case: str | None, save_to: str | None,
                data_dir: str | None, as_json: bool) -> None:
    """Create a key; the secret is shown once (or saved with --save)."""
    settings = settings_for(data_dir)
    defaults = {k: v for k, v in (("purpose", purpose), ("case", case)) if v}
    save_path = Path(save_to).expanduser() if save_to else None
    # Claim the key file before the key exists: a file that cannot be written must not leave behind
    # an active key whose secret nobody saw.
    saved = _claim_key_file(save_path) if save_path is not None else None
    try:
        with open_catalog(settings) as catalog, catalog.transaction() as tx:
            key_id, secret = catalog.create_key(tx, role, label, defaults or None)
            out = {"AccessKeyId": key_id, "SecretAccessKey": secret, "Role": role, "Label": label}
            if saved is not None:
                saved.write(json.dumps(out, indent=2))
                saved.flush()
                os.fsync(saved.fileno())
    except BaseException:
        if saved is not None and save_path is not None:
            saved.close()
            save_path.unlink(missing_ok=True)
        raise
    if saved is not None:
        saved.close()
        out["SavedTo"] = str(save_path)
    emit(out, as_json, lambda o: f"{o['AccessKeyId']} {o['SecretAccessKey']} ({o['Role']})"
         + (f"; saved to {o['SavedTo']} (use it with --key-file)" if "SavedTo" in o else ""))


def _claim_key_file(path: Path) -> IO[str]:
    """``path`` created empty, mode 0600, never over an existing file or link."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(f"Cannot create the folder for the key file {path}: {exc.strerror}.") from exc
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidParameterError(f"{path} exists; --save never overwrites a key file.") from None
    except OSError as exc:
        raise InvalidParameterError(f"Cannot write the key file {path}: {exc.strerror}.") from exc
    return os.fdopen(fd, "w", encoding="utf-8")


@keys.command("list")
@data_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def keys_list(data_dir: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    settings = settings_for(data_dir)
    with open_catalog(settings) as catalog:
        rows = catalog.list_keys()
    items = [{k: v for k, v in r.items() if k != "secret"} for r in rows]
    emit({"Keys": items}, as_json, lambda o: "\n".join(
        f"{r['access_key_id']}  {r['role']:<9} {'REVOKED' if r.get('revoked') else 'active '}  {r.get('label') or ''}"
        for r in o["Keys"]))


@keys.command("revoke")
@click.argument("access_key_id")
@data_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def keys_revoke(access_key_id: str, data_dir: str | None, as_json: bool) -> None:
    """Revoke a key: its next request is refused."""
    settings = settings_for(data_dir)
    with open_catalog(settings) as catalog:
        if catalog.get_key(access_key_id) is None:
            raise InvalidParameterError(f"No key {access_key_id}.")
        with catalog.transaction() as tx:
            catalog.revoke_key(tx, access_key_id)
    emit({"AccessKeyId": access_key_id, "Revoked": True}, as_json, lambda o: f"revoked {access_key_id}")
