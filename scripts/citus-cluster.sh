#!/usr/bin/env bash
# A throwaway Citus cluster on this machine (a coordinator and WORKERS workers, PostgreSQL + Citus +
# pgvector), the faceledger vector schema distributed on it, a smoke search (scripts/citus_smoke.py),
# and, where this build has FACELEDGER_STORE, the service run against the coordinator.
#
#   scripts/citus-cluster.sh [DIR] [WORKERS] [BASE_PORT]     (defaults: /tmp/faceledger-citus 2 9700)
#   KEEP=1 leaves the cluster running; PG_CONFIG=/path/to/pg_config picks the installation.
#
# Citus is neither a Debian bookworm package nor on PyPI: where no pg_config's share directory has
# both citus.control and vector.control this prints "skipped: ..." and exits 0 (docs/scale-out.md).
set -euo pipefail

DIR=${1:-/tmp/faceledger-citus}
WORKERS=${2:-2}
PORT=${3:-9700}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)

candidates=()
[ -n "${PG_CONFIG:-}" ] && candidates+=("$PG_CONFIG")
command -v pg_config >/dev/null 2>&1 && candidates+=("$(command -v pg_config)")
for d in /usr/lib/postgresql/*/bin/pg_config; do [ -x "$d" ] && candidates+=("$d"); done
bundled=$("$PY" -c 'import pgserver, pathlib; print(pathlib.Path(pgserver.__file__).parent / "pginstall/bin/pg_config")' 2>/dev/null || true)
[ -n "$bundled" ] && [ -x "$bundled" ] && candidates+=("$bundled")

PGC=""
checked=""
for c in "${candidates[@]}"; do
    share=$("$c" --sharedir 2>/dev/null) || continue
    case " $checked " in *" $share/extension "*) continue ;; esac
    checked="$checked $share/extension"
    if [ -f "$share/extension/citus.control" ] && [ -f "$share/extension/vector.control" ]; then
        PGC=$c
        break
    fi
done
if [ -z "$PGC" ]; then
    echo "skipped: Citus not installed (no citus.control with vector.control under:${checked:- no pg_config found}; Citus is neither a Debian bookworm package nor on PyPI: install citusdata's packages and pgvector for that PostgreSQL, or set PG_CONFIG)"
    exit 0
fi

BIN=$("$PGC" --bindir)
as_pg() {  # PostgreSQL refuses to run as root
    if [ "$(id -u)" = 0 ]; then runuser -u "${CITUS_OS_USER:-postgres}" -- "$@"; else "$@"; fi
}

rm -rf "$DIR"
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown "${CITUS_OS_USER:-postgres}" "$DIR"
nodes=$((WORKERS + 1))
stop_all() {
    for i in $(seq 0 $((nodes - 1))); do
        [ -d "$DIR/node$i" ] && as_pg "$BIN/pg_ctl" -D "$DIR/node$i" -m fast stop >/dev/null 2>&1 || true
    done
}
[ "${KEEP:-0}" = 1 ] || trap stop_all EXIT

for i in $(seq 0 $((nodes - 1))); do
    as_pg "$BIN/initdb" -D "$DIR/node$i" -U postgres -A trust >/dev/null
    cat >>"$DIR/node$i/postgresql.conf" <<EOF
port = $((PORT + i))
listen_addresses = 'localhost'
unix_socket_directories = '$DIR'
shared_preload_libraries = 'citus'
# SET LOCAL hnsw.ef_search / enable_indexscan must reach the shards' connections (store/pg_vectors.py)
citus.propagate_set_commands = 'local'
EOF
    as_pg "$BIN/pg_ctl" -D "$DIR/node$i" -l "$DIR/node$i.log" -w start >/dev/null
    as_pg "$BIN/psql" -h localhost -p $((PORT + i)) -U postgres -qAt \
        -c "CREATE EXTENSION citus" -c "CREATE EXTENSION vector" postgres
done
psql_c() { as_pg "$BIN/psql" -h localhost -p "$PORT" -U postgres -qAt -v ON_ERROR_STOP=1 "$@" postgres; }
psql_c -c "SELECT citus_set_coordinator_host('localhost', $PORT)"
for i in $(seq 1 "$WORKERS"); do
    psql_c -c "SELECT citus_add_node('localhost', $((PORT + i)))" >/dev/null
done
echo "citus: coordinator localhost:$PORT, workers: $(psql_c -c 'SELECT count(*) FROM citus_get_active_worker_nodes()')"

URL="postgresql://postgres@localhost:$PORT/postgres"
PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$ROOT/scripts/citus_smoke.py" "$URL" $((2 * WORKERS))

if PYTHONPATH="$ROOT/src" "$PY" -c 'import dataclasses, sys; from faceledger.settings import Settings; sys.exit(0 if "store" in {f.name for f in dataclasses.fields(Settings)} else 1)'; then
    # the service on the coordinator: its catalog tables are Citus local/reference tables there
    SVC_DATA="$DIR/service"
    mkdir -p "$SVC_DATA"
    FACELEDGER_STORE="$URL" FACELEDGER_DATA_DIR="$SVC_DATA" PYTHONPATH="$ROOT/src" \
        "$PY" -m faceledger.cli.main serve --port $((PORT + nodes)) >"$DIR/service.log" 2>&1 &
    svc=$!
    trap 'kill $svc 2>/dev/null || true; stop_all' EXIT
    for _ in $(seq 60); do
        curl -fs "http://127.0.0.1:$((PORT + nodes))/health" >/dev/null 2>&1 && break
        sleep 1
    done
    FACELEDGER_ENDPOINT="http://127.0.0.1:$((PORT + nodes))" PYTHONPATH="$ROOT/src" \
        "$PY" -m faceledger.cli.main collections list && echo "citus: the service answers against the coordinator"
else
    echo "service run skipped: this build has no FACELEDGER_STORE setting (the PostgreSQL catalog is not merged yet)"
fi
echo "$URL"
