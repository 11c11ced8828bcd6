"""``faceledger serve`` and ``faceledger keys``: run the service, manage API keys."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, cast

import click

from ..errors import InvalidParameterError
from ..profile import Profile, read_profile, write_profile
from ..service.context import ROLES
from ..settings import Settings
from ..store.catalog import Catalog
from .output import emit, handle_errors

data_option = click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
                           help="Data directory (default: $FACELEDGER_DATA_DIR or ~/.local/share/faceledger).")


def settings_for(data_dir: str | None, **overrides: Any) -> Settings:
    return Settings.from_env(None, data_dir=data_dir, **overrides)


def profile_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "profile.json"


def ensure_admin(settings: Settings, catalog: Catalog, endpoint: str) -> tuple[Profile, bool]:
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
@click.option("--workers", type=int, default=None, help="Engine worker processes (default: one per core).")
@handle_errors
def serve(host: str | None, port: int | None, data_dir: str | None, workers: int | None) -> None:
    """Run the Rekognition-compatible service on the embedded store."""
    import socket

    from ..api.app import create_app
    from ..api.connections import ConnectionLimits
    from ..api.server import run
    from ..service import Service

    settings = settings_for(data_dir, host=host, port=port, workers=workers)
    port_ = settings.port
    if port_ == 0:
        with socket.socket() as s:
            s.bind((settings.host, 0))
            port_ = s.getsockname()[1]
    endpoint = f"http://{settings.host}:{port_}"
    service = Service.open(settings)
    prof, created = ensure_admin(settings, service.catalog, endpoint)
    click.echo(f"faceledger {service.model_version} serving on {endpoint}  (data: {settings.data_dir})")
    if created:
        click.echo("Created the admin key (saved in the profile; shown once here):")
    click.echo(f"  AWS_ACCESS_KEY_ID={prof.access_key_id}")
    if created:
        click.echo(f"  AWS_SECRET_ACCESS_KEY={prof.secret_access_key}")
    click.echo(f"  profile: {profile_path(settings)}")
    click.echo("  import boto3")
    click.echo(f"  rek = boto3.client('rekognition', endpoint_url='{endpoint}', region_name='{settings.region}',")
    click.echo("                     aws_access_key_id=KEY, aws_secret_access_key=SECRET)")
    click.echo("  print(rek.list_collections())", nl=True)
    app = create_app(cast(Any, service), max_body_bytes=settings.max_body_bytes,
                     max_inflight=2 * max(1, service.engines.processes), max_queue=settings.max_queue,
                     admission_wait_s=settings.admission_wait_s, body_timeout_s=settings.body_timeout_s,
                     max_buffered_bytes=settings.max_buffered_bytes, clock_skew_s=settings.clock_skew_s)
    limits = ConnectionLimits(settings.max_connections, settings.max_connections_per_address,
                              settings.header_timeout_s)
    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit
    # lets the finally below close the engine workers instead of orphaning them.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        run(app, settings.host, port_, limits=limits)
    finally:
        service.close()


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
@data_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def keys_create(role: str, label: str | None, purpose: str | None, case: str | None, data_dir: str | None,
                as_json: bool) -> None:
    """Create a key; the secret is shown once."""
    settings = settings_for(data_dir)
    defaults = {k: v for k, v in (("purpose", purpose), ("case", case)) if v}
    with Catalog.open(settings.data_dir) as catalog, catalog.transaction() as tx:
        key_id, secret = catalog.create_key(tx, role, label, defaults or None)
    emit({"AccessKeyId": key_id, "SecretAccessKey": secret, "Role": role, "Label": label}, as_json,
         lambda o: f"{o['AccessKeyId']} {o['SecretAccessKey']} ({o['Role']})")


@keys.command("list")
@data_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def keys_list(data_dir: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    settings = settings_for(data_dir)
    with Catalog.open(settings.data_dir) as catalog:
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
    with Catalog.open(settings.data_dir) as catalog:
        if catalog.get_key(access_key_id) is None:
            raise InvalidParameterError(f"No key {access_key_id}.")
        with catalog.transaction() as tx:
            catalog.revoke_key(tx, access_key_id)
    emit({"AccessKeyId": access_key_id, "Revoked": True}, as_json, lambda o: f"revoked {access_key_id}")
