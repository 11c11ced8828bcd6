"""The face engine: decode -> detect -> landmarks -> align -> embed -> quality/pose."""

from .engine import Comparison, Engine, EngineSettings, central_face
from .registry import MODEL_VERSION
from .types import Face, Pose, Quality

__all__ = ["Comparison", "Engine", "EngineSettings", "Face", "MODEL_VERSION", "Pose", "Quality", "central_face"]
