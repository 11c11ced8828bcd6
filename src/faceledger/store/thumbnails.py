"""Face thumbnails for human review (tables ``thumbnails`` and ``probe_thumbnails``).

Rows hold JPEG bytes sealed with the master key (AES-256-GCM), the face id or
search number bound in as associated data so a sealed image moved to another
row does not open. An enrolled face's thumbnail is deleted with its face row
by the database (ON DELETE CASCADE); expiry is the service's rule, this
module only deletes what it is told.
"""

from __future__ import annotations

from faceledger.store.protocols import SqlConnection
from faceledger.store.sealing import Sealer


def _face_context(face_id: str) -> str:
    return f"thumbnail:face:{face_id}"


def _probe_context(search_seq: int) -> str:
    return f"thumbnail:probe:{search_seq}"


def add_face(conn: SqlConnection, sealer: Sealer, face_id: str, collection_id: str, jpeg: bytes,
             at: float, expires_at: float) -> None:
    conn.execute("INSERT INTO thumbnails (face_id, collection_id, sealed, created_at, expires_at) "
                 "VALUES (?,?,?,?,?)", (face_id, collection_id, sealer.seal_bytes(jpeg, _face_context(face_id)),
                                        at, expires_at))


def get_face(conn: SqlConnection, sealer: Sealer, face_id: str) -> bytes | None:
    row = conn.execute("SELECT sealed FROM thumbnails WHERE face_id = ?", (face_id,)).fetchone()
    return None if row is None else sealer.open_bytes(row["sealed"], _face_context(face_id))


def add_probe(conn: SqlConnection, sealer: Sealer, search_seq: int, collection_id: str, jpeg: bytes,
              at: float, expires_at: float) -> None:
    conn.execute("INSERT INTO probe_thumbnails (search_seq, collection_id, sealed, created_at, expires_at) "
                 "VALUES (?,?,?,?,?)", (search_seq, collection_id,
                                        sealer.seal_bytes(jpeg, _probe_context(search_seq)), at, expires_at))


def get_probe(conn: SqlConnection, sealer: Sealer, search_seq: int) -> bytes | None:
    row = conn.execute("SELECT sealed FROM probe_thumbnails WHERE search_seq = ?", (search_seq,)).fetchone()
    return None if row is None else sealer.open_bytes(row["sealed"], _probe_context(search_seq))


def expired(conn: SqlConnection, now: float) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    """((face_id, collection_id), ...) and ((search_seq, collection_id), ...) whose time is up."""
    faces = conn.execute("SELECT face_id, collection_id FROM thumbnails WHERE expires_at <= ? "
                         "ORDER BY collection_id, face_id", (now,)).fetchall()
    probes = conn.execute("SELECT search_seq, collection_id FROM probe_thumbnails WHERE expires_at <= ? "
                          "ORDER BY search_seq", (now,)).fetchall()
    return [(r[0], r[1]) for r in faces], [(int(r[0]), r[1]) for r in probes]


def delete_faces(conn: SqlConnection, face_ids: list[str]) -> int:
    return sum(conn.execute("DELETE FROM thumbnails WHERE face_id = ?", (f,)).rowcount for f in face_ids)


def delete_probes(conn: SqlConnection, seqs: list[int]) -> int:
    return sum(conn.execute("DELETE FROM probe_thumbnails WHERE search_seq = ?", (s,)).rowcount for s in seqs)
