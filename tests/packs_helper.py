"""Build a model pack around ../shared/models/mobilefacenet-ms1m for tests (a symlink, never a copy in the repo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA, data_path

MODEL = DATA.parent / "models" / "mobilefacenet-ms1m" / "mobilefacenet.onnx"
SHA256 = "c26bf403076917e05465b6087c34a2d8df7745b8351aace10484c6698e5a2ce9"
NAME = "mobilefacenet-ms1m"
FACELEDGER = [sys.executable, "-m", "faceledger.cli.main"]
REPO = Path(__file__).resolve().parents[1]


def manifest(**changes: object) -> dict:
    """The manifest scripts/mobilefacenet-pack.sh writes, with ``changes`` (None deletes a key)."""
    net = {"role": "descriptor", "file": "mobilefacenet.onnx", "input": "input", "output": "embeddings",
           "input_size": [112, 112], "layout": "NHWC", "channel_order": "RGB",
           "normalisation": {"mean": 127.5, "std": 128}, "alignment": "arcface-112", "dim": 192,
           "metric": "cosine", "batch": 2, "mirror": True}
    top: dict = {"format": 1, "name": NAME, "version": "1",
                 "licence": {"weights": "MIT (package.json)", "training_data": "MS1M: non-commercial research"},
                 "files": {"mobilefacenet.onnx": SHA256}, "networks": [net]}
    for key, value in changes.items():
        where, _, leaf = key.rpartition(".")
        target = {"": top, "net": net, "licence": top["licence"]}[where]
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return top


def make_pack(folder: Path, **changes: object) -> Path:
    """A pack folder: pack.json and a symlink to the shared model."""
    if not MODEL.is_file():
        data_path("..", "models", "mobilefacenet-ms1m", "mobilefacenet.onnx")  # skips
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pack.json").write_text(json.dumps(manifest(**changes)))
    link = folder / "mobilefacenet.onnx"
    if not link.exists():
        link.symlink_to(MODEL)
    return folder


def cli(*args: str, data: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full = [*FACELEDGER, *args, *(["--data", str(data)] if data is not None else [])]
    return subprocess.run(full, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})}, cwd=REPO)


def calibrate_small(data: Path, limit: int = 40) -> subprocess.CompletedProcess:
    """Calibrate the pack on ``limit`` lfw_dev pairs (a quick table: no cohort table under 500 faces)."""
    lfw = data_path("lfw_dev")
    return cli("eval", "calibrate", "--model", NAME, "--root", str(lfw), "--pairs", str(lfw / "pairs.tsv"),
               "--limit", str(limit), "--procs", "1", "--quiet", "--json", data=data)
