"""The catalog's SQL schema as an ordered list of migrations.

This module only declares DDL; :mod:`faceledger.store.db` applies it. A
migration, once released, is never edited: a change to the schema is a new
entry at the end of :data:`MIGRATIONS`. It must not hold queries or logic.
"""

from __future__ import annotations

# The built-in pack's descriptor (dlib's ResNet): the only size schema v1-v5 could hold, so the
# only size a legacy plaintext vector can have. Since v6 a collection's own ``dim`` decides.
VECTOR_DIM = 128
VECTOR_BYTES = VECTOR_DIM * 4  # float32, little-endian
SEALING_OVERHEAD = 12 + 16  # AES-GCM nonce and tag (store/sealing.py)
SEALED_VECTOR_BYTES = VECTOR_BYTES + SEALING_OVERHEAD
MAX_VECTOR_DIM = 4096  # engine/descriptor_spec.py

_V1 = f"""
CREATE TABLE collections (
    collection_id TEXT PRIMARY KEY,
    model_version TEXT NOT NULL,
    created_at    REAL NOT NULL,
    tags          TEXT NOT NULL DEFAULT '{{}}',
    face_count    INTEGER NOT NULL DEFAULT 0,
    user_count    INTEGER NOT NULL DEFAULT 0
);

-- The vector lives in the face row: a face cannot exist without its vector.
CREATE TABLE faces (
    face_id           TEXT PRIMARY KEY,
    collection_id     TEXT NOT NULL
                      REFERENCES collections(collection_id) ON DELETE CASCADE,
    image_id          TEXT NOT NULL,
    external_image_id TEXT,
    bbox              TEXT NOT NULL,
    confidence        REAL NOT NULL,
    extra             TEXT NOT NULL DEFAULT '{{}}',
    user_id           TEXT,
    image_sha256      TEXT,
    created_at        REAL NOT NULL,
    vector            BLOB NOT NULL CHECK (length(vector) = {VECTOR_BYTES})
);
CREATE INDEX faces_by_collection ON faces(collection_id, face_id);
CREATE INDEX faces_by_user ON faces(collection_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX faces_by_image_hash ON faces(collection_id, image_sha256)
    WHERE image_sha256 IS NOT NULL;

CREATE TABLE users (
    collection_id TEXT NOT NULL
                  REFERENCES collections(collection_id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL,
    created_at    REAL NOT NULL,
    PRIMARY KEY (collection_id, user_id)
);

-- Counters kept by triggers so they can never drift from the rows.
CREATE TRIGGER faces_count_insert AFTER INSERT ON faces BEGIN
    UPDATE collections SET face_count = face_count + 1
    WHERE collection_id = NEW.collection_id;
END;
CREATE TRIGGER faces_count_delete AFTER DELETE ON faces BEGIN
    UPDATE collections SET face_count = face_count - 1
    WHERE collection_id = OLD.collection_id;
END;
CREATE TRIGGER users_count_insert AFTER INSERT ON users BEGIN
    UPDATE collections SET user_count = user_count + 1
    WHERE collection_id = NEW.collection_id;
END;
CREATE TRIGGER users_count_delete AFTER DELETE ON users BEGIN
    UPDATE collections SET user_count = user_count - 1
    WHERE collection_id = OLD.collection_id;
END;

CREATE TABLE idempotency (
    operation   TEXT NOT NULL,
    token       TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (operation, token)
);

CREATE TABLE api_keys (
    access_key_id TEXT PRIMARY KEY,
    secret_enc    BLOB NOT NULL,
    role          TEXT NOT NULL,
    label         TEXT,
    defaults      TEXT NOT NULL DEFAULT '{{}}',
    created_at    REAL NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0,
    revoked_at    REAL
);

CREATE TABLE state (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL
);

CREATE TABLE ledger (
    seq           INTEGER PRIMARY KEY,
    at            REAL NOT NULL,
    principal     TEXT,
    operation     TEXT NOT NULL,
    collection_id TEXT,
    details       TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX ledger_by_operation ON ledger(operation, seq);
CREATE INDEX ledger_by_principal ON ledger(principal, seq);
CREATE INDEX ledger_by_collection ON ledger(collection_id, seq);
CREATE INDEX ledger_by_time ON ledger(at);
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only: records cannot be updated');
END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only: records cannot be deleted');
END;
"""

# Accountability: consent records and human review decisions.
_V2 = """
CREATE TABLE consents (
    consent_id     TEXT PRIMARY KEY,
    subject        TEXT NOT NULL,
    notice_text    TEXT NOT NULL,
    notice_version TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    term_days      INTEGER,
    given_at       REAL NOT NULL,
    withdrawn_at   REAL,
    created_by     TEXT
);

CREATE TABLE reviews (
    search_seq  INTEGER NOT NULL,
    candidate   TEXT NOT NULL,
    reviewer    TEXT NOT NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('CONFIRM', 'REJECT')),
    reason      TEXT NOT NULL,
    at          REAL NOT NULL,
    PRIMARY KEY (search_seq, candidate, reviewer)
);
"""

