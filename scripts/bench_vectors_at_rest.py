"""What sealing face vectors at rest costs at start-up (docs/benchmarks.md, "Vectors at rest").

Measures, on this machine:
  * the start-up load of a real catalog of N faces: reading the rows' vector blobs alone (what
    loading cost before vectors were sealed), then ``Catalog.iter_vectors`` (read and decrypt),
    back to back on the same file so a busy host inflates both alike;
  * AES-256-GCM decryption alone of N 128-d float32 vectors, one nonce and tag per row with the
    face id as associated data, via ``cryptography``; 1M is measured in chunks of 100k so memory
    stays small, and the time is the sum.

    PYTHONPATH=src python scripts/bench_vectors_at_rest.py --catalog-faces 100000 --decrypt 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceledger.store import Catalog
from faceledger.store.rows import blobs_to_matrix

CHUNK = 100_000


def decrypt_seconds(n: int, aead: AESGCM) -> float:
    rng = np.random.default_rng(0)
    total = 0.0
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        vectors = rng.standard_normal((m, 128)).astype(np.float32)
        ids = [str(uuid.uuid4()).encode() for _ in range(m)]
        sealed = []
        for i in range(m):
            nonce = os.urandom(12)
            sealed.append(nonce + aead.encrypt(nonce, vectors[i].tobytes(), ids[i]))
        t = time.perf_counter()
        blobs = [aead.decrypt(s[:12], s[12:], ids[i]) for i, s in enumerate(sealed)]
        matrix = blobs_to_matrix(blobs)
        total += time.perf_counter() - t
        assert np.array_equal(matrix, vectors)
    return total


def catalog_load_seconds(n: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp, Catalog.open(Path(tmp) / "data") as cat:
        with cat.transaction() as tx:
            cat.create_collection(tx, "c", "m", {}, 0.0)
        for start in range(0, n, 20_000):
            faces = [{"face_id": str(uuid.uuid4()), "image_id": str(uuid.uuid4()),
                      "bbox": {"Width": 0.5, "Height": 0.5, "Left": 0.1, "Top": 0.1},
                      "vector": v} for v in rng.standard_normal((min(20_000, n - start), 128)).astype(np.float32)]
            with cat.transaction() as tx:
                cat.add_faces(tx, "c", faces)
        size = os.path.getsize(cat.path) / 1e6
        t = time.perf_counter()
        rows = cat.connection().execute(
            "SELECT face_id, vector FROM faces WHERE collection_id = ? ORDER BY face_id", ("c",)).fetchall()
        read_only = time.perf_counter() - t
        assert len(rows) == n
        t = time.perf_counter()
        ids, matrix = cat.iter_vectors("c")
        took = time.perf_counter() - t
        assert len(ids) == n and matrix.shape == (n, 128)
        return read_only, took, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog-faces", type=int, default=100_000)
    ap.add_argument("--decrypt", type=int, nargs="*", default=[100_000, 1_000_000])
    args = ap.parse_args()
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    if args.catalog_faces:
        read_only, took, size = catalog_load_seconds(args.catalog_faces)
        n = args.catalog_faces
        print(f"catalog read of the blobs   {n:>9,} faces: {read_only:6.2f} s  (catalog {size:.0f} MB)")
        print(f"catalog load (iter_vectors) {n:>9,} faces: {took:6.2f} s  (read + decrypt)")
    for n in args.decrypt:
        print(f"AES-GCM decrypt per row     {n:>9,} vectors: {decrypt_seconds(n, aead):6.2f} s")


if __name__ == "__main__":
    main()
