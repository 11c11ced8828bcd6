"""How video is sampled, tracked and bounded (``FACELEDGER_VIDEO_*``), read once and passed in.

Kept beside the video code rather than in ``faceledger.settings`` so that the
video feature stays one package; ``VideoSettings.from_env`` follows the same
rules as ``Settings.from_env`` (environment read by the entry point only).
It must not be imported as a singleton.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from ..errors import InvalidParameterError

GB = 1024**3


@dataclass(frozen=True)
class VideoSettings:
    """Every video setting. Defaults are the documented defaults (docs/video.md)."""

    sample_fps: float = 4.0  # frames analysed per second of video: a face shown 0.5 s is seen twice
    max_bytes: int = 2 * GB  # Rekognition allows 10 GB; a local engine at ~10 fps needs a cap
    max_duration_s: float = 6 * 3600.0  # Rekognition's limit for stored video
    max_frame_pixels: int = 1920 * 1088  # larger frames are scaled down before analysis
    cnn_fallback: str = "large"  # off | large (CNN for big faces HOG missed, ~0.35 s) | full (~3 s/frame)
    track_gap_ms: int = 1500  # a track not seen for this long ends (it may be re-identified)
    link_distance: float = 0.6  # descriptor distance to continue a nearby track
    reid_distance: float = 0.5  # descriptor distance to re-identify a person elsewhere or later
    search_faces_per_person: int = 3  # best-quality faces of a person searched against the collection
    max_matches_per_person: int = 10  # candidates kept per person (leads for review)
    inflight_frames: int = 2  # frames of one job queued on the engine pool at once
    job_workers: int = 1  # videos analysed at the same time
    max_active_jobs: int = 20  # jobs queued or running before Start* answers LimitExceededException
    max_resumes: int = 2  # restarts a job survives before it is marked FAILED
    lease_s: float = 30.0  # a running job's lease in the store; renewed every third of it, taken over once expired
    results_page_max: int = 1000  # Rekognition's MaxResults ceiling

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VideoSettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"FACELEDGER_VIDEO_{f.name.upper()}")
            if raw is None:
                continue
            kind = str(f.type)
            try:
                if "bool" in kind:
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif "int" in kind:
                    values[f.name] = int(raw)
                elif "float" in kind:
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw.strip()
            except ValueError as exc:
                raise InvalidParameterError(
                    f"FACELEDGER_VIDEO_{f.name.upper()}={raw!r} is not a valid {kind}.") from exc
        out = cls(**values)  # type: ignore[arg-type]
        if not 0 < out.sample_fps <= 60:
            raise InvalidParameterError("FACELEDGER_VIDEO_SAMPLE_FPS must be above 0 and at most 60.")
        if out.cnn_fallback not in ("off", "large", "full"):
            raise InvalidParameterError("FACELEDGER_VIDEO_CNN_FALLBACK must be off, large or full.")
        return out

    @property
    def sample_interval_ms(self) -> float:
        return 1000.0 / self.sample_fps
