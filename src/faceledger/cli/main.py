"""The ``faceledger`` entry point: wires the command groups together, nothing else."""

from __future__ import annotations

import click

from .accountability import consent, halt, policy, report, resume, retention, review, status
from .audit import audit
from .bench import bench
from .collections import collections, faces, users
from .enrol import index_cmd, search
from .evaluate import eval_group
from .faces_local import compare, detect
from .serve import keys, serve
from .video import video


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="faceledger")
def cli() -> None:
    """faceledger: accountable face recognition that speaks Rekognition's face API."""


for command in (detect, compare, eval_group, bench, serve, keys, audit, collections, faces, users,
                index_cmd, search, halt, resume, status, consent, review, retention, report, policy):
    cli.add_command(command)
cli.add_command(video)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
