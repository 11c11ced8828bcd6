"""Images that once took minutes and gigabytes finish quickly through a real server.

The hardening issue's cases: a 3000x3000 blank PNG sent to DetectFaces by a
searcher key (90 s of CPU before) and a 6300x6300 blank IndexFaces (396 s and
14.7 GB before). The server runs with a small CPU budget, so a textured image
that needs more than that is refused with ImageTooLargeException, not left
to run.
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from botocore.exceptions import ClientError

from faceledger.testing import png_bytes

from ..conftest import data_path
from .conftest import start_server

BOUND_S = 60.0  # generous for a loaded machine; each call takes a few seconds


@pytest.fixture(scope="module")
def budget_server(tmp_path_factory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("bounded") / "data"
    srv = start_server(data, workers=1, extra_env={"FACELEDGER_ENGINE_CPU_BUDGET_S": "1"})
    yield srv
    srv.stop()


def _client(srv, key: str | None = None, secret: str | None = None):  # type: ignore[no-untyped-def]
    # no retries and a read timeout past the bound, so a slow call shows as slow, not as a retry
    return srv.client(key=key, secret=secret, retries={"max_attempts": 1}, read_timeout=300)


def _blank(side: int) -> bytes:
    return png_bytes(np.zeros((side, side, 3), np.uint8))


def test_blank_3000_detect_faces_from_a_searcher_key_is_quick(budget_server) -> None:  # type: ignore[no-untyped-def]
    made = budget_server.cli("keys", "create", "--role", "searcher", "--json",
                              "--data", str(budget_server.data_dir), check=True)
    key = json.loads(made.stdout)
    searcher = _client(budget_server, key["AccessKeyId"], key["SecretAccessKey"])
    image = _blank(3000)
    started = time.monotonic()
    out = searcher.detect_faces(Image={"Bytes": image})
    assert time.monotonic() - started < BOUND_S
    assert out["FaceDetails"] == []


def test_blank_6300_index_faces_is_quick_and_indexes_nothing(budget_server) -> None:  # type: ignore[no-untyped-def]
    rek = _client(budget_server)
    rek.create_collection(CollectionId="blank")
    image = _blank(6300)
    started = time.monotonic()
    out = rek.index_faces(CollectionId="blank", Image={"Bytes": image})
    assert time.monotonic() - started < BOUND_S
    assert out["FaceRecords"] == [] and out["UnindexedFaces"] == []
    assert rek.list_faces(CollectionId="blank")["Faces"] == []


def test_work_past_the_cpu_budget_is_image_too_large(budget_server) -> None:  # type: ignore[no-untyped-def]
    # a smooth ramp: no face and not flat, so HOG scans all 9 Mpx (several CPU seconds)
    ramp = np.linspace(0, 255, 3000).astype(np.uint8)
    image = png_bytes(np.repeat(np.broadcast_to(ramp, (3000, 3000))[:, :, None], 3, axis=2).copy())
    rek = _client(budget_server)
    with pytest.raises(ClientError) as e:
        rek.detect_faces(Image={"Bytes": image})
    assert e.value.response["Error"]["Code"] == "ImageTooLargeException"
    assert "CPU budget" in e.value.response["Error"]["Message"]
    # the worker is not left broken: a real face is still found afterwards
    face = open(data_path("lfw_dev", "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg"), "rb").read()
    assert len(rek.detect_faces(Image={"Bytes": face})["FaceDetails"]) == 1



@pytest.mark.parametrize("side", [1, 8])
def test_tiny_images_have_no_faces_not_an_internal_error(budget_server, side: int) -> None:  # type: ignore[no-untyped-def]
    # Before: the CNN fallback raised dlib's RuntimeError on them (InternalServerError).
    noise = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    assert _client(budget_server).detect_faces(Image={"Bytes": png_bytes(noise)})["FaceDetails"] == []


def test_a_jpeg_of_thousands_of_scans_is_refused_not_decoded(budget_server) -> None:  # type: ignore[no-untyped-def]
    # Before: decoded scan by scan (~24 ms each at the pixel cap, 65 bytes each),
    # before and outside the engine's CPU budget.
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 130, 140)).save(buf, "JPEG", progressive=True)
    jpeg = buf.getvalue()
    last = jpeg.rindex(b"\xff\xda")
    many = jpeg[:-2] + jpeg[last:-2] * 2000 + jpeg[-2:]
    with pytest.raises(ClientError) as e:
        _client(budget_server).detect_faces(Image={"Bytes": many})
    assert e.value.response["Error"]["Code"] == "ImageTooLargeException"
    assert "scans" in e.value.response["Error"]["Message"]
