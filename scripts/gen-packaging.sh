#!/usr/bin/env bash
# Regenerates what packaging/ holds that is generated from the command line's own
# definition: the man pages (packaging/man) and the bash, zsh and fish completions
# (packaging/completions). A unit test of the daemon fails when they are out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p tributary
BIN="${CARGO_TARGET_DIR:-target}/debug/tributary"
"$BIN" man --out packaging/man
mkdir -p packaging/completions
"$BIN" completions bash > packaging/completions/tributary.bash
"$BIN" completions zsh > packaging/completions/_tributary
"$BIN" completions fish > packaging/completions/tributary.fish
