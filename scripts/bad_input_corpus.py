"""The bad-input corpus: images that once made one request cost minutes and gigabytes.

    python scripts/bad_input_corpus.py generate --out /tmp/corpus
    python scripts/bad_input_corpus.py measure --corpus /tmp/corpus --timeout 120 --json out.json
    python scripts/bad_input_corpus.py serve --corpus /tmp/corpus --json served.json

``generate`` writes blank, flat, gradient, noise and upscaled real photos at
(or near) the pixel cap, the two blank PNGs from the hardening issue, thin
strips and the small odd images the imaging tests use. ``measure`` runs each
image through a fresh engine process (decode + ``Engine.analyze`` with
descriptors, what IndexFaces does) and reports its seconds and the process's
peak RSS (VmHWM) and RSS afterwards; a run is killed past ``--timeout`` seconds
or ``--rss-limit-mb`` resident, and reported as such ("> limit"), so a
measurement of the old code cannot take the machine down. ``serve`` sends
each image to a real server with one engine worker (DetectFaces, and
IndexFaces for the blank ones) and reads the worker's VmHWM after each call:
peak RSS across the whole corpus, and RSS left behind.
Run it with PYTHONPATH pointing at the source tree to measure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

MAX_PIXELS = 40_000_000  # faceledger.imaging.DEFAULT_MAX_PIXELS
DATA = Path(os.environ.get("FACELEDGER_SHARED_DATA", "/work/shared/data"))
CAP_W, CAP_H = 7744, 5164  # 39,990,016 pixels: 3:2 at the cap


def _save(img: Image.Image, path: Path, **kw: object) -> None:
    img.save(path, **kw)


def _upscaled(src: Path, w: int, h: int) -> Image.Image:
    img = Image.open(src).convert("RGB")
    return img.resize((w, h), Image.Resampling.BICUBIC)


def generate(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    made: list[Path] = []

    def put(name: str, img: Image.Image, **kw: object) -> None:
        path = out / name
        _save(img, path, **kw)
        made.append(path)

    # The two images of the hardening issue.
    put("blank_6300.png", Image.fromarray(np.zeros((6300, 6300, 3), np.uint8)), optimize=True)
    put("blank_3000.png", Image.fromarray(np.zeros((3000, 3000, 3), np.uint8)), optimize=True)
    # Huge flat colour and a smooth gradient (no face, but not constant) at the cap.
    put("flat_grey_cap.png", Image.new("RGB", (CAP_W, CAP_H), (128, 128, 128)))
    ramp = np.linspace(0, 255, CAP_W, dtype=np.float32).astype(np.uint8)
    grad = np.repeat(np.broadcast_to(ramp, (CAP_H, CAP_W))[:, :, None], 3, axis=2)
    put("gradient_cap.png", Image.fromarray(np.ascontiguousarray(grad)))
    del grad
    # Noise at the cap: per-pixel noise does not fit the byte limits as PNG,
    # so a low-quality JPEG of it, and 16-px block noise as PNG.
    noise = rng.integers(0, 256, (CAP_H, CAP_W, 3), dtype=np.uint8)
    put("noise_cap.jpg", Image.fromarray(noise), quality=8)
    del noise
    blocks = rng.integers(0, 256, (CAP_H // 16 + 1, CAP_W // 16 + 1, 3), dtype=np.uint8)
    blocky = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:CAP_H, :CAP_W]
    put("blocknoise_cap.png", Image.fromarray(np.ascontiguousarray(blocky)))
    del blocky
    # Real photos upscaled to the cap: a group photo and one LFW face.
    group = DATA / "group_photos" / "dlib_bald_guys.jpg"
    if group.is_file():
        put("group_upscaled_cap.jpg", _upscaled(group, CAP_W, CAP_H), quality=85)
    face = DATA / "lfw_dev"
    lfw = sorted(face.glob("*/*.jpg"))[:1] if face.is_dir() else []
    if lfw:
        put("lfw_face_upscaled_cap.jpg", _upscaled(lfw[0], 6300, 6300), quality=85)
    # Crowds: an LFW face tiled small enough that HOG finds 1,000-1,800 faces
    # (each one was landmarked and described before the 100-largest limit).
    if lfw:
        tile = Image.open(lfw[0]).convert("RGB").crop((65, 65, 185, 185))
        for name, (w, h), side in (("faces_tiled_1920.jpg", (1920, 1080), 44),
                                   ("faces_tiled_2730.jpg", (2730, 2730), 64)):
            cell = np.asarray(tile.resize((side, side), Image.Resampling.BICUBIC))
            crowd = np.tile(cell, (h // side + 1, w // side + 1, 1))[:h, :w]
            put(name, Image.fromarray(np.ascontiguousarray(crowd)), quality=90)
    # A progressive JPEG at the cap with its last scan (65 bytes) repeated 500
    # times (268 KB; libjpeg only warns): 12 s of decoding before the scan
    # limit, ~24 ms a scan, so 15 MB of them would have been hours.
    buf = io.BytesIO()
    Image.new("RGB", (CAP_W, CAP_H), (120, 130, 140)).save(buf, "JPEG", progressive=True, quality=90)
    jpeg = buf.getvalue()
    last = jpeg.rindex(b"\xff\xda")
    (out / "many_scans_cap.jpg").write_bytes(jpeg[:-2] + jpeg[last:-2] * 500 + jpeg[-2:])
    made.append(out / "many_scans_cap.jpg")
    # 16-bit grey and RGBA at the cap, small files (decoding made float64 copies / RGBA composites).
    sparse = np.zeros((CAP_H, CAP_W), np.uint16)
    sparse[::7, ::5] = 30000
    put("grey16_cap.png", Image.fromarray(sparse))
    del sparse
    rgba = np.zeros((CAP_H, CAP_W, 4), np.uint8)
    rgba[..., 0] = np.arange(CAP_W) % 256
    rgba[..., 3] = 128
    put("rgba_cap.png", Image.fromarray(rgba), compress_level=1)
    del rgba
    # Thin strips at the cap.
    put("strip_wide_cap.png", Image.new("RGB", (40_000, 1000), (30, 60, 90)))
    put("strip_noise_tall.jpg", Image.fromarray(rng.integers(0, 256, (20_000, 500, 3), dtype=np.uint8)), quality=30)
    # The small odd images of tests/test_imaging.py.
    put("tiny_10.png", Image.new("RGB", (10, 10), (128, 128, 128)))
    put("one_pixel.png", Image.new("RGB", (1, 1), (0, 0, 0)))
    put("cmyk.jpg", Image.new("CMYK", (40, 30), (0, 255, 255, 0)))
    put("alpha.png", Image.new("RGBA", (8, 8), (10, 20, 30, 0)))
    put("grey16.png", Image.fromarray(np.full((20, 30), 32768, dtype=np.uint16)))
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    (out / "animated.gif").write_bytes(buf.getvalue())
    made.append(out / "animated.gif")
    return made


CHILD = r"""
import json, resource, sys, time
def kb(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1])
    return 0
