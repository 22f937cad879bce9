#!/usr/bin/env bash
# The admin API under a steady load: `GET /api/v1/connectors`, `/jobs` and `/items`
# (a first page each, as a dashboard asks) at a fixed 500 requests/s for 20 s each,
# from oha (crates.io, `cargo install oha`) over loopback, against the release build
# with 10,000 items and 1,000 jobs in its SQLite catalog. Reports p50, p99 and the
# slowest answer (goal: p99 <= 5 ms) and that every answer was a 200.
#
# Figures: bench/README.md, "The admin API".
#
# usage: bench/api.sh [--rate 500] [--seconds 20]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. "$ROOT/bench/lib.sh"
bench_dirs
RATE=500
SECONDS_EACH=20
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
cargo build --release -p tributary --locked
TRIB="$CARGO_TARGET_DIR/release/tributary"
OHA="$CACHE/oha/bin/oha"
[ -x "$OHA" ] || cargo install oha --locked --root "$CACHE/oha"

W="$OUT/api"
rm -rf "$W"; mkdir -p "$W/src"
# 10,000 small files in 100 folders: 10,000 items
python3 - "$W/src" <<'P'
import os, sys
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/d{d:03}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/d{d:03}/f{f:03}.txt", "w") as fh:
            fh.write(f"file {d} {f}\n")
P
PORT=18750
TOKEN=bench-viewer-token-0123456789
cat > "$W/tributary.yaml" <<Y
version: 1
state_dir: $W/state
api:
  listen: 127.0.0.1:$PORT
  rate_limits: { client: off, read: off, write: off }
  tokens:
    - { name: bench, role: viewer, token: $TOKEN }
connectors:
  - { id: docs, kind: local, path: $W/src, target: /docs }
Y
"$TRIB" once -c "$W/tributary.yaml" docs > /dev/null
# 1,000 jobs: the one that ran and 999 copies of it
python3 - "$W/state/catalog.db" <<'P'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
cols = [r[1] for r in db.execute("PRAGMA table_info(jobs)") if r[1] != "id"]
c = ", ".join(cols)
for _ in range(999):
    db.execute(f"INSERT INTO jobs ({c}) SELECT {c} FROM jobs WHERE id = 1")
db.commit()
print("items", db.execute("SELECT COUNT(*) FROM items").fetchone()[0],
      "jobs", db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
P
"$TRIB" run -c "$W/tributary.yaml" > "$W/log" 2>&1 &
DPID=$!
trap 'kill $DPID 2>/dev/null; wait $DPID 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" > /dev/null && break; sleep 0.1; done

RESULTS="$W/results.md"
echo "| route | requests | p50 ms | p99 ms | max ms | non-200 |" > "$RESULTS"
echo "|---|---|---|---|---|---|" >> "$RESULTS"
for route in /api/v1/connectors /api/v1/jobs /api/v1/items; do
  url="http://127.0.0.1:$PORT$route"
  # warm: the first requests open the pool's connections
  "$OHA" -n 200 -c 4 --no-tui -H "Authorization: Bearer $TOKEN" "$url" > /dev/null
  "$OHA" -z "${SECONDS_EACH}s" -q "$RATE" -c 16 --no-tui --output-format json \
    -H "Authorization: Bearer $TOKEN" "$url" > "$W/oha.json"
  python3 - "$route" "$W/oha.json" >> "$RESULTS" <<'P'
import json, sys
route, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
p = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
total = sum(codes.values())
bad = total - codes.get("200", 0)
print(f"| {route} | {total} | {p['p50']*1000:.2f} | {p['p99']*1000:.2f} | {r['summary']['slowest']*1000:.2f} | {bad} |")
P
done
cat "$RESULTS"
