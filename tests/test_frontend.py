"""The MediaPipe front end: pinned files, BlazeFace detection counts, FaceMesh landmarks and geometry."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceledger.engine import Engine, EngineSettings
from faceledger.engine import mediapipe_models as mm
from faceledger.engine.arcface_align import ARCFACE_TEMPLATE, arcface_chip, similarity
from faceledger.engine.blazeface import BlazeFaceDetector, dlib_style_box, tiles
from faceledger.engine.mesh_geometry import MESH_TYPES, arcface5_points
from faceledger.engine.registry import wire_version
from faceledger.engine.report import DEFAULT_LANDMARKS, face_detail
from faceledger.errors import InvalidParameterError, ModelFileError
from faceledger.evaluation.detection import annotated_recall, stated_counts
from faceledger.imaging import read_image_file
from faceledger.testing import FakeEmbedder

from .conftest import data_path

needs_models = pytest.mark.skipif(not mm.available(), reason="MediaPipe files not installed (make venv)")


@pytest.fixture(scope="module")
def mesh_engine() -> Engine:
    return Engine(EngineSettings(detector="blazeface", landmarker="facemesh"), embedder=FakeEmbedder())


# -- pinned files ---------------------------------------------------------------------------


@needs_models
def test_installed_files_match_their_pins() -> None:
    for spec in mm.TFLITE.values():
        path = mm.tflite_path(spec.key)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256


@needs_models
def test_an_altered_file_is_refused_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in mm.TFLITE.values():
        (tmp_path / spec.filename).write_bytes(mm.tflite_path(spec.key).read_bytes())
    target = tmp_path / mm.TFLITE["facemesh"].filename
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    target.write_bytes(bytes(data))
    monkeypatch.setenv("FACELEDGER_MEDIAPIPE_DIR", str(tmp_path))
    with pytest.raises(ModelFileError, match="corrupted or was replaced.*mediapipe_models install"):
        mm.tflite_path("facemesh")
    assert mm.tflite_path("iris").parent == tmp_path  # the intact ones still load
    target.unlink()
    with pytest.raises(ModelFileError, match="missing"):
        mm.tflite_path("facemesh")


def test_extract_writes_nothing_unless_every_file_matches(tmp_path: Path) -> None:
    wheel = tmp_path / "mediapipe-0.10.14-fake.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for spec in mm.TFLITE.values():
            zf.writestr(spec.member, b"not the model")
    dest = tmp_path / "out"
    with pytest.raises(ModelFileError, match="SHA-256"):
        mm.extract(wheel, dest)
    assert not dest.exists() or not any(dest.iterdir())


@needs_models
def test_install_from_a_wheel_copies_the_pinned_files(tmp_path: Path) -> None:
    wheel = tmp_path / "mediapipe-0.10.14-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for spec in mm.TFLITE.values():
            zf.writestr(spec.member, mm.tflite_path(spec.key).read_bytes())
        zf.writestr("mediapipe/__init__.py", "")
    paths = mm.install(wheel, tmp_path / "models")
    assert sorted(p.name for p in paths) == sorted(s.filename for s in mm.TFLITE.values())
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(p.name for p in paths)


# -- detection ------------------------------------------------------------------------------


def test_tiles_cover_the_image_with_overlap() -> None:
    grid = tiles(1000, 600, 300)
    assert all(r - x == 300 and b - y == 300 for x, y, r, b in grid)
    covered = np.zeros((600, 1000), bool)
    for x, y, r, b in grid:
        covered[y:b, x:r] = True
    assert covered.all()
    assert tiles(200, 150, 300) == [(0, 0, 200, 150)]


@needs_models
def test_the_128px_four_face_photo_gives_four() -> None:
    pixels = read_image_file(data_path("group_photos", "blazeface_4faces.png")).pixels
    engine = Engine(EngineSettings(detector="blazeface"), embedder=FakeEmbedder())
    assert len(engine.find(pixels)) == 4


@needs_models
def test_every_counted_group_photo_face_is_found(mesh_engine: Engine) -> None:
    csv_path = data_path("group_photos", "images.csv")
    out = stated_counts(mesh_engine, str(csv_path), str(csv_path.parent))
    assert out["stated_faces"] == 12 and out["found_in_counted"] == 12
    # and no more than stated: tile-only ears and collars are held to the higher score
    assert all(r["detected"] == r["stated"] for r in out["images"] if r["stated"] is not None)


@needs_models
def test_every_boxed_pascal_face_is_found_without_false_detections(mesh_engine: Engine) -> None:
    ann = data_path("dlib_pascal_faces", "annotations.json")
    out = annotated_recall(mesh_engine, str(ann), str(ann.parent))
    assert out["annotated_faces"] == 43 and out["found"] == 43 and out["detections"] == 43


@needs_models
def test_close_ups_the_full_range_model_is_unsure_of_are_found() -> None:
    # regression: the full-range model alone scored these lfw_dev close-ups 0.31-0.32 and found no face
    for name in ("Muammar_Gaddafi/Muammar_Gaddafi_0001.jpg", "Jason_Kidd/Jason_Kidd_0002.jpg"):
        pixels = read_image_file(data_path("lfw_dev", name)).pixels
        assert BlazeFaceDetector(close_ups=False).detect(pixels, 2.0) == []
        (hit,) = BlazeFaceDetector().detect(pixels, 2.0)
        left, top, right, bottom = hit.box
        assert left < 125 < right and top < 125 < bottom and hit.confidence >= 60


def test_blazeface_boxes_are_moved_to_where_dlib_puts_them() -> None:
    left, top, right, bottom = dlib_style_box((100.0, 100.0, 200.0, 200.0))
    assert right - left == pytest.approx(97.06) and bottom - top == pytest.approx(97.06)
    assert (left + right) / 2 == pytest.approx(147.92) and (top + bottom) / 2 == pytest.approx(146.42)
    # with keypoints the box follows the eyes and mouth: eyes 40 px apart, mouth 30 px below them
    kps = np.array([[130, 140], [170, 140], [150, 160], [150, 170], [110, 150], [190, 150]], np.float32)
    left, top, right, bottom = dlib_style_box((0.0, 0.0, 1.0, 1.0), kps)
    assert right - left == pytest.approx(1.622 * 50, rel=1e-3)
    assert (left + right) / 2 == pytest.approx(150 - 0.0319 * 50, rel=1e-3)
    assert (top + bottom) / 2 == pytest.approx(140 + 0.3165 * 50, rel=1e-3)


@needs_models
def test_a_face_tilted_up_gets_dlib_points_on_its_eyes() -> None:
    # regression: from BlazeFace's box (moved by the median offset) the 5-point
    # predictor put this face's eyes on its nose; from the keypoints it does not
    pixels = read_image_file(data_path("lfw_dev", "Ernie_Stewart", "Ernie_Stewart_0001.jpg")).pixels
    engine = Engine(EngineSettings(detector="blazeface"), embedder=FakeEmbedder())
    (face,) = engine.analyze(pixels, descriptors=False)
    (hit,) = [d for d in engine.find(pixels) if d.box == face.box]
    assert hit.keypoints is not None
    eyes = face.align_points[:4].mean(0)
    assert np.linalg.norm(eyes - hit.keypoints[:2].mean(0)) < 0.25 * np.linalg.norm(hit.keypoints[1] - hit.keypoints[0])


def test_dlib_alone_reports_its_points_and_invents_none(grace_hopper_bytes: bytes) -> None:
    engine = Engine(EngineSettings(mesh_report=False), embedder=FakeEmbedder())
    (face,) = engine.analyze(grace_hopper_bytes, descriptors=False)
    default = {m["Type"] for m in face_detail(face)["Landmarks"]}
    assert default == {"eyeLeft", "eyeRight", "nose"}  # dlib's 5 points have no mouth: none invented
    assert len(face_detail(face, all_attributes=True)["Landmarks"]) == 7
    assert "EyeDirection" not in face_detail(face, all_attributes=True)


# -- the default front end: dlib's detection and alignment, FaceMesh's reported landmarks ----


@needs_models
def test_default_landmarks_are_rekognition_default_five_from_facemesh(
        engine: Engine, grace_hopper_bytes: bytes) -> None:
    (face,) = engine.analyze(grace_hopper_bytes, descriptors=False)
    assert face.detector == "hog" and len(face.points) == 5  # dlib found and aligned it
    assert [m["Type"] for m in face_detail(face)["Landmarks"]] == [
        "eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
    full = face_detail(face, all_attributes=True)
    assert {m["Type"] for m in full["Landmarks"]} == set(MESH_TYPES)
    assert full["EyesOpen"]["Value"] is True and full["MouthOpen"]["Value"] is False
    for key in ("EyesOpen", "MouthOpen", "EyeDirection"):
        assert 0 <= full[key]["Confidence"] <= 100
    assert abs(full["EyeDirection"]["Yaw"]) < 20 and abs(full["EyeDirection"]["Pitch"]) < 20
    # the mouth corners sit below the eyes and between the face's sides
    (lx, ly), (rx, ry) = face.landmarks["mouthLeft"], face.landmarks["mouthRight"]
    assert face.box[0] < lx < rx < face.box[2] and min(ly, ry) > face.landmarks["eyeLeft"][1]


@needs_models
def test_the_reported_mesh_does_not_change_the_chip_or_the_descriptor(grace_hopper_bytes: bytes) -> None:
    with_mesh = Engine()
    without = Engine(EngineSettings(mesh_report=False))
    (a,) = with_mesh.analyze(grace_hopper_bytes)
    (b,) = without.analyze(grace_hopper_bytes)
    assert a.landmarks != b.landmarks  # the mesh did run
    assert np.array_equal(a.align_points, b.align_points) and a.pose == b.pose
    assert a.unindexable_reasons == b.unindexable_reasons
    assert a.descriptor is not None and np.array_equal(a.descriptor, b.descriptor)
    assert with_mesh.model_version == without.model_version == "dlib-resnet128-5pt-mirror-1"


def test_a_caller_that_reports_no_landmarks_skips_the_mesh_and_gets_the_same_face(grace_hopper_bytes: bytes) -> None:
    """SearchFacesByImage reports only the probe's box: it asks for no landmarks and pays nothing for FaceMesh."""
    engine = Engine()
    (full,) = engine.analyze(grace_hopper_bytes)
    (bare,) = engine.analyze(grace_hopper_bytes, landmarks=False)
    (dlib_only,) = Engine(EngineSettings(mesh_report=False)).analyze(grace_hopper_bytes)
    assert bare.landmarks == dlib_only.landmarks != full.landmarks  # no mesh reading was taken
    assert bare.box == full.box and bare.pose == full.pose and bare.unindexable_reasons == full.unindexable_reasons
    assert bare.descriptor is not None and np.array_equal(bare.descriptor, full.descriptor)


