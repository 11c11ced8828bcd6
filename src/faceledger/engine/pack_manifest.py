"""A model pack's ``pack.json``: parsed and checked field by field (docs/model-packs.md).

A pack is a folder (or a .tar.gz / .zip of one) holding ``pack.json`` and the
files it names. :func:`read_manifest` turns the JSON into a :class:`Manifest`
or raises :class:`~faceledger.errors.ModelPackError` naming the first field
that is wrong; :func:`check_files` then checks every file's SHA-256. Nothing
here runs a network: the probe run is :mod:`faceledger.engine.onnx_embedder`'s.

This version runs descriptor networks only; a pack's faces are found and its
5 points placed by the built-in front end, and its chips aligned by the
template its descriptor names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelPackError
from .descriptor_spec import METRICS, DescriptorSpec
from .registry import sha256_file

MANIFEST = "pack.json"
FORMAT = 1
ROLES = ("detector", "landmarker", "descriptor")
RUN_ROLES = ("descriptor",)  # what this version runs
LAYOUTS = ("NHWC", "NCHW")
CHANNEL_ORDERS = ("RGB", "BGR")
# alignment template -> the chip size it makes (width, height)
TEMPLATES = {"dlib-chip-150": (150, 150), "arcface-112": (112, 112)}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Every field a manifest may hold (docs/model-packs.md documents each; tests/test_docs.py checks).
TOP_FIELDS = ("format", "name", "version", "description", "licence", "files", "networks")
LICENCE_FIELDS = ("weights", "training_data")
NETWORK_FIELDS = ("role", "file", "input", "output", "input_size", "layout", "channel_order", "normalisation",
                  "alignment", "dim", "metric", "batch", "mirror")
NORMALISATION_FIELDS = ("mean", "std", "scale", "offset")


@dataclass(frozen=True)
class Network:
    """One network of a pack, as its manifest describes it."""

    role: str
    file: str
    input_size: tuple[int, int]  # (width, height)
    layout: str  # NHWC | NCHW
    channel_order: str  # RGB | BGR
    mean: tuple[float, float, float]  # input = (pixel - mean) / std, per channel in channel_order
    std: tuple[float, float, float]
    alignment: str  # a TEMPLATES key
    dim: int
    metric: str  # euclidean | cosine
    batch: int  # 0: any batch size; N: the network takes exactly N (fewer chips are padded)
    mirror: bool  # average the descriptors of the chip and its mirror image
    input: str = ""  # the input tensor's name ("" = the network's only input)
    output: str = ""  # the output tensor's name ("" = the network's first output)


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    licence_weights: str
    licence_training_data: str
    files: dict[str, str]  # file name (relative to the pack folder) -> SHA-256
    networks: tuple[Network, ...]
    description: str = ""

    @property
    def model_version(self) -> str:
        """What collections, calibration tables and ledger records name the pack by."""
        return f"{self.name}-{self.version}"

    @property
    def descriptor(self) -> Network:
        return next(n for n in self.networks if n.role == "descriptor")

    @property
    def spec(self) -> DescriptorSpec:
        return DescriptorSpec(self.model_version, self.descriptor.dim, self.descriptor.metric)


def _fail(field: str, problem: str) -> ModelPackError:
    return ModelPackError(f"pack.json field {field}: {problem} (see docs/model-packs.md).", field)


def _text(data: dict, key: str, where: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, "is required and must be a non-empty string" if value is None else
                    f"must be a non-empty string, not {value!r}")
    return value.strip()


def _choice(data: dict, key: str, where: str, choices: tuple[str, ...]) -> str:
    value = data.get(key)
    if value not in choices:
        raise _fail(where, f"must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def _unknown(data: dict, known: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in known:
            raise _fail(f"{where}{key}", f"is not a manifest field; known here: {', '.join(known)}")


def _triple(value: object, where: str) -> tuple[float, float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value] * 3
    if not (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
        raise _fail(where, f"must be a number or a list of 3 numbers, not {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _normalisation(value: object, where: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) from {"mean", "std"} or {"scale", "offset"} (input = pixel * scale + offset)."""
    if not isinstance(value, dict):
        raise _fail(where, 'must be {"mean": ..., "std": ...} or {"scale": ..., "offset": ...}')
    _unknown(value, NORMALISATION_FIELDS, f"{where}.")
    if set(value) == {"mean", "std"}:
        mean, std = _triple(value["mean"], f"{where}.mean"), _triple(value["std"], f"{where}.std")
    elif set(value) == {"scale", "offset"}:
        scale, offset = _triple(value["scale"], f"{where}.scale"), _triple(value["offset"], f"{where}.offset")
        if any(s == 0 for s in scale):
            raise _fail(f"{where}.scale", "must not be 0")
        std = (1 / scale[0], 1 / scale[1], 1 / scale[2])
        mean = (-offset[0] * std[0], -offset[1] * std[1], -offset[2] * std[2])
    else:
        raise _fail(where, f'needs exactly "mean" and "std", or "scale" and "offset"; it has {sorted(value)}')
    if any(s == 0 for s in std):
        raise _fail(f"{where}.std", "must not be 0")
    return mean, std


