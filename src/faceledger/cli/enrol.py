"""``faceledger index`` (bulk enrolment, resumable) and ``faceledger search``, through the API."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click

from ..errors import FaceledgerError
from ..evaluation.embedding import image_paths
from ..settings import Settings
from ..store.perms import append_private
from .client import call, client_options, rekognition
from .output import emit, handle_errors

NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_.\-:]")


def external_id(path: str) -> str:
    return NOT_ALLOWED.sub("_", Path(path).stem)[:255] or "image"


class Journal:
    """Which image files (by SHA-256) were already sent to a collection: makes re-runs resume."""

    def __init__(self, endpoint: str, collection_id: str) -> None:
        tag = hashlib.sha256(f"{endpoint}|{collection_id}".encode()).hexdigest()[:16]
        self.path = Settings.from_env().data_dir / "journal" / f"{collection_id}-{tag}.jsonl"
        self.done: set[str] = set()
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    self.done.add(json.loads(line)["sha256"])
                except (ValueError, KeyError):
                    continue  # a torn last line from an interrupted run
        self._lock = threading.Lock()

    def add(self, entry: dict) -> None:
        with self._lock:  # in the data directory, so private like the rest of it (file names are personal)
            append_private(self.path, json.dumps(entry) + "\n")


@click.command(name="index")
@click.argument("collection_id")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--external-id-from-name", is_flag=True, help="ExternalImageId = the file name without extension.")
@click.option("--max-faces", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Faces to index per image (largest first).")
@click.option("--quality-filter", type=click.Choice(["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"]), default="AUTO",
              show_default=True)
@click.option("--parallel", type=int, default=4, show_default=True, help="Requests in flight.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@client_options
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def index_cmd(collection_id: str, paths: tuple[str, ...], external_id_from_name: bool, max_faces: int,
              quality_filter: str, parallel: int, quiet: bool, endpoint: str | None, profile_file: str | None,
              as_json: bool) -> None:
    """Enrol images and folders of images into COLLECTION_ID; re-runs skip what is done."""
    from tqdm import tqdm

    files: list[str] = []
    for p in paths:
        files += image_paths(p) if os.path.isdir(p) else [p]
    rek = rekognition(endpoint, profile_file)
    journal = Journal(rek.meta.endpoint_url, collection_id)
    totals: dict[str, Any] = {"images": len(files), "skipped": 0, "indexed_faces": 0, "unindexed_faces": 0,
                              "over_max_faces": 0, "refused_quality": 0, "no_face": 0, "errors": []}
    lock = threading.Lock()

    def one(path: str) -> None:
        data = Path(path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in journal.done:
            with lock:
                totals["skipped"] += 1
            return
        try:
            out = call(rek.index_faces, CollectionId=collection_id, Image={"Bytes": data},
                       ExternalImageId=external_id(path) if external_id_from_name else None,
                       MaxFaces=max_faces, QualityFilter=quality_filter)
        except FaceledgerError as exc:
            with lock:
                totals["errors"].append({"image": path, "error": exc.code, "message": exc.message})
            if exc.code in ("ResourceNotFoundException", "AccessDeniedException", "ServiceUnavailableException"):
                raise
            return
        ids = [r["Face"]["FaceId"] for r in out.get("FaceRecords", [])]
        journal.add({"sha256": digest, "path": path, "face_ids": ids})
        with lock:
            totals["indexed_faces"] += len(ids)
            unindexed = out.get("UnindexedFaces", [])
            over = sum(1 for u in unindexed if "EXCEEDS_MAX_FACES" in u.get("Reasons", []))
            totals["unindexed_faces"] += len(unindexed)
            totals["over_max_faces"] += over  # not a quality verdict: --max-faces left them out
            totals["refused_quality"] += len(unindexed) - over
            totals["no_face"] += int(not ids and not out.get("UnindexedFaces"))

    with tqdm(total=len(files), disable=quiet, unit="img") as bar, ThreadPoolExecutor(max(1, parallel)) as pool:
        for fut in [pool.submit(one, f) for f in files]:
            fut.result()
            bar.update(1)
    emit(totals, as_json, lambda o: (
        f"{o['images']} image(s): {o['indexed_faces']} face(s) indexed, {o['skipped']} skipped (already done), "
        f"{o['refused_quality']} refused by the quality filter, "
        f"{o['over_max_faces']} left out by --max-faces, {o['no_face']} without a face, "
        f"{len(o['errors'])} error(s)"))


@click.command()
@click.argument("collection_id")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--threshold", type=click.FloatRange(0, 100), default=None,
              help="FaceMatchThreshold (raised to the calibrated floor if lower).")
@click.option("--max-faces", type=click.IntRange(1, 4096), default=10, show_default=True)
@click.option("--purpose", default=None, help="Why this search is made (X-Faceledger-Purpose).")
@click.option("--case", default=None, help="Case reference (X-Faceledger-Case).")
@client_options
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def search(collection_id: str, image: str, threshold: float | None, max_faces: int, purpose: str | None,
           case: str | None, endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Search COLLECTION_ID with the largest face in IMAGE: candidates for human review."""
    headers = {k: v for k, v in (("X-Faceledger-Purpose", purpose), ("X-Faceledger-Case", case)) if v}
    rek = rekognition(endpoint, profile_file, headers)
    extra: dict = {}

    def keep_extra(http_response, parsed, **_):  # type: ignore[no-untyped-def]
        try:
            extra.update(json.loads(http_response.content).get("Faceledger", {}))
        except ValueError:
            pass

    rek.meta.events.register("after-call.rekognition.SearchFacesByImage", keep_extra)
    out = call(rek.search_faces_by_image, CollectionId=collection_id, Image={"Bytes": Path(image).read_bytes()},
               FaceMatchThreshold=threshold, MaxFaces=max_faces)
    out["Faceledger"] = extra

    def text(o: dict) -> str:
        f = o.get("Faceledger", {})
        note = ("Investigative candidate list: for human review only." if f.get("Investigative")
                else "Leads for human review, not identifications.")
        lines = [f"search {f.get('SearchId', '?')} (purpose {f.get('Purpose', '?')}): "
                 f"{len(o['FaceMatches'])} candidate(s) at threshold {f.get('ThresholdApplied', '?')}"
                 f"{' (raised from ' + str(f.get('ThresholdRequested')) + ')' if f.get('ThresholdRaised') else ''}; "
                 f"gallery {f.get('GallerySize', '?')}, expected false candidates "
                 f"{f.get('ExpectedFalseCandidates', float('nan')):.2g}. {note}"]
        for m in o["FaceMatches"]:
            face = m["Face"]
            lines.append(f"  {m['Similarity']:6.2f}  {face['FaceId']}  {face.get('ExternalImageId', '')}")
        if o["FaceMatches"]:
            lines.append(f"review: faceledger review confirm|reject {f.get('SearchId', 'SEARCH_ID')} FACE_ID "
                         "--reason ... --key-file REVIEWER_KEY")
        return "\n".join(lines)

    emit(out, as_json, text)
