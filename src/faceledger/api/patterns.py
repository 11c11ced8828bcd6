"""Translate the service model's Java-style ``pattern`` regexes for Python's ``re``.

AWS validates a member against its pattern as a whole-string match (Java's
``String.matches``), so patterns are applied with ``re.fullmatch``; ``^``/``$``
anchors that some patterns carry are then harmless. ``\\d`` and ``\\w`` are
ASCII-only in Java, hence ``re.ASCII``.

Python's ``re`` has no ``\\p{...}`` Unicode classes. The model uses only
``\\p{L}``, ``\\p{Z}`` and ``\\p{N}`` inside character classes (tag keys and
values). For those we replace each class escape by its ASCII members and map
every non-ASCII character of the input to an ASCII stand-in of the same
category (``a``, space, ``0``) before matching; non-ASCII characters of other
categories stay as they are and so never match. That is exact for patterns
of this form. An unknown ``\\p{...}`` raises at compile time rather than
silently accepting everything.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

_ASCII_MEMBERS = {"L": "a-zA-Z", "Z": " ", "N": "0-9"}
_STAND_IN = {"L": "a", "Z": " ", "N": "0"}
_PROPERTY = re.compile(r"\\p\{([A-Za-z]+)\}")


@functools.cache
def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A predicate telling whether a whole string satisfies the model's ``pattern``."""
    categories = set(_PROPERTY.findall(pattern))
    unknown = categories - set(_ASCII_MEMBERS)
    if unknown:
        raise ValueError(f"unsupported Unicode property in pattern {pattern!r}: {unknown}")
    translated = _PROPERTY.sub(lambda m: _ASCII_MEMBERS[m.group(1)], pattern)
    regex = re.compile(translated, re.ASCII)
    if not categories:
        return lambda value: regex.fullmatch(value) is not None

    def matches(value: str) -> bool:
        return regex.fullmatch(_fold(value, categories)) is not None

    return matches


def _fold(value: str, categories: set[str]) -> str:
    """Replace non-ASCII characters of the given general categories by ASCII stand-ins."""
    if value.isascii():
        return value
    out = []
    for char in value:
        major = unicodedata.category(char)[0] if not char.isascii() else ""
        out.append(_STAND_IN[major] if major in categories else char)
    return "".join(out)