from faceledger.engine import Engine
from faceledger.errors import FaceledgerError
from faceledger.imaging import decode_image
engine = Engine()
engine.analyze(open(sys.argv[2], 'rb').read())  # warm up the models on a real face
loaded = kb('VmRSS')
data = open(sys.argv[1], 'rb').read()
t0 = time.perf_counter()
try:
    faces = len(engine.analyze(decode_image(data)))
    error = None
except FaceledgerError as exc:
    faces, error = None, f"{exc.code}: {exc.message}"
seconds = time.perf_counter() - t0
import gc; gc.collect()
print(json.dumps({"seconds": round(seconds, 2), "faces": faces, "error": error, "rss_loaded_mb": loaded // 1024,
                  "peak_rss_mb": kb('VmHWM') // 1024, "rss_after_mb": kb('VmRSS') // 1024}))
"""


def _rss_mb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def measure_one(path: Path, warm: Path, timeout: float, rss_limit_mb: int) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(warm)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started, peak, why = time.monotonic(), 0, None
    while proc.poll() is None:
        peak = max(peak, _rss_mb(proc.pid))
        if rss_limit_mb and peak > rss_limit_mb:
            why = f"killed: RSS > {rss_limit_mb} MB"
        elif time.monotonic() - started > timeout + 30:  # + model loading
            why = f"killed: > {timeout:.0f} s"
        if why:
            proc.kill()
            break
        time.sleep(0.1)
    out, err = proc.communicate()
    row = {"image": path.name, "bytes": path.stat().st_size}
    if why:
        return {**row, "killed": why, "polled_peak_rss_mb": peak,
                "wall_s_until_killed": round(time.monotonic() - started, 1)}
    try:
        return {**row, **json.loads(out.strip().splitlines()[-1])}
    except (ValueError, IndexError):
        return {**row, "killed": f"child failed: {err.strip()[-300:]}", "polled_peak_rss_mb": peak}


def measure(corpus: Path, timeout: float, rss_limit_mb: int, only: list[str] | None) -> list[dict]:
    warm = next(iter(sorted((DATA / "lfw_dev").glob("*/*.jpg"))))
    rows = []
    for path in sorted(corpus.iterdir()):
        if only and path.name not in only:
            continue
        row = measure_one(path, warm, timeout, rss_limit_mb)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            kids = [int(k) for k in fh.read().split()]
    except OSError:
        return out
    for k in kids:
        out += [k, *_descendants(k)]
    return out


def _status_mb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def serve(corpus: Path, timeout: float, only: list[str] | None) -> list[dict]:
    """Each image through a real server (one engine worker): DetectFaces, and IndexFaces for the blanks."""
    import tempfile

    from botocore.exceptions import ClientError

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.e2e.conftest import start_server

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        srv = start_server(Path(tmp) / "data", workers=1)
        try:
            rek = srv.client(retries={"max_attempts": 1}, read_timeout=timeout)
            rek.create_collection(CollectionId="corpus")
            for path in sorted(corpus.iterdir()):
                if only and path.name not in only:
                    continue
                data = path.read_bytes()
                calls = [("DetectFaces", lambda d=data: rek.detect_faces(Image={"Bytes": d}))]
                if path.name.startswith("blank"):
                    calls.append(("IndexFaces", lambda d=data: rek.index_faces(CollectionId="corpus",
                                                                               Image={"Bytes": d})))
                for op, call in calls:
                    t0 = time.monotonic()
                    try:
                        out = call()
                        result = f"{len(out.get('FaceDetails', out.get('FaceRecords', [])))} faces"
                    except ClientError as exc:
                        result = exc.response["Error"]["Code"]
                    except Exception as exc:  # a read timeout: the worker is still busy
                        result = type(exc).__name__
                    workers = _descendants(srv.proc.pid)
                    row = {"image": path.name, "op": op, "seconds": round(time.monotonic() - t0, 2),
                           "result": result,
                           "worker_peak_rss_mb": max((_status_mb(w, "VmHWM") for w in workers), default=0),
                           "worker_rss_mb": max((_status_mb(w, "VmRSS") for w in workers), default=0)}
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    rows.append(row)
        finally:
            srv.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("measure")
    m.add_argument("--corpus", type=Path, required=True)
    m.add_argument("--timeout", type=float, default=120.0)
    m.add_argument("--rss-limit-mb", type=int, default=6000)
    m.add_argument("--only", nargs="*", default=None)
    m.add_argument("--json", type=Path, default=None)
    v = sub.add_parser("serve", help="the corpus through a real server with one engine worker")
    v.add_argument("--corpus", type=Path, required=True)
    v.add_argument("--timeout", type=float, default=120.0)
    v.add_argument("--only", nargs="*", default=None)
    v.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.cmd == "generate":
        for p in generate(args.out):
            print(f"{p.stat().st_size:>12,}  {p}")
        return
    if args.cmd == "serve":
        rows = serve(args.corpus, args.timeout, args.only)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        print(f"p100 {max(r['seconds'] for r in rows):.2f} s, worker peak RSS "
              f"{max(r['worker_peak_rss_mb'] for r in rows)} MB over {len(rows)} requests")
        return
    rows = measure(args.corpus, args.timeout, args.rss_limit_mb, args.only)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    done = [r for r in rows if "seconds" in r]
    if done:
        print(f"p100 {max(r['seconds'] for r in done):.2f} s, peak RSS {max(r['peak_rss_mb'] for r in done)} MB"
              f" over {len(done)} finished; {len(rows) - len(done)} killed")


if __name__ == "__main__":
    main()
