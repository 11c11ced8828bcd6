"""The PostgreSQL catalog's schema as an ordered list of migrations (the counterpart of store/schema.py).

This module only declares DDL; :mod:`faceledger.store.pg_db` applies it. A
migration, once released, is never edited: a change is a new entry at the end.

Citus-valid by construction (docs/scale-out.md, "Store"): every table that belongs
to a collection carries ``collection_id`` as the first column of its PRIMARY KEY
and of every UNIQUE constraint (the distribution column); foreign keys run only
between collection tables and include ``collection_id`` (co-located); the global
tables (keys, state, idempotency, consents, reviews, review_pending, ledger) are
reference or coordinator-local tables and no collection table references them.
The ledger is one global table with ``seq bigint PRIMARY KEY``.

Column types mirror the SQLite schema so the table modules read the same values:
JSON stays ``text`` (the ledger's ``details`` must round-trip byte for byte: it is
hashed), times are ``double precision`` (SQLite REAL), secrets ``bytea``. The face
vector is ``embedding vector`` (pgvector, unconstrained so packs can differ in
dimension; plaintext: pgvector must read it) instead of SQLite's sealed blob.
"""

from __future__ import annotations

# Held (transaction-scoped) by every ledger append and by the migration: one writer at a time
# reads the ledger head, so several processes still write one linear chain.
LEDGER_LOCK = 0x4C454447  # "LEDG"
MIGRATION_LOCK = 0x4D494752  # "MIGR"
# First key of the two-key advisory lock one (operation, ClientRequestToken) takes (store/state.py):
# the two-key space is separate from the one-key locks above.
TOKEN_LOCK = 0x49444D50  # "IDMP"

_V1 = """
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE collections (
    collection_id TEXT PRIMARY KEY,
    model_version TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    tags          TEXT NOT NULL DEFAULT '{}',
    face_count    BIGINT NOT NULL DEFAULT 0,
    user_count    BIGINT NOT NULL DEFAULT 0
);

-- One partition per collection (store/pg_vectors.py creates them); rows of a collection
-- without its own partition land in the default one.
CREATE TABLE faces (
    collection_id     TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    face_id           TEXT NOT NULL,
    image_id          TEXT NOT NULL,
    external_image_id TEXT,
    bbox              TEXT NOT NULL,
    confidence        DOUBLE PRECISION NOT NULL,
    extra             TEXT NOT NULL DEFAULT '{}',
    user_id           TEXT,
    image_sha256      TEXT,
    created_at        DOUBLE PRECISION NOT NULL,
    embedding         vector NOT NULL,
    PRIMARY KEY (collection_id, face_id)
) PARTITION BY LIST (collection_id);
CREATE TABLE faces_default PARTITION OF faces DEFAULT;
CREATE INDEX faces_by_user ON faces(collection_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX faces_by_image_hash ON faces(collection_id, image_sha256) WHERE image_sha256 IS NOT NULL;
CREATE INDEX faces_by_consent ON faces(((extra::jsonb) ->> 'consent_id'))
    WHERE (extra::jsonb) ? 'consent_id';

CREATE TABLE users (
    collection_id TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (collection_id, user_id)
);

-- Counters kept by triggers so they can never drift from the rows (as in SQLite); replaced in version 2.
CREATE FUNCTION faceledger_count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('UPDATE collections SET %I = %I + 1 WHERE collection_id = $1', TG_ARGV[0], TG_ARGV[0])
            USING NEW.collection_id;
    ELSE
        EXECUTE format('UPDATE collections SET %I = %I - 1 WHERE collection_id = $1', TG_ARGV[0], TG_ARGV[0])
            USING OLD.collection_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER faces_count AFTER INSERT OR DELETE ON faces
    FOR EACH ROW EXECUTE FUNCTION faceledger_count_rows('face_count');
CREATE TRIGGER users_count AFTER INSERT OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION faceledger_count_rows('user_count');

CREATE TABLE idempotency (
    operation   TEXT NOT NULL,
    token       TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (operation, token)
);

CREATE TABLE api_keys (
    access_key_id TEXT PRIMARY KEY,
    secret_enc    BYTEA NOT NULL,
    role          TEXT NOT NULL,
    label         TEXT,
    defaults      TEXT NOT NULL DEFAULT '{}',
    created_at    DOUBLE PRECISION NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0,
    revoked_at    DOUBLE PRECISION
);

CREATE TABLE state (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE ledger (
    seq           BIGINT PRIMARY KEY,
    at            DOUBLE PRECISION NOT NULL,
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
CREATE FUNCTION faceledger_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: records cannot be %', lower(TG_OP) || 'd';
END $$;
CREATE TRIGGER ledger_no_change BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION faceledger_ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION faceledger_ledger_append_only();

CREATE TABLE consents (
    consent_id     TEXT PRIMARY KEY,
    subject        TEXT NOT NULL,
    notice_text    TEXT NOT NULL,
    notice_version TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    term_days      INTEGER,
    given_at       DOUBLE PRECISION NOT NULL,
    withdrawn_at   DOUBLE PRECISION,
    created_by     TEXT
);

CREATE TABLE reviews (
    search_seq  BIGINT NOT NULL,
    candidate   TEXT NOT NULL,
    reviewer    TEXT NOT NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('CONFIRM', 'REJECT')),
    reason      TEXT NOT NULL,
    at          DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (search_seq, candidate, reviewer)
);

CREATE TABLE thumbnails (
    collection_id  TEXT NOT NULL,
    face_id        TEXT NOT NULL,
    sealed         BYTEA NOT NULL,
    created_at     DOUBLE PRECISION NOT NULL,
    expires_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (collection_id, face_id),
    FOREIGN KEY (collection_id, face_id) REFERENCES faces(collection_id, face_id) ON DELETE CASCADE
);
CREATE INDEX thumbnails_by_face ON thumbnails(face_id);
CREATE INDEX thumbnails_by_expiry ON thumbnails(expires_at);

CREATE TABLE probe_thumbnails (
    collection_id  TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    search_seq     BIGINT NOT NULL,
    sealed         BYTEA NOT NULL,
    created_at     DOUBLE PRECISION NOT NULL,
    expires_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (collection_id, search_seq)
);
CREATE INDEX probe_thumbnails_by_seq ON probe_thumbnails(search_seq);
CREATE INDEX probe_thumbnails_by_expiry ON probe_thumbnails(expires_at);

CREATE TABLE review_pending (
    search_seq     BIGINT PRIMARY KEY,
    collection_id  TEXT
);
CREATE INDEX review_pending_by_collection ON review_pending(collection_id, search_seq);
"""

