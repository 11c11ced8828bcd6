"""Model packs: the built-in dlib pack, installed packs, their descriptor specs and calibration tables.

A pack names a descriptor pipeline. The built-in pack ``dlib-resnet128`` is
today's dlib ResNet with its model versions unchanged
(``dlib-resnet128-5pt-mirror-1`` and the others in
:data:`~faceledger.engine.registry.WIRE_VERSIONS`), its tables shipped in the
package. An installed pack lives in ``DATA_DIR/models/NAME-VERSION/``
(:mod:`faceledger.engine.model_store`) with its ``pack.json``, its files and,
once ``faceledger eval calibrate --model NAME`` has run, its calibration and
cohort tables in ``calibration/``, stamped with the pack's model version and
the SHA-256 of its descriptor file. **A pack without its table cannot match**:
:func:`pack_tables` raises :class:`~faceledger.errors.ModelNotCalibratedError`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelNotCalibratedError, ModelPackError, ResourceNotFoundError
from .calibration import CalibrationTable, load_table
from .descriptor_spec import DescriptorSpec
from .pack_manifest import Manifest, read_manifest
from .registry import MODEL_VERSION, MODELS, WIRE_VERSIONS

BUILTIN = "dlib-resnet128"
BUILTIN_VERSIONS = tuple(WIRE_VERSIONS)
BUILTIN_DIM = 128
STORE_FOLDER = "models"
TABLES_FOLDER = "calibration"
BUILTIN_LICENCE_WEIGHTS = "public domain (dlib-models, Davis King)"
BUILTIN_LICENCE_DATA = ("about 3 million faces from FaceScrub, the VGG face data set and images from the web "
                        "(dlib's release notes); the data sets' own terms are not stated by dlib")


@dataclass(frozen=True)
class Pack:
    """A usable pack: the built-in one (``manifest`` None) or an installed one with its folder."""

    name: str
    version: str
    licence_weights: str
    licence_training_data: str
    manifest: Manifest | None = None
    folder: Path | None = None

    @property
    def builtin(self) -> bool:
        return self.manifest is None

    @property
    def model_version(self) -> str:
        """The installed pack's one model version; the built-in pack's default one."""
        return MODEL_VERSION if self.manifest is None else self.manifest.model_version

    def spec(self, model_version: str | None = None) -> DescriptorSpec:
        if self.manifest is None:
            return DescriptorSpec(model_version or self.model_version, BUILTIN_DIM, "euclidean")
        return self.manifest.spec

    @property
    def descriptor_path(self) -> Path:
        assert self.manifest is not None and self.folder is not None
        return self.folder / self.manifest.descriptor.file

    @property
    def descriptor_sha256(self) -> str:
        if self.manifest is None:
            return MODELS["resnet128"].sha256
        return self.manifest.files[self.manifest.descriptor.file]

    def licences(self) -> dict[str, str]:
        return {"Weights": self.licence_weights, "TrainingData": self.licence_training_data}


BUILTIN_PACK = Pack(BUILTIN, "1", BUILTIN_LICENCE_WEIGHTS, BUILTIN_LICENCE_DATA)


def store_dir(data_dir: Path | str) -> Path:
    """DATA_DIR/models: where installed packs live."""
    return Path(data_dir) / STORE_FOLDER


def installed(store: Path | str) -> list[Pack]:
    """Every installed pack in ``store`` (folders whose manifest reads), by folder name."""
    root = Path(store)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            out.append(_from_folder(folder))
        except ModelPackError:
            continue  # `faceledger models verify` names what is wrong with it
    return out


def _from_folder(folder: Path) -> Pack:
    m = read_manifest(folder)
    return Pack(m.name, m.version, m.licence_weights, m.licence_training_data, m, folder)


def resolve(name: str, store: Path | str | None) -> Pack:
    """The pack called ``name`` (NAME or NAME-VERSION); "" or ``dlib-resnet128`` is the built-in pack."""
    if not name or name == BUILTIN or name in BUILTIN_VERSIONS:
        return BUILTIN_PACK
    packs = installed(store) if store else []
    exact = [p for p in packs if p.folder is not None and p.folder.name == name]
    if exact:
        return exact[0]
    named = [p for p in packs if p.name == name]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise ModelPackError(f"Several versions of pack {name} are installed ({', '.join(p.model_version for p in named)});"
                             " name one as NAME-VERSION.", "name")
    have = ", ".join([BUILTIN] + [p.model_version for p in packs])
    raise ResourceNotFoundError(f"No model pack {name!r} in {store or 'the model store'} (have: {have}); "
                                "install one with `faceledger models install PATH`.")


def spec_for(model_version: str, data_dir: Path | str | None = None) -> DescriptorSpec:
    """The DescriptorSpec of the pipeline named ``model_version`` (a collection's, a table's)."""
    if model_version in BUILTIN_VERSIONS:
        return BUILTIN_PACK.spec(model_version)
    if data_dir is not None:
        for pack in installed(store_dir(data_dir)):
            if pack.model_version == model_version:
                return pack.spec()
    raise ResourceNotFoundError(
        f"No model pack gives model version {model_version!r}"
        f"{' in ' + str(store_dir(data_dir)) if data_dir is not None else ''}; "
        "install its pack with `faceledger models install PATH`.")


# -- calibration tables of installed packs ---------------------------------------------------------------


def tables_dir(pack: Pack) -> Path:
    assert pack.folder is not None
    return pack.folder / TABLES_FOLDER


def table_file(pack: Pack, cohort: bool = False) -> Path:
    return tables_dir(pack) / f"{pack.model_version}{'-cohort' if cohort else ''}.json"


def stamp(pack: Pack) -> dict:
    """What a pack's table carries to say which descriptors it was measured on."""
    return {"pack_model_version": pack.model_version, "descriptor_sha256": pack.descriptor_sha256}


