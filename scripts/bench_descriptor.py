"""Benchmark dlib's face descriptor against FastEmbedder (same network, ONNX Runtime).

Prints one JSON document: per-face milliseconds (median of ``--repeats`` runs)
for dlib's ``compute_face_descriptor`` and for ``FastEmbedder`` at several batch
sizes and thread counts, the speed-up ratio, the network's FLOPs counted from
its layer shapes, and the share of the CPU's theoretical FP32 peak reached.

Two ceilings are reported. The theoretical peak is threads x GHz x FP32
FLOPs per cycle per core; FLOPs/cycle defaults to 32 when the CPU has AVX2 +
FMA (two 8-lane FMA pipes; AMD Zen 4 runs AVX-512 on the same 256-bit pipes, so
it stays 32) and 16 otherwise (override with ``--flops-per-cycle``, e.g. 64 for
Intel cores with two AVX-512 FMA units). The clock is the nominal ``cpu MHz``
from /proc/cpuinfo unless ``--ghz`` is given; in a VM that can sit below the
boost clock, so ``peak_share`` may exceed 1. The measured ceiling is
NumPy/OpenBLAS SGEMM throughput at the same thread count (``sgemm_share``).
Other load on the machine skews everything: the load averages are printed too.

    .venv/bin/python scripts/bench_descriptor.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlib
import face_recognition_models as frm
import numpy as np
from PIL import Image

from faceledger.engine.dlib_weights import (
    AddPrev,
    Conv,
    DlibNet,
    FullyConnected,
    InputRGB,
    Layer,
    Marker,
    Pool,
    load_dlib_net,
)
from faceledger.engine.fast_embedder import FastEmbedder

# ----------------------------------------------------------------------------- FLOPs


def _out(size: int, kernel: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - kernel) // stride


def _conv_flops(layer: Conv, shape: tuple[int, int, int]) -> tuple[int, tuple[int, int, int]]:
    out_c, in_c, kh, kw = layer.weight.shape
    oh = _out(shape[1], kh, layer.stride[0], layer.padding[0])
    ow = _out(shape[2], kw, layer.stride[1], layer.padding[1])
    return 2 * out_c * in_c * kh * kw * oh * ow, (out_c, oh, ow)


def _pool_shape(layer: Pool, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    if layer.window == (0, 0):
        return (shape[0], 1, 1)
    (kh, kw), (sy, sx), (py, px) = layer.window, layer.stride, layer.padding
    return (shape[0], _out(shape[1], kh, sy, py), _out(shape[2], kw, sx, px))


def count_flops(net: DlibNet) -> int:
    """Multiply-adds x 2 of the convolutions and the fc layer (pools/adds are <0.1%)."""
    first = net.layers[0]
    assert isinstance(first, InputRGB)
    shape = (3, *first.size)
    tags: list[tuple[int, int, int]] = []
    total = 0
    layers: list[Layer] = net.layers[1:]
    for i, layer in enumerate(layers):
        if isinstance(layer, Conv):
            flops, shape = _conv_flops(layer, shape)
            total += flops
        elif isinstance(layer, Pool):
            shape = _pool_shape(layer, shape)
        elif isinstance(layer, Marker):
            tags.append(shape)
            if i + 1 < len(layers) and isinstance(layers[i + 1], Marker) and len(tags) >= 2:
                tags.append(tags[-2])  # the skip: continue from the earlier tag
        elif isinstance(layer, AddPrev):
            shape = tuple(max(a, b) for a, b in zip(shape, tags[-1], strict=True))  # type: ignore[assignment]
            tags.clear()
        elif isinstance(layer, FullyConnected):
            total += 2 * layer.weight.size
    return total


# ----------------------------------------------------------------------------- machine


def cpu_info() -> dict[str, Any]:
    flags: set[str] = set()
    mhz = 0.0
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "flags" and not flags:
                flags = set(value.split())
            elif key == "cpu MHz" and not mhz:
                mhz = float(value)
            elif key == "model name":
                model = value.strip()
    except OSError:
        pass
    return {
        "model": model,
        "cores": os.cpu_count(),
        "ghz": round(mhz / 1000.0, 3),
        "avx2": "avx2" in flags,
        "fma": "fma" in flags,
        "avx512f": "avx512f" in flags,
    }


def default_flops_per_cycle(info: dict[str, Any]) -> int:
    return 32 if info["avx2"] and info["fma"] else 16


# ----------------------------------------------------------------------------- timing


def hopper_chip() -> np.ndarray:
    from matplotlib import cbook

    img = np.asarray(
        Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    )
    rect = dlib.get_frontal_face_detector()(img, 1)[0]
    shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())(img, rect)
    return dlib.get_face_chip(img, shape, 150, 0.25)


def make_batch(chip: np.ndarray, n: int) -> np.ndarray:
    """n distinct-but-realistic chips: the chip, mirrored and shifted."""
    variants = [np.roll(chip if i % 2 == 0 else chip[:, ::-1], i // 2, axis=1) for i in range(n)]
    return np.ascontiguousarray(np.stack(variants))


def median_ms_per_face(
    fn: Callable[[np.ndarray], object], chips: np.ndarray, repeats: int
) -> float:
    fn(chips)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(chips)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / len(chips)


def bench(batches: list[int], threads: list[int], repeats: int) -> list[dict[str, Any]]:
    model_path = frm.face_recognition_model_location()
    chip = hopper_chip()
    dlib_model = dlib.face_recognition_model_v1(model_path)
    fast = {t: FastEmbedder(model_path, threads=t) for t in threads}

    def dlib_embed(chips: np.ndarray) -> object:
        return dlib_model.compute_face_descriptor(list(chips))

    rows: list[dict[str, Any]] = []
    for b in batches:
        chips = make_batch(chip, b)
        dlib_ms = median_ms_per_face(dlib_embed, chips, repeats)
        rows.append({"runtime": "dlib", "batch": b, "threads": 1, "ms_per_face": dlib_ms})
        for t, emb in fast.items():
            ms = median_ms_per_face(emb.embed, chips, repeats)
            row = {"runtime": emb.name, "batch": b, "threads": t, "ms_per_face": ms}
            rows.append({**row, "speedup_vs_dlib": dlib_ms / ms})
    return rows


_SGEMM = """
import time, numpy as np
n = 2048
a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)
a @ b
t = time.perf_counter()
for _ in range(3): a @ b
print(2 * n**3 * 3 / (time.perf_counter() - t) / 1e9)
"""


def sgemm_gflops(threads: int) -> float:
    """NumPy/OpenBLAS 2048^3 SGEMM throughput: a practical compute ceiling."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, "-c", _SGEMM], env=env, capture_output=True, text=True, check=True
    )
    return round(float(out.stdout.strip()), 1)


