"""How commands print: one JSON object with --json, short text otherwise; errors to stderr."""

from __future__ import annotations

import functools
import json
import math
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

import click
import numpy as np
import psycopg

from ..errors import FaceledgerError, IntegrityFailedError


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def plain_text(obj: dict, prefix: str = "") -> str:
    """Short text for a result without its own formatter: one ``key: value`` line per leaf, nested keys dotted."""
    lines: list[str] = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            lines.append(plain_text(value, f"{name}."))
        elif isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{name}: {len(value)} item(s) (--json shows them)")
        elif isinstance(value, list | tuple):
            lines.append(f"{name}: {', '.join(_scalar(v) for v in value) or '-'}")
        else:
            lines.append(f"{name}: {_scalar(value)}")
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    value = _finite(_default(value) if isinstance(value, np.generic | np.ndarray) else value)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if value and (abs(value) < 1e-3 or abs(value) >= 1e6) else f"{round(value, 4):g}"
    if isinstance(value, dict):
        return json.dumps(value, default=_default)
    return str(value)


def emit(obj: dict, as_json: bool, text: Callable[[dict], str] | None = None) -> None:
    if as_json:
        click.echo(json.dumps(_finite(obj), default=_default, sort_keys=False))
    else:
        click.echo(text(obj) if text else plain_text(obj))


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn FaceledgerError into a one-line message and its documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FaceledgerError as exc:
            click.echo(f"error: {exc.code}: {exc.message}", err=True)
            sys.exit(exc.exit_code)
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:  # locked, constraint...: not damage, not ours to word
                raise
            damaged = IntegrityFailedError(f"the catalog database is damaged ({exc}); `faceledger audit verify` "
                                           "names the last intact ledger record; restore from a backup.")
            click.echo(f"error: {damaged.code}: {damaged.message}", err=True)
            sys.exit(damaged.exit_code)
        except psycopg.Error as exc:  # what the PostgreSQL store did not turn into a FaceledgerError itself
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            click.echo(f"error: InternalServerError: PostgreSQL refused the command ({first}); nothing was "
                       "committed.", err=True)
            sys.exit(FaceledgerError.exit_code)

    return wrapper
