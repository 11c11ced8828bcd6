"""The model registry: which model files exist, what they are, how they are pinned.

Each entry names its file inside the ``face_recognition_models`` package, the
SHA-256 it must have, its licence and what it needs. Files are located without
importing that package (its ``__init__`` imports ``pkg_resources``, which new
setuptools no longer ships) and verified before dlib ever reads them, so a
corrupted or swapped file is a clear :class:`ModelFileError`, not a crash.

The *model version* names the whole descriptor pipeline (detector family,
5-point alignment, descriptor network, mirror averaging); a calibration table
and every collection are pinned to it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFileError


@dataclass(frozen=True)
class ModelSpec:
    key: str
    filename: str
    sha256: str
    kind: str  # detector | landmarker | embedder
    licence: str
    commercial_use: bool
    needs: tuple[str, ...] = ()


MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec(
            "hog", "", "", "detector",
            "dlib HOG frontal face detector, built into dlib (Boost Software License)", True,
        ),
        ModelSpec(
            "mmod", "mmod_human_face_detector.dat",
            "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
            "detector", "public domain (dlib-models)", True,
        ),
        ModelSpec(
            "landmarks5", "shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            "landmarker", "public domain (dlib-models)", True, ("detector",),
        ),
        ModelSpec(
            "landmarks68", "shape_predictor_68_face_landmarks.dat",
            "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
            "landmarker",
            "trained on iBUG 300-W, whose licence excludes commercial use: opt-in only",
            False, ("detector",),
        ),
        ModelSpec(
            "resnet128", "dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            "embedder", "public domain (dlib-models)", True, ("landmarks5",),
        ),
    )
}

# The descriptor pipeline's version. Bump it whenever anything that changes a
# descriptor changes (network, alignment, mirror averaging): the calibration
# table and collections are pinned to it.
MODEL_VERSION = "dlib-resnet128-5pt-mirror-1"
# The same network on chips aligned from FaceMesh points (FACELEDGER_LANDMARKER=facemesh):
# a different score distribution, so its own calibration table and collections.
MESH_MODEL_VERSION = "dlib-resnet128-mesh5-mirror-1"

# What FaceModelVersion / IndexFacesModelVersion say on the wire: Rekognition's
# model defines IndexFacesModelVersion as digits and dots ("6.0"), so each
# pipeline has a number as well as a name. Never reuse a number.
WIRE_VERSIONS = {
    "dlib-resnet128-5pt-1": "1.0",
    "dlib-resnet128-5pt-mirror-1": "1.1",
    "dlib-resnet128-mesh5-1": "2.0",
    "dlib-resnet128-mesh5-mirror-1": "2.1",
}


def wire_version(model_version: str) -> str:
    """The numeric FaceModelVersion of a pipeline (its name when it has no number)."""
    return WIRE_VERSIONS.get(model_version, model_version)


def models_dir() -> Path:
    """The folder with the model files, from FACELEDGER_MODELS_DIR or the package."""
    override = os.environ.get("FACELEDGER_MODELS_DIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            "The face_recognition_models package is not installed; "
            "install faceledger with its dependencies (make venv)."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"


_verified: dict[str, str] = {}


def model_path(key: str, *, verify: bool = True) -> str:
    """The verified path of model ``key``; raises ModelFileError if absent or altered."""
    spec = MODELS[key]
    if not spec.filename:
        return ""
    path = models_dir() / spec.filename
    if not path.is_file():
        raise ModelFileError(f"Model file {path} is missing; reinstall face_recognition_models.")
    if verify and _verified.get(str(path)) != spec.sha256:
        digest = sha256_file(path)
        if digest != spec.sha256:
            raise ModelFileError(
                f"Model file {path} has SHA-256 {digest[:16]}…, expected {spec.sha256[:16]}…; "
                "it is corrupted or was replaced. Reinstall face_recognition_models."
            )
        _verified[str(path)] = digest
    return str(path)


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