# Citus refuses triggers on distributed tables (faces, users) unless citus.enable_unsafe_triggers is on:
# the writers keep the counters instead, in the same transaction (store/counters.py).
_V2 = """
DROP TRIGGER faces_count ON faces;
DROP TRIGGER users_count ON users;
DROP FUNCTION faceledger_count_rows();
"""

# Model packs (SQLite v6): a collection records its descriptor's dimension and metric, and a
# migration in place stages each face's vector under the new pack until one transaction swaps
# them in (store/staging.py).
_V3 = """
ALTER TABLE collections ADD COLUMN dim INTEGER NOT NULL DEFAULT 128 CHECK (dim BETWEEN 1 AND 4096);
ALTER TABLE collections ADD COLUMN metric TEXT NOT NULL DEFAULT 'euclidean'
    CHECK (metric IN ('euclidean', 'cosine'));
CREATE TABLE staged_vectors (
    collection_id TEXT NOT NULL,
    face_id       TEXT NOT NULL,
    model_version TEXT NOT NULL,
    embedding     vector NOT NULL,
    source        TEXT NOT NULL,
    staged_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (collection_id, face_id),
    FOREIGN KEY (collection_id, face_id) REFERENCES faces(collection_id, face_id) ON DELETE CASCADE
);
CREATE INDEX staged_vectors_by_model ON staged_vectors(collection_id, model_version);
"""

# Several API processes (store/schema.py v7, mirrored): the face change log, leases, console sessions.
# Global, coordinator-local tables (like the ledger). A change row is numbered MAX(seq) + 1 under the
# ledger's advisory lock, which the writer's transaction takes anyway for its ledger record: numbers
# then follow commit order and have no gaps (a sequence's would follow neither), which the readers of
# the log (store/synced_index.py) rely on.
_V4 = f"""
CREATE TABLE face_changes (
    seq            BIGINT PRIMARY KEY,
    collection_id  TEXT NOT NULL,
    face_id        TEXT,
    at             DOUBLE PRECISION NOT NULL
);
CREATE INDEX face_changes_by_time ON face_changes(at);
CREATE FUNCTION faceledger_face_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({LEDGER_LOCK});
    IF TG_TABLE_NAME = 'collections' THEN
        INSERT INTO face_changes(seq, collection_id, face_id, at)
        SELECT COALESCE(MAX(seq), 0) + 1, OLD.collection_id, NULL, extract(epoch FROM clock_timestamp())
        FROM face_changes;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO face_changes(seq, collection_id, face_id, at)
        SELECT COALESCE(MAX(seq), 0) + 1, NEW.collection_id, NEW.face_id, extract(epoch FROM clock_timestamp())
        FROM face_changes;
    ELSE
        INSERT INTO face_changes(seq, collection_id, face_id, at)
        SELECT COALESCE(MAX(seq), 0) + 1, OLD.collection_id, OLD.face_id, extract(epoch FROM clock_timestamp())
        FROM face_changes;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER faces_change AFTER INSERT OR DELETE ON faces
    FOR EACH ROW EXECUTE FUNCTION faceledger_face_change();
CREATE TRIGGER collections_change AFTER DELETE ON collections
    FOR EACH ROW EXECUTE FUNCTION faceledger_face_change();
-- a migration in place re-pins the collection and swaps every vector: readers reload it whole
CREATE TRIGGER collections_change_repin AFTER UPDATE OF model_version ON collections
    FOR EACH ROW EXECUTE FUNCTION faceledger_face_change();

CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE console_sessions (
    digest      TEXT PRIMARY KEY,
    ledger_ref  TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    seen_at     DOUBLE PRECISION NOT NULL
);
CREATE INDEX console_sessions_by_seen ON console_sessions(seen_at);
"""