def add_peak_share(
    rows: list[dict[str, Any]], flops: int, peak_per_core: float, sgemm: dict[int, float]
) -> None:
    """Achieved GFLOP/s, share of theoretical peak and of the measured SGEMM ceiling."""
    for row in rows:
        achieved = flops / (row["ms_per_face"] / 1000.0) / 1e9
        row["gflops"] = round(achieved, 2)
        row["peak_share"] = round(achieved / (row["threads"] * peak_per_core), 3)
        if row["threads"] in sgemm:
            row["sgemm_share"] = round(achieved / sgemm[row["threads"]], 3)
        row["ms_per_face"] = round(row["ms_per_face"], 3)
        if "speedup_vs_dlib" in row:
            row["speedup_vs_dlib"] = round(row["speedup_vs_dlib"], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ghz", type=float, default=None)
    parser.add_argument("--flops-per-cycle", type=int, default=None)
    args = parser.parse_args()

    info = cpu_info()
    ghz = args.ghz or info["ghz"]
    fpc = args.flops_per_cycle or default_flops_per_cycle(info)
    flops = count_flops(load_dlib_net(frm.face_recognition_model_location()))
    load_before = os.getloadavg()
    sgemm = {t: sgemm_gflops(t) for t in args.threads}
    rows = bench(args.batches, args.threads, args.repeats)
    add_peak_share(rows, flops, ghz * fpc, sgemm)
    doc = {
        "cpu": info,
        "peak": {"ghz": ghz, "fp32_flops_per_cycle_per_core": fpc, "gflops_per_core": ghz * fpc},
        "sgemm_gflops_by_threads": sgemm,
        "network_gflops_per_face": round(flops / 1e9, 4),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "repeats": args.repeats,
        "rows": rows,
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
