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
from .models import models
from .serve import keys, serve
from .store import store
from .video import video


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="faceledger")
def cli() -> None:
    """faceledger: accountable face recognition that speaks Rekognition's face API."""


for command in (detect, compare, eval_group, bench, serve, keys, audit, collections, faces, users,
                index_cmd, search, models, halt, resume, status, consent, review, retention, report, policy):
    cli.add_command(command)
cli.add_command(video)
cli.add_command(store)


def main() -> None:
    """Run the CLI; a usage error is one line on stderr (docs/cli.md) and exit code 2, not click's block."""
    import sys

    try:
        cli(prog_name="faceledger", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help, as click would
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message(), err=True)
        sys.exit(2)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "faceledger"
        message = " ".join(exc.format_message().split()).rstrip(".")
        click.echo(f"error: UsageError: {message}; see `{where} --help`.", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
