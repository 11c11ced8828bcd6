"""The policy: purposes, and per purpose the rules every match must follow.

A policy file (TOML or JSON; ``FACELEDGER_POLICY_FILE`` or
``<data_dir>/policy.toml``) is validated and loaded at start; its SHA-256 and
version go into the ledger whenever they change. Without a file the built-in
policy has one purpose, ``general``, whose values are the service defaults,
so existing boto3 code works without configuration.

Per purpose: the collections it may search (``"*"`` for all), the ceiling on
expected false candidates per 1:N search, the FMR floor for 1:1 comparison,
the longest candidate list, whether a case reference is required, the
minimum probe quality (0-100, see engine.quality.quality_score) and whether
candidates need two-person confirmation.

An ``investigative`` purpose is the sanctioned path to recall: its 1:N
ceiling may go up to ``INVESTIGATIVE_MAX_EXPECTED_FALSE`` expected false
candidates per search (other purposes stop at 1), so its floor is lower. It
must require a case reference, and only a key created for it (bound to it)
may use it (service.core.matching_rule); its responses and ledger records are marked
investigative, and its candidates are for human review only.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AccessDeniedError, InvalidParameterError

DEFAULT_PURPOSE = "general"
FIELDS = {
    "collections": list,
    "max_expected_false": float,
    "compare_fmr": float,
    "max_candidates": int,
    "case_required": bool,
    "min_probe_quality": float,
    "two_person_review": bool,
    "investigative": bool,
    "description": str,
}
MAX_EXPECTED_FALSE = 1.0
# A purpose name travels in the X-Faceledger-Purpose request header and back in a response header.
PURPOSE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}")
INVESTIGATIVE_MAX_EXPECTED_FALSE = 100.0


@dataclass(frozen=True)
class Purpose:
    name: str
    collections: tuple[str, ...] = ("*",)
    max_expected_false: float = 0.001
    compare_fmr: float = 1e-4
    max_candidates: int = 50
    case_required: bool = False
    min_probe_quality: float = 20.0
    two_person_review: bool = False
    investigative: bool = False
    description: str = ""

    def may_search(self, collection_id: str) -> bool:
        return any(fnmatch.fnmatchcase(collection_id, pattern) for pattern in self.collections)


@dataclass(frozen=True)
class Policy:
    version: str
    purposes: dict[str, Purpose]
    sha256: str
    source: str  # the file it came from, or "built-in"

    def purpose(self, name: str) -> Purpose:
        try:
            return self.purposes[name]
        except KeyError:
            known = ", ".join(sorted(self.purposes))
            raise AccessDeniedError(
                f"Purpose {name!r} is not in the policy (version {self.version}); known purposes: {known}."
            ) from None

    def summary(self) -> dict[str, Any]:
        return {"version": self.version, "sha256": self.sha256, "source": self.source,
                "purposes": {n: p.__dict__ for n, p in self.purposes.items()}}


def builtin_policy(max_expected_false: float = 0.001, compare_fmr: float = 1e-4) -> Policy:
    general = Purpose(DEFAULT_PURPOSE, max_expected_false=max_expected_false, compare_fmr=compare_fmr,
                      description="Default purpose: no case reference; calibrated, gallery-aware thresholds.")
    text = json.dumps(general.__dict__, sort_keys=True)
    return Policy("built-in-1", {DEFAULT_PURPOSE: general}, hashlib.sha256(text.encode()).hexdigest(), "built-in")


def parse_policy(text: str, source: str) -> Policy:
    """Validate a policy document; every problem is an InvalidParameterError naming the field."""
    try:
        doc = json.loads(text) if source.endswith(".json") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InvalidParameterError(f"Policy {source} is not valid {'JSON' if source.endswith('.json') else 'TOML'}: {exc}") from exc
    version = doc.get("version")
    if not isinstance(version, str | int) or str(version) == "":
        raise InvalidParameterError(f"Policy {source} needs a version (a string or number).")
    raw = doc.get("purposes")
    if not isinstance(raw, dict) or not raw:
        raise InvalidParameterError(f"Policy {source} needs a [purposes.<name>] table.")
    purposes = {name: _purpose(name, body, source) for name, body in raw.items()}
    return Policy(str(version), purposes, hashlib.sha256(text.encode()).hexdigest(), source)


def _purpose(name: str, body: Any, source: str) -> Purpose:
    where = f"{source}: purposes.{name}"
    if not PURPOSE_NAME.fullmatch(name):
        raise InvalidParameterError(
            f"{source}: purpose name {name!r} must be 1-64 letters, digits, '_', '.', ':' or '-' "
            "(it travels in HTTP headers).")
    if not isinstance(body, dict):
        raise InvalidParameterError(f"{where} must be a table.")
    unknown = set(body) - set(FIELDS)
    if unknown:
        raise InvalidParameterError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
    values: dict[str, Any] = {}
    for key, value in body.items():
        kind = FIELDS[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidParameterError(f"{where}.{key} must be of type {kind.__name__}.")
        values[key] = value
    if "collections" in values:
        cols = values["collections"]
        if not cols or not all(isinstance(c, str) and c for c in cols):
            raise InvalidParameterError(f"{where}.collections must list collection ids or patterns.")
        values["collections"] = tuple(cols)
    p = Purpose(name, **values)
    ceiling = INVESTIGATIVE_MAX_EXPECTED_FALSE if p.investigative else MAX_EXPECTED_FALSE
    if not 0 < p.max_expected_false <= ceiling:
        hint = "" if p.investigative else "; a purpose that needs recall can be declared investigative = true"
        raise InvalidParameterError(f"{where}.max_expected_false must be in (0, {ceiling:g}]{hint}.")
    if not 0 < p.compare_fmr <= 0.1:
        raise InvalidParameterError(f"{where}.compare_fmr must be in (0, 0.1].")
    if p.investigative and not p.case_required:
        raise InvalidParameterError(
            f"{where}: an investigative purpose must set case_required = true (its candidate lists belong to a case).")
    if not 1 <= p.max_candidates <= 4096:
        raise InvalidParameterError(f"{where}.max_candidates must be 1-4096.")
    if not 0 <= p.min_probe_quality <= 100:
        raise InvalidParameterError(f"{where}.min_probe_quality must be 0-100.")
    return p


def load_policy(path: Path | None, *, max_expected_false: float = 0.001, compare_fmr: float = 1e-4) -> Policy:
    if path is None or not path.is_file():
        return builtin_policy(max_expected_false, compare_fmr)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidParameterError(f"Cannot read policy {path}: {exc.strerror}.") from exc
    return parse_policy(text, str(path))
