#!/usr/bin/env bash
# Side-by-side benchmark: tributary vs `rclone copy` vs `restic backup`, same corpus,
# same SeaweedFS on loopback, runs interleaved. Prints wall, CPU, peak RSS, bytes
# stored, the no-change rerun and the v2 increment, as ratios against the peers.
#
# usage: [PACK_SIZE=4MiB] bench/run.sh [--scale 1.0] [--big] [--only-tributary]
#        (--big adds a 4 GiB single-file RSS run). Tributary runs twice per phase: into
#        a clear bucket (`tributary`) and an encrypted one (`trib-enc`, its own key).
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

# --- tools -------------------------------------------------------------------------
. "$ROOT/bench/lib.sh"
bench_dirs
command -v restic >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null; }
RESTIC=$(command -v restic)
bench_tools

# --- corpus ------------------------------------------------------------------------
GEN="$ROOT/../shared/bench/gen_corpus.py"
V1="$OUT/corpus-$SCALE-v1"; V2="$OUT/corpus-$SCALE-v2"; WORK="$OUT/work"
[ -d "$V1" ] || python3 "$GEN" "$V1" --scale "$SCALE"
[ -d "$V2" ] || python3 "$GEN" "$V2" --scale "$SCALE" --edit-of "$V1"
rm -rf "$WORK" && cp -a "$V1" "$WORK"

# --- SeaweedFS -----------------------------------------------------------------------
start_weed 18400 trib,tribenc,rclone,restic
trap 'kill $WPID 2>/dev/null; wait $WPID 2>/dev/null' EXIT

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
pipeline:
  pack_size: ${PACK_SIZE:-4MiB}
connectors:
  - id: corpus
    kind: local
    path: $WORK
    target: /corpus
Y
rm -rf "$OUT/trib-state" "$OUT/trib-enc-state" "$OUT/trib-enc.key"
"$TRIB" key generate --out "$OUT/trib-enc.key" >/dev/null
sed -e "s#state_dir: $OUT/trib-state#state_dir: $OUT/trib-enc-state#" -e "s#bucket: trib\$#bucket: tribenc#" \
  -e "s#^  secret_access_key: .*#&\n  encryption:\n    key_file: $OUT/trib-enc.key#" "$OUT/trib.yaml" > "$OUT/trib-enc.yaml"
grep -q "bucket: tribenc" "$OUT/trib-enc.yaml" && grep -q "key_file" "$OUT/trib-enc.yaml"
export RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other RCLONE_CONFIG_B_ENDPOINT=$EP \
  RCLONE_CONFIG_B_ACCESS_KEY_ID=$AK RCLONE_CONFIG_B_SECRET_ACCESS_KEY=$SK RCLONE_CONFIG_B_FORCE_PATH_STYLE=true
export RESTIC_REPOSITORY="s3:$EP/restic" RESTIC_PASSWORD=bench AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK
export RESTIC_CACHE_DIR="$OUT/restic-cache"; rm -rf "$RESTIC_CACHE_DIR"
"$RESTIC" init -q

RESULTS="$OUT/results.tsv"
printf 'phase\ttool\twall_s\tcpu_s\tmaxrss_kb\n' > "$RESULTS"
stored() { "$RCLONE" size "B:$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])'; }
objects() { "$RCLONE" size "B:$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'; }
run_all() { # phase
  measure "$1" tributary "$TRIB" once -c "$OUT/trib.yaml" corpus
  measure "$1" trib-enc "$TRIB" once -c "$OUT/trib-enc.yaml" corpus
  [ -n "$ONLY" ] && return 0
  measure "$1" rclone "$RCLONE" copy "$WORK" B:rclone/corpus
  measure "$1" restic "$RESTIC" backup -q "$WORK"
}

echo "load average before: $(cat /proc/loadavg)"
run_all cold
S1_T=$(stored trib); S1_C=$(stored rclone); S1_R=$(stored restic); S1_E=$(stored tribenc)
# objects written by the cold ingest (each one PUT, retries aside) against the files
FILES=$(find "$V1" -type f | wc -l)
echo "objects after the cold ingest: tributary $(objects trib) (encrypted $(objects tribenc)), rclone $(objects rclone), restic $(objects restic); files: $FILES"
printf '%s\t%s\t%s\t%s\n' "$FILES" "$(objects trib)" "$(objects rclone)" "$(objects restic)" > "$OUT/objects.tsv"
run_all nochange
rsync -a --delete "$V2/" "$WORK/"
run_all v2
S2_T=$(stored trib); S2_C=$(stored rclone); S2_R=$(stored restic); S2_E=$(stored tribenc)
if [ "$BIG" = 1 ]; then
  mkdir -p "$OUT/big"; head -c $((4 << 30)) /dev/urandom > "$OUT/big/four-gib.bin"
  sed -e "s#path: $WORK#path: $OUT/big#" -e "s#id: corpus#id: big#" "$OUT/trib.yaml" > "$OUT/trib-big.yaml"
  measure big tributary "$TRIB" once -c "$OUT/trib-big.yaml" big
  rm -rf "$OUT/big"
fi
if [ -z "$ONLY" ]; then
  # the whole corpus (as of v2) restored by each backup tool
  rm -rf "$OUT/restore-t" "$OUT/restore-e" "$OUT/restore-r"
  measure restore tributary "$TRIB" restore -c "$OUT/trib.yaml" /corpus "$OUT/restore-t"
  measure restore trib-enc "$TRIB" restore -c "$OUT/trib-enc.yaml" /corpus "$OUT/restore-e"
  measure restore restic "$RESTIC" restore latest --target "$OUT/restore-r"
  # tributary's restore ends durable (one syncfs); restic leaves its files to the page
  # cache: the same guarantee is restic's restore followed by `sync` (measure syncs
  # before it starts, so the flush is restic's own files)
  rm -rf "$OUT/restore-r"
  measure restore restic+sync sh -c '"$0" restore -q latest --target "$1" && sync' "$RESTIC" "$OUT/restore-r"
  # the files, byte for byte (folders left empty are not items, so not restored)
  sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum; }
  [ "$(sums "$WORK")" = "$(sums "$OUT/restore-t/corpus")" ] || { echo "tributary's restore differs from the source"; exit 1; }
  [ "$(sums "$WORK")" = "$(sums "$OUT/restore-e/corpus")" ] || { echo "tributary's encrypted restore differs from the source"; exit 1; }
  rm -rf "$OUT/restore-t" "$OUT/restore-e" "$OUT/restore-r"
fi
echo "load average after: $(cat /proc/loadavg)"
[ -n "$ONLY" ] && exit 0
CORPUS=$(du -sb "$V1" | cut -f1)
python3 "$ROOT/bench/report.py" "$RESULTS" "$CORPUS" "$S1_T" "$S1_C" "$S1_R" "$S2_T" "$S2_C" "$S2_R" "$S1_E" "$S2_E" | tee "$OUT/report.txt"
