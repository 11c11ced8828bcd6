"""Small videos made with PyAV for tests: flat colour, remuxed with the index first, truncated."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def flat_video(path: Path, seconds: float = 1.0, fps: int = 10, size: tuple[int, int] = (160, 120),
               colour: tuple[int, int, int] = (40, 120, 200), noise: bool = False) -> Path:
    """An H.264 MP4 of one flat colour (or random noise: large frames): a video with no faces."""
    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        frame_px = np.zeros((size[1], size[0], 3), np.uint8)
        frame_px[:] = colour
        rng = np.random.default_rng(0)
        for _ in range(int(seconds * fps)):
            if noise:
                frame_px = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame_px, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def faststart_copy(src: Path, dst: Path) -> Path:
    """The same video stream, remuxed with the index (moov) at the front, so a cut-off copy still opens."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), mode="w", options={"movflags": "faststart"}) as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)
    return dst


def truncated(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst
