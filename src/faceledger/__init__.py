"""faceledger: accountable, self-hosted face recognition that speaks Rekognition's face API.

The public Python surface is small on purpose: the engine (detect, describe,
compare), its settings, and the error hierarchy. The service, store and
transports are reached through ``faceledger serve`` and the Rekognition API.
"""

from .engine import Comparison, Engine, EngineSettings, Face
from .errors import FaceledgerError
from .imaging import decode_image

__all__ = ["Comparison", "Engine", "EngineSettings", "Face", "FaceledgerError", "decode_image"]
__version__ = "0.1.0"
