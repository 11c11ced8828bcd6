"""``faceledger bench search`` and ``bench api`` at tiny sizes: JSON shape and sane values.

These run the real commands in a subprocess (the API benchmark starts a real
server and real boto3 clients); the figures themselves are not asserted,
only that they are there and plausible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import data_path

CLI = [sys.executable, "-m", "faceledger.cli.main"]


def run(*args: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_bench_search_json() -> None:
    out = run("bench", "search", "--sizes", "2000,5000", "--queries", "20", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["benchmark"] == "search" and report["dim"] == 128
    assert report["blas_threads"] in (1, "default")
    rows = report["results"]
    assert [(r["size"], r["max_distance"]) for r in rows] == [
        (2000, None), (2000, 0.6), (5000, None), (5000, 0.6)]
    for r in rows:
        assert r["queries"] == 20 and r["k"] == 10 and r["checked_vs_brute_force"] == 3
        assert 0 < r["p50_ms"] <= r["p99_ms"] < 1000
    assert report["target"]["size"] == 1_000_000 and report["target"]["met"] is None


def test_bench_search_rejects_bad_sizes() -> None:
    out = run("bench", "search", "--sizes", "ten")
    assert out.returncode == 2 and "comma-separated" in out.stderr


def test_bench_api_without_images_says_where(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = run("bench", "api", "--limit", "2", env={"FACELEDGER_DATA": str(tmp_path / "nowhere")})
    assert out.returncode == 2
    assert "lfw_dev" in out.stderr and "FACELEDGER_DATA" in out.stderr


@pytest.mark.slow
def test_bench_api_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    images = data_path("lfw_dev")
    out = run("bench", "api", "--images", str(images), "--limit", "6", "--clients", "1,2",
              "--requests-per-client", "3", "--workers", "1", "--json", "--quiet",
              env={"TMPDIR": str(tmp_path)}, timeout=180)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["benchmark"] == "api" and report["workers"] == 1 and report["images"] == 6
    assert 1 <= report["images_with_face"] <= 6 and report["faces_indexed"] >= report["images_with_face"]
    for op in ("SearchFacesByImage", "IndexFaces"):
        levels = report["service"][op]
        assert [r["clients"] for r in levels] == [1, 2]
        for r in levels:
            assert r["operation"] == op and r["requests"] == 3 * r["clients"]
            assert r["ok"] + r["errors"] + r["throttled"] == r["requests"]
            assert r["errors"] == 0 and r["throttled"] == 0, r["error_codes"]
            assert r["requests_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"] < 30_000
            assert len(r["requests_per_s_passes"]) == 1 and r["server_cpu_ms_per_request"] > 0
    bare = report["bare_engine"]
    assert bare["workers"] == 1 and bare["images_per_s"] > 0 and bare["latency_images"] == 6
    assert [r["images"] for r in bare["runs"]] == [6, 6] and bare["spread"] >= 0
    assert 0 < bare["p50_ms"] <= bare["p99_ms"]
    o = report["overhead"]
    assert o["aim_below"] == 0.1 and o["saturating_clients"] in (1, 2)
    assert o["overhead"] < 1 and isinstance(o["met"], bool)
    assert 0 < o["bare_cpu_ms_per_image"] == bare["cpu_ms_per_image"] and o["cpu_overhead"] < 1
    assert o["c1_service_p50_ms"] > 0 and o["bare_p50_ms"] == bare["p50_ms"]
    assert not list(tmp_path.glob("faceledger-bench-api-*")), "the temporary data folder was left behind"
