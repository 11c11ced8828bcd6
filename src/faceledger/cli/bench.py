"""``faceledger bench``: how fast, measured end to end (engine, service over HTTP, vector search)."""

from __future__ import annotations

import os
import resource
import time

import click

from ..evaluation.throughput import run_throughput
from .evaluate import model_options, pack_settings
from .output import emit, handle_errors


@click.group()
def bench() -> None:
    """Benchmarks (figures to report as ratios against a peer measured in the same run)."""


@bench.command()
@click.argument("root", type=click.Path(file_okay=False, exists=True))
@click.option("--limit", type=int, default=None, help="Only the first N images (sorted).")
@click.option("--procs", type=int, default=os.cpu_count() or 1, show_default=True)
@click.option("--no-mirror", is_flag=True, help="One network pass per face, as the peer does.")
@click.option("--runtime", type=click.Choice(["dlib", "fast"]), default="fast", show_default=True)
@click.option("--detector", type=click.Choice(["hog", "cnn", "blazeface"]), default="hog", show_default=True)
@click.option("--landmarker", type=click.Choice(["dlib5", "facemesh"]), default="dlib5", show_default=True)
@model_options
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@handle_errors
def throughput(root: str, limit: int | None, procs: int, no_mirror: bool, runtime: str, detector: str,
               landmarker: str, model: str | None, data_dir: str | None, as_json: bool, quiet: bool) -> None:
    """Images/s and faces/s end to end (decode, detect, landmarks, align, describe)."""
    settings = pack_settings(model, data_dir, no_mirror, runtime=runtime, detector=detector, landmarker=landmarker)
    t0 = time.perf_counter()
    out = run_throughput(root, settings=settings, limit=limit, procs=procs, progress=not quiet)
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    out.update(peak_rss_mb=round(peak / 1024, 1), wall_seconds_total=round(time.perf_counter() - t0, 2))
    emit(out, as_json)


def _int_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not out or min(out) < 1:
        raise click.BadParameter("needs at least one value, all positive")
    return out


@bench.command("api")
@click.option("--images", "images_dir", type=click.Path(file_okay=False), default=None,
              help="Image folder (default: $FACELEDGER_DATA/lfw_dev, FACELEDGER_DATA=<repo>/../shared/data).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Index the first N images (sorted); searches and indexing use those with a face.")
@click.option("--clients", default="1,4,8", show_default=True, callback=_int_list,
              help="Concurrency levels: threads, each with its own boto3 client.")
@click.option("--requests-per-client", "per_client", type=click.IntRange(min=1), default=25,
              show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="Engine worker processes, for the server and for the bare-engine baseline.")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Passes per level and per baseline run; the best pass's rate counts.")
@model_options
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@handle_errors
def api_cmd(images_dir: str | None, limit: int, clients: list[int], per_client: int, workers: int,
            repeats: int, model: str | None, data_dir: str | None, as_json: bool, quiet: bool) -> None:
    """Service req/s and latency through real boto3 clients, against the bare engine.

    Starts `faceledger serve` on a free port with a temporary data folder,
    runs SearchFacesByImage and IndexFaces at each concurrency level, then the
    same images through bare engine worker processes, and reports the
    service's overhead (aim: under 10 %).
    """
    from ..evaluation.apibench import format_report, run_api_bench

    def say(msg: str) -> None:
        if not quiet:
            click.echo(f"[bench api] {msg}", err=True)

    pack = pack_settings(model, data_dir, False).pack  # the temporary server uses DATA_DIR's model store
    out = run_api_bench(images_dir=images_dir, limit=limit, clients=clients, per_client=per_client,
                        workers=workers, repeats=repeats, progress=say,
                        pack_folder=None if pack.builtin else pack.folder)
    emit(out, as_json, format_report)


@bench.command("search")
@click.option("--sizes", default="10000,100000,1000000", show_default=True, callback=_int_list,
              help="Gallery sizes (vectors in one collection).")
@click.option("--queries", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--blas-threads", type=click.IntRange(min=0), default=1, show_default=True,
              help="BLAS threads (1, as the service; 0 leaves numpy's default).")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def search_cmd(sizes: list[int], queries: int, k: int, blas_threads: int, as_json: bool) -> None:
    """Exact k-NN latency (p50/p99) of the vector index on synthetic 128-d vectors.

    Each size is first checked against brute force. Target: 1M vectors under 50 ms p50.
    """
    from ..evaluation.searchbench import format_table, run_search_bench

    out = run_search_bench(sizes, queries=queries, k=k, blas_threads=blas_threads)
    emit(out, as_json, format_table)
