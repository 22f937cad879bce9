#!/usr/bin/env bash
# Several daemon instances on one PostgreSQL catalog and one SeaweedFS bucket: eight
# local connectors (eight gen_corpus trees) ingested by one `tributary run` and by
# two, each with the default two job slots; wall time from start until all eight
# first-start jobs succeeded, and the 2-instance/1-instance ratio. Then failover: two
# instances, one large connector, the instance running it killed (SIGKILL) mid-job;
# the time until the other instance claims the connector again, against the bar
# lease_ttl + 5 s.
#
# Figures: bench/README.md, "Several instances".
#
# usage: bench/fleet.sh [--scale 0.5] [--pg-url postgres://postgres@127.0.0.1:5432/postgres]
#        (databases tribfleet1, tribfleet2 and tribfleet3 are created and dropped)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. "$ROOT/bench/lib.sh"
scale_and_pg_args "$@"
bench_dirs
bench_tools

GEN="$ROOT/../shared/bench/gen_corpus.py"
PART=$(python3 -c "print($SCALE / 8)")
for i in 0 1 2 3 4 5 6 7; do
  [ -d "$OUT/fleet-$SCALE-$i" ] || python3 "$GEN" "$OUT/fleet-$SCALE-$i" --scale "$PART" --seed $((100 + i)) > /dev/null
done
BIG="$OUT/corpus-$SCALE-v1"
[ -d "$BIG" ] || python3 "$GEN" "$BIG" --scale "$SCALE" > /dev/null

start_weed 18600 fleet1,fleet2,fleet3
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; kill $WPID 2>/dev/null; wait $WPID 2>/dev/null; }
trap cleanup EXIT
TOKEN=bench-operator-token-0123456789

config() { # name db bucket port connectors lease
  mkdir -p "$OUT/fleet-$1"
  cat > "$OUT/fleet-$1/tributary.yaml" <<Y
version: 1
state_dir: $OUT/fleet-$1/state
catalog:
  url: ${PG_URL%/*}/$2
object_store:
  kind: s3
  endpoint: $EP
  bucket: $3
  access_key_id: $AK
  secret_access_key: $SK
api:
  listen: 127.0.0.1:$4
  tokens:
    - { name: bench, role: operator, token: $TOKEN }
daemon:
  instance_id: $1
  lease_ttl: $6
connectors:
$5
Y
  rm -rf "$OUT/fleet-$1/state"
}
eight=""
for i in 0 1 2 3 4 5 6 7; do
  eight+="  - { id: c$i, kind: local, path: $OUT/fleet-$SCALE-$i, target: /c$i }"$'\n'
done
one_big="  - { id: big, kind: local, path: $BIG, target: /big }"

fresh_db() { psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"; }
start() { # name
  "$TRIB" run -c "$OUT/fleet-$1/tributary.yaml" > "$OUT/fleet-$1/log" 2>&1 &
  PIDS+=($!)
  LAST=$!
}
# jobs of the catalog in $1 as "id connector status instance trigger started_ns"
jobs() { psql -tA -F' ' "${PG_URL%/*}/$1" -c "SELECT id, connector, status, COALESCE(instance, '-'), trigger, COALESCE(started_at, 0) FROM jobs ORDER BY id"; }
wait_succeeded() { # db n
  for _ in $(seq 6000); do
    [ "$(jobs "$1" | awk '$3 == "succeeded"' | wc -l)" -ge "$2" ] && return 0
    if jobs "$1" | awk '$3 == "failed"' | grep -q .; then jobs "$1"; echo "a job failed"; exit 1; fi
    sleep 0.1
  done
  echo "timed out"; jobs "$1"; exit 1
}

RESULTS="$OUT/fleet.tsv"
printf 'phase\twall_s\tspread\n' > "$RESULTS"
echo "load average before: $(cat /proc/loadavg)"

# one instance
fresh_db tribfleet1
config solo tribfleet1 fleet1 18610 "$eight" 30s
"$TRIB" migrate -c "$OUT/fleet-solo/tributary.yaml" > /dev/null
t0=$(date +%s.%N); start solo; wait_succeeded tribfleet1 8; t1=$(date +%s.%N)
kill -TERM $LAST; wait $LAST || true
printf 'one\t%s\t%s\n' "$(echo "$t1 - $t0" | bc)" "$(jobs tribfleet1 | awk '{print $4}' | sort | uniq -c | tr -s ' ' | tr '\n' ';')" >> "$RESULTS"

# two instances
fresh_db tribfleet2
config node-a tribfleet2 fleet2 18611 "$eight" 30s
config node-b tribfleet2 fleet2 18612 "$eight" 30s
"$TRIB" migrate -c "$OUT/fleet-node-a/tributary.yaml" > /dev/null
t0=$(date +%s.%N); start node-a; A=$LAST; start node-b; B=$LAST; wait_succeeded tribfleet2 8; t1=$(date +%s.%N)
kill -TERM $A $B; wait $A $B || true
printf 'two\t%s\t%s\n' "$(echo "$t1 - $t0" | bc)" "$(jobs tribfleet2 | awk '{print $4}' | sort | uniq -c | tr -s ' ' | tr '\n' ';')" >> "$RESULTS"

# failover: kill the instance running the large connector 5 s into its job
fresh_db tribfleet3
config fo-a tribfleet3 fleet3 18613 "$one_big" 10s
config fo-b tribfleet3 fleet3 18614 "$one_big" 10s
"$TRIB" migrate -c "$OUT/fleet-fo-a/tributary.yaml" > /dev/null
start fo-a; A=$LAST; start fo-b; B=$LAST
for _ in $(seq 600); do jobs tribfleet3 | awk '$3 == "running"' | grep -q . && break; sleep 0.1; done
sleep 5
RUNNER=$(jobs tribfleet3 | awk '$3 == "running" {print $4}' | head -1)
if [ "$RUNNER" = fo-a ]; then VICTIM=$A; SURVIVOR=$B; else VICTIM=$B; SURVIVOR=$A; fi
killed=$(date +%s%N); kill -9 $VICTIM
for _ in $(seq 1200); do jobs tribfleet3 | awk '$5 == "failover" && $6 > 0' | grep -q . && break; sleep 0.05; done
resumed=$(jobs tribfleet3 | awk '$5 == "failover" {print $6}' | head -1)
wait_succeeded tribfleet3 1
kill -TERM $SURVIVOR; wait $SURVIVOR || true
printf 'failover\t%s\t%s\n' "$(echo "($resumed - $killed) / 1000000000" | bc -l | cut -c1-6)" "lease_ttl=10s" >> "$RESULTS"
echo "load average after: $(cat /proc/loadavg)"

python3 - "$RESULTS" <<'PY' | tee "$OUT/fleet-report.txt"
import csv, sys
rows = {r["phase"]: r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")}
for p in ("one", "two"):
    print(f"{p} instance(s): 8 connectors in {float(rows[p]['wall_s']):.2f} s; jobs per instance: {rows[p]['spread']}")
print(f"two/one: {float(rows['two']['wall_s']) / float(rows['one']['wall_s']):.2f}x")
print(f"failover: the connector claimed again {float(rows['failover']['wall_s']):.2f} s after the SIGKILL (lease_ttl 10 s; bar 15 s)")
PY
for d in tribfleet1 tribfleet2 tribfleet3; do psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $d"; done