def _network(data: object, i: int, files: dict[str, str]) -> Network:
    where = f"networks[{i}]"
    if not isinstance(data, dict):
        raise _fail(where, "must be an object")
    _unknown(data, NETWORK_FIELDS, f"{where}.")
    role = _choice(data, "role", f"{where}.role", ROLES)
    if role not in RUN_ROLES:
        raise _fail(f"{where}.role", f"{role} networks are not run by this version (only {', '.join(RUN_ROLES)}); "
                    "the built-in front end finds and aligns faces for a descriptor-only pack")
    file = _text(data, "file", f"{where}.file")
    if file not in files:
        raise _fail(f"{where}.file", f"{file!r} is not listed in files (with its SHA-256)")
    alignment = _choice(data, "alignment", f"{where}.alignment", tuple(TEMPLATES))
    size = data.get("input_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise _fail(f"{where}.input_size", f"must be [width, height] in pixels, not {size!r}")
    if tuple(size) != TEMPLATES[alignment]:
        raise _fail(f"{where}.input_size", f"{size} does not match alignment {alignment} "
                    f"({list(TEMPLATES[alignment])})")
    dim = data.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 4096:
        raise _fail(f"{where}.dim", f"must be the descriptor dimension, an integer 1..4096, not {dim!r}")
    batch = data.get("batch", 0)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 0:
        raise _fail(f"{where}.batch", f"must be 0 (any batch size) or the fixed batch N, not {batch!r}")
    mirror = data.get("mirror", True)
    if not isinstance(mirror, bool):
        raise _fail(f"{where}.mirror", f"must be true or false, not {mirror!r}")
    mean, std = _normalisation(data.get("normalisation"), f"{where}.normalisation")
    return Network(
        role=role, file=file, input_size=(size[0], size[1]),
        layout=_choice(data, "layout", f"{where}.layout", LAYOUTS),
        channel_order=_choice(data, "channel_order", f"{where}.channel_order", CHANNEL_ORDERS),
        mean=mean, std=std, alignment=alignment, dim=dim,
        metric=_choice(data, "metric", f"{where}.metric", METRICS), batch=batch, mirror=mirror,
        input=_text(data, "input", f"{where}.input", required=False),
        output=_text(data, "output", f"{where}.output", required=False),
    )


def parse_manifest(data: object) -> Manifest:
    """The manifest in ``data`` (parsed JSON); ModelPackError naming the first wrong field."""
    if not isinstance(data, dict):
        raise _fail("(top level)", "must be a JSON object")
    _unknown(data, TOP_FIELDS, "")
    if data.get("format", FORMAT) != FORMAT:
        raise _fail("format", f"this version reads format {FORMAT}, not {data.get('format')!r}")
    name, version = _text(data, "name", "name"), _text(data, "version", "version")
    for key, value in (("name", name), ("version", version)):
        if not NAME_RE.match(value):
            raise _fail(key, f"{value!r} must be lower-case letters, digits, '.', '_' or '-' (at most 63)")
    licence = data.get("licence")
    if not isinstance(licence, dict):
        raise _fail("licence", 'is required: {"weights": ..., "training_data": ...}')
    _unknown(licence, LICENCE_FIELDS, "licence.")
    weights = _text(licence, "weights", "licence.weights")
    training = _text(licence, "training_data", "licence.training_data")
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        raise _fail("files", 'is required: {"file name": "sha256 hex", ...}')
    for fname, digest in files.items():
        if not fname or fname.startswith(("/", "\\")) or ".." in Path(fname).parts or fname == MANIFEST:
            raise _fail(f"files.{fname}", "must be a plain path inside the pack folder")
        if not isinstance(digest, str) or not SHA_RE.match(digest):
            raise _fail(f"files.{fname}", f"must be a lower-case SHA-256 hex digest, not {digest!r}")
    nets = data.get("networks")
    if not isinstance(nets, list) or not nets:
        raise _fail("networks", "is required: a list with one descriptor network")
    networks = tuple(_network(n, i, files) for i, n in enumerate(nets))
    if sum(n.role == "descriptor" for n in networks) != 1:
        raise _fail("networks", "must hold exactly one descriptor network")
    if name.startswith("dlib-resnet128"):
        raise _fail("name", "dlib-resnet128 names the built-in pack")
    return Manifest(name=name, version=version, licence_weights=weights, licence_training_data=training,
                    files=dict(files), networks=networks, description=_text(data, "description", "description",
                                                                           required=False))


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ModelPackError(f"{folder} holds no {MANIFEST}; a pack is a folder with {MANIFEST} and its files.",
                             MANIFEST)
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelPackError(f"{path} is not valid JSON: {exc}.", MANIFEST) from None
    return parse_manifest(data)


def check_files(folder: Path, manifest: Manifest) -> None:
    """Every listed file is present and has its SHA-256; ModelPackError naming the file otherwise."""
    for fname, digest in manifest.files.items():
        path = Path(folder) / fname
        if not path.is_file():
            raise _fail(f"files.{fname}", f"the file is missing from {folder}")
        actual = sha256_file(path)
        if actual != digest:
            raise _fail(f"files.{fname}", f"SHA-256 is {actual}, the manifest says {digest}: "
                        "the file is damaged or not the one the manifest names")
