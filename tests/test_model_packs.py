"""Model packs, engine and CLI side: manifest validation, the model store, the ONNX descriptor, calibration stamps.

Real parts: the real MobileFaceNet ONNX file from ../shared/models (tests only,
linked, never copied into the project), the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from faceledger.engine import model_store
from faceledger.engine.descriptor_spec import DescriptorSpec
from faceledger.engine.engine import Engine, EngineSettings
from faceledger.engine.pack_manifest import parse_manifest
from faceledger.engine.packs import BUILTIN, resolve, spec_for, store_dir
from faceledger.errors import ModelNotCalibratedError, ModelPackError, ResourceNotFoundError
from faceledger.imaging import read_image_file
from tests.conftest import data_path
from tests.packs_helper import NAME, REPO, calibrate_small, cli, make_pack, manifest

DATA = pytest.mark.data  # needs ../shared/data and ../shared/models


@pytest.fixture(scope="module")
def calibrated_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the pack installed and calibrated on 40 lfw_dev pairs."""
    base = tmp_path_factory.mktemp("packs")
    data = base / "data"
    r = cli("models", "install", str(make_pack(base / "src")), data=data)
    assert r.returncode == 0, r.stderr
    r = calibrate_small(data)
    assert r.returncode == 0, r.stderr
    return data


@pytest.mark.parametrize(("changes", "field"), [
    ({"licence.weights": None}, "licence.weights"),
    ({"licence.training_data": None}, "licence.training_data"),
    ({"licence": None}, "licence"),
    ({"net.layout": "NHCW"}, "networks[0].layout"),
    ({"net.metric": "manhattan"}, "networks[0].metric"),
    ({"net.alignment": "dlib-chip-160"}, "networks[0].alignment"),
    ({"net.role": "classifier"}, "networks[0].role"),
    ({"net.role": "detector"}, "networks[0].role"),
    ({"net.input_size": [150, 150]}, "networks[0].input_size"),
    ({"net.normalisation": {"mean": 127.5}}, "networks[0].normalisation"),
    ({"net.colour": "RGB"}, "networks[0].colour"),
    ({"files": {"mobilefacenet.onnx": "abc"}}, "files.mobilefacenet.onnx"),
    ({"name": "Mobile Face"}, "name"),
])
def test_manifest_errors_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ModelPackError) as err:
        parse_manifest(manifest(**changes))
    assert err.value.field == field
    assert field in err.value.message and "docs/model-packs.md" in err.value.message


def test_scale_offset_normalisation_is_the_same_as_mean_std() -> None:
    a = parse_manifest(manifest()).descriptor
    b = parse_manifest(manifest(**{"net.normalisation": {"scale": 1 / 128, "offset": -127.5 / 128}})).descriptor
    assert np.allclose(a.mean, b.mean) and np.allclose(a.std, b.std)


@DATA
@pytest.mark.parametrize(("changes", "field", "fragment"), [
    ({"licence.training_data": None}, "licence.training_data", "required"),
    ({"files": {"mobilefacenet.onnx": "0" * 64}}, "files.mobilefacenet.onnx", "SHA-256"),
    ({"net.dim": 128}, "networks[descriptor].dim", "gives 192-d"),
    ({"net.batch": 0}, "networks[descriptor].batch", "fixed at 2"),
    ({"net.layout": "NCHW"}, "networks[descriptor].", "shape"),
])
def test_install_refuses_a_bad_pack_and_leaves_nothing(tmp_path: Path, changes: dict, field: str,
                                                       fragment: str) -> None:
    data = tmp_path / "data"
    r = cli("models", "install", str(make_pack(tmp_path / "p", **changes)), data=data)
    assert r.returncode == 15, r.stderr
    assert field in r.stderr and fragment in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in store_dir(data).iterdir()] == []  # no half-installed pack, no temp folder


@DATA
def test_install_refuses_a_missing_file(tmp_path: Path) -> None:
    folder = make_pack(tmp_path / "p")
    (folder / "mobilefacenet.onnx").unlink()
    r = cli("models", "install", str(folder), data=tmp_path / "data")
    assert r.returncode == 15 and "files.mobilefacenet.onnx" in r.stderr and "missing" in r.stderr


