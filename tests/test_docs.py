"""Docs stay honest: every setting, CLI command, operation and ledger event type is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click

from faceledger.cli.main import cli
from faceledger.service.operations import OPERATIONS
from faceledger.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXTRA_EVENTS = ("DeletionReceipt", "PolicyLoaded", "Checkpoint", "SigningKey", "FaceDetectionCompleted",
                "FaceSearchCompleted")
UNRECORDED = ("DescribeCollection", "ListCollections", "ListTagsForResource", "GetStatus",
              "ListConsents", "RetentionSchedule", "GetReview", "CreateCheckpoint", "GetFaceDetection",
              "GetFaceSearch")


def read(name: str) -> str:
    return (DOCS / name).read_text()


def commands(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out += commands(cmd, full + " ")
        else:
            out.append(full)
    return out


def test_every_setting_is_documented() -> None:
    text = read("settings.md")
    for f in dataclasses.fields(Settings):
        assert f"`{f.name}`" in text and f"FACELEDGER_{f.name.upper()}" in text, f.name


def test_every_video_setting_is_documented() -> None:
    from faceledger.video.settings import VideoSettings

    text = read("settings.md")
    for f in dataclasses.fields(VideoSettings):
        assert f"FACELEDGER_VIDEO_{f.name.upper()}" in text, f.name


def test_every_cli_command_is_documented() -> None:
    text = read("cli.md")
    missing = [c for c in commands(cli) if f"faceledger {c}" not in text and not _grouped(c, text)]
    assert not missing, missing


def _grouped(command: str, text: str) -> bool:
    """`faceledger keys list` may be written as part of `faceledger keys create|list|revoke`."""
    group, _, sub = command.rpartition(" ")
    return bool(group) and re.search(rf"faceledger {re.escape(group)} [\w|-]*\b{re.escape(sub)}\b", text) is not None


def test_every_operation_is_documented() -> None:
    text = read("operations.md")
    for op in OPERATIONS:
        assert f"**{op}**" in text or f"`{op}`" in text or f"**{op} " in text or f"/ {op}" in text, op


def test_every_ledger_event_type_is_documented() -> None:
    text = read("ledger.md")
    for op in [*OPERATIONS, *EXTRA_EVENTS]:
        if op in UNRECORDED:
            assert f"`{op}`" in text or op == "CreateCheckpoint", op  # listed as not recorded
            continue
        assert f"`{op}`" in text, op
