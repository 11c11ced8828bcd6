"""The real dlib models on real photos: faces, landmarks, pose, quality, scores."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from faceledger.engine import Engine, EngineSettings
from faceledger.engine.calibration import compare_threshold, fmr_from_similarity, search_threshold
from faceledger.engine.detect import detection_scale
from faceledger.engine.registry import model_path, models_dir
from faceledger.engine.report import face_detail
from faceledger.errors import ModelFileError
from faceledger.imaging import decode_image

from .conftest import data_path


def test_grace_hopper_has_one_well_described_face(engine: Engine, grace_hopper_bytes: bytes) -> None:
    faces = engine.analyze(grace_hopper_bytes)
    assert len(faces) == 1
    f = faces[0]
    assert f.descriptor is not None and f.descriptor.shape == (128,) and f.descriptor.dtype == np.float32
    # FaceMesh places the reported landmarks by default; dlib's 5 points where its files are missing
    from faceledger.engine import mediapipe_models
    from faceledger.engine.mesh_geometry import MESH_TYPES

    assert set(f.landmarks) == (set(MESH_TYPES) if mediapipe_models.available() else {
        "eyeLeft", "eyeRight", "leftEyeLeft", "leftEyeRight", "rightEyeLeft", "rightEyeRight", "nose"})
    assert f.landmarks["eyeLeft"][0] < f.landmarks["eyeRight"][0]
    assert abs(f.pose.yaw) < 25 and abs(f.pose.roll) < 20 and abs(f.pose.pitch) < 25
    assert 20 < f.quality.brightness < 90 and f.quality.sharpness > 20
    assert f.confidence > 90 and f.unindexable_reasons == []
    detail = face_detail(f, all_attributes=True)
    for banned in ("AgeRange", "Gender", "Emotions"):
        assert banned not in detail
    box = detail["BoundingBox"]
    assert 0 <= box["Left"] < 1 and 0 < box["Width"] <= 1


def test_exif_rotated_photo_is_found_upright(engine: Engine, grace_hopper_bytes: bytes) -> None:
    upright = Image.open(io.BytesIO(grace_hopper_bytes))
    stored = upright.rotate(90, expand=True)  # what a sideways camera stores
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    sideways_without_exif = io.BytesIO()
    stored.save(sideways_without_exif, format="JPEG", quality=95)
    assert len(engine.analyze(buf.getvalue())) == 1
    assert engine.analyze(sideways_without_exif.getvalue(), descriptors=False) == []


def test_no_face_and_tiny_image_give_empty_results(engine: Engine) -> None:
    sky = np.zeros((200, 300, 3), np.uint8)
    sky[:] = (90, 140, 220)
    assert engine.analyze(sky) == []
    assert engine.analyze(np.full((10, 10, 3), 128, np.uint8)) == []


def test_detection_scale_follows_image_size() -> None:
    assert detection_scale(250, 250) == 2.0  # small image: find 40 px faces
    assert detection_scale(1920, 1080) == 2.0  # Rekognition's minimum: 40 px at 1920
    assert detection_scale(4000, 3000) < 1.0  # large photo: no full upsampling
    assert detection_scale(4000, 3000, min_face_px=40) == pytest.approx(80 / (4000 * 40 / 1920))


def test_thresholds_follow_the_calibrated_scale() -> None:
    assert fmr_from_similarity(80) <= 1e-4
    assert fmr_from_similarity(99) <= 1e-6
    assert compare_threshold(1e-4) == pytest.approx(400 / 7)
    assert search_threshold(10_000) > search_threshold(100) > compare_threshold(1e-4)


def test_similarity_is_monotone_in_distance(engine: Engine) -> None:
    d = np.linspace(0, 1.5, 500)
    s = engine.calibration.similarity(d)
    assert np.all(np.diff(s) <= 1e-9)
    assert s[0] == 100 and s[-1] == 0
    # the measured FMR at distance 0.6 (face_recognition's default tolerance) is far from 1e-4
    assert engine.calibration.fmr(0.6) > 1e-3


def test_same_person_scores_high_and_strangers_low(engine: Engine) -> None:
    root = data_path("lfw_dev")
    def vec(rel: str) -> np.ndarray:
        faces = engine.analyze((root / rel).read_bytes())
        assert faces
        return faces[0].descriptor  # type: ignore[return-value]
    a1 = vec("Anthony_Fauci/Anthony_Fauci_0001.jpg")
    a2 = vec("Anthony_Fauci/Anthony_Fauci_0002.jpg")
    b = vec("Abel_Pacheco/Abel_Pacheco_0001.jpg")
    same, other = engine.compare(a1, a2), engine.compare(a1, b)
    assert same.similarity >= compare_threshold() > other.similarity
    assert same.fmr < 1e-4 < other.fmr


def test_68_point_opt_in_adds_mouth_and_eye_state(grace_hopper_bytes: bytes) -> None:
    engine68 = Engine(EngineSettings(landmarks68=True))
    f = engine68.analyze(grace_hopper_bytes, descriptors=False)[0]
    assert {"mouthLeft", "mouthRight", "chinBottom", "leftPupil"} <= set(f.landmarks)
    assert f.eyes_open is not None and f.eyes_open[0] is True
    assert f.mouth_open is not None


def test_corrupted_model_file_is_a_clear_error(tmp_path, monkeypatch) -> None:
    src = models_dir() / "shape_predictor_5_face_landmarks.dat"
    bad = tmp_path / src.name
    shutil.copy(src, bad)
    with open(bad, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0" * 16)
    monkeypatch.setenv("FACELEDGER_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelFileError, match="corrupted or was replaced"):
        model_path("landmarks5")
    (tmp_path / src.name).unlink()
    with pytest.raises(ModelFileError, match="missing"):
        model_path("landmarks5")


def test_group_photo_finds_many_faces(engine: Engine) -> None:
    path = data_path("group_photos", "dlib_bald_guys.jpg")
    faces = engine.analyze(decode_image(path.read_bytes()), descriptors=False)
    assert len(faces) >= 20