@DATA
def test_install_list_verify_remove(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = cli("models", "install", str(make_pack(tmp_path / "p")), "--json", data=data)
    assert r.returncode == 0, r.stderr
    target = store_dir(data) / f"{NAME}-1"
    assert (target / "mobilefacenet.onnx").is_file() and not (target / "mobilefacenet.onnx").is_symlink()
    assert target.stat().st_mode & 0o777 == 0o700 and store_dir(data).stat().st_mode & 0o777 == 0o700
    again = cli("models", "install", str(tmp_path / "p"), data=data)
    assert again.returncode == 7 and "already installed" in again.stderr

    listed = json.loads(cli("models", "list", "--json", data=data).stdout)["packs"]
    assert [p["model_version"] for p in listed] == ["dlib-resnet128-5pt-mirror-1", f"{NAME}-1"]
    mine = listed[1]
    assert (mine["dim"], mine["metric"], mine["calibrated"]) == (192, "cosine", False)
    assert mine["licence_weights"].startswith("MIT") and "non-commercial" in mine["licence_training_data"]
    assert listed[0]["calibrated"] is True and listed[0]["dim"] == 128 and listed[0]["default"] is True

    ok = cli("models", "verify", "--json", data=data)
    assert ok.returncode == 0 and json.loads(ok.stdout)["packs"][0]["ok"] is True
    with open(target / "mobilefacenet.onnx", "ab") as fh:  # damage the installed copy
        fh.write(b"\0")
    bad = cli("models", "verify", NAME, "--json", data=data)
    assert bad.returncode == 15
    assert json.loads(bad.stdout)["packs"][0]["field"] == "files.mobilefacenet.onnx"

    gone = cli("models", "remove", NAME, "--json", data=data)
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout) == {"removed": f"{NAME}-1"} and not target.exists()
    assert cli("models", "remove", NAME, data=data).returncode == 6
    assert cli("models", "remove", BUILTIN, data=data).returncode == 3


@DATA
def test_install_from_archives(tmp_path: Path) -> None:
    folder = make_pack(tmp_path / "p")
    tgz = tmp_path / "pack.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(folder / "pack.json", "mfn/pack.json")
        tf.add((folder / "mobilefacenet.onnx").resolve(), "mfn/mobilefacenet.onnx")
    pack = model_store.install(tgz, store_dir(tmp_path / "a"))
    assert pack.model_version == f"{NAME}-1"
    zipped = tmp_path / "pack.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(folder / "pack.json", "pack.json")
        zf.write((folder / "mobilefacenet.onnx").resolve(), "../mobilefacenet.onnx")
    with pytest.raises(ModelPackError, match="outside the pack folder"):
        model_store.install(zipped, store_dir(tmp_path / "b"))


@DATA
def test_descriptors_of_a_cosine_pack(calibrated_data: Path) -> None:
    """192-d float32, unit length; a fixed batch of 2 padded for odd counts without changing the result."""
    engine = Engine(EngineSettings(model=NAME, model_store=str(store_dir(calibrated_data))))
    assert engine.descriptor_spec == DescriptorSpec(f"{NAME}-1", 192, "cosine")
    assert engine.model_version == f"{NAME}-1"
    rng = np.random.default_rng(1)
    chips = rng.integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    out = engine.embedder.embed(chips)
    assert out.shape == (3, 192) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    one = engine.embedder.embed(chips[2:3])
    assert np.allclose(one[0], out[2], atol=1e-5)

    lfw = data_path("lfw_dev")
    a, b = sorted((lfw / "Colin_Powell").glob("*.jpg"))[:2]
    other = sorted((lfw / "Adrien_Brody").glob("*.jpg"))[0]
    da, db, dc = (engine.analyze(p.read_bytes())[0].descriptor for p in (a, b, other))
    assert da.shape == (192,) and abs(float(np.linalg.norm(da)) - 1) < 1e-5  # mirror average re-normalised
    assert np.linalg.norm(da - db) < np.linalg.norm(da - dc)
    pixels = read_image_file(str(a)).pixels
    assert engine.chip(pixels, engine.analyze(pixels)[0]).shape == (112, 112, 3)


@DATA
def test_spec_for(calibrated_data: Path) -> None:
    assert spec_for("dlib-resnet128-5pt-mirror-1") == DescriptorSpec("dlib-resnet128-5pt-mirror-1", 128, "euclidean")
    assert spec_for("dlib-resnet128-mesh5-1").dim == 128
    assert spec_for(f"{NAME}-1", calibrated_data) == DescriptorSpec(f"{NAME}-1", 192, "cosine")
    with pytest.raises(ResourceNotFoundError):
        spec_for("nobody-1", calibrated_data)


def test_builtin_pack_keeps_todays_model_versions() -> None:
    assert EngineSettings().model_version == "dlib-resnet128-5pt-mirror-1"
    assert EngineSettings(model=BUILTIN).model_version == "dlib-resnet128-5pt-mirror-1"
    assert EngineSettings(model=BUILTIN, mirror=False, landmarker="facemesh").model_version == "dlib-resnet128-mesh5-1"
    assert resolve("", None).builtin


