"""Fast unit tests: sampling and damage detection (PyAV), tracking, settings, job rules over fakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceledger.engine import Engine, EngineSettings
from faceledger.engine.types import Face, Pose, Quality
from faceledger.errors import InvalidParameterError, InvalidS3ObjectError, VideoTooLargeError
from faceledger.service import Principal, Service, create
from faceledger.service.context import RequestContext
from faceledger.service.core import Call
from faceledger.service.video import get_face_detection, start_face_detection
from faceledger.service.video_jobs import ACTIVE, VideoJobs
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog
from faceledger.store.vectors import VectorIndex
from faceledger.testing import FakeDetector, FakeEmbedder
from faceledger.video import UnreadableVideo, VideoSettings, probe
from faceledger.video.source import sample_frames
from faceledger.video.track import Tracker, near

from .media import faststart_copy, flat_video, truncated


def face(box: tuple[float, float, float, float], vec: np.ndarray) -> Face:
    return Face(box=box, confidence=99.0, landmarks={}, points=np.zeros((5, 2), np.float32),
                pose=Pose(0, 0, 0), quality=Quality(50, 50), image_size=(640, 360), descriptor=vec)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def test_sampling_rate_and_timestamps(tmp_path: Path) -> None:
    path = flat_video(tmp_path / "flat.mp4", seconds=2.0, fps=25)
    info = probe(path)
    assert (info.width, info.height, info.codec, info.duration_ms) == (160, 120, "h264", 2000)
    stamps = [ms for ms, px in sample_frames(path, 250)]
    assert len(stamps) == 8 and stamps == sorted(stamps) and stamps[1] - stamps[0] == 240
    assert all(px.shape == (120, 160, 3) for _, px in sample_frames(path, 1000))


def test_damaged_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(UnreadableVideo, match="not a video"):
        probe(tmp_path / "a.mp4")
    path = flat_video(tmp_path / "long.mp4", seconds=6.0, fps=10, size=(160, 120), noise=True)
    cut = truncated(faststart_copy(path, tmp_path / "fs.mp4"), tmp_path / "cut.mp4", keep=0.4)
    with pytest.raises(UnreadableVideo, match="truncated"):
        list(sample_frames(cut, 250))


def test_tracker_keeps_people_apart_and_together() -> None:
    a, b = unit(1), unit(2)
    t = Tracker()
    assert t.update(0, [face((10, 10, 60, 60), a), face((300, 10, 350, 60), b)]) == [0, 1]
    assert t.update(250, [face((300, 12, 350, 62), b + 0.01), face((14, 10, 64, 60), a)]) == [1, 0]
    # a cut to a close-up of someone new in the same place is a new person
    assert t.update(500, [face((0, 0, 200, 200), unit(3))]) == [2]
    # a re-appearance long after, elsewhere: re-identified by descriptor
    assert t.update(9000, [face((400, 200, 450, 250), a)]) == [0]
    assert len(t.tracks[0].best_descriptors()) == 3
    assert not near((0, 0, 50, 50), (0, 0, 200, 200))


def test_video_settings_from_env() -> None:
    s = VideoSettings.from_env({"FACELEDGER_VIDEO_SAMPLE_FPS": "2", "FACELEDGER_VIDEO_CNN_FALLBACK": "off"})
    assert s.sample_interval_ms == 500 and s.cnn_fallback == "off"
    with pytest.raises(InvalidParameterError):
        VideoSettings.from_env({"FACELEDGER_VIDEO_SAMPLE_FPS": "0"})


@pytest.fixture
def service(tmp_path):  # type: ignore[no-untyped-def]
    clips = tmp_path / "clips"
    clips.mkdir()
    flat_video(clips / "flat.mp4")
    settings = Settings(data_dir=tmp_path / "data", buckets=f"clips={clips}")
    settings.data_dir.mkdir()
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    svc = create(settings, Catalog.open(settings.data_dir), VectorIndex(),
                  EnginePool(EngineSettings(), engine=engine))
    yield svc
    svc.close()


def call(op: str, **params: object) -> Call:
    return Call(op, dict(params), Principal("AKIAADMIN00000000000", "x", "admin"), RequestContext("r1"))


def test_start_rules_and_crash_loop(service: Service) -> None:
    with pytest.raises(InvalidS3ObjectError):
        start_face_detection(service, call("StartFaceDetection", Video={"S3Object": {"Bucket": "clips", "Name": "x"}}))
    for name in ("flat\x00.mp4", 7):  # was ValueError/TypeError from Path: a 500
        with pytest.raises(InvalidParameterError, match="without NUL"):
            start_face_detection(service, call("StartFaceDetection",
                                               Video={"S3Object": {"Bucket": "clips", "Name": name}}))
    service.video.settings = VideoSettings(max_bytes=100)
    with pytest.raises(VideoTooLargeError):
        start_face_detection(service, call("StartFaceDetection",
                                           Video={"S3Object": {"Bucket": "clips", "Name": "flat.mp4"}}))
    service.video.settings = VideoSettings()
    job = start_face_detection(service, call("StartFaceDetection",
                                             Video={"S3Object": {"Bucket": "clips", "Name": "flat.mp4"}}))["JobId"]
    service.video.close()
    # pretend the service died with the job running, three times over
    record = service.catalog.get_state(f"video_job:{job}")
    record.update(status="IN_PROGRESS", resumes=2)
    record.pop("stopped_gracefully", None)
    with service.catalog.transaction() as tx:
        service.catalog.set_state(tx, f"video_job:{job}", record)
        service.catalog.set_state(tx, ACTIVE, [job])
    service.video = VideoJobs(service)
    out = get_face_detection(service, call("GetFaceDetection", JobId=job))
    assert out["JobStatus"] == "FAILED" and "stopped 3 times" in out["StatusMessage"]
    assert out["Faces"] == []  # the list member is there, empty, as for every response shape
    assert service.catalog.get_state(ACTIVE) == []


def test_cli_video_detect_local(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from faceledger.cli.main import cli

    path = flat_video(tmp_path / "flat.mp4")
    out = CliRunner().invoke(cli, ["video", "detect", str(path), "--quiet", "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output.strip().splitlines()[-1])
    assert body["Faces"] == [] and body["FramesAnalysed"] == 4 and body["VideoMetadata"]["FrameWidth"] == 160
    bad = CliRunner().invoke(cli, ["video", "detect", str(tmp_path / "flat.mp4"), "--fps", "0"])
    assert bad.exit_code == 2


def test_a_track_keeps_its_best_faces_with_their_quality_for_probe_gating() -> None:
    import numpy as np

    from faceledger.engine.types import Face, Pose, Quality
    from faceledger.video.track import Track

    def face(sharp: float) -> Face:
        return Face(box=(0, 0, 50, 50), confidence=99.0, landmarks={}, points=np.zeros((5, 2), np.float32),
                    pose=Pose(0, 0, 0), quality=Quality(50.0, sharp), image_size=(100, 100),
                    descriptor=np.full(128, sharp, np.float32))

    t = Track(index=0, last_box=(0, 0, 50, 50), last_ms=0)
    for sharp in (5.0, 90.0, 40.0):
        t.add(face(sharp), 0, keep=2)
    assert [float(d[0]) for d in t.best_descriptors()] == [90.0, 40.0]
    q = t.best_qualities()
    assert len(q) == 2 and q[0] > q[1] > 20  # the blurred face was dropped; the rest carry their scores
