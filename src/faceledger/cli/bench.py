"""``faceledger bench``: how fast, measured end to end."""

from __future__ import annotations

import os
import resource
import time

import click

from ..engine import EngineSettings
from ..evaluation.throughput import run_throughput
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
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@handle_errors
def throughput(root: str, limit: int | None, procs: int, no_mirror: bool, runtime: str, as_json: bool,
               quiet: bool) -> None:
    """Images/s and faces/s end to end (decode, detect, landmarks, align, describe)."""
    settings = EngineSettings(mirror=not no_mirror, runtime=runtime)
    t0 = time.perf_counter()
    out = run_throughput(root, settings=settings, limit=limit, procs=procs, progress=not quiet)
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    out.update(peak_rss_mb=round(peak / 1024, 1), wall_seconds_total=round(time.perf_counter() - t0, 2))
    emit(out, as_json)