class _MisplacedMesh:
    """A FaceMesh whose points land 60 px right of the face: the engine must not report them."""

    def __init__(self, presence: float = 1.0, shift: float = 60.0) -> None:
        from faceledger.engine.facemesh import FaceMeshLandmarker

        self.real = FaceMeshLandmarker()
        self.last_presence, self.shift = presence, shift

    def points3d(self, image, box, keypoints=None):  # type: ignore[no-untyped-def]
        p = self.real.points3d(image, box, keypoints)
        p[:, 0] += self.shift
        return p


@needs_models
@pytest.mark.parametrize("mesh", [_MisplacedMesh, lambda: _MisplacedMesh(presence=0.1, shift=0.0)])
def test_where_facemesh_fails_dlibs_points_are_reported(mesh, grace_hopper_bytes: bytes) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(embedder=FakeEmbedder())
    engine._report_mesh = mesh()
    (face,) = engine.analyze(grace_hopper_bytes, descriptors=False)
    assert set(face.landmarks) == {
        "eyeLeft", "eyeRight", "leftEyeLeft", "leftEyeRight", "rightEyeLeft", "rightEyeRight", "nose"}
    assert face.eyes_open is None and face.mouth_open is None and face.eye_direction is None


def test_without_the_mediapipe_files_the_default_is_dlib_alone(grace_hopper_bytes: bytes) -> None:
    engine = Engine(embedder=FakeEmbedder())
    engine._mediapipe_ok = False  # as mediapipe_models.available() says when the files are missing
    (face,) = engine.analyze(grace_hopper_bytes, descriptors=False)
    assert {m["Type"] for m in face_detail(face)["Landmarks"]} == {"eyeLeft", "eyeRight", "nose"}
    pixels = read_image_file(data_path("group_photos", "blazeface_4faces.png")).pixels
    assert all(d.detector != "blazeface" for d in engine.find(pixels))


