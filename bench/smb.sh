#!/usr/bin/env bash
# SMB benchmark: the gen_corpus.py corpus on a loopback Samba share, ingested into a
# loopback SeaweedFS by tributary (SMB connector) and copied by `rclone copy` with
# rclone's SMB backend, same share, same server; then a 100,000-file tree listed by
# tributary (a no-change run: listing plus the catalog comparison) and by
# `rclone lsf -R`. Prints wall, CPU and peak RSS, and the ratios.
#
# usage: bench/smb.sh [--scale 1.0] [--files 100000] [--workers 1]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCALE=1.0
FILES=100000
WORKERS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;   # tributary's SMB worker processes
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

CACHE="${TRIBUTARY_CACHE:-$HOME/.cache/tributary}"
OUT="$ROOT/bench/out/smb"
mkdir -p "$CACHE" "$OUT"

# --- tools -------------------------------------------------------------------------
. "$ROOT/bench/lib.sh"
command -v smbd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq samba libsmbclient-dev pkg-config >/dev/null; }
bench_tools

# --- corpus on the share -----------------------------------------------------------
GEN="$ROOT/../shared/bench/gen_corpus.py"
SHARE="$OUT/share"
if [ ! -d "$SHARE/corpus" ]; then
  mkdir -p "$SHARE"
  python3 "$GEN" "$SHARE/corpus" --scale "$SCALE"
fi
if [ ! -d "$SHARE/tree" ]; then
  python3 - "$SHARE/tree" "$FILES" <<'P'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
per = 100
for i in range(n):
    d = os.path.join(root, f"d{i // (per * 10):03d}", f"s{(i // per) % 10}")
    if i % per == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}.txt"), "w") as f:
        f.write(f"file {i}\n")
P
fi
# files written long ago are not re-read for mtime granularity
find "$SHARE" -type f -exec touch -d '2 hours ago' {} +

# --- Samba on loopback -------------------------------------------------------------
SMB_PORT=18445; USER_=tribsmb; PW=Bench-pw-42
D="$OUT/samba"; rm -rf "$D"; mkdir -p "$D"/{private,lock,state,cache,run,ncalrpc,log}
id "$USER_" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$USER_"
cat > "$D/smb.conf" <<C
[global]
  workgroup = WORKGROUP
  server role = standalone server
  smb ports = $SMB_PORT
  interfaces = lo
  bind interfaces only = yes
  disable netbios = yes
  server min protocol = SMB2_10
  map to guest = never
  passdb backend = tdbsam:$D/private/passdb.tdb
  private dir = $D/private
  lock directory = $D/lock
  state directory = $D/state
  cache directory = $D/cache
  pid directory = $D/run
  ncalrpc dir = $D/ncalrpc
  log file = $D/log/smbd.log
  log level = 0
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
[bench]
  path = $SHARE
  read only = yes
  valid users = $USER_
  force user = root
C
printf '%s\n%s\n' "$PW" "$PW" | smbpasswd -c "$D/smb.conf" -s -a "$USER_" >/dev/null
setsid smbd --foreground --no-process-group -s "$D/smb.conf" > "$D/log/stdout" 2>&1 &
SPID=$!

# --- SeaweedFS -----------------------------------------------------------------------
start_weed 18500 trib,rclone
trap 'kill $WPID 2>/dev/null; kill -TERM -- -$SPID 2>/dev/null; wait 2>/dev/null' EXIT

# --- tool configs --------------------------------------------------------------------
trib_cfg() { # name path-in-share
  cat > "$OUT/$1.yaml" <<Y
version: 1
state_dir: $OUT/$1-state
object_store:
  kind: s3
  endpoint: $EP
  bucket: trib
  access_key_id: $AK
  secret_access_key: $SK
connectors:
  - id: $1
    kind: smb
    server: 127.0.0.1
    port: $SMB_PORT
    share: bench
    path: $2
    username: $USER_
    password: "$PW"
    target: /$1
    workers: $WORKERS
Y
  rm -rf "$OUT/$1-state"
}
trib_cfg corpus corpus
trib_cfg tree tree
export RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other RCLONE_CONFIG_B_ENDPOINT=$EP \
  RCLONE_CONFIG_B_ACCESS_KEY_ID=$AK RCLONE_CONFIG_B_SECRET_ACCESS_KEY=$SK RCLONE_CONFIG_B_FORCE_PATH_STYLE=true
export RCLONE_CONFIG_S_TYPE=smb RCLONE_CONFIG_S_HOST=127.0.0.1 RCLONE_CONFIG_S_PORT=$SMB_PORT \
  RCLONE_CONFIG_S_USER=$USER_ RCLONE_CONFIG_S_PASS=$("$RCLONE" obscure "$PW")

RESULTS="$OUT/results.tsv"
printf 'phase\ttool\twall_s\tcpu_s\tmaxrss_kb\n' > "$RESULTS"

echo "load average before: $(cat /proc/loadavg)"
measure cold tributary "$TRIB" once -c "$OUT/corpus.yaml" corpus
measure cold rclone "$RCLONE" copy S:bench/corpus B:rclone/corpus
# the 100,000-file tree: ingested once, then listed with nothing changed
"$TRIB" once -c "$OUT/tree.yaml" tree > "$OUT/tree-ingest.log" 2>&1
measure list tributary "$TRIB" once --incremental -c "$OUT/tree.yaml" tree
measure list rclone "$RCLONE" lsf -R S:bench/tree
echo "load average after: $(cat /proc/loadavg)"
python3 - "$RESULTS" <<'P' | tee "$OUT/report.txt"
import csv, sys
rows = {(r["phase"], r["tool"]): r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")}
for phase, what in [("cold", "ingest of the corpus from SMB"), ("list", "listing of the file tree")]:
    t, c = rows[(phase, "tributary")], rows[(phase, "rclone")]
    ratio = lambda k: float(t[k]) / float(c[k])
    print(f"{what}: tributary {t['wall_s']} s vs rclone {c['wall_s']} s -> {ratio('wall_s'):.2f}x wall, "
          f"{ratio('cpu_s'):.2f}x CPU, RSS {int(t['maxrss_kb'])//1024} MiB vs {int(c['maxrss_kb'])//1024} MiB")
P
