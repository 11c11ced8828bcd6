"""The engine: image -> faces (box, landmarks, pose, quality, descriptor) and scores.

``Engine`` owns the model objects (opened once) and is the only thing the
service layer calls. It knows nothing about collections, keys or transports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import dlib
import numpy as np

from ..errors import InvalidParameterError
from ..imaging import DecodedImage, decode_image
from .arcface_align import DLIB5_ARCFACE_TEMPLATE, arcface_chip
from .budget import CpuBudget
from .calibration import CalibrationTable, load_table
from .descriptor_spec import DescriptorSpec
from .detect import (
    FALLBACK_PIXEL_BUDGET,
    HOG_PIXEL_BUDGET,
    HogDetector,
    MmodDetector,
    clip_box,
    detection_scale,
    is_flat,
)
from .embed import DlibEmbedder, describe, face_chip
from .landmarks import ShapeLandmarker, eye_mouth_state, points_to_shape, rekognition_landmarks
from .mesh_geometry import MeshReading, read_mesh
from .packs import BUILTIN, Pack, pack_tables, resolve
from .quality import estimate_pose, measure_quality, unindexable_reasons
from .registry import MESH_MODEL_VERSION, MODEL_VERSION
from .types import DESCRIPTOR_DIM, Detection, Detector, Embedder, Face, Quality

if TYPE_CHECKING:
    from .facemesh import FaceMeshLandmarker

DETECTORS = ("hog", "cnn", "blazeface")
LANDMARKERS = ("dlib5", "facemesh")
RUNTIMES = ("fast", "dlib")
SMALL_IMAGE_PX = 320
SMALL_IMAGE_MAX_SCALE = 4.0
SMALL_IMAGE_SCAN_PX = 1000.0
# Chips per network call: the CPU budget is checked between calls, and the
# network's working memory (~1.5 MB per chip, so ~0.8 GB for 512) stays ~100 MB
# however many faces an image yields (64 chips per call with mirror averaging).
DESCRIBE_BATCH = 32
# The most faces of one image that are measured and described: the largest
# ones. Rekognition's own limit (DetectFaces and IndexFaces report at most the
# 100 largest faces, CompareFaces compares at most 100). Without it a 1920x1080
# image tiled with 1,044 small faces cost 66 s and every face a descriptor.
MAX_FACES = 100
# FaceMesh's reading is reported (with dlib5 alignment) only where its face
# presence is at least this and its eye centres are within this many of dlib's
# eye distances of dlib's eye centres.
MESH_MIN_PRESENCE = 0.5
# BlazeFace finds faces at any roll; dlib's 5-point predictor (which aligns the
# chip) is trained on faces near upright, so the fallback keeps faces whose eye
# line is within this many degrees of level (a sideways photo without its EXIF
# orientation stays faceless, as with HOG and the CNN).
FALLBACK_MAX_ROLL = 40.0
MESH_MAX_EYE_OFFSET = 0.25


@dataclass(frozen=True)
class EngineSettings:
    """How the engine finds and describes faces. Defaults are the documented defaults."""

    detector: str = "hog"  # hog | cnn | blazeface (MediaPipe, engine/blazeface.py)
    fallback_detector: bool = True  # try the CNN detector when HOG finds nothing
    min_face_px: float = 40.0
    max_detect_scale: float = 2.0
    landmarks68: bool = False  # opt-in: iBUG 300-W licence excludes commercial use
    mirror: bool = True  # average the descriptors of the chip and its mirror image
    runtime: str = "fast"  # fast (ONNX Runtime) | dlib (the reference); same weights, same descriptors
    cpu_budget_s: float = 20.0  # per image; AnalysisBudgetError beyond it; 0 = none
    landmarker: str = "dlib5"  # dlib5 | facemesh (MediaPipe 478 points; aligns the chip too)
    # With dlib5: FaceMesh (+ iris) places the REPORTED landmarks, EyesOpen, MouthOpen and
    # EyeDirection; the chip stays aligned on dlib's 5 points (same descriptors, same model version).
    mesh_report: bool = True
    # When HOG finds nothing: BlazeFace (~20 ms, faces down to ~10 px) before the CNN (~0.5 s).
    blazeface_fallback: bool = True
    # The descriptor pack (engine/packs.py): "" or dlib-resnet128 is the built-in dlib ResNet; any other
    # name is a pack installed in model_store (DATA_DIR/models), with its own model version.
    model: str = ""
    model_store: str = ""

    def __post_init__(self) -> None:
        # checked where the settings are made, so a bad FACELEDGER_DETECTOR is a clear
        # error at start-up rather than a broken worker pool
        for name, value, choices in (("detector", self.detector, DETECTORS),
                                     ("landmarker", self.landmarker, LANDMARKERS),
                                     ("runtime", self.runtime, RUNTIMES)):
            if value not in choices:
                raise InvalidParameterError(f"Unknown {name} {value!r}; use one of {', '.join(choices)}.")

    @property
    def pack(self) -> Pack:
        return resolve(self.model, self.model_store or None)

    @property
    def model_version(self) -> str:
        if self.model and self.model != BUILTIN:
            return self.pack.model_version  # the pack fixes its pipeline, mirror averaging included
        version = MODEL_VERSION if self.landmarker == "dlib5" else MESH_MODEL_VERSION
        return version if self.mirror else version.replace("-mirror", "")


@dataclass(frozen=True)
class Comparison:
    distance: float
    similarity: float
    fmr: float


def _as_pixels(image: np.ndarray | bytes | DecodedImage) -> np.ndarray:
    if isinstance(image, DecodedImage):
        return image.pixels
    if isinstance(image, bytes | bytearray | memoryview):
        return decode_image(bytes(image)).pixels
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidParameterError("An image array must be (H, W, 3) uint8 RGB.")
    return np.ascontiguousarray(arr)


class Engine:
    """Detect, describe and compare faces with one set of loaded models.

    >>> engine = Engine()                                   # doctest: +SKIP
    >>> faces = engine.analyze(open("a.jpg", "rb").read())  # doctest: +SKIP
    >>> engine.compare(faces[0].descriptor, other.descriptor).similarity  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: EngineSettings | None = None,
        *,
        detector: Detector | None = None,
        embedder: Embedder | None = None,
        calibration: CalibrationTable | None = None,
    ) -> None:
        self.settings = settings or EngineSettings()
        s = self.settings
        self.detector: Detector = detector or _make_detector(s.detector)
        self._fallback: Detector | None = None
        self.landmarker5 = ShapeLandmarker(5)
        self.mesh = _make_mesh(s.landmarker)
        # FaceMesh for reporting only (dlib5 alignment); loaded at the first face
        self._report_mesh: FaceMeshLandmarker | None = None
        self._blazeface: Detector | None = None
        self._mediapipe_ok: bool | None = None
        self.landmarker68 = ShapeLandmarker(68) if s.landmarks68 else None
        self.pack = s.pack
        net = None if self.pack.manifest is None else self.pack.manifest.descriptor
        # what the descriptor network is fed and how its outputs are finished
        self.template = "dlib-chip-150" if net is None else net.alignment
        self.mirror = s.mirror if net is None else net.mirror
        self.dim = DESCRIPTOR_DIM if net is None else net.dim
        self.cosine = net is not None and net.metric == "cosine"
        self.embedder: Embedder = embedder or (_make_embedder(s.runtime) if net is None else
                                               _pack_embedder(self.pack))
        self._calibration = calibration

    @property
    def calibration(self) -> CalibrationTable:
        """The pack's calibration table; ModelNotCalibratedError for a pack that has none yet."""
        if self._calibration is None:
            if self.pack.builtin:
                self._calibration = load_table(self.settings.model_version)
            else:
                self._calibration = pack_tables(self.pack, cohort=False)[0]
        return self._calibration

    @property
    def descriptor_spec(self) -> DescriptorSpec:
        """Dimension and metric of the descriptors this engine gives (float32; L2-normalised for cosine)."""
        return self.pack.spec(self.model_version)

    @property
    def model_version(self) -> str:
        return self.settings.model_version

    # -- detection -------------------------------------------------------
    def find(
        self, pixels: np.ndarray, *, min_face_px: float | None = None, budget: CpuBudget | None = None,
    ) -> list[Detection]:
        h, w = pixels.shape[:2]
        if is_flat(pixels):
            return []  # no contrast, no face (detect.FLAT_TOLERANCE)
        scale = detection_scale(
            w, h, min_face_px=min_face_px or self.settings.min_face_px,
            max_scale=self.settings.max_detect_scale,
            pixel_budget=getattr(self.detector, "pixel_budget", HOG_PIXEL_BUDGET),
        )
        hits = self.detector.detect(pixels, scale)
        if budget is not None:
            budget.check("after detection")
        if not hits and self.settings.fallback_detector:
            # Thumbnails (longer side <= 320 px) may hold faces under 40 px: look
            # closer, up to 4x, before the slower CNN detector.
            if max(w, h) <= SMALL_IMAGE_PX:
                closer = min(SMALL_IMAGE_MAX_SCALE, SMALL_IMAGE_SCAN_PX / max(w, h))
                hits = self.detector.detect(pixels, closer)
            if not hits and self.detector.name == "hog" and self.settings.blazeface_fallback \
                    and self._mediapipe_installed():
                # BlazeFace (tens of ms) finds the small faces HOG's 80-px window
                # cannot see (9-11 px in a 128-px photo) and many turned ones;
                # its boxes are moved where dlib's would be for the 5-point
                # predictor (dlib_style_box in _faces), so the chip is aligned
                # as for a HOG box.
                if self._blazeface is None:
                    from .blazeface import BlazeFaceDetector

                    self._blazeface = BlazeFaceDetector()
                if budget is not None:
                    budget.check("before the BlazeFace fallback")
                hits = [d for d in self._blazeface.detect(pixels, scale) if _near_level(d)]
            if not hits and self.detector.name == "hog":
                # The CNN finds the turned and tilted faces HOG misses; at no more
                # than the image's own scale it costs ~0.5 s on a 250-px image
                # instead of ~2 s, and still finds faces down to about 50 px.
                # It scans at most FALLBACK_PIXEL_BUDGET pixels: a large image
                # is searched for its larger faces only, never at full size.
                if self._fallback is None:
                    self._fallback = MmodDetector(pixel_budget=FALLBACK_PIXEL_BUDGET)
                if budget is not None:
                    budget.check("before the CNN fallback")
                hits = self._fallback.detect(pixels, min(scale, 1.0))
        hits = [replace(d, box=clip_box(d.box, w, h)) for d in hits]
        return [d for d in hits if d.box[2] - d.box[0] >= 2 and d.box[3] - d.box[1] >= 2]

    def analyze(
        self, image: np.ndarray | bytes | DecodedImage, *, descriptors: bool = True,
        max_faces: int | None = None, landmarks: bool = True,
    ) -> list[Face]:
        """Every face in the image, largest first; descriptors unless told not to.

        ``landmarks=False``: the caller reports no landmarks (a search's probe), so
        FaceMesh's reading is skipped; detection, alignment, pose and quality are
        the same either way.
        """
        return self.analyze_many([image], descriptors=descriptors, max_faces=max_faces, landmarks=landmarks)[0]

    def analyze_many(
        self, images: list[np.ndarray | bytes | DecodedImage], *, descriptors: bool = True,
        max_faces: int | None = None, landmarks: bool = True,
    ) -> list[list[Face]]:
        """``analyze`` for several images, with every face's chips sent through the network in one batch."""
        per_image: list[list[Face]] = []
        chips: list[np.ndarray] = []
        # One CPU budget for the call, cpu_budget_s per image.
        budget = CpuBudget(self.settings.cpu_budget_s * len(images))
        for image in images:
            pixels = _as_pixels(image)
            faces, shapes = self._faces(pixels, max_faces, budget, landmarks)
            per_image.append(faces)
            if descriptors:
                chips.extend(self._template_chip(pixels, f, s) for f, s in zip(faces, shapes, strict=True))
        if descriptors and chips:
            parts = []
            for at in range(0, len(chips), DESCRIBE_BATCH):
                budget.check("describing faces")
                batch = np.stack(chips[at:at + DESCRIBE_BATCH])
                parts.append(describe(self.embedder, batch, mirror=self.mirror, dim=self.dim,
                                      normalise=self.cosine))
            vectors = iter(np.concatenate(parts))
            for faces in per_image:
                for face in faces:
                    face.descriptor = next(vectors)
        return per_image

    def _faces(
        self, pixels: np.ndarray, max_faces: int | None, budget: CpuBudget, landmarks: bool = True,
    ) -> tuple[list[Face], list]:
        h, w = pixels.shape[:2]
        dets = sorted(self.find(pixels, budget=budget),
                      key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        dets = dets[:MAX_FACES if max_faces is None else min(max_faces, MAX_FACES)]
        faces, shapes = [], []
        for det in dets:
            budget.check("measuring faces")
            quality = measure_quality(pixels, det.box)
            if self.mesh is not None:
                face = _mesh_face(read_mesh(self.mesh.points3d(pixels, det.box, det.keypoints)),
                                  det, quality, (w, h))
            else:
                shape_box = det.box
                if det.detector == "blazeface":  # its boxes sit lower than the dlib boxes the predictor knows
                    from .blazeface import dlib_style_box

                    shape_box = dlib_style_box(det.box, det.keypoints)
                pts5 = self.landmarker5.points(pixels, shape_box)
                pts = self.landmarker68.points(pixels, shape_box) if self.landmarker68 else pts5
                states = eye_mouth_state(pts)
                face = Face(
                    box=det.box,
                    confidence=det.confidence,
                    landmarks=rekognition_landmarks(pts),
                    points=pts,
                    pose=estimate_pose(pts5),
                    quality=quality,
                    image_size=(w, h),
                    eyes_open=states[0] if states else None,
                    mouth_open=states[1] if states else None,
                    detector=det.detector,
                    align_points=pts5,
                )
                if landmarks and self.settings.mesh_report and self._mediapipe_installed():
                    budget.check("before FaceMesh landmarks")
                    reading = self._mesh_reading(pixels, det, pts5)
                    if reading is not None:  # else dlib's points stand: nothing is invented
                        face.landmarks = reading.landmarks
                        face.eyes_open, face.mouth_open = reading.eyes_open, reading.mouth_open
                        face.eye_direction = reading.eye_direction
            pose = face.pose
            face.unindexable_reasons = unindexable_reasons(
                pose=pose, quality=quality, confidence=det.confidence,
                box_size=min(face.width, face.height), min_face_px=self.settings.min_face_px,
            )
            faces.append(face)
            shapes.append(self._shape(pixels, face))
        return faces, shapes

    def _mediapipe_installed(self) -> bool:
        """Whether the MediaPipe files are installed and intact (checked once).

        The default front end's extras (FaceMesh-reported landmarks, the
        BlazeFace fallback) are left out without them, as before they existed;
        asking for FACELEDGER_DETECTOR=blazeface or FACELEDGER_LANDMARKER=facemesh
        explicitly still fails with ModelFileError.
        """
        if self._mediapipe_ok is None:
            from .mediapipe_models import available

            self._mediapipe_ok = available()
        return self._mediapipe_ok

    def _mesh_reading(self, pixels: np.ndarray, det: Detection, pts5: np.ndarray) -> MeshReading | None:
        """FaceMesh's reading of the face, or None where it is not a face FaceMesh placed well.

        Refused when the mesh's face presence is under MESH_MIN_PRESENCE, or
        when its eye centres are further than MESH_MAX_EYE_OFFSET eye distances
        from dlib's (the two models then disagree on where the face is).
        """
        if self._report_mesh is None:
            from .facemesh import FaceMeshLandmarker  # LiteRT loads at the first face

            self._report_mesh = FaceMeshLandmarker()
        p3 = self._report_mesh.points3d(pixels, det.box, det.keypoints)
        if self._report_mesh.last_presence < MESH_MIN_PRESENCE or not np.isfinite(p3).all():
            return None
        reading = read_mesh(p3)
        dl = rekognition_landmarks(pts5)
        ours = np.array([dl["eyeLeft"], dl["eyeRight"]], np.float64)
        theirs = np.array([reading.landmarks["eyeLeft"], reading.landmarks["eyeRight"]], np.float64)
        eye_distance = float(np.linalg.norm(ours[1] - ours[0])) + 1e-9
        if float(np.linalg.norm(theirs - ours, axis=1).max()) > MESH_MAX_EYE_OFFSET * eye_distance:
            return None
        return reading

    def _shape(self, pixels: np.ndarray, face: Face) -> dlib.full_object_detection:
        pts = face.align_points if face.align_points is not None else self.landmarker5.points(pixels, face.box)
        return points_to_shape(pts, face.box)

    def chip(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        """The aligned chip the descriptor of ``face`` is computed from: (150, 150, 3), or (112, 112, 3)
        for a pack aligned by the ArcFace template."""
        return self._template_chip(pixels, face, self._shape(pixels, face))

    def _template_chip(self, pixels: np.ndarray, face: Face, shape: dlib.full_object_detection) -> np.ndarray:
        if self.template == "arcface-112":
            pts = face.align_points if face.align_points is not None else self.landmarker5.points(pixels, face.box)
            return arcface_chip(pixels, pts, template=DLIB5_ARCFACE_TEMPLATE)
        return face_chip(pixels, shape)

    def pair_descriptors(self, chip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(one pass, mirror-averaged) descriptors of one chip, finished as the pack says."""
        out = self.embedder.embed(np.stack([chip, chip[:, ::-1]]))
        both = (out[0] + out[1]) / 2
        if self.cosine:
            both = both / max(float(np.linalg.norm(both)), 1e-12)
        return out[0], both.astype(np.float32)

    # -- scoring ---------------------------------------------------------
    def compare(self, a: np.ndarray, b: np.ndarray) -> Comparison:
        d = float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
        return self.score(d)

    def score(self, distance: float) -> Comparison:
        return Comparison(
            distance=distance,
            similarity=float(self.calibration.similarity(distance)),
            fmr=float(self.calibration.fmr(distance)),
        )


def central_face(faces: list[Face]) -> Face | None:
    """The face nearest the image centre (how LFW-style pair lists are meant)."""
    if not faces:
        return None
    w, h = faces[0].image_size

    def off(f: Face) -> float:
        cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        return (cx - w / 2) ** 2 + (cy - h / 2) ** 2

    return min(faces, key=off)


def _near_level(det: Detection) -> bool:
    if det.keypoints is None:
        return True
    d = det.keypoints[1] - det.keypoints[0]
    roll = math.degrees(math.atan2(float(d[1]), float(d[0])))
    return abs(roll) <= FALLBACK_MAX_ROLL


def _make_detector(name: str) -> Detector:
    if name == "hog":
        return HogDetector()
    if name == "cnn":
        return MmodDetector()
    if name == "blazeface":
        from .blazeface import BlazeFaceDetector

        return BlazeFaceDetector()
    raise InvalidParameterError(f"Unknown detector {name!r}; use 'hog', 'cnn' or 'blazeface'.")


def _make_mesh(name: str) -> FaceMeshLandmarker | None:
    if name == "dlib5":
        return None
    if name == "facemesh":
        from .facemesh import FaceMeshLandmarker  # LiteRT loads only when asked for

        return FaceMeshLandmarker()
    raise InvalidParameterError(f"Unknown landmarker {name!r}; use 'dlib5' or 'facemesh'.")


def _mesh_face(m: MeshReading, det: Detection, quality: Quality, size: tuple[int, int]) -> Face:
    return Face(
        box=det.box, confidence=det.confidence, landmarks=m.landmarks, points=m.points, pose=m.pose,
        quality=quality, image_size=size, eyes_open=m.eyes_open, mouth_open=m.mouth_open,
        eye_direction=m.eye_direction, detector=det.detector, align_points=m.align_points,
    )


def _pack_embedder(pack: Pack) -> Embedder:
    from .onnx_embedder import OnnxDescriptor

    assert pack.manifest is not None
    return OnnxDescriptor(pack.manifest.descriptor, pack.descriptor_path)


def _make_embedder(runtime: str) -> Embedder:
    if runtime == "dlib":
        return DlibEmbedder()
    if runtime == "fast":
        from .fast_embedder import FastEmbedder  # optional runtime
        from .registry import model_path

        return FastEmbedder(model_path("resnet128"))  # type: ignore[no-any-return]
    raise InvalidParameterError(f"Unknown runtime {runtime!r}; use 'dlib' or 'fast'.")
