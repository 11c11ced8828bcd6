"""Detection work is bounded for every image up to the pixel cap.

The detectors are the real ones; where a test only needs to see the size of
the image dlib is handed, dlib's call is replaced by a recorder so the test
does not spend the seconds the scan itself would take.
"""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.engine import Engine, EngineSettings
from faceledger.engine.budget import CpuBudget
from faceledger.engine.detect import (
    CNN_PIXEL_BUDGET,
    FALLBACK_PIXEL_BUDGET,
    HOG_PIXEL_BUDGET,
    HogDetector,
    MmodDetector,
    detection_scale,
    is_flat,
)
from faceledger.engine.engine import DESCRIBE_BATCH
from faceledger.engine.types import Detection
from faceledger.errors import ALL_ERRORS, AnalysisBudgetError, ImageTooLargeError

from .conftest import data_path


def ramp(height: int, width: int) -> np.ndarray:
    """A smooth horizontal ramp: no face, not flat."""
    row = np.linspace(0, 255, width).astype(np.uint8)
    return np.repeat(np.broadcast_to(row, (height, width))[:, :, None], 3, axis=2).copy()


class Recorder:
    """Stands in for a dlib detector object: records the shape it is given, finds nothing."""

    def __init__(self, hog: bool) -> None:
        self.hog = hog
        self.shapes: list[tuple[int, ...]] = []

    def run(self, image: np.ndarray, *args: object) -> tuple[list, list, list]:
        self.shapes.append(image.shape)
        return [], [], []

    def __call__(self, image: np.ndarray, *args: object) -> list:
        self.shapes.append(image.shape)
        return []


def recording_engine(settings: EngineSettings | None = None) -> tuple[Engine, Recorder, Recorder]:
    engine = Engine(settings or EngineSettings())
    assert isinstance(engine.detector, HogDetector)
    hog, cnn = Recorder(hog=True), Recorder(hog=False)
    engine.detector._det = hog  # type: ignore[assignment]
    fallback = MmodDetector(pixel_budget=FALLBACK_PIXEL_BUDGET)
    fallback._det = cnn  # type: ignore[assignment]
    engine._fallback = fallback
    return engine, hog, cnn


def pixels(shape: tuple[int, ...]) -> int:
    return int(shape[0]) * int(shape[1])


@pytest.mark.parametrize("size", [(6300, 6300), (5164, 7744), (3000, 3000), (1000, 40_000)])
def test_neither_detector_scans_more_than_its_pixel_budget(size: tuple[int, int]) -> None:
    # Before: the CNN fallback ran at the HOG scale capped at 1x, 3843x3843 for a
    # 6300x6300 image (396 s, 14.7 GB); now at most FALLBACK_PIXEL_BUDGET pixels.
    engine, hog, cnn = recording_engine()
    assert engine.find(ramp(*size)) == []
    assert len(hog.shapes) == 1 and len(cnn.shapes) == 1
    assert pixels(hog.shapes[0]) <= HOG_PIXEL_BUDGET * 1.01
    assert pixels(cnn.shapes[0]) <= FALLBACK_PIXEL_BUDGET * 1.01


def test_small_images_keep_their_scale() -> None:
    # LFW (250 px) and PASCAL (500x375) images are scanned as before: HOG at 2x, the CNN at 1x
    engine, hog, cnn = recording_engine()
    engine.find(ramp(375, 500))
    assert hog.shapes[0][:2] == (750, 1000) and cnn.shapes[0][:2] == (375, 500)


def test_detection_scale_keeps_to_the_budget() -> None:
    assert detection_scale(250, 250) == 2.0
    s = detection_scale(6300, 6300, pixel_budget=CNN_PIXEL_BUDGET)
    assert (6300 * s) ** 2 <= CNN_PIXEL_BUDGET * 1.0001
    assert detection_scale(1920, 1080, pixel_budget=CNN_PIXEL_BUDGET) == pytest.approx(1.0)


def test_flat_images_are_not_scanned() -> None:
    engine, hog, cnn = recording_engine()
    for image in (np.zeros((3000, 3000, 3), np.uint8), np.full((500, 7000, 3), (30, 60, 90), np.uint8)):
        assert engine.find(image) == []
    assert hog.shapes == [] and cnn.shapes == []


