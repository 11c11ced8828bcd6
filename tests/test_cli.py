"""The local CLI commands: output shapes and documented exit codes on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import data_path

CLI = [sys.executable, "-m", "faceledger.cli.main"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def hopper(tmp_path_factory, grace_hopper_bytes: bytes) -> Path:  # type: ignore[no-untyped-def]
    p = tmp_path_factory.mktemp("img") / "hopper.jpg"
    p.write_bytes(grace_hopper_bytes)
    return p


def test_detect_json(hopper: Path) -> None:
    out = run("detect", str(hopper), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    face = doc["images"][0]["faces"][0]
    assert {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence", "PixelBox"} <= set(face)
    assert "AgeRange" not in face and "Gender" not in face


def test_detect_bad_inputs_exit_codes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    for path, code in ((empty, 4), (junk, 4), (text, 4), (tmp_path / "missing.jpg", 2)):
        out = run("detect", str(path))
        assert out.returncode == code, (path, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
        if code == 4:
            assert out.stderr.startswith("error: InvalidImageFormatException:")


def test_no_face_is_empty_not_an_error(tmp_path: Path) -> None:
    import numpy as np

    from faceledger.testing import png_bytes

    p = tmp_path / "sky.png"
    p.write_bytes(png_bytes(np.full((120, 200, 3), (90, 140, 220), np.uint8)))
    out = run("detect", str(p), "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["images"][0]["faces"] == []
    compare = run("compare", str(p), str(p), "--json")
    assert compare.returncode == 3 and "No face" in compare.stderr


def test_compare_reports_calibrated_scores(hopper: Path) -> None:
    a = data_path("lfw_dev", "Abel_Pacheco", "Abel_Pacheco_0001.jpg")
    b = data_path("lfw_dev", "Abel_Pacheco", "Abel_Pacheco_0002.jpg")
    same = json.loads(run("compare", str(a), str(b), "--json").stdout)
    assert same["match"] is True and same["estimated_fmr"] < 1e-4
    assert same["threshold"] == pytest.approx(57.143, abs=1e-3)
    other = json.loads(run("compare", str(a), str(hopper), "--json").stdout)
    assert other["match"] is False and other["similarity"] < other["threshold"]


def test_eval_pairs_on_a_small_slice(tmp_path: Path) -> None:
    root = data_path("lfw_dev")
    rows = (root / "pairs.tsv").read_text().splitlines()
    same = [r for r in rows[1:] if r.endswith("\t1")][:6]
    diff = [r for r in rows[1:] if r.endswith("\t0")][:6]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join([rows[0], *same, *diff]) + "\n")
    out = run("eval", "pairs", "--root", str(root), "--pairs", str(pairs), "--json", "--quiet",
              "--plot", str(tmp_path / "roc.png"))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["pairs"] == 12 and doc["accuracy_10fold"] >= 0.8 and (tmp_path / "roc.png").stat().st_size > 1000
    bad = tmp_path / "bad.tsv"
    bad.write_text("image_a\timage_b\tsame\na.jpg\tb.jpg\tmaybe\n")
    out = run("eval", "pairs", "--root", str(root), "--pairs", str(bad))
    assert out.returncode == 3 and "expected image_a" in out.stderr


def test_eval_pairs_limit_progress_and_text(tmp_path: Path) -> None:
    root = data_path("lfw_dev")
    rows = (root / "pairs.tsv").read_text().splitlines()
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join([rows[0], *rows[1:201]]) + "\n")  # the list's first blocks: same, then different
    out = run("eval", "pairs", "--root", str(root), "--pairs", str(pairs), "--limit", "10", "--procs", "1")
    assert out.returncode == 0, out.stderr
    assert "eval pairs: 10 of 200 pairs" in out.stderr and "scoring 10 pairs" in out.stderr
    assert not out.stdout.lstrip().startswith("{")  # text, not indented JSON
    assert "10 pairs (" in out.stdout and "of 200 listed" in out.stdout and "TAR at FMR 1e-3" in out.stdout
    doc = json.loads(run("eval", "pairs", "--root", str(root), "--pairs", str(pairs), "--limit", "10", "--json",
                         "--quiet", "--procs", "1").stdout)
    assert doc["pairs"] == 10 and doc["pairs_listed"] == 200 and 0 < doc["same"] < 10  # both kinds kept
    bad = run("eval", "pairs", "--root", str(root), "--pairs", str(pairs), "--limit", "9")  # 10-fold needs 10
    assert bad.returncode == 2


def test_usage_errors_are_one_line_with_exit_code_2() -> None:
    for args in (["eval", "pairs", "--bogus"], ["search"], ["keys", "create", "--role", "nobody"]):
        out = run(*args)
        assert out.returncode == 2, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: UsageError: "), out.stderr
        assert f"see `faceledger {' '.join(a for a in args[:2] if not a.startswith('-'))} --help`" in lines[0]


def test_keys_create_save_to_an_unwritable_path_leaves_no_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for target in (blocker / "reviewer.json", blocker):  # a file where the folder should be; an existing file
        out = run("keys", "create", "--role", "reviewer", "--save", str(target), "--data", str(data))
        assert out.returncode == 3 and out.stderr.startswith("error: InvalidParameterException: "), out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder"
    listed = json.loads(run("keys", "list", "--data", str(data), "--json").stdout)
    assert not [k for k in listed["Keys"] if k["role"] == "reviewer"]  # no key whose secret nobody saw
    saved = tmp_path / "ok" / "reviewer.json"
    made = run("keys", "create", "--role", "reviewer", "--save", str(saved), "--data", str(data), "--json")
    doc = json.loads(made.stdout)
    assert json.loads(saved.read_text())["SecretAccessKey"] == doc["SecretAccessKey"]
    assert saved.stat().st_mode & 0o777 == 0o600


def test_eval_pairs_limit_keeps_the_lists_same_different_mix() -> None:
    from faceledger.cli.evaluate import evenly_spaced
    from faceledger.evaluation.pairs import read_pairs

    rows = read_pairs(str(data_path("lfw_dev", "pairs.tsv")))
    share = sum(r[2] for r in rows) / len(rows)
    for limit in (10, 20, 200):
        picked = evenly_spaced(rows, limit)
        assert len(picked) == limit == len(set(picked))
        assert abs(sum(r[2] for r in picked) - share * limit) <= 0.5 + 1e-9, limit
    assert evenly_spaced(rows, None) is rows and evenly_spaced(rows, len(rows) + 1) is rows


def test_audit_export_to_an_unwritable_path_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("keys", "create", "--role", "auditor", "--data", str(data)).returncode == 0  # a ledger to export
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = run("audit", "export", str(blocker / "ledger.jsonl"), "--data", str(data))
    assert out.returncode == 3 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip() == f"error: InvalidParameterException: Cannot write {blocker / 'ledger.jsonl'}: Not a directory."


def test_serve_restart_prints_a_secret_line_a_shell_can_run(tmp_path: Path) -> None:
    from faceledger.cli.serve import startup_text
    from faceledger.profile import Profile, write_profile

    profile = tmp_path / "my data" / "profile.json"
    write_profile(profile, Profile("http://127.0.0.1:1", "AKIAEXAMPLE000000000", "s3cr/et+'x"))
    text = startup_text({"Endpoint": "http://127.0.0.1:1", "Region": "us-east-1", "DataDir": str(profile.parent),
                         "Profile": str(profile), "ModelVersion": "m", "AccessKeyId": "AKIAEXAMPLE000000000",
                         "KeyCreated": False, "SecretAccessKey": None, "Console": "c",
                         "LedgerKeyFile": "k"})
    line = next(ln.strip() for ln in text.splitlines() if "AWS_SECRET_ACCESS_KEY" in ln)
    assert "s3cr" not in line  # a restart does not print the secret
    done = subprocess.run(["bash", "-c", f'{line}; printf %s "$AWS_SECRET_ACCESS_KEY"'], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "s3cr/et+'x", done.stderr


def test_the_index_journal_in_the_data_directory_is_private(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import os
    import stat

    from faceledger.cli.enrol import Journal

    old = os.umask(0o022)  # a user's usual umask: the journal must not depend on it
    try:
        data = tmp_path / "data"
        monkeypatch.setenv("FACELEDGER_DATA_DIR", str(data))
        journal = Journal("http://127.0.0.1:1", "people")
        journal.add({"sha256": "ab" * 32, "path": "/photos/Jane_Doe.jpg", "face_ids": []})
        journal.add({"sha256": "cd" * 32, "path": "/photos/John_Roe.jpg", "face_ids": []})
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE(journal.path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
        assert Journal("http://127.0.0.1:1", "people").done == {"ab" * 32, "cd" * 32}
    finally:
        os.umask(old)


def test_a_local_video_copied_into_the_data_directory_is_private(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import os
    import stat

    from faceledger.cli.video import _s3_object

    clip = tmp_path / "family.mp4"
    clip.write_bytes(b"\0" * 4096)
    old = os.umask(0o022)  # a user's usual umask: people's videos must not depend on it
    try:
        data = tmp_path / "data"
        monkeypatch.setenv("FACELEDGER_DATA_DIR", str(data))
        ref = _s3_object(str(clip))
        copied = data / "buckets" / ref["Bucket"] / ref["Name"]
        assert copied.read_bytes() == clip.read_bytes()
        assert stat.S_IMODE(copied.stat().st_mode) == 0o600
        for folder in (data, data / "buckets", copied.parent):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        assert sorted(p.name for p in copied.parent.iterdir()) == [ref["Name"]]  # no .part left
    finally:
        os.umask(old)
