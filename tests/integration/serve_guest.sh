#!/usr/bin/env bash
# A named volume in a real guest, driven only through `sandfsd serve`'s HTTP API (curl over the
# API's Unix socket): create a volume with a quota, put a file into it, mount it for a sandbox
# over vhost-user, boot a Linux guest under QEMU (TCG) on the socket the API answered, and let
# the guest read the API's file, write its own files (ownership, modes, 4 MiB by checksum) and
# hit the quota; then read everything back through the files API, see the guest's work in the
# mount's stats and in /metrics, and remove the mount and the volume. A second mount with relaxed
# stat virtualization lets the guest plant a real host symlink out of the volume; the files API
# must refuse to follow it (path_escape), never serve /etc through it.
# Needs root, QEMU, curl and the guest harness's kernel (tests/guest/run-guest.sh fetches it);
# exits 77 (skipped) when they are missing.
#
#   tests/integration/serve_guest.sh [SANDFSD]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
harness=${RUN_GUEST:-$here/../guest/run-guest.sh}
SANDFSD=${1:-${SANDFSD:-}}

[ "$(id -u)" = 0 ] || { echo "serve_guest: needs root (skipped)"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "serve_guest: no QEMU (skipped)"; exit 77; }
command -v curl >/dev/null || { echo "serve_guest: no curl (skipped)"; exit 77; }
[ -x "$SANDFSD" ] || { echo "serve_guest: no sandfsd binary (pass it or set SANDFSD)"; exit 1; }
[ -x "$harness" ] || { echo "serve_guest: no $harness"; exit 1; }

work=$(mktemp -d /tmp/sandfs-serve-guest-XXXXXX)
server=
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

api_sock=$work/api.sock
"$SANDFSD" serve --data-dir "$work/data" --listen none --unix-socket "$api_sock" \
  --ready-fd 9 9>"$work/ready" 2>"$work/serve.log" &
server=$!
for _ in $(seq 200); do
  grep -q ready "$work/ready" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { echo "sandfsd serve exited:"; cat "$work/serve.log"; exit 1; }
  sleep 0.05
done
grep -q ready "$work/ready" || { echo "sandfsd serve not ready"; cat "$work/serve.log"; exit 1; }
token=$(cat "$work/data/token")

