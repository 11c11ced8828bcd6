"""``faceledger models``: the model packs in the data directory's model store (docs/model-packs.md)."""

from __future__ import annotations

import click

from ..service import models as service_models
from .output import emit, handle_errors
from .serve import data_option, settings_for

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group()
def models() -> None:
    """List, install, verify and remove model packs (DATA_DIR/models)."""


def _list_text(o: dict) -> str:
    lines = []
    for p in o["packs"]:
        mark = " (default)" if p.get("default") else ""
        lines.append(f"{p['model_version']}{mark}: {p['dim']}-d {p['metric']}, "
                     f"calibrated {'yes' if p['calibrated'] else 'no'}{', built in' if p['builtin'] else ''}")
        lines.append(f"  weights: {p['licence_weights']}")
        lines.append(f"  training data: {p['licence_training_data']}")
    return "\n".join(lines)


@models.command("list")
@data_option
@json_option
@handle_errors
def models_list(data_dir: str | None, as_json: bool) -> None:
    """Every pack: name, version, both licences, dimension, metric, calibrated yes/no."""
    emit({"packs": service_models.list_packs(settings_for(data_dir))}, as_json, _list_text)


@models.command("install")
@click.argument("path", type=click.Path(exists=False))
@data_option
@json_option
@handle_errors
def models_install(path: str, data_dir: str | None, as_json: bool) -> None:
    """Check the pack at PATH (folder, .tar.gz or .zip) and copy it into the model store."""
    out = service_models.install_pack(settings_for(data_dir), path)
    emit(out, as_json, lambda o: f"installed {o['model_version']} ({o['dim']}-d {o['metric']}); not calibrated "
                                 f"yet: `faceledger eval calibrate --model {o['name']} --root ... --pairs ...`")


@models.command("verify")
@click.argument("name", required=False)
@data_option
@json_option
@handle_errors
def models_verify(name: str | None, data_dir: str | None, as_json: bool) -> None:
    """Re-check installed packs (or NAME): manifest, SHA-256 of every file, a probe run, the table's stamp."""
    from ..errors import ModelPackError

    checks = service_models.verify_packs(settings_for(data_dir), name)
    emit({"packs": checks}, as_json, lambda o: "\n".join(
        f"{c['name']}: {'ok' if c['ok'] else 'FAILED: ' + c['problem']}" for c in o["packs"]) or "no packs installed")
    bad = [c for c in checks if not c["ok"]]
    if bad:
        raise SystemExit(ModelPackError.exit_code)


@models.command("remove")
@click.argument("name")
@data_option
@json_option
@handle_errors
def models_remove(name: str, data_dir: str | None, as_json: bool) -> None:
    """Delete pack NAME from the model store (refused while a collection uses it)."""
    emit(service_models.remove_pack(settings_for(data_dir), name), as_json, lambda o: f"removed {o['removed']}")