def test_flatness_is_per_channel_and_exact() -> None:
    image = np.full((400, 600, 3), (30, 60, 90), np.uint8)
    assert is_flat(image)
    image[123, 457, 2] = 92  # within the tolerance of 2 levels
    assert is_flat(image)
    image[123, 457, 2] = 93  # one pixel the strided sample misses
    assert not is_flat(image)
    assert not is_flat(ramp(10, 10))


@pytest.mark.parametrize("side", [1, 4, 8])
def test_tiny_images_do_not_break_the_cnn_fallback(engine: Engine, side: int) -> None:
    # Before: dlib's MMOD network raised RuntimeError (tensor.h) on images under ~10 px.
    noise = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    assert engine.analyze(noise) == []


def test_the_cpu_budget_ends_runaway_work_with_image_too_large() -> None:
    engine = Engine(EngineSettings(cpu_budget_s=0.05))
    with pytest.raises(AnalysisBudgetError) as e:
        engine.analyze(ramp(800, 800))  # HOG alone scans 1600x1600: well over 0.05 s
    assert isinstance(e.value, ImageTooLargeError)
    assert e.value.code == "ImageTooLargeException" and e.value.http_status == 400 and e.value.exit_code == 5
    assert "CPU budget" in e.value.message and "FACELEDGER_ENGINE_CPU_BUDGET_S" in e.value.message
    assert AnalysisBudgetError in ALL_ERRORS


def test_no_budget_never_raises_and_a_budget_does_once_spent() -> None:
    CpuBudget(0).check("anything")
    budget = CpuBudget(1e-4)
    end = budget.spent() + 0.01
    while budget.spent() < end:
        pass
    with pytest.raises(AnalysisBudgetError):
        budget.check("spinning")


def test_descriptors_are_computed_in_bounded_batches(engine: Engine) -> None:
    # Before: every chip of the call went through the network at once (~1.5 MB each).
    face = open(data_path("lfw_dev", "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg"), "rb").read()
    calls: list[int] = []
    real = engine.embedder.embed

    def recording(chips: np.ndarray) -> np.ndarray:
        calls.append(len(chips))
        return real(chips)

    engine.embedder.embed = recording  # type: ignore[method-assign]
    try:
        many = engine.analyze_many([face] * (DESCRIBE_BATCH + 1))
    finally:
        del engine.embedder.embed
    one = engine.analyze(face)[0].descriptor
    assert len(calls) == 2 and max(calls) <= 2 * DESCRIBE_BATCH
    for faces in many:
        assert len(faces) == 1 and np.allclose(faces[0].descriptor, one, atol=1e-5)


class ManyFaces:
    """A detector that reports ``n`` face boxes of growing size on a grid (a crowd, or a tiled face)."""

    name = "hog"

    def __init__(self, n: int) -> None:
        self.n = n

    def detect(self, image: np.ndarray, scale: float) -> list[Detection]:
        return [Detection(box=(float(40 * (i % 40)), float(40 * (i // 40)), 40 * (i % 40) + 20.0 + i / 100,
                               40 * (i // 40) + 20.0 + i / 100), confidence=99.0, raw_score=1.0, detector="hog")
                for i in range(self.n)]


def test_only_the_100_largest_faces_are_measured_and_described(engine: Engine) -> None:
    # Before: every detection was measured and described; a 1920x1080 image
    # tiled with 1,044 small faces took 66 s (Rekognition reports the 100 largest).
    crowd = Engine(engine.settings, detector=ManyFaces(1000), embedder=engine.embedder,
                   calibration=engine.calibration)
    described: list[int] = []
    real = engine.embedder.embed

    def recording(chips: np.ndarray) -> np.ndarray:
        described.append(len(chips))
        return real(chips)

    image = np.random.default_rng(3).integers(0, 256, (1000, 1700, 3), dtype=np.uint8)
    engine.embedder.embed = recording  # type: ignore[method-assign]
    try:
        faces = crowd.analyze(image)
    finally:
        del engine.embedder.embed
    assert len(faces) == 100
    assert sum(described) <= 2 * 100  # the chip and its mirror image
    assert min(f.width for f in faces) >= 20 + 899 / 100 - 1e-6  # the largest ones
    assert len(crowd.analyze(image, descriptors=False, max_faces=5)) == 5
