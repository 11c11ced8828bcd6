"""Docs stay honest: every setting, CLI command, operation and ledger event type is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click

from faceledger.cli.main import cli
from faceledger.service.assembly import FACELEDGER_OPERATIONS
from faceledger.service.assembly import OPERATIONS as REKOGNITION_OPERATIONS
from faceledger.settings import Settings

OPERATIONS = {**REKOGNITION_OPERATIONS, **FACELEDGER_OPERATIONS}

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXTRA_EVENTS = ("DeletionReceipt", "PolicyLoaded", "Checkpoint", "SigningKey", "FaceDetectionCompleted",
                "FaceSearchCompleted", "ConsoleSignIn", "ConsoleSignInFailed", "ConsoleSignOut",
                "CollectionMigrated")
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


def _leaves(group: click.Group, prefix: str = ""):  # type: ignore[no-untyped-def]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _leaves(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def test_every_command_takes_json() -> None:
    """README and cli.md say every command takes --json; hold them to it."""
    missing = [name for name, cmd in _leaves(cli)
               if "--json" not in {o for p in cmd.params for o in getattr(p, "opts", [])}]
    assert not missing, missing
    assert "Every command takes `--json`" in read("cli.md")


def _figures(doc: str, pattern: str) -> tuple[float, ...]:
    found = re.search(pattern, read(doc))
    assert found, f"{doc} no longer states {pattern!r}; update it and this test together"
    return tuple(float(g) for g in found.groups())


def test_measured_figures_agree() -> None:
    """Measured figures live in benchmarks.md; every copy in another doc must say the same."""
    tar3_raw, tar4_raw = _figures("benchmarks.md", r"\| TAR at FMR 1e-3 / 1e-4 \| ([\d.]+)% / ([\d.]+)% \|")
    _, _, tar4_cohort, tar3_cohort = _figures(
        "benchmarks.md", r"\| lfw_dev TAR at FMR 1e-4 / 1e-3 \| ([\d.]+)% / ([\d.]+)% \| ([\d.]+)% / ([\d.]+)% \|")
    mated_raw, mated_cohort = _figures(
        "benchmarks.md", r"open-set mated hit rate, gallery 2,283 / strangers with a candidate \| ([\d.]+)% / "
        r"\d+ of 600 \| ([\d.]+)% /")
    assert _figures("benchmarks.md", r"mated probes whose mate is the top candidate \| ([\d.]+)% \|") == (mated_raw,)
    copies = [
        ("model-card.md", r"TAR at FMR 1e-3 / 1e-4 \(thresholds[^|]*\| ([\d.]+)% / ([\d.]+)% \|", (tar3_raw, tar4_raw)),
        ("model-card.md", r"mated hit rate at the default \(3,527 mated probes\) \| ([\d.]+)% \|", (mated_raw,)),
        ("model-card.md", r"TAR at FMR 1e-4 on lfw_dev is ([\d.]+)% instead of\s+([\d.]+)%", (tar4_cohort, tar4_raw)),
        ("scores.md", r"TAR at FMR 1e-4 on lfw_dev\s+pairs falls from ([\d.]+)% to ([\d.]+)%", (tar4_raw, tar4_cohort)),
        ("fairness.md", r"TAR at FMR 1e-4\s+falls from ([\d.]+)% to ([\d.]+)%", (tar4_raw, tar4_cohort)),
        ("fairness.md", r"\| TAR at FMR 1e-3, pairs\.tsv[^|]*\| ([\d.]+)% \| ([\d.]+)% \|", (tar3_raw, tar3_cohort)),
        ("fairness.md", r"\| TAR at FMR 1e-4, same \| ([\d.]+)% \| ([\d.]+)% \|", (tar4_raw, tar4_cohort)),
        ("fairness.md", r"gallery 2,283 \(`eval identify --strangers 600`\): mated hit rate at the default \| "
                        r"([\d.]+)% \| ([\d.]+)% \|", (mated_raw, mated_cohort)),
    ]
    for doc, pattern, want in copies:
        got = tuple(round(v, 1) for v in _figures(doc, pattern))
        assert got == want, f"{doc}: {pattern!r} says {got}, benchmarks.md says {want}"


def test_every_model_pack_field_is_documented() -> None:
    """docs/model-packs.md has a table row for every field a pack.json may hold."""
    from faceledger.engine.pack_manifest import (
        LICENCE_FIELDS,
        NETWORK_FIELDS,
        NORMALISATION_FIELDS,
        TOP_FIELDS,
    )

    text = read("model-packs.md")
    names = [*TOP_FIELDS, *(f"licence.{f}" for f in LICENCE_FIELDS), *NETWORK_FIELDS,
             *(f"normalisation.{f}" for f in NORMALISATION_FIELDS)]
    missing = [n for n in names if f"| `{n}`" not in text and f"`{n}` |" not in text and f", `{n}`" not in text]
    assert not missing, missing
