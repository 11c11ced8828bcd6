"""SIGKILL in the middle of a stream of IndexFaces loses nothing acknowledged, half-writes nothing."""

from __future__ import annotations

import json
import threading
import time

from ..conftest import data_path
from .conftest import both_stores, start_server


@both_stores
def test_kill_mid_stream_then_restart(tmp_path, store) -> None:  # type: ignore[no-untyped-def]
    root = data_path("lfw_dev")
    images = [p.read_bytes() for p in sorted(root.glob("A*/*_0001.jpg"))[:40]]
    data = tmp_path / "data"
    srv = start_server(data, workers=2, store=store)
    rek = srv.client(retries={"max_attempts": 1})
    rek.create_collection(CollectionId="stream")
    acked: list[str] = []
    stop = threading.Event()

    def feed(offset: int) -> None:
        c = srv.client(retries={"max_attempts": 1})
        for img in images[offset::2]:
            if stop.is_set():
                return
            try:
                out = c.index_faces(CollectionId="stream", Image={"Bytes": img}, MaxFaces=1)
            except Exception:  # the server died under us: not acknowledged
                return
            acked.extend(r["Face"]["FaceId"] for r in out["FaceRecords"])

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + 120
    while len(acked) < 8 and time.time() < deadline:
        time.sleep(0.05)
    srv.crash()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 8
    assert (data / "catalog.db").exists() == (store is None)  # on PostgreSQL nothing durable is in the data dir

    again = start_server(data, workers=1, store=store)
    try:
        rek = again.client()
        listed = {f["FaceId"] for p in rek.get_paginator("list_faces").paginate(CollectionId="stream")
                  for f in p["Faces"]}
        assert set(acked) <= listed  # nothing acknowledged was lost
        assert rek.describe_collection(CollectionId="stream")["FaceCount"] == len(listed)
        verify = again.cli("audit", "verify", "--json")
        assert verify.returncode == 0 and json.loads(verify.stdout)["ok"], verify.stdout + verify.stderr
        shown = json.loads(again.cli("audit", "show", "--operation", "IndexFaces", "--limit", "1000", "--json").stdout)
        in_ledger = {fid for r in shown["records"] for fid in r["details"]["face_ids"]}
        assert in_ledger == listed  # every face has its ledger record and no record lacks its face
        # the index was rebuilt: every stored face is searchable
        probe = rek.search_faces(CollectionId="stream", FaceId=sorted(listed)[0])
        assert "FaceMatches" in probe
    finally:
        again.stop()