@needs_models
def test_default_settings_find_the_four_small_faces_with_blazeface_before_the_cnn() -> None:
    pixels = read_image_file(data_path("group_photos", "blazeface_4faces.png")).pixels
    engine = Engine(embedder=FakeEmbedder())
    faces = engine.analyze(pixels)
    assert len(faces) == 4 and {f.detector for f in faces} == {"blazeface"}
    assert engine._fallback is None  # the CNN never ran
    assert all("SMALL_BOUNDING_BOX" in f.unindexable_reasons for f in faces)
    assert all(len(f.align_points) == 5 for f in faces)  # dlib's 5 points on dlib-style boxes


def test_without_the_blazeface_fallback_the_cnn_is_tried() -> None:
    pixels = read_image_file(data_path("group_photos", "blazeface_4faces.png")).pixels
    engine = Engine(EngineSettings(blazeface_fallback=False), embedder=FakeEmbedder())
    assert engine.find(pixels) == [] and engine._fallback is not None


@needs_models
def test_tiles_are_used_only_where_they_magnify_small_faces() -> None:
    det = BlazeFaceDetector()
    assert len(det.regions(500, 375, 2.0)) == 1  # a 40-px face is already 15 px in the input
    assert len(det.regions(1986, 1545, 80 / 41.4)) > 1
    assert len(det.regions(20000, 20000, 4.0)) <= 65  # bounded on huge images


