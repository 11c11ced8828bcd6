"""``faceledger detect`` and ``faceledger compare``: the engine on local files, no service."""

from __future__ import annotations

import click

from ..engine import Engine, EngineSettings
from ..engine.calibration import compare_threshold, fmr_from_similarity
from ..engine.report import face_detail, pixel_box
from ..errors import InvalidParameterError
from ..imaging import read_image_file
from .output import emit, handle_errors

engine_options = [
    click.option("--detector", type=click.Choice(["hog", "cnn", "blazeface"]), default="hog", show_default=True,
                 help="hog is fast; cnn (MMOD) finds more off-angle faces, slowly; blazeface is MediaPipe's."),
    click.option("--landmarker", type=click.Choice(["dlib5", "facemesh"]), default="dlib5", show_default=True,
                 help="facemesh: MediaPipe's 478 points (all landmark types, eyes, mouth, gaze)."),
    click.option("--landmarks68", is_flag=True,
                 help="Use the 68-point predictor (iBUG 300-W: non-commercial use only)."),
    click.option("--min-face", type=float, default=40.0, show_default=True,
                 help="Smallest face to find, in pixels."),
]


def with_engine_options(fn):  # type: ignore[no-untyped-def]
    for opt in reversed(engine_options):
        fn = opt(fn)
    return fn


def make_engine(detector: str, landmarks68: bool, min_face: float, landmarker: str = "dlib5") -> Engine:
    return Engine(EngineSettings(detector=detector, landmarks68=landmarks68, min_face_px=min_face,
                                 landmarker=landmarker))


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@with_engine_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def detect(images: tuple[str, ...], detector: str, landmarker: str, landmarks68: bool, min_face: float,
           as_json: bool) -> None:
    """Find faces: box, landmarks, pose, quality and why a face would not be indexed."""
    engine = make_engine(detector, landmarks68, min_face, landmarker)
    results = []
    for path in images:
        decoded = read_image_file(path)
        faces = engine.analyze(decoded, descriptors=False)
        results.append({
            "image": path,
            "width": decoded.width,
            "height": decoded.height,
            "faces": [
                {**face_detail(f, all_attributes=True), "PixelBox": pixel_box(f),
                 "UnindexedReasons": f.unindexable_reasons, "Detector": f.detector}
                for f in faces
            ],
        })

    def text(o: dict) -> str:
        lines = []
        for r in o["images"]:
            lines.append(f"{r['image']}: {len(r['faces'])} face(s)")
            for i, f in enumerate(r["faces"]):
                b, p, q = f["PixelBox"], f["Pose"], f["Quality"]
                why = ",".join(f["UnindexedReasons"]) or "indexable"
                lines.append(
                    f"  #{i} box=({b['Left']:.0f},{b['Top']:.0f},{b['Width']:.0f}x{b['Height']:.0f}) "
                    f"conf={f['Confidence']:.1f} yaw={p['Yaw']:.0f} pitch={p['Pitch']:.0f} roll={p['Roll']:.0f} "
                    f"bright={q['Brightness']:.0f} sharp={q['Sharpness']:.0f} [{why}]"
                )
        return "\n".join(lines)

    emit({"model_version": engine.model_version, "images": results}, as_json, text)


@click.command()
@click.argument("image_a", type=click.Path(dir_okay=False, exists=True))
@click.argument("image_b", type=click.Path(dir_okay=False, exists=True))
@click.option("--threshold", type=click.FloatRange(0, 100), default=None,
              help="Similarity needed to call a match (default: the Similarity of FMR 1e-4).")
@with_engine_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def compare(image_a: str, image_b: str, threshold: float | None, detector: str, landmarker: str, landmarks68: bool,
            min_face: float, as_json: bool) -> None:
    """Compare the largest face of IMAGE_A with the largest face of IMAGE_B."""
    engine = make_engine(detector, landmarks68, min_face, landmarker)
    faces = []
    for path in (image_a, image_b):
        found = engine.analyze(read_image_file(path), max_faces=1)
        if not found:
            raise InvalidParameterError(f"No face was found in {path}.")
        faces.append(found[0])
    default = compare_threshold(1e-4)
    applied = default if threshold is None else threshold
    c = engine.compare(faces[0].descriptor, faces[1].descriptor)  # type: ignore[arg-type]
    out = {
        "similarity": round(c.similarity, 3),
        "estimated_fmr": c.fmr,
        "distance": round(c.distance, 5),
        "threshold": round(applied, 3),
        "threshold_fmr": fmr_from_similarity(applied),
        "match": bool(c.similarity >= applied),
        "model_version": engine.model_version,
        "calibration": engine.calibration.version,
    }

    def text(o: dict) -> str:
        verdict = "MATCH" if o["match"] else "no match"
        return (f"{verdict}: similarity {o['similarity']:.1f} (estimated FMR {o['estimated_fmr']:.2e}); "
                f"threshold {o['threshold']:.1f} (FMR {o['threshold_fmr']:.1e})")

    emit(out, as_json, text)
