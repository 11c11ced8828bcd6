"""The model store: installed packs under ``DATA_DIR/models/NAME-VERSION/`` (folders 0700, files 0600).

``install`` reads a pack folder or a .tar.gz / .zip of one, checks its
manifest, every file's SHA-256 and a probe run of its descriptor network
(the output dimension must be the manifest's), and only then moves it into
place in one rename: a pack that fails any check leaves nothing behind.
``verify`` repeats the checks on installed packs; ``remove`` deletes one (the
service refuses first while a collection uses it: service/models.py).
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidParameterError, ModelPackError, ResourceAlreadyExistsError
from .pack_manifest import MANIFEST, check_files, read_manifest
from .packs import BUILTIN, BUILTIN_PACK, Pack, calibrated, installed, resolve, table_file

ARCHIVES = (".tar.gz", ".tgz", ".zip")


@dataclass(frozen=True)
class PackCheck:
    name: str  # the folder name (NAME-VERSION)
    ok: bool
    problem: str = ""
    field: str = ""


def describe(pack: Pack) -> dict:
    """What `faceledger models list` shows for one pack."""
    spec = pack.spec()
    return {"name": pack.name, "version": pack.version, "model_version": spec.model_version,
            "builtin": pack.builtin, "licence_weights": pack.licence_weights,
            "licence_training_data": pack.licence_training_data, "dim": spec.dim, "metric": spec.metric,
            "calibrated": calibrated(pack), "path": str(pack.folder) if pack.folder else None}


def list_packs(store: Path) -> list[dict]:
    return [describe(BUILTIN_PACK)] + [describe(p) for p in installed(store)]


def check_pack(folder: Path) -> Pack:
    """Manifest, files and a probe run; the Pack, or ModelPackError naming what is wrong."""
    from .onnx_embedder import OnnxDescriptor  # ONNX Runtime only when a pack is checked

    manifest = read_manifest(folder)
    check_files(folder, manifest)
    net = manifest.descriptor
    OnnxDescriptor(net, folder / net.file).probe()
    return Pack(manifest.name, manifest.version, manifest.licence_weights, manifest.licence_training_data,
                manifest, folder)


def _extract(archive: Path, into: Path) -> Path:
    """Unpack ``archive`` into ``into``; the folder holding pack.json (refusing links and escaping paths)."""
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _safe_member(info.filename)
                zf.extractall(into)
        else:
            with tarfile.open(archive, "r:gz") as tf:
                for member in tf.getmembers():
                    _safe_member(member.name)
                    if not (member.isfile() or member.isdir()):
                        raise ModelPackError(f"{archive}: {member.name} is a link or device, not a file; "
                                             "a pack archive holds plain files only.", "files")
                tf.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ModelPackError(f"{archive} is not a readable pack archive: {exc}.", MANIFEST) from None
    if (into / MANIFEST).is_file():
        return into
    subs = [p for p in into.iterdir() if p.is_dir()]
    if len(subs) == 1 and (subs[0] / MANIFEST).is_file():
        return subs[0]
    raise ModelPackError(f"{archive} holds no {MANIFEST} at its top or in its one folder.", MANIFEST)


def _safe_member(name: str) -> None:
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or ".." in parts:
        raise ModelPackError(f"archive member {name!r} points outside the pack folder.", "files")


def install(source: Path | str, store: Path) -> Pack:
    """Check the pack at ``source`` and copy it into ``store``; ResourceAlreadyExistsError if installed."""
    src = Path(source)
    if not src.exists():
        raise InvalidParameterError(f"{src} does not exist; give a pack folder or a .tar.gz / .zip of one.")
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    store.chmod(0o700)
    with tempfile.TemporaryDirectory(dir=store, prefix=".install-") as tmp:
        work = Path(tmp)
        if src.is_dir():
            folder = src
        elif src.name.lower().endswith(ARCHIVES):
            folder = _extract(src, work / "unpacked")
        else:
            raise InvalidParameterError(f"{src} is neither a folder nor a .tar.gz / .zip archive.")
        manifest = read_manifest(folder)
        target = store / manifest.model_version
        if manifest.name == BUILTIN or target.exists():
            raise ResourceAlreadyExistsError(
                f"Model pack {manifest.model_version} is already installed in {store}; "
                f"remove it first (`faceledger models remove {manifest.model_version}`) or raise its version.")
        staged = work / "pack"
        staged.mkdir(mode=0o700)
        shutil.copy2(folder / MANIFEST, staged / MANIFEST)
        for fname in manifest.files:  # only what the manifest names (symlinks are followed: the bytes are copied)
            dest = staged / fname
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not (folder / fname).is_file():
                check_files(folder, manifest)  # names the missing file
            shutil.copyfile(folder / fname, dest)
        for path in staged.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)
        check_pack(staged)  # hashes of the copies, and the probe run
        staged.rename(target)
    return resolve(manifest.model_version, store)


def verify(store: Path, name: str | None = None) -> list[PackCheck]:
    """Re-check installed packs (all, or the one named): manifest, hashes, probe run, calibration stamp."""
    from .packs import pack_tables

    folders: list[Path | None]
    if name:
        pack = resolve(name, store)
        folders = [] if pack.builtin else [pack.folder]
    else:
        folders = [p for p in sorted(store.iterdir()) if p.is_dir() and not p.name.startswith(".")] \
            if store.is_dir() else []
    out = []
    for folder in folders:
        assert folder is not None
        try:
            pack = check_pack(folder)
            if calibrated(pack):  # a table whose stamp is not this pack's is a problem; a missing cohort table is not
                pack_tables(pack, cohort=table_file(pack, True).is_file())
        except ModelPackError as exc:
            out.append(PackCheck(folder.name, False, exc.message, exc.field))
            continue
        except Exception as exc:  # ModelNotCalibratedError for a missing cohort table, and the like
            out.append(PackCheck(folder.name, False, str(exc)))
            continue
        out.append(PackCheck(folder.name, True))
    return out


def remove(store: Path, name: str) -> Pack:
    """Delete an installed pack's folder (the caller has checked that nothing uses it)."""
    pack = resolve(name, store)
    if pack.builtin:
        raise InvalidParameterError(f"{BUILTIN} is the built-in pack; it cannot be removed.")
    assert pack.folder is not None
    shutil.rmtree(pack.folder)
    return pack
