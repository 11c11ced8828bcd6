"""Model packs for the CLI: list, install, verify, remove, with the rule that a pack in use stays.

The transports hold no rules: ``faceledger models remove`` asks here, and this
module asks the catalog whether any collection is pinned to the pack's model
version before the engine's model store deletes it.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..engine import model_store
from ..engine.packs import resolve, store_dir
from ..errors import ConflictError, FaceledgerError
from ..settings import Settings
from ..store.catalog import CATALOG_FILE, Catalog


def list_packs(settings: Settings) -> list[dict]:
    """The built-in pack and every installed one: name, version, licences, dim, metric, calibrated."""
    packs = model_store.list_packs(store_dir(settings.data_dir))
    try:
        default = resolve(settings.model, store_dir(settings.data_dir)).model_version
    except FaceledgerError:  # FACELEDGER_MODEL names no installed pack: list what there is, mark none
        default = None
    for p in packs:
        p["default"] = default == p["model_version"]
    return packs


def install_pack(settings: Settings, source: str) -> dict:
    pack = model_store.install(Path(source), store_dir(settings.data_dir))
    return model_store.describe(pack)


def verify_packs(settings: Settings, name: str | None) -> list[dict]:
    return [asdict(c) for c in model_store.verify(store_dir(settings.data_dir), name)]


def collections_using(settings: Settings, model_version: str) -> list[str]:
    """Ids of the collections pinned to ``model_version`` (none when there is no catalog yet)."""
    if not (Path(settings.data_dir) / CATALOG_FILE).is_file():
        return []
    with Catalog.open(settings.data_dir) as catalog:
        rows = catalog.list_collections(None, 1_000_000)
    return [r["collection_id"] for r in rows if r.get("model_version") == model_version]


def remove_pack(settings: Settings, name: str) -> dict:
    """Delete an installed pack; ConflictError while a collection is pinned to it."""
    store = store_dir(settings.data_dir)
    pack = resolve(name, store)
    using = collections_using(settings, pack.model_version)
    if using:
        shown = ", ".join(using[:10]) + (f" and {len(using) - 10} more" if len(using) > 10 else "")
        raise ConflictError(
            f"Model pack {pack.model_version} is in use by {len(using)} collection(s): {shown}. Delete them, or "
            "re-index them under another pack, before removing it: their vectors can only be compared by it.")
    model_store.remove(store, name)
    return {"removed": pack.model_version}
