#!/usr/bin/env bash
# The catalog on PostgreSQL against the catalog on SQLite: the same corpus ingested by
# `tributary once` (release build) into the same SeaweedFS, once with each catalog,
# runs interleaved: cold ingest, a no-change rerun, the v2 edits. Prints wall, CPU and
# peak RSS and the PostgreSQL/SQLite ratios (the bar: <= 1.2x).
#
# usage: bench/catalog.sh [--scale 0.5] [--pg-url postgres://postgres@127.0.0.1:5432/postgres]
#        (a server reachable with psql; the benchmark creates and drops database
#        `tribbench` on it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. "$ROOT/bench/lib.sh"
scale_and_pg_args "$@"
bench_dirs
bench_tools

GEN="$ROOT/../shared/bench/gen_corpus.py"
V1="$OUT/corpus-$SCALE-v1"; V2="$OUT/corpus-$SCALE-v2"; WORK="$OUT/work"
[ -d "$V1" ] || python3 "$GEN" "$V1" --scale "$SCALE"
[ -d "$V2" ] || python3 "$GEN" "$V2" --scale "$SCALE" --edit-of "$V1"
rm -rf "$WORK" && cp -a "$V1" "$WORK"

start_weed 18500 catsqlite,catpg
trap 'kill $WPID 2>/dev/null; wait $WPID 2>/dev/null' EXIT

psql -q "$PG_URL" -c 'DROP DATABASE IF EXISTS tribbench' -c 'CREATE DATABASE tribbench'
BENCH_DB="${PG_URL%/*}/tribbench"
echo "PostgreSQL: $(psql -tA "$BENCH_DB" -c 'SHOW server_version')"

config() { # name bucket catalog-yaml
  cat > "$OUT/cat-$1.yaml" <<Y
version: 1
state_dir: $OUT/cat-$1-state
$3
object_store:
  kind: s3
  endpoint: $EP
  bucket: $2
  access_key_id: $AK
  secret_access_key: $SK
connectors:
  - id: corpus
    kind: local
    path: $WORK
    target: /corpus
Y
  rm -rf "$OUT/cat-$1-state"
}
config sqlite catsqlite ""
config postgres catpg "catalog:
  url: $BENCH_DB"

RESULTS="$OUT/catalog.tsv"
printf 'phase\ttool\twall_s\tcpu_s\tmaxrss_kb\n' > "$RESULTS"
run_both() { # phase
  measure "$1" sqlite "$TRIB" once -c "$OUT/cat-sqlite.yaml" corpus
  measure "$1" postgres "$TRIB" once -c "$OUT/cat-postgres.yaml" corpus
}
echo "load average before: $(cat /proc/loadavg)"
run_both cold
run_both nochange
rsync -a --delete "$V2/" "$WORK/"
run_both v2
echo "load average after: $(cat /proc/loadavg)"
echo "items in the PostgreSQL catalog: $(psql -tA "$BENCH_DB" -c 'SELECT count(*) FROM items')"

python3 - "$RESULTS" <<'PY' | tee "$OUT/catalog-report.txt"
import csv, sys
rows = {(r["phase"], r["tool"]): r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")}
print(f"{'phase':10} {'catalog':10} {'wall s':>8} {'cpu s':>8} {'RSS MiB':>8}")
for (phase, tool), r in rows.items():
    print(f"{phase:10} {tool:10} {float(r['wall_s']):8.2f} {float(r['cpu_s']):8.2f} {int(r['maxrss_kb']) / 1024:8.1f}")
print("\nratios (PostgreSQL / SQLite; bar <= 1.2x):")
for phase in ("cold", "nochange", "v2"):
    p, s = rows[(phase, "postgres")], rows[(phase, "sqlite")]
    print(f"  {phase:9} wall {float(p['wall_s']) / float(s['wall_s']):.2f}x  cpu {float(p['cpu_s']) / float(s['cpu_s']):.2f}x")
PY
psql -q "$PG_URL" -c 'DROP DATABASE IF EXISTS tribbench'