@DATA
def test_uncalibrated_pack_is_refused_by_eval(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert cli("models", "install", str(make_pack(tmp_path / "p")), data=data).returncode == 0
    lfw = data_path("lfw_dev")
    r = cli("eval", "pairs", "--model", NAME, "--root", str(lfw), "--pairs", str(lfw / "pairs.tsv"), "--limit", "10",
            data=data)
    assert r.returncode == 16 and "ModelNotCalibratedException" in r.stderr and "eval calibrate" in r.stderr
    pack = resolve(NAME, store_dir(data))
    with pytest.raises(ModelNotCalibratedError):
        Engine(EngineSettings(model=NAME, model_store=str(store_dir(data)))).calibration  # noqa: B018
    assert pack.folder is not None


@DATA
def test_calibrated_pack_scores_and_refuses_a_table_of_another_pack(calibrated_data: Path, tmp_path: Path) -> None:
    lfw = data_path("lfw_dev")
    r = cli("eval", "pairs", "--model", NAME, "--root", str(lfw), "--pairs", str(lfw / "pairs.tsv"), "--limit", "40",
            "--procs", "1", "--normalization", "off", "--quiet", "--json", data=calibrated_data)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model_version"] == f"{NAME}-1" and out["calibration"] == f"{NAME}-1/1"
    assert out["accuracy_10fold"] > 0.85

    # version 2 of the pack (same file), given version 1's table: rejected at load, by its stamp
    data = tmp_path / "data"
    assert cli("models", "install", str(make_pack(tmp_path / "p2", version="2")), data=data).returncode == 0
    table = json.loads((store_dir(calibrated_data) / f"{NAME}-1" / "calibration" / f"{NAME}-1.json").read_text())
    target = store_dir(data) / f"{NAME}-2" / "calibration"
    target.mkdir()
    table["model_version"] = f"{NAME}-2"  # renamed, but the stamp says what it was measured on
    (target / f"{NAME}-2.json").write_text(json.dumps(table))
    r = cli("eval", "pairs", "--model", f"{NAME}-2", "--root", str(lfw), "--pairs", str(lfw / "pairs.tsv"),
            "--limit", "10", "--normalization", "off", data=data)
    assert r.returncode == 15 and "was built on" in r.stderr and f"{NAME}-1" in r.stderr
    assert json.loads(cli("models", "verify", "--json", data=data).stdout)["packs"][0]["field"] == "calibration"


def test_no_model_weights_ship_in_the_package() -> None:
    """The package data holds no ONNX file, and pyproject's package-data names none (the pack stays outside)."""
    pkg = REPO / "src" / "faceledger"
    assert not [p for p in pkg.rglob("*") if p.suffix.lower() in (".onnx", ".tflite", ".dat")]
    text = (REPO / "pyproject.toml").read_text().lower()
    package_data = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert "onnx" not in package_data and "mobilefacenet" not in text


def test_wire_codes_map_back_to_their_classes() -> None:
    """The CLI client maps a code to the last class listed with it: InvalidParameterException stays itself."""
    from faceledger.cli.client import BY_CODE
    from faceledger.errors import InvalidParameterError

    assert BY_CODE["InvalidParameterException"] is InvalidParameterError
    assert BY_CODE["ModelNotCalibratedException"] is ModelNotCalibratedError
    assert (ModelPackError.exit_code, ModelNotCalibratedError.exit_code) == (15, 16)


@DATA
def test_list_says_calibrated_once_the_tables_are_built(calibrated_data: Path) -> None:
    packs = json.loads(cli("models", "list", "--json", data=calibrated_data).stdout)["packs"]
    assert [p["calibrated"] for p in packs] == [True, True]
    ok = json.loads(cli("models", "verify", "--json", data=calibrated_data).stdout)["packs"]
    assert ok == [{"name": f"{NAME}-1", "ok": True, "problem": "", "field": ""}]


def test_serve_refuses_an_unknown_pack(tmp_path: Path) -> None:
    r = cli("serve", "--port", "0", "--workers", "1", data=tmp_path / "data", env={"FACELEDGER_MODEL": "nope"})
    assert r.returncode == 6 and "No model pack 'nope'" in r.stderr and "models install" in r.stderr


@DATA
def test_mobilefacenet_script_installs_calibrates_and_names_the_pack(tmp_path: Path) -> None:
    """scripts/mobilefacenet-pack.sh end to end (on 40 pairs here), then `eval pairs --model NAME --data`."""
    import os
    import subprocess
    import sys

    make_pack(tmp_path / "probe")  # skips without ../shared/models
    data = tmp_path / "data"
    env = {**os.environ, "PYTHON": sys.executable, "FACELEDGER_SHARED": str(data_path("..").resolve())}
    lfw = data_path("lfw_dev")
    r = subprocess.run(["bash", str(REPO / "scripts" / "mobilefacenet-pack.sh"), str(data),
                        "--pairs", str(lfw / "pairs.tsv"), "--limit", "40", "--procs", "1"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    name = r.stdout.strip().splitlines()[-1]
    assert name == f"{NAME}-1"
    assert not (REPO / "mobilefacenet.onnx").exists() and not list(REPO.glob("**/pack.json"))
    out = cli("eval", "pairs", "--model", name, "--root", str(lfw), "--pairs", str(lfw / "pairs.tsv"), "--limit", "20",
              "--procs", "1", "--normalization", "off", "--quiet", "--json", data=data)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["model_version"] == name


def test_list_works_when_the_default_names_no_installed_pack(tmp_path: Path) -> None:
    """An operator who set FACELEDGER_MODEL before installing the pack can still list what there is."""
    r = cli("models", "list", "--json", data=tmp_path / "data", env={"FACELEDGER_MODEL": "nope"})
    assert r.returncode == 0, r.stderr
    packs = json.loads(r.stdout)["packs"]
    assert [(p["name"], p["default"]) for p in packs] == [(BUILTIN, False)]
    assert not (tmp_path / "data" / "models").exists()  # listing creates nothing
