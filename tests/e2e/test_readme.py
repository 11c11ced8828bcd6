"""The README's AWS CLI lines, run as written (KEY, SECRET and the port filled in) on a machine with no AWS setup."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import both_stores

README = Path(__file__).resolve().parents[2] / "README.md"
README_ENDPOINT = "http://127.0.0.1:8765"


def aws_blocks() -> list[str]:
    """The README's ``sh`` blocks that call the AWS CLI."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    return [b for b in blocks if "aws rekognition" in b]


def test_the_readme_has_both_aws_cli_blocks() -> None:
    blocks = aws_blocks()
    assert len(blocks) == 2
    assert all(README_ENDPOINT in b and re.search(r"\bKEY\b", b) and re.search(r"\bSECRET\b", b) for b in blocks)


@both_stores
@pytest.mark.parametrize("which", [0, 1], ids=["environment", "named-profile"])
def test_readme_aws_cli_block_works_on_a_fresh_machine(server, tmp_path, which: int) -> None:  # type: ignore[no-untyped-def]
    aws = shutil.which("aws", path=os.path.dirname(os.sys.executable)) or shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI is not installed")
    log = server.log.read_text()
    assert f"export AWS_ACCESS_KEY_ID={server.key}" in log  # what the README tells people to copy
    script = aws_blocks()[which].replace(README_ENDPOINT, server.endpoint)
    script = re.sub(r"\bSECRET\b", server.secret, re.sub(r"\bKEY\b", server.key, script))
    home = tmp_path / "home"
    home.mkdir()
    # a fresh machine: no AWS_* variables, no ~/.aws, only the AWS CLI on the PATH
    env = {"PATH": f"{os.path.dirname(aws)}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert "CollectionIds" in json.loads(done.stdout)
