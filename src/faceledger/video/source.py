"""Video files -> metadata and sampled RGB frames, with PyAV (FFmpeg bundled in the wheel).

``probe`` reads the container header only (cheap: no decoding). ``sample_frames``
decodes every frame (H.264 needs its references) but converts to RGB only the
frames it hands out, one at a time, so memory stays at one frame whatever the
length of the video. Damage shows up as ``UnreadableVideo`` with a message a
person can act on: never as a hang, never as a silently shorter result.

This module must not run face models, know about jobs or touch the store.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Containers FFmpeg reads as one still picture: those are images, not video.
STILL_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "gif", "tiff_pipe")
US = 1_000_000  # FFmpeg's AV_TIME_BASE


class UnreadableVideo(Exception):
    """The file is not a video we can read, or it is damaged. ``str()`` says which and why."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the (first) video stream."""

    codec: str
    format: str
    duration_ms: int
    frame_rate: float
    width: int
    height: int
    frames: int | None = None
    color_range: str | None = None

    def metadata(self) -> dict:
        """Rekognition's ``VideoMetadata``."""
        out: dict = {
            "Codec": self.codec, "DurationMillis": self.duration_ms, "Format": self.format,
            "FrameRate": round(self.frame_rate, 3), "FrameHeight": self.height, "FrameWidth": self.width,
        }
        if self.color_range:
            out["ColorRange"] = self.color_range
        return out


def _open(path: Path):  # type: ignore[no-untyped-def]
    import av

    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableVideo(f"{path.name} is not a video file FFmpeg can read ({_reason(exc)}).") from exc
    if container.format.name in STILL_IMAGE_FORMATS:
        container.close()
        raise UnreadableVideo(f"{path.name} is a still image, not a video: use DetectFaces or IndexFaces.")
    if not container.streams.video:
        container.close()
        raise UnreadableVideo(f"{path.name} has no video stream (audio or data only).")
    return container


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc).rstrip(".")


def _info(container, path: Path) -> VideoInfo:  # type: ignore[no-untyped-def]
    stream = container.streams.video[0]
    cc = stream.codec_context
    if not cc.width or not cc.height:
        raise UnreadableVideo(f"{path.name}: the video stream has no frame size (damaged header).")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    duration_ms = 0
    if container.duration:
        duration_ms = int(container.duration * 1000 // US)
    elif stream.duration and stream.time_base:
        duration_ms = int(stream.duration * stream.time_base * 1000)
    rng = {1: "LIMITED", 2: "FULL"}.get(int(getattr(cc, "color_range", 0) or 0))
    width, height = int(cc.width), int(cc.height)
    return VideoInfo(
        codec=cc.name, format=container.format.long_name or container.format.name,
        duration_ms=duration_ms, frame_rate=float(rate) if rate else 0.0,
        width=width, height=height, frames=int(stream.frames) or None, color_range=rng,
    )


def _video_end_ms(stream, origin: float) -> float | None:  # type: ignore[no-untyped-def]
    """Where the video stream itself says it ends (audio may run longer than the picture)."""
    if not stream.duration or not stream.time_base:
        return None
    start = float((stream.start_time or 0) * stream.time_base)
    return (start + float(stream.duration * stream.time_base) - origin) * 1000.0


def probe(path: str | Path) -> VideoInfo:
    """Container metadata; ``UnreadableVideo`` when it is not a readable video."""
    path = Path(path)
    container = _open(path)
    try:
        return _info(container, path)
    finally:
        container.close()


def _scaled_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    if width * height <= max_pixels:
        return width, height
    f = math.sqrt(max_pixels / (width * height))
    return max(2, int(width * f) // 2 * 2), max(2, int(height * f) // 2 * 2)


def sample_frames(path: str | Path, interval_ms: float, *, max_pixels: int = 1920 * 1088,
                  ) -> Iterator[tuple[int, np.ndarray]]:
    """``(timestamp_ms, RGB frame)`` for the first frame at or after every ``interval_ms``.

    Timestamps are milliseconds from the start of playback (the container's
    start time), as Rekognition reports them. Display rotation (phone videos)
    is applied. Raises ``UnreadableVideo`` on a decode error or when decoding
    ends well before the declared duration (a truncated file).
    """
    import av

    path = Path(path)
    container = _open(path)
    try:
        info = _info(container, path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding is cheap next to the engine
        origin = (container.start_time or 0) / US
        size = _scaled_size(info.width, info.height, max_pixels)
        frame_ms = 1000.0 / info.frame_rate if info.frame_rate else 40.0
        due, last_ms, index = 0.0, -1.0, 0
        try:
            for frame in container.decode(stream):
                t = frame.time
                ms = (t - origin) * 1000.0 if t is not None else index * frame_ms
                index += 1
                last_ms = max(last_ms, ms)
                if ms + frame_ms / 2 < due:  # half a frame early still counts as on time
                    continue
                due = (math.floor(max(ms + frame_ms / 2, 0.0) / interval_ms) + 1) * interval_ms
                if (frame.width, frame.height) != size:
                    frame = frame.reformat(width=size[0], height=size[1])
                pixels = frame.to_ndarray(format="rgb24")
                turn = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
                if turn:
                    pixels = np.ascontiguousarray(np.rot90(pixels, k=turn))
                yield max(0, int(round(ms))), pixels
        except av.FFmpegError as exc:
            at = f" at {last_ms / 1000:.1f} s" if last_ms >= 0 else ""
            raise UnreadableVideo(f"{path.name} could not be decoded{at}: {_reason(exc)}.") from exc
        if index == 0:
            raise UnreadableVideo(f"{path.name} holds no decodable video frame (damaged or truncated).")
        end, declared = last_ms + frame_ms, _video_end_ms(stream, origin) or info.duration_ms
        if declared and end < declared - max(1000.0, 0.05 * declared):
            raise UnreadableVideo(
                f"{path.name} ends at {end / 1000:.1f} s of its declared {declared / 1000:.1f} s: "
                "the file is truncated or damaged.")
    finally:
        container.close()
