"""The model packs a service matches with, each collection with the pack it is pinned to.

A collection is pinned to the model version it was created with
(``collections.model_version``, Rekognition's ``FaceModelVersion``; since
schema v6 also its descriptor ``dim`` and ``metric``). Everything that
computes or compares its vectors - IndexFaces, the face and user searches,
video search - uses that pack's engine, calibration table and scorer, never
the service's current default; CompareFaces uses the default pack for both
images. Vectors of two packs are never compared: where that would happen the
call is refused with :class:`PackUnavailableError`, naming both packs.

A pack other than the default is opened at its first use (its engine pool is
started like the default one) and refused with the reason when it cannot be:
not known here, or no calibration table measured for it.

:func:`spec_for`, :func:`engine_settings_for` and :func:`tables_for` are the
one place that says what a model version is: the built-in pipelines (dlib's
ResNet on dlib or FaceMesh alignment, with or without mirror averaging), or
a pack installed in the data directory's model store (engine/packs.py), whose
calibration tables live in its folder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..engine import EngineSettings
from ..engine import packs as installed_packs
from ..engine.calibration import CalibrationTable, load_table
from ..engine.descriptor_spec import DescriptorSpec
from ..engine.registry import MESH_MODEL_VERSION, MODEL_VERSION
from ..engine.scoring import Cohort, Scorer
from ..errors import ModelFileError, PackUnavailableError, ResourceNotFoundError
from .workers import EnginePool

# model version -> (landmarker, mirror): the built-in pipelines of dlib's 128-d Euclidean ResNet
BUILTIN: dict[str, tuple[str, bool]] = {
    MODEL_VERSION: ("dlib5", True),
    MODEL_VERSION.replace("-mirror", ""): ("dlib5", False),
    MESH_MODEL_VERSION: ("facemesh", True),
    MESH_MODEL_VERSION.replace("-mirror", ""): ("facemesh", False),
}
COHORTS_DIR = "cohorts"  # <data_dir>/cohorts/<model version>.npy: a pack's operator-supplied cohort


def _installed(model_version: str, data_dir: Path | str | None) -> installed_packs.Pack:
    """The installed pack that gives ``model_version``; PackUnavailableError when none does."""
    if data_dir is not None:
        for pack in installed_packs.installed(installed_packs.store_dir(data_dir)):
            if pack.model_version == model_version:
                return pack
    raise PackUnavailableError(
        f"Model pack {model_version!r} is not installed here (built in: {', '.join(sorted(BUILTIN))}); "
        "install it (`faceledger models install`) or migrate the collection "
        "(`faceledger collections migrate`).")


def spec_for(model_version: str, data_dir: Path | str | None = None) -> DescriptorSpec:
    """What a model version's descriptors are; PackUnavailableError for one not installed here."""
    if model_version in BUILTIN:
        return DescriptorSpec(model_version, 128, "euclidean")
    try:
        return installed_packs.spec_for(model_version, data_dir)
    except ResourceNotFoundError:
        _installed(model_version, None)  # raises, with the built-in list and what to do
        raise


def engine_settings_for(base: EngineSettings, model_version: str) -> EngineSettings:
    """``base`` (detector, budgets, model store...) computing ``model_version``'s descriptors."""
    if model_version not in BUILTIN:
        pack = _installed(model_version, Path(base.model_store).parent if base.model_store else None)
        assert pack.folder is not None
        return replace(base, model=pack.folder.name)
    landmarker, mirror = BUILTIN[model_version]
    out = replace(base, landmarker=landmarker, mirror=mirror, model="")
    assert out.model_version == model_version, (out.model_version, model_version)
    return out


def tables_for(spec: DescriptorSpec, data_dir: Path | str | None, *, cohort: bool
               ) -> tuple[CalibrationTable, CalibrationTable | None]:
    """(calibration table, the pack's cohort table or None: the package's is loaded by the scorer).

    ModelNotCalibratedError for an installed pack whose tables were never measured.
    """
    if spec.model_version in BUILTIN:
        return load_table(spec.model_version), None
    return installed_packs.pack_tables(_installed(spec.model_version, data_dir), cohort=cohort)


@dataclass
class Pack:
    """One pack as the service uses it: what its vectors are, the engine that makes them, how they score."""

    spec: DescriptorSpec
    engines: EnginePool
    calibration: CalibrationTable
    scorer: Scorer
    cohort: Cohort | None = None  # operator-supplied (a file); None: the collection searched is the cohort

    @property
    def model_version(self) -> str:
        return self.spec.model_version


def check_calibrated(spec: DescriptorSpec, table: CalibrationTable | None = None,
                     data_dir: Path | str | None = None) -> CalibrationTable:
    """The pack's calibration table (measured for its descriptors), or the reason it cannot match."""
    try:
        table = table or tables_for(spec, data_dir, cohort=False)[0]
        return table.check_for(spec.model_version, spec.dim, spec.metric)
    except ModelFileError as exc:
        raise PackUnavailableError(
            f"Model pack {spec.model_version} cannot be used for matching: {exc.message}") from exc


def load_cohort(path: Path | str, spec: DescriptorSpec) -> Cohort:
    try:
        return Cohort.from_file(path, spec.dim, spec.metric)
    except ValueError as exc:
        raise PackUnavailableError(f"Normalisation cohort for {spec.model_version}: {exc}.") from exc


def cohort_path(data_dir: Path, model_version: str, configured: str = "") -> Path | None:
    """The operator's cohort file for a pack: ``configured`` (FACELEDGER_COHORT_FILE, the default
    pack's) or ``<data_dir>/cohorts/<model version>.npy`` when it exists."""
    if configured:
        return Path(configured).expanduser()
    path = Path(data_dir) / COHORTS_DIR / f"{model_version}.npy"
    return path if path.is_file() else None


class Packs:
    """The default pack and the others, opened at first use; thread-safe."""

    def __init__(self, default: Pack, open_pack: Callable[[str], Pack]) -> None:
        self.default = default
        self._open = open_pack
        self._lock = threading.Lock()
        self._packs: dict[str, Pack] = {default.model_version: default}

    def get(self, model_version: str) -> Pack:
        pack = self._packs.get(model_version)  # the common case without the lock: opening one can take seconds
        if pack is not None:
            return pack
        with self._lock:
            pack = self._packs.get(model_version)
            if pack is None:
                pack = self._packs[model_version] = self._open(model_version)
            return pack

    def for_collection(self, collection: dict) -> Pack:
        """The pack ``collection`` is pinned to; refused with the reason when it cannot be used here."""
        pack = self.get(collection["model_version"])
        have = (collection.get("dim", 128), collection.get("metric", "euclidean"))
        if have != (pack.spec.dim, pack.spec.metric):
            raise PackUnavailableError(
                f"Collection {collection['collection_id']} holds {have[0]}-d {have[1]} vectors of "
                f"{collection['model_version']}, but that pack here makes {pack.spec.dim}-d {pack.spec.metric} ones.")
        return pack

    def opened(self) -> list[Pack]:
        with self._lock:
            return list(self._packs.values())

    def close(self) -> None:
        """End the engine pools of the packs opened after start-up (the default one is the service's)."""
        for pack in self.opened():
            if pack is not self.default:
                pack.engines.close()


def refuse_across(first: str, second: str, what: str) -> None:
    """Vectors of two packs are never compared: PackUnavailableError naming both."""
    if first != second:
        raise PackUnavailableError(
            f"{what} would compare {first} vectors with {second} vectors; vectors of different model "
            "packs are never compared. Migrate one side (`faceledger collections migrate`).")
