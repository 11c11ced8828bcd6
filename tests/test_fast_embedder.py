"""FastEmbedder (ONNX Runtime) must reproduce dlib's compute_face_descriptor.

Chips are made exactly as the engine makes them: dlib's HOG detector, the
5-point shape predictor, ``dlib.get_face_chip(img, shape, 150, 0.25)``. Both
runtimes then embed the same chip and the descriptors are compared.

Bounds: measured agreement is ~1e-6 Euclidean (float32 summation order and the
conv/affine fold), i.e. ~1e-12 cosine distance. We assert cosine distance
< 1e-6 and Euclidean < 1e-4, five orders of magnitude under the 0.6 threshold.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

dlib = pytest.importorskip("dlib")
frm = pytest.importorskip("face_recognition_models")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from PIL import Image  # noqa: E402

from faceledger.engine.dlib_weights import (  # noqa: E402
    AddPrev,
    Affine,
    Conv,
    InputRGB,
    load_dlib_net,
)
from faceledger.engine.fast_embedder import FastEmbedder  # noqa: E402

MAX_COSINE = 1e-6
MAX_EUCLIDEAN = 1e-4
LFW_IMAGES = 10
REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return Path(os.environ.get("FACELEDGER_DATA", REPO.parent / "shared" / "data"))


class _ChipMaker:
    """dlib detector + 5-point predictor + get_face_chip, as the engine aligns faces."""

    def __init__(self) -> None:
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())

    def chips(self, path: Path) -> list[np.ndarray]:
        img = np.asarray(Image.open(path).convert("RGB"))
        return [
            dlib.get_face_chip(img, self.predictor(img, rect), 150, 0.25)
            for rect in self.detector(img, 1)
        ]


def _lfw_paths(root: Path) -> Iterator[Path]:
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        yield from sorted(person.glob("*.jpg"))[:1]


@pytest.fixture(scope="module")
def chip_maker() -> _ChipMaker:
    return _ChipMaker()


@pytest.fixture(scope="module")
def dlib_model() -> object:
    return dlib.face_recognition_model_v1(frm.face_recognition_model_location())


@pytest.fixture(scope="module")
def fast() -> FastEmbedder:
    return FastEmbedder(frm.face_recognition_model_location(), threads=1)


@pytest.fixture(scope="module")
def hopper_chip(chip_maker: _ChipMaker) -> np.ndarray:
    from matplotlib import cbook

    chips = chip_maker.chips(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    assert len(chips) == 1
    return chips[0]


def _dlib_descriptors(model: object, chips: np.ndarray) -> np.ndarray:
    return np.array([model.compute_face_descriptor(chip) for chip in chips], dtype=np.float64)  # type: ignore[attr-defined]


def _assert_agree(reference: np.ndarray, ours: np.ndarray) -> None:
    ours64 = ours.astype(np.float64)
    euclid = np.linalg.norm(reference - ours64, axis=1)
    cosine = 1.0 - np.sum(reference * ours64, axis=1) / (
        np.linalg.norm(reference, axis=1) * np.linalg.norm(ours64, axis=1)
    )
    assert euclid.max() < MAX_EUCLIDEAN, f"max Euclidean distance {euclid.max():.3g}"
    assert cosine.max() < MAX_COSINE, f"max cosine distance {cosine.max():.3g}"


def test_parser_reads_the_face_resnet() -> None:
    net = load_dlib_net(frm.face_recognition_model_location())
    first = net.layers[0]
    assert net.loss == "loss_metric_2"
    assert isinstance(first, InputRGB) and first.size == (150, 150)
    assert first.mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    assert net.count(Conv) == 29 and net.count(Affine) == 29 and net.count(AddPrev) == 14


def test_grace_hopper_matches_dlib(
    fast: FastEmbedder, dlib_model: object, hopper_chip: np.ndarray
) -> None:
    chips = hopper_chip[None]
    ours = fast.embed(chips)
    assert ours.shape == (1, 128) and ours.dtype == np.float32
    _assert_agree(_dlib_descriptors(dlib_model, chips), ours)


@pytest.mark.data
def test_lfw_chips_match_dlib(
    fast: FastEmbedder, dlib_model: object, chip_maker: _ChipMaker
) -> None:
    root = _data_dir() / "lfw_dev"
    if not root.is_dir():
        pytest.skip(f"no LFW data at {root} (set FACELEDGER_DATA)")
    chips: list[np.ndarray] = []
    for path in _lfw_paths(root):
        chips.extend(chip_maker.chips(path)[:1])
        if len(chips) == LFW_IMAGES:
            break
    assert len(chips) == LFW_IMAGES
    batch = np.stack(chips)
    _assert_agree(_dlib_descriptors(dlib_model, batch), fast.embed(batch))


def test_batch_matches_single_and_empty(fast: FastEmbedder, hopper_chip: np.ndarray) -> None:
    flipped = np.ascontiguousarray(hopper_chip[:, ::-1])
    batch = fast.embed(np.stack([hopper_chip, flipped, hopper_chip]))
    singles = np.concatenate([fast.embed(c[None]) for c in (hopper_chip, flipped, hopper_chip)])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    assert fast.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)


def test_cache_dir_round_trip(tmp_path: Path, hopper_chip: np.ndarray) -> None:
    model = frm.face_recognition_model_location()
    first = FastEmbedder(model, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 1
    second = FastEmbedder(model, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.embed(hopper_chip), second.embed(hopper_chip))