# -- landmarks, attributes, geometry --------------------------------------------------------


@needs_models
def test_facemesh_gives_every_landmark_type_from_model_points(mesh_engine: Engine, grace_hopper_bytes: bytes) -> None:
    (face,) = mesh_engine.analyze(grace_hopper_bytes, descriptors=False)
    assert face.points.shape == (478, 2) and face.detector == "blazeface"
    assert set(face.landmarks) == set(MESH_TYPES) and len(MESH_TYPES) == 30
    lm = face.landmarks
    assert lm["eyeLeft"][0] < lm["nose"][0] < lm["eyeRight"][0]
    assert lm["mouthLeft"][0] < lm["mouthRight"][0]
    assert lm["eyeLeft"][1] < lm["nose"][1] < lm["mouthUp"][1] < lm["mouthDown"][1] < lm["chinBottom"][1]
    for side in ("left", "right"):  # each pupil inside its eye's corners and lids
        px, py = lm[f"{side}Pupil"]
        assert lm[f"{side}EyeLeft"][0] < px < lm[f"{side}EyeRight"][0]
        assert lm[f"{side}EyeUp"][1] - 3 < py < lm[f"{side}EyeDown"][1] + 3
    default = face_detail(face)
    assert {m["Type"] for m in default["Landmarks"]} == set(DEFAULT_LANDMARKS)
    full = face_detail(face, all_attributes=True)
    assert len(full["Landmarks"]) == 30
    assert full["EyesOpen"]["Value"] is True and full["MouthOpen"]["Value"] is False
    assert set(full["EyeDirection"]) == {"Yaw", "Pitch", "Confidence"}
    assert abs(full["EyeDirection"]["Yaw"]) < 20 and abs(full["EyeDirection"]["Pitch"]) < 20
    assert abs(face.pose.yaw) < 25 and abs(face.pose.pitch) < 25 and abs(face.pose.roll) < 15
    assert face.unindexable_reasons == []