# api METHOD PATH [curl args...]: prints the body, then the status on a line of its own.
api() {
  local method=$1 path=$2
  shift 2
  # HEAD through -I: with -X HEAD curl would wait for a body the Content-Length announces.
  [ "$method" = HEAD ] && set -- -I "$@"
  curl -s --unix-socket "$api_sock" -X "$method" -H "Authorization: Bearer $token" \
    -w '\n%{http_code}\n' "$@" "http://sandfs$path"
}
status() { tail -n 1 <<<"$1"; }
body() { sed '$d' <<<"$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

r=$(api POST /v1/volumes -H 'Content-Type: application/json' \
  -d '{"name":"guestvol","quota_mib":24,"labels":{"sandbox":"sb-guest"}}')
[ "$(status "$r")" = 201 ] || fail "create volume: $r"
r=$(api PUT /v1/volumes/guestvol/files/from-api.txt --data-binary 'written by the API')
[ "$(status "$r")" = 201 ] || fail "put a new file: $r"

r=$(api POST /v1/mounts -H 'Content-Type: application/json' -d '{
  "sandbox_id": "sb-guest", "guest_path": "/data",
  "source": {"type": "named", "name": "guestvol", "mode": "existing"},
  "transport": {"type": "vhost-user", "queues": 2}}')
[ "$(status "$r")" = 201 ] || { fail "mount for the guest: $r"; exit 1; }
mount_id=$(body "$r" | json 'd["id"]')
socket=$(body "$r" | json 'd["socket_path"]')
[ -S "$socket" ] || fail "the mount's socket $socket does not exist"

cat >"$work/guest.sh" <<'EOF'
set -u
fail() { echo "GUEST FAIL: $*"; exit 1; }
[ "$(cat from-api.txt)" = "written by the API" ] || fail "the API's file: $(cat from-api.txt)"
mkdir -p work/out || fail "mkdir -p"
echo "from the guest" > work/out/hello.txt || fail "create"
dd if=/dev/urandom of=work/data.bin bs=1M count=4 2>/dev/null || fail "dd 4 MiB"
sha256sum work/data.bin | cut -d' ' -f1 > work/data.sha
chown 1000:1000 work/out/hello.txt && chmod 640 work/out/hello.txt || fail "chown/chmod"
mv from-api.txt work/moved.txt || fail "rename the API's file"
sync
# The volume's quota is 24 MiB for every mount together: 64 MiB cannot fit.
dd if=/dev/zero of=huge bs=1M count=64 2>/dev/null && fail "wrote 64 MiB into a 24 MiB volume"
rm -f huge
sync
exit 0
EOF
"$harness" --socket "$socket" --tag sandfs --script "$work/guest.sh" --timeout 240 \
  --log "$work/guest.console" --result "$work/guest.result" >"$work/guest.out" 2>&1 ||
  { fail "the guest (console tail below)"; tail -40 "$work/guest.console" 2>/dev/null; }

# Back on the host, through the files API only.
curl -s --unix-socket "$api_sock" -H "Authorization: Bearer $token" \
  -o "$work/data.bin" "http://sandfs/v1/volumes/guestvol/files/work/data.bin"
r=$(api GET /v1/volumes/guestvol/files/work/data.sha)
[ "$(sha256sum "$work/data.bin" | cut -d' ' -f1)" = "$(body "$r")" ] ||
  fail "4 MiB the guest wrote reads back differently through the API"
r=$(api GET /v1/volumes/guestvol/files/work/out/hello.txt)
[ "$(body "$r")" = "from the guest" ] || fail "the guest's small file: $r"
r=$(api GET /v1/volumes/guestvol/files/work/moved.txt)
[ "$(body "$r")" = "written by the API" ] || fail "the guest's rename: $r"
r=$(api HEAD /v1/volumes/guestvol/files/from-api.txt)
[ "$(status "$r")" = 404 ] || fail "the renamed file is still at its old path: $r"
r=$(api GET "/v1/volumes/guestvol/files/work/out/hello.txt?stat")
[ "$(body "$r" | json 'd["kind"], d["size"], d["uid"], d["gid"], oct(d["mode"])')" = \
  "file 15 1000 1000 0o640" ] || fail "stat shows what the guest sees (owner 1000, mode 0640): $r"
r=$(api GET "/v1/volumes/guestvol/files/work?list")
[ "$(body "$r" | json '" ".join(sorted(e["path"] for e in d["entries"]))')" = \
  "work/data.bin work/data.sha work/moved.txt work/out" ] || fail "list: $r"
r=$(api HEAD /v1/volumes/guestvol/files/huge)
[ "$(status "$r")" = 404 ] || fail "the guest's over-quota file was left behind: $r"

r=$(api GET /v1/volumes/guestvol)
used=$(body "$r" | json 'd["used_bytes"]')
[ "$used" -ge $((4 << 20)) ] && [ "$used" -le $((24 << 20)) ] ||
  fail "used_bytes $used is not the guest's 4 MiB (within the 24 MiB quota)"

r=$(api GET "/v1/mounts/$mount_id/stats")
s=$(body "$r")
[ "$(json 'd["ops"]["WRITE"]["count"] > 0' <<<"$s")" = True ] || fail "stats count no WRITE: $s"
[ "$(json 'd["bytes_written"] >= 4 << 20' <<<"$s")" = True ] || fail "stats bytes_written: $s"
[ "$(json 'd["quota"]["limit_bytes"]' <<<"$s")" = $((24 << 20)) ] || fail "stats quota: $s"
[ "$(json '"ENOSPC" in d["errors_by_errno"] or "EDQUOT" in d["errors_by_errno"]' <<<"$s")" = True ] ||
  fail "stats show no quota error by errno: $s"
[ "$(json 'd["malformed"] + d["bad_chains"]' <<<"$s")" = 0 ] || fail "malformed requests: $s"
r=$(api GET /metrics)
grep -q "sandfs_mount_requests_total{mount=\"$mount_id\",sandbox=\"sb-guest\",op=\"WRITE\"}" \
  <<<"$r" || fail "/metrics has no WRITE counter for the guest's mount"

r=$(api DELETE /v1/volumes/guestvol)
[ "$(status "$r")" = 409 ] && grep -q volume_in_use <<<"$r" || fail "remove while mounted: $r"

# ---- relaxed stat virtualization: a real host symlink planted by the guest ----
r=$(api POST /v1/mounts -H 'Content-Type: application/json' -d '{
  "sandbox_id": "sb-relaxed", "stat_virtualization": "relaxed",
  "source": {"type": "named", "name": "guestvol"}}')
if [ "$(status "$r")" = 201 ]; then
  relaxed_id=$(body "$r" | json 'd["id"]')
  cat >"$work/plant.sh" <<'EOF'
fail() { echo "GUEST FAIL: $*"; exit 1; }
ln -s /etc escape && ln -s ../../.. work/up || fail "symlinks"
exit 0
EOF
  "$harness" --socket "$(body "$r" | json 'd["socket_path"]')" --tag sandfs \
    --script "$work/plant.sh" --timeout 240 --log "$work/plant.console" \
    --result "$work/plant.result" >"$work/plant.out" 2>&1 || fail "the planting guest"
  [ -L "$work/data/volumes/guestvol/escape" ] || fail "relaxed mode did not make a host symlink"
  for p in escape/passwd escape work/up/etc/passwd work/up/data/token; do
    r=$(api GET "/v1/volumes/guestvol/files/$p")
    [ "$(status "$r")" = 400 ] && grep -q path_escape <<<"$r" ||
      fail "GET through the guest's symlink $p: $r"
    grep -q "root:" <<<"$r" && fail "host /etc/passwd served through $p"
  done
  r=$(api PUT /v1/volumes/guestvol/files/escape/owned --data-binary x)
  [ "$(status "$r")" = 400 ] || fail "PUT through the guest's symlink: $r"
  [ ! -e /etc/owned ] || { rm -f /etc/owned; fail "PUT wrote /etc/owned"; }
  r=$(api DELETE "/v1/mounts/$relaxed_id")
  [ "$(status "$r")" = 204 ] || fail "remove the relaxed mount: $r"
else
  fail "relaxed mount: $r"
fi

r=$(api DELETE "/v1/mounts/$mount_id")
[ "$(status "$r")" = 204 ] || fail "remove the mount: $r"
[ ! -e "$socket" ] || fail "the mount's socket is still there"
r=$(api DELETE /v1/volumes/guestvol)
[ "$(status "$r")" = 204 ] || fail "remove the volume: $r"
r=$(api GET /v1/volumes/guestvol)
[ "$(status "$r")" = 404 ] || fail "the removed volume answers: $r"
[ ! -e "$work/data/volumes/guestvol" ] || fail "the removed volume's data is still there"

kill -TERM "$server"
wait "$server"
rc=$?
server=
[ $rc -eq 0 ] || fail "sandfsd serve exited $rc after SIGTERM"
grep -q "Sanitizer" "$work/serve.log" && fail "sanitizer report in the server log"

if [ $failures -ne 0 ]; then
  echo "serve_guest: $failures failure(s); server log tail:"
  tail -n 30 "$work/serve.log"
  exit 1
fi
echo "serve_guest: all checks passed"
