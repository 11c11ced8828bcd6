"""Faces as Rekognition describes them (FaceDetail), from what geometry gives.

No age, gender, emotion, smile, beard, glasses or face-occlusion inference is
offered: those are either sensitive attributes faceledger refuses to infer or
appearance guesses no model here measures. ``Attributes=["ALL"]`` therefore
adds only what landmark geometry gives: every landmark type the landmarker
honestly places and, where FaceMesh placed the face (the default) or with the
68-point opt-in, eyes and mouth open (and, from FaceMesh's iris points,
EyeDirection). Without ``ALL``, landmarks are Rekognition's DEFAULT five where
a model gives them (eyeLeft, eyeRight, mouthLeft, mouthRight, nose); where
FaceMesh is refused for a face, dlib's 5 points give no mouth and none is
invented.
``NOT_OFFERED`` lists the rest with the reason, for the docs and for callers
who ask.
"""

from __future__ import annotations

from .types import Face

NOT_OFFERED = {
    "AgeRange": "sensitive attribute: not inferred",
    "Gender": "sensitive attribute: not inferred",
    "Emotions": "emotion inference is not offered (EU AI Act Art. 5; unreliable)",
    "Smile": "expression inference is not offered",
    "Beard": "appearance attribute: not measured by any model here",
    "Mustache": "appearance attribute: not measured by any model here",
    "Eyeglasses": "appearance attribute: not measured by any model here",
    "Sunglasses": "appearance attribute: not measured by any model here",
    "FaceOccluded": "not measured by any model here",
}
DEFAULT_LANDMARKS = ("eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose")


def face_detail(face: Face, *, all_attributes: bool = False) -> dict:
    """A Rekognition FaceDetail dict. DEFAULT gives box, confidence, landmarks, pose, quality."""
    w, h = face.image_size
    detail: dict = {
        "BoundingBox": face.ratio_box(),
        "Landmarks": [
            {"Type": name, "X": x / w, "Y": y / h} for name, (x, y) in face.landmarks.items()
            if all_attributes or name in DEFAULT_LANDMARKS
        ],
        "Pose": {"Roll": face.pose.roll, "Yaw": face.pose.yaw, "Pitch": face.pose.pitch},
        "Quality": {"Brightness": face.quality.brightness, "Sharpness": face.quality.sharpness},
        "Confidence": round(face.confidence, 4),
    }
    if all_attributes:
        if face.eyes_open is not None:
            detail["EyesOpen"] = {"Value": face.eyes_open[0], "Confidence": face.eyes_open[1]}
        if face.mouth_open is not None:
            detail["MouthOpen"] = {"Value": face.mouth_open[0], "Confidence": face.mouth_open[1]}
        if face.eye_direction is not None:
            yaw, pitch, conf = face.eye_direction
            detail["EyeDirection"] = {"Yaw": yaw, "Pitch": pitch, "Confidence": conf}
    return detail


def pixel_box(face: Face) -> dict:
    left, top, right, bottom = face.box
    return {"Left": round(left, 1), "Top": round(top, 1), "Width": round(right - left, 1), "Height": round(bottom - top, 1)}
