"""The AWS SDK for JavaScript v3 as a second real client: ``npm ci`` once, then ``sdk_call.mjs`` per call.

``js_sdk`` (a session fixture in tests/conftest.py) installs tests/js's locked
dependencies into tests/js/node_modules (ignored) and skips, with the reason,
where node or npm is absent or the install fails.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).parent / "js"


class JsSdk:
    """Call a Rekognition operation through the JS SDK; the answer includes the raw HTTP headers."""

    def __init__(self, node: str) -> None:
        self.node = node

    def call(self, endpoint: str, key: str, secret: str, operation: str, params: dict[str, Any],
             headers: dict[str, str] | None = None) -> dict[str, Any]:
        request = {"endpoint": endpoint, "region": "us-east-1", "accessKeyId": key, "secretAccessKey": secret,
                   "operation": operation, "params": _b64(params), "headers": headers or {}}
        done = subprocess.run([self.node, str(JS_DIR / "sdk_call.mjs")], input=json.dumps(request),
                              capture_output=True, text=True, timeout=120, cwd=JS_DIR)
        if done.returncode != 0 or not done.stdout:
            raise RuntimeError(f"sdk_call.mjs failed ({done.returncode}): {done.stderr[-2000:]}")
        out: dict[str, Any] = json.loads(done.stdout)
        return out


def _b64(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: _b64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_b64(v) for v in value]
    return value


def install() -> tuple[JsSdk | None, str]:
    """(the SDK, "") once tests/js's dependencies are installed, else (None, why not)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, "node and npm are needed for the JavaScript SDK tests"
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "client-rekognition").is_dir():
        try:
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR,
                                  capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return None, "npm ci in tests/js took over 10 minutes"
        if done.returncode != 0:
            return None, f"npm ci in tests/js failed: {done.stderr.strip()[-500:]}"
    return JsSdk(node), ""
