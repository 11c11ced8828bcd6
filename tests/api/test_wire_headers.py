"""The x-faceledger-* response headers carry only header-safe text, whatever the Faceledger member holds."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from faceledger.api import wire


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "调查", "récup", "100%", "plain-name"])
def test_string_values_are_percent_encoded_visible_ascii(value: str) -> None:
    response = wire.success({"Faceledger": {"Purpose": value, "SearchId": 7}}, "rid")
    raw = dict(response.raw_headers)
    sent = raw[b"x-faceledger-purpose"]
    assert all(0x20 <= b < 0x7F for b in sent), sent
    assert unquote(sent.decode("ascii")) == value  # nothing lost: UTF-8, percent-encoded
    assert raw[b"x-faceledger-search-id"] == b"7"
    assert b"set-cookie" not in raw