# pgvector search (store/pg_vectors.py): the per-collection stats table and the faces triggers that
# keep it, then a partition of its own (with the dimension check) for every existing collection, its
# rows moved out of faces_default. The partition name is pg_vectors.partition_name's (sha256, 24 hex).
# The two foreign keys onto faces are dropped while the rows move (deleting them from faces_default
# would cascade to thumbnails and staged vectors) and added back, checked, before the commit.
_V5 = """
CREATE SEQUENCE IF NOT EXISTS face_vector_generation;
CREATE TABLE IF NOT EXISTS face_vector_stats (
    collection_id text PRIMARY KEY,
    dim integer NOT NULL,
    metric text NOT NULL,
    faces bigint NOT NULL DEFAULT 0,
    generation bigint NOT NULL
);
ALTER TABLE thumbnails DROP CONSTRAINT thumbnails_collection_id_face_id_fkey;
ALTER TABLE staged_vectors DROP CONSTRAINT staged_vectors_collection_id_face_id_fkey;
DO $$
DECLARE
    c record;
    part text;
BEGIN
    FOR c IN SELECT collection_id, dim FROM collections ORDER BY collection_id LOOP
        part := 'faces_' || substr(encode(sha256(convert_to(c.collection_id, 'UTF8')), 'hex'), 1, 24);
        CREATE TEMP TABLE faceledger_moving ON COMMIT DROP AS
            SELECT * FROM faces_default WHERE collection_id = c.collection_id;
        DELETE FROM faces_default WHERE collection_id = c.collection_id;
        EXECUTE format('CREATE TABLE %I PARTITION OF faces FOR VALUES IN (%L)', part, c.collection_id);
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (vector_dims(embedding) = %s)',
                       part, part || '_dim', c.dim);
        INSERT INTO faces SELECT * FROM faceledger_moving;
        DROP TABLE faceledger_moving;
    END LOOP;
END $$;
ALTER TABLE thumbnails ADD CONSTRAINT thumbnails_collection_id_face_id_fkey
    FOREIGN KEY (collection_id, face_id) REFERENCES faces(collection_id, face_id) ON DELETE CASCADE;
ALTER TABLE staged_vectors ADD CONSTRAINT staged_vectors_collection_id_face_id_fkey
    FOREIGN KEY (collection_id, face_id) REFERENCES faces(collection_id, face_id) ON DELETE CASCADE;
INSERT INTO face_vector_stats (collection_id, dim, metric, faces, generation)
    SELECT c.collection_id, c.dim, c.metric, (SELECT count(*) FROM faces f WHERE f.collection_id = c.collection_id),
           nextval('face_vector_generation')
      FROM collections c;
CREATE FUNCTION face_vector_counted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE face_vector_stats s SET faces = s.faces + n.c, generation = nextval('face_vector_generation')
          FROM (SELECT collection_id, count(*) AS c FROM new_rows GROUP BY collection_id) n
         WHERE s.collection_id = n.collection_id;
    ELSE
        UPDATE face_vector_stats s SET faces = s.faces - n.c, generation = nextval('face_vector_generation')
          FROM (SELECT collection_id, count(*) AS c FROM old_rows GROUP BY collection_id) n
         WHERE s.collection_id = n.collection_id;
    END IF;
    RETURN NULL;
END $f$;
CREATE FUNCTION face_vector_changed() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    UPDATE face_vector_stats SET generation = nextval('face_vector_generation')
     WHERE collection_id = NEW.collection_id;
    RETURN NULL;
END $f$;
CREATE TRIGGER faces_counted_insert AFTER INSERT ON faces
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION face_vector_counted();
CREATE TRIGGER faces_counted_delete AFTER DELETE ON faces
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION face_vector_counted();
CREATE TRIGGER faces_vector_changed AFTER UPDATE OF embedding ON faces
    FOR EACH ROW WHEN (OLD.embedding IS DISTINCT FROM NEW.embedding) EXECUTE FUNCTION face_vector_changed();
"""

# On PostgreSQL every process searches pgvector (PgVectorIndex), which sees each commit at once: the
# face change log that in-memory indexes catch up from (SQLite) has no reader here. Its triggers go
# (one advisory lock and one insert less per face written, and two fewer triggers Citus would refuse).
_V6 = """
DROP TRIGGER faces_change ON faces;
DROP TRIGGER collections_change ON collections;
DROP TRIGGER collections_change_repin ON collections;
DROP FUNCTION faceledger_face_change();
"""

# (version, script). Version numbers start at 1 and have no gaps.
MIGRATIONS: list[tuple[int, str]] = [
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