@needs_models
def test_mirroring_the_photo_mirrors_pose_and_gaze(mesh_engine: Engine, grace_hopper_bytes: bytes) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(grace_hopper_bytes)).convert("RGB"))
    turned = pixels[:, pixels.shape[1] // 5:]  # off-centre crop: the mirror is a genuinely different image
    (a,) = mesh_engine.analyze(np.ascontiguousarray(turned), descriptors=False)
    (b,) = mesh_engine.analyze(np.ascontiguousarray(turned[:, ::-1]), descriptors=False)
    assert a.pose.yaw == pytest.approx(-b.pose.yaw, abs=3)
    assert a.pose.roll == pytest.approx(-b.pose.roll, abs=2)
    assert a.pose.pitch == pytest.approx(b.pose.pitch, abs=3)
    w = turned.shape[1]
    assert a.landmarks["eyeLeft"][0] == pytest.approx(w - b.landmarks["eyeRight"][0], abs=2)


@needs_models
def test_a_rotated_face_reports_its_roll(mesh_engine: Engine, grace_hopper_bytes: bytes) -> None:
    im = Image.open(io.BytesIO(grace_hopper_bytes)).convert("RGB")
    (upright,) = mesh_engine.analyze(np.asarray(im), descriptors=False)
    # PIL rotates counter-clockwise for positive angles: the eye line turns anticlockwise (negative roll)
    (tilted,) = mesh_engine.analyze(np.asarray(im.rotate(20, resample=Image.Resampling.BILINEAR)),
                                    descriptors=False)
    assert tilted.pose.roll - upright.pose.roll == pytest.approx(-20, abs=4)


@needs_models
def test_faces_below_the_minimum_are_found_but_marked_small(mesh_engine: Engine) -> None:
    pixels = read_image_file(data_path("group_photos", "blazeface_4faces.png")).pixels
    faces = mesh_engine.analyze(pixels, descriptors=False)
    assert len(faces) == 4
    assert all("SMALL_BOUNDING_BOX" in f.unindexable_reasons for f in faces)


def test_arcface_similarity_puts_the_points_on_the_template() -> None:
    rng = np.random.default_rng(3)
    angle, scale, shift = 0.3, 2.5, np.array([40.0, 70.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = (ARCFACE_TEMPLATE - 56) @ rot.T * scale + 200 + shift + rng.normal(0, 0.01, (5, 2))
    m = similarity(src, ARCFACE_TEMPLATE)
    assert np.allclose(src @ m[:, :2].T + m[:, 2], ARCFACE_TEMPLATE, atol=0.05)
    image = np.zeros((600, 600, 3), np.uint8)
    x, y = np.round(src[0]).astype(int)
    image[y - 2:y + 3, x - 2:x + 3] = 255  # a bright dot on the first point
    chip = arcface_chip(image, src)
    assert chip.shape == (112, 112, 3)
    ys, xs = np.nonzero(chip[:, :, 0] > 60)
    assert abs(xs.mean() - ARCFACE_TEMPLATE[0, 0]) < 1.5 and abs(ys.mean() - ARCFACE_TEMPLATE[0, 1]) < 1.5


@needs_models
def test_arcface_points_from_the_mesh_are_eyes_nose_mouth(mesh_engine: Engine, grace_hopper_bytes: bytes) -> None:
    (face,) = mesh_engine.analyze(grace_hopper_bytes, descriptors=False)
    p = arcface5_points(face.points)
    assert p[0, 0] < p[2, 0] < p[1, 0] and p[3, 0] < p[4, 0]
    assert max(p[0, 1], p[1, 1]) < p[2, 1] < min(p[3, 1], p[4, 1])


def test_the_mesh_front_end_has_its_own_model_version() -> None:
    plain, mesh = EngineSettings(), EngineSettings(landmarker="facemesh")
    assert mesh.model_version != plain.model_version
    assert wire_version(mesh.model_version) == "2.1" and wire_version(plain.model_version) == "1.1"
    with pytest.raises(InvalidParameterError, match="landmarker"):
        Engine(EngineSettings(landmarker="bogus"), embedder=FakeEmbedder())
    with pytest.raises(InvalidParameterError, match="detector"):
        Engine(EngineSettings(detector="bogus"), embedder=FakeEmbedder())



def test_serve_with_an_unknown_detector_is_a_clear_error(tmp_path: Path) -> None:
    # regression: an unknown FACELEDGER_DETECTOR used to run HOG silently, then (with the
    # factory that refuses it) broke the worker pool with a traceback
    env = {**os.environ, "FACELEDGER_DETECTOR": "bogus"}
    out = subprocess.run([sys.executable, "-m", "faceledger.cli.main", "serve", "--port", "0", "--data",
                          str(tmp_path / "d"), "--workers", "1"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 3 and "Unknown detector 'bogus'" in out.stderr and "Traceback" not in out.stderr


@needs_models
def test_the_blazeface_fallback_keeps_only_faces_near_upright(grace_hopper_bytes: bytes) -> None:
    upright = Image.open(io.BytesIO(grace_hopper_bytes)).convert("RGB")
    engine = Engine(embedder=FakeEmbedder())
    sideways = np.asarray(upright.rotate(90, expand=True))
    assert BlazeFaceDetector().detect(sideways, 1.0)  # BlazeFace does see the sideways face
    assert engine.find(sideways) == []  # but dlib's 5-point predictor could not align it
    tilted = np.asarray(upright.resize((256, 300)).rotate(25, resample=Image.Resampling.BILINEAR))
    (hit,) = engine.find(tilted)
    assert hit.detector in {"hog", "blazeface"}