# Vectors sealed at rest: a vector is 540 bytes (12-byte nonce, 512 encrypted, 16-byte tag) once
# Catalog.open has sealed it; 512-byte plaintext rows are legal only until then. SQLite cannot
# alter a CHECK, so the table is rebuilt (nothing references faces; its triggers and indexes are
# recreated; face_count is not touched because the copy and the drop fire no triggers).
_V3 = f"""
CREATE TABLE faces_v3 (
    face_id           TEXT PRIMARY KEY,
    collection_id     TEXT NOT NULL
                      REFERENCES collections(collection_id) ON DELETE CASCADE,
    image_id          TEXT NOT NULL,
    external_image_id TEXT,
    bbox              TEXT NOT NULL,
    confidence        REAL NOT NULL,
    extra             TEXT NOT NULL DEFAULT '{{}}',
    user_id           TEXT,
    image_sha256      TEXT,
    created_at        REAL NOT NULL,
    vector            BLOB NOT NULL CHECK (length(vector) IN ({VECTOR_BYTES}, {SEALED_VECTOR_BYTES}))
);
INSERT INTO faces_v3 (face_id, collection_id, image_id, external_image_id, bbox, confidence, extra,
                      user_id, image_sha256, created_at, vector)
    SELECT face_id, collection_id, image_id, external_image_id, bbox, confidence, extra,
           user_id, image_sha256, created_at, vector FROM faces;
DROP TABLE faces;
ALTER TABLE faces_v3 RENAME TO faces;
CREATE INDEX faces_by_collection ON faces(collection_id, face_id);
CREATE INDEX faces_by_user ON faces(collection_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX faces_by_image_hash ON faces(collection_id, image_sha256)
    WHERE image_sha256 IS NOT NULL;
CREATE TRIGGER faces_count_insert AFTER INSERT ON faces BEGIN
    UPDATE collections SET face_count = face_count + 1
    WHERE collection_id = NEW.collection_id;
END;
CREATE TRIGGER faces_count_delete AFTER DELETE ON faces BEGIN
    UPDATE collections SET face_count = face_count - 1
    WHERE collection_id = OLD.collection_id;
END;
"""

# Face thumbnails for review (a per-collection choice), sealed under the master key.
# An enrolled face's thumbnail goes with its face row (cascade); a search's probe
# thumbnail is kept with its review record until expires_at.
_V4 = """
CREATE TABLE thumbnails (
    face_id        TEXT PRIMARY KEY REFERENCES faces(face_id) ON DELETE CASCADE,
    collection_id  TEXT NOT NULL,
    sealed         BLOB NOT NULL,
    created_at     REAL NOT NULL,
    expires_at     REAL NOT NULL
);
CREATE INDEX thumbnails_by_expiry ON thumbnails(expires_at);

CREATE TABLE probe_thumbnails (
    search_seq     INTEGER PRIMARY KEY,
    collection_id  TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    sealed         BLOB NOT NULL,
    created_at     REAL NOT NULL,
    expires_at     REAL NOT NULL
);
CREATE INDEX probe_thumbnails_by_expiry ON probe_thumbnails(expires_at);
"""

# The review queue's index: searches that may still have undecided candidates. A
# hint, not the truth (the service checks each against the reviews table and drops
# the ones fully decided); filled from the ledger for data written before it.
_V5 = """
CREATE TABLE review_pending (
    search_seq     INTEGER PRIMARY KEY,
    collection_id  TEXT
);
CREATE INDEX review_pending_by_collection ON review_pending(collection_id, search_seq);
INSERT INTO review_pending (search_seq, collection_id)
SELECT seq, collection_id FROM ledger
WHERE operation IN ('SearchFaces', 'SearchFacesByImage', 'SearchUsers', 'SearchUsersByImage',
                    'CompareFaces', 'FaceSearchCompleted')
  AND json_extract(details, '$.refused') IS NULL
  AND (COALESCE(json_array_length(details, '$.candidates'), 0) > 0
       OR (operation = 'CompareFaces' AND COALESCE(json_array_length(details, '$.matches'), 0) > 0));
"""

