#!/usr/bin/env bash
# CI's check of the Debian package: builds it from the debug build CI already has
# (the release package is the same recipe without `--profile dev --no-build`),
# installs it with apt, checks that everything is where it should be, starts the
# daemon as the unit would with the shipped configuration, runs systemd-analyze
# verify and lintian, and purges it again. Runs as root (it installs a package); the
# machine needs no running systemd (the binaries are run directly).
#   packaging/deb/ci-check.sh        (after `cargo build -p tributary`)
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET="${CARGO_TARGET_DIR:-target}"
OUT="$TARGET/debian"
rm -rf "$OUT"
mkdir -p "$OUT"

fail() { echo "deb check: $*" >&2; exit 1; }

echo "--- deb: build (debug binaries)"
# (cargo-deb warns that it is meant for release builds: its warning is filtered out)
cargo deb -p tributary --profile dev --no-build --fast --output "$OUT/" 2>&1 | grep -vE "dev profile|debug symbols set|^ *$" || true
DEB="$(ls "$OUT"/tributary_*.deb 2>/dev/null | head -n1)"
[ -n "$DEB" ] || fail "cargo deb wrote no package"
dpkg-deb --info "$DEB" | sed -n '/Package:/,/Description:/p'

DAEMON_PID=
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null || true
  if dpkg -s tributary >/dev/null 2>&1; then apt-get purge -y -qq tributary >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
if dpkg -s tributary >/dev/null 2>&1; then apt-get purge -y -qq tributary >/dev/null; fi

echo "--- deb: install"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(realpath "$DEB")" >/dev/null

echo "--- deb: files"
for f in /usr/bin/tributary /usr/bin/tributary-smb-worker /usr/share/tributary/fetch-model.sh; do
  [ -x "$f" ] || fail "$f is missing or not executable"
done
UNIT=/usr/lib/systemd/system/tributary.service
for f in "$UNIT" /usr/lib/sysusers.d/tributary.conf /etc/tributary/tributary.yaml \
         /usr/share/man/man1/tributary.1.gz /usr/share/man/man1/tributary-run.1.gz \
         /usr/share/man/man1/tributary-ctl-resolve.1.gz \
         /usr/share/bash-completion/completions/tributary \
         /usr/share/zsh/vendor-completions/_tributary \
         /usr/share/fish/vendor_completions.d/tributary.fish \
         /usr/share/doc/tributary/examples/credentials.conf \
         /usr/share/doc/tributary/configuration.md /usr/share/doc/tributary/troubleshooting.md \
         /usr/share/doc/tributary/operations.md /usr/share/doc/tributary/copyright \
         /usr/share/doc/tributary/examples/monitoring/tributary.rules.yml; do
  [ -f "$f" ] || fail "$f is missing"
done
grep -q ' /etc/tributary/tributary.yaml ' <<<"$(dpkg-query -W -f='${Conffiles}\n' tributary)" \
  || fail "/etc/tributary/tributary.yaml is not a conffile"
grep -q 'keep_both' <<<"$(zcat /usr/share/man/man1/tributary-ctl-resolve.1.gz)" || fail "man page without its example"
bash -n /usr/share/bash-completion/completions/tributary || fail "bash completion does not parse"
bash -c 'source /usr/share/bash-completion/completions/tributary && complete -p tributary' >/dev/null \
  || fail "bash completion registers nothing"
/usr/bin/tributary --version
# (grep reads whole outputs here: with pipefail, `grep -q` closing a pipe early fails it)
libs="$(ldd /usr/bin/tributary /usr/bin/tributary-smb-worker)"
grep -q 'libsmbclient' <<<"$libs" || fail "tributary-smb-worker does not link libsmbclient"
! grep 'not found' <<<"$libs" || fail "a library is missing"
grep -q 'libsmbclient' <<<"$(dpkg-query -W -f='${Depends}' tributary)" || fail "libsmbclient is not a dependency"

echo "--- deb: user, secrets made at install"
id tributary >/dev/null || fail "no user tributary"
for f in /etc/tributary/api-token /etc/tributary/secrets.key; do
  [ "$(stat -c '%U:%G %a' "$f")" = "root:tributary 640" ] || fail "$f: $(stat -c '%U:%G %a' "$f")"
done
[ "$(wc -c < /etc/tributary/api-token)" -ge 40 ] || fail "api-token is too short"
AS_SERVICE=(setpriv --reuid=tributary --regid=tributary --init-groups)

echo "--- deb: the shipped configuration"
"${AS_SERVICE[@]}" /usr/bin/tributary check -c /etc/tributary/tributary.yaml

if command -v systemd-analyze >/dev/null; then
  echo "--- deb: systemd-analyze verify"
  # a machine without a running systemd may warn about its own state; the unit's own
  # problems name the unit
  out="$(systemd-analyze verify "$UNIT" 2>&1 || true)"
  echo "$out"
  if echo "$out" | grep -i 'tributary.service' | grep -viE 'Failed to (connect|create)|not running'; then
    fail "systemd-analyze verify reports problems of the unit"
  fi
fi

echo "--- deb: the daemon starts with the shipped configuration"
# as the unit runs it: the user tributary, the state directory systemd would make
install -d -o tributary -g tributary -m 0750 /var/lib/tributary
CONFIG=/etc/tributary/tributary.yaml
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  # port 8080 is taken on this machine: the same file on another port
  CONFIG="$(mktemp --suffix=.yaml)"
  sed 's/127.0.0.1:8080/127.0.0.1:18089/' /etc/tributary/tributary.yaml > "$CONFIG"
  chmod 644 "$CONFIG"
fi
PORT="$(grep -oE '127.0.0.1:[0-9]+' "$CONFIG" | head -n1 | cut -d: -f2)"
"${AS_SERVICE[@]}" /usr/bin/tributary run -c "$CONFIG" > "$OUT/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do
  "${AS_SERVICE[@]}" /usr/bin/tributary health -c "$CONFIG" --ready >/dev/null 2>&1 && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$OUT/daemon.log"; fail "the daemon exited"; }
  sleep 0.3
done
"${AS_SERVICE[@]}" /usr/bin/tributary health -c "$CONFIG" --ready || { cat "$OUT/daemon.log"; fail "never ready"; }
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/v1/connectors")"
[ "$code" = 401 ] || fail "without a token: HTTP $code"
curl -fsS -H "Authorization: Bearer $(cat /etc/tributary/api-token)" "http://127.0.0.1:$PORT/api/v1/connectors" >/dev/null \
  || fail "the install's API token is refused"
[ -n "$(ls -A /var/lib/tributary)" ] || fail "no state written in /var/lib/tributary"
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=

echo "--- deb: lintian"
command -v lintian >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null; }
lintian --fail-on error "$DEB"

echo "--- deb: remove keeps the configuration and state, purge deletes them"
apt-get remove -y -qq tributary >/dev/null
[ ! -e /usr/bin/tributary ] || fail "remove left /usr/bin/tributary"
[ -f /etc/tributary/tributary.yaml ] && [ -d /var/lib/tributary ] && id tributary >/dev/null \
  || fail "remove deleted the configuration, the state or the user"
apt-get purge -y -qq tributary >/dev/null
for f in /etc/tributary /var/lib/tributary; do [ ! -e "$f" ] || fail "purge left $f"; done
! id tributary >/dev/null 2>&1 || fail "purge left the user tributary"
echo "deb check: ok ($(basename "$DEB"), $(du -h "$DEB" | cut -f1))"