def calibrated(pack: Pack) -> bool:
    return True if pack.builtin else table_file(pack).is_file()


def _load(pack: Pack, cohort: bool) -> CalibrationTable:
    path = table_file(pack, cohort)
    try:
        table = CalibrationTable.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError) as exc:
        raise ModelPackError(f"Calibration table {path} cannot be read ({exc}); rebuild it with "
                             f"`faceledger eval calibrate --model {pack.name}`.", "calibration") from None
    want = f"{pack.model_version}{'-cohort' if cohort else ''}"
    meta = table.meta
    if table.model_version != want or meta.get("pack_model_version") != pack.model_version \
            or meta.get("descriptor_sha256") != pack.descriptor_sha256:
        raise ModelPackError(
            f"Calibration table {path} was built on {meta.get('pack_model_version') or table.model_version} "
            f"(descriptor file {str(meta.get('descriptor_sha256'))[:12]}...), not on pack {pack.model_version} "
            f"(descriptor file {pack.descriptor_sha256[:12]}...): a table measured on another network's "
            f"descriptors means nothing here. Rebuild it with `faceledger eval calibrate --model {pack.name}`.",
            "calibration")
    return table


def pack_tables(pack: Pack, model_version: str | None = None, *,
                cohort: bool = True) -> tuple[CalibrationTable, CalibrationTable | None]:
    """(raw table, cohort table or None) for the pack; ModelNotCalibratedError until it has them."""
    if pack.builtin:
        version = model_version or pack.model_version
        raw = load_table(version)
        return raw, (load_table(f"{version}-cohort", ", or set FACELEDGER_SCORE_NORMALIZATION=off")
                     if cohort else None)
    if not table_file(pack).is_file():
        raise ModelNotCalibratedError(
            f"Model pack {pack.model_version} has no calibration table, so its scores would mean nothing: "
            f"it cannot index, search or compare faces until one is measured for it "
            f"(`faceledger eval calibrate --model {pack.name} --root LABELLED_FOLDERS --pairs PAIRS.tsv`).")
    raw = _load(pack, False)
    if not cohort:
        return raw, None
    if not table_file(pack, True).is_file():
        raise ModelNotCalibratedError(
            f"Model pack {pack.model_version} has no cohort table; rebuild its tables with "
            f"`faceledger eval calibrate --model {pack.name}` (it needs at least 500 faces), "
            "or set FACELEDGER_SCORE_NORMALIZATION=off.")
    return raw, _load(pack, True)


def write_table(pack: Pack, table: CalibrationTable, cohort: bool = False) -> Path:
    """Write one table into the pack's folder (private, atomically)."""
    path = table_file(pack, cohort)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(table.to_json(), fh, separators=(",", ":"))
    os.replace(tmp, path)
    return path


def uncalibrated_table(model_version: str) -> CalibrationTable:
    """A placeholder that scores every distance FMR 1 (Similarity 0): nothing ever matches with it.

    The service holds it for a pack that has no table yet, behind the gate that
    refuses matching operations (so the placeholder fails closed if reached).
    """
    import numpy as np

    return CalibrationTable(model_version, np.array([0.0, 1e9]), np.zeros(2), np.zeros(2), 0,
                            {"table_version": "uncalibrated", "smallest_measured_fmr": 1.0})