# Model packs: a collection records its descriptor's dimension and metric (from the pack it is pinned
# to; every collection before v6 holds dlib's 128-d Euclidean vectors), and a face's vector may have
# any size up to MAX_VECTOR_DIM floats; the store checks it against its collection's dim. The faces
# table is rebuilt for the CHECK as in v3, with the thumbnails copied aside first: foreign keys are on
# while migrations run, so dropping ``faces`` would cascade into ``thumbnails``.
_V6 = f"""
ALTER TABLE collections ADD COLUMN dim INTEGER NOT NULL DEFAULT {VECTOR_DIM}
    CHECK (dim BETWEEN 1 AND {MAX_VECTOR_DIM});
ALTER TABLE collections ADD COLUMN metric TEXT NOT NULL DEFAULT 'euclidean'
    CHECK (metric IN ('euclidean', 'cosine'));
CREATE TEMP TABLE thumbnails_v6 AS SELECT * FROM thumbnails;
CREATE TABLE faces_v6 (
    face_id           TEXT PRIMARY KEY,
    collection_id     TEXT NOT NULL
                      REFERENCES collections(collection_id) ON DELETE CASCADE,
    image_id          TEXT NOT NULL,
    external_image_id TEXT,
    bbox              TEXT NOT NULL,
    confidence        REAL NOT NULL,
    extra             TEXT NOT NULL DEFAULT '{{}}',
    user_id           TEXT,
    image_sha256      TEXT,
    created_at        REAL NOT NULL,
    vector            BLOB NOT NULL CHECK (length(vector) % 4 = 0
                      AND length(vector) BETWEEN 4 AND {4 * MAX_VECTOR_DIM + SEALING_OVERHEAD})
);
INSERT INTO faces_v6 (face_id, collection_id, image_id, external_image_id, bbox, confidence, extra,
                      user_id, image_sha256, created_at, vector)
    SELECT face_id, collection_id, image_id, external_image_id, bbox, confidence, extra,
           user_id, image_sha256, created_at, vector FROM faces;
DROP TABLE faces;
ALTER TABLE faces_v6 RENAME TO faces;
CREATE INDEX faces_by_collection ON faces(collection_id, face_id);
CREATE INDEX faces_by_user ON faces(collection_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX faces_by_image_hash ON faces(collection_id, image_sha256)
    WHERE image_sha256 IS NOT NULL;
CREATE TRIGGER faces_count_insert AFTER INSERT ON faces BEGIN
    UPDATE collections SET face_count = face_count + 1
    WHERE collection_id = NEW.collection_id;
END;
CREATE TRIGGER faces_count_delete AFTER DELETE ON faces BEGIN
    UPDATE collections SET face_count = face_count - 1
    WHERE collection_id = OLD.collection_id;
END;
INSERT INTO thumbnails SELECT * FROM temp.thumbnails_v6;
DROP TABLE temp.thumbnails_v6;

-- A migration in place stages each face's vector under the new pack here, batch by batch, while
-- the collection keeps serving its old pack; one transaction then swaps them all in with the
-- collection's model version, or nothing changes. A face deleted meanwhile takes its row along.
CREATE TABLE staged_vectors (
    face_id       TEXT PRIMARY KEY REFERENCES faces(face_id) ON DELETE CASCADE,
    collection_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    vector        BLOB NOT NULL,
    source        TEXT NOT NULL,
    staged_at     REAL NOT NULL
);
CREATE INDEX staged_vectors_by_collection ON staged_vectors(collection_id, model_version);
"""

# Several API processes on one store. ``face_changes`` is a log of face rows written and removed
# (and of collections dropped: face_id NULL), filled by triggers in the same transaction as the
# change, so a process's in-memory index can catch up with the others' writes incrementally
# (store/synced_index.py). AUTOINCREMENT: a sequence number is never reused, even after the
# retention sweep prunes old entries, so a gap tells a reader it fell too far behind. ``leases``:
# named, expiring claims (the retention sweep's turn, a running video job) so that exactly one
# process does a piece of background work. ``console_sessions``: console sign-ins every process
# knows (the cookie only as its SHA-256; service/console_sessions.py).
_V7 = """
CREATE TABLE face_changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id  TEXT NOT NULL,
    face_id        TEXT,
    at             REAL NOT NULL
);
CREATE INDEX face_changes_by_time ON face_changes(at);
CREATE TRIGGER faces_change_insert AFTER INSERT ON faces BEGIN
    INSERT INTO face_changes(collection_id, face_id, at)
    VALUES (NEW.collection_id, NEW.face_id, (julianday('now') - 2440587.5) * 86400.0);
END;
CREATE TRIGGER faces_change_delete AFTER DELETE ON faces BEGIN
    INSERT INTO face_changes(collection_id, face_id, at)
    VALUES (OLD.collection_id, OLD.face_id, (julianday('now') - 2440587.5) * 86400.0);
END;
CREATE TRIGGER collections_change_delete AFTER DELETE ON collections BEGIN
    INSERT INTO face_changes(collection_id, face_id, at)
    VALUES (OLD.collection_id, NULL, (julianday('now') - 2440587.5) * 86400.0);
END;
-- a migration in place re-pins the collection and swaps every vector: readers reload it whole
CREATE TRIGGER collections_change_repin AFTER UPDATE OF model_version ON collections BEGIN
    INSERT INTO face_changes(collection_id, face_id, at)
    VALUES (NEW.collection_id, NULL, (julianday('now') - 2440587.5) * 86400.0);
END;

CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  REAL NOT NULL
);

CREATE TABLE console_sessions (
    digest      TEXT PRIMARY KEY,
    ledger_ref  TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    seen_at     REAL NOT NULL
);
CREATE INDEX console_sessions_by_seen ON console_sessions(seen_at);
"""

# (version, script). Version numbers start at 1 and have no gaps.
# A later migration that rebuilds ``faces`` as _V3 does must keep the thumbnails: migrations run with
# foreign keys on, so ``DROP TABLE faces`` deletes every row first and ON DELETE CASCADE empties
# ``thumbnails`` (v4). Copy them aside, or rebuild both tables, in that migration.
MIGRATIONS: list[tuple[int, str]] = [
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
    (7, _V7),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
