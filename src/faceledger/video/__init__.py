"""Faces in stored video: decode, sample, analyse frame by frame, track people.

This package is transport- and store-free: it turns a video file into sampled
frames (``source``), frames into faces through an injected engine call
(``analysis``), and faces into people with stable indexes (``track``). The
Rekognition jobs, ledger records and searches live in ``service.video`` (operations) and ``service.video_jobs`` (the runner); the
local CLI (``faceledger video detect``) calls ``analysis`` with an Engine.

It must not open collections, write the ledger or hold global state.
"""

from __future__ import annotations

from .analysis import Appearance, VideoAnalysis, analyse_video
from .settings import VideoSettings
from .source import UnreadableVideo, VideoInfo, probe

__all__ = ["Appearance", "UnreadableVideo", "VideoAnalysis", "VideoInfo", "VideoSettings",
           "analyse_video", "probe"]
