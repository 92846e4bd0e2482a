#!/usr/bin/env bash
# Real guests against `sandfsd vhost-user`: a Linux guest under QEMU (TCG) mounts the share with
# virtio-fs and runs file operations, checking every result inside the guest; the test then
# checks on the host what the guest left there. Cases:
#   1. passthrough (--shared-dir): POSIX operations, 16 MiB of data by checksum across a
#      drop_caches, ownership and modes kept in the record (host files stay 0600/0700), a
#      permission denial for an unprivileged guest user, 500-entry readdir, statfs;
#   2. the same socket again (sandfsd keeps listening): a second guest sees the first one's data;
#   3. memfs on two sockets served by one process, two guests at once, each sees only its own.
# Needs root, QEMU and the guest harness's kernel (tests/guest/run-guest.sh fetches it); exits 77
# (skipped) when they are missing.
#
#   tests/integration/vhost_user_guest.sh [SANDFSD]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
harness=${RUN_GUEST:-$here/../guest/run-guest.sh}
SANDFSD=${1:-${SANDFSD:-}}

[ "$(id -u)" = 0 ] || { echo "vhost_user_guest: needs root (skipped)"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "vhost_user_guest: no QEMU (skipped)"; exit 77; }
[ -x "$SANDFSD" ] || { echo "vhost_user_guest: no sandfsd binary (pass it or set SANDFSD)"; exit 1; }
[ -x "$harness" ] || { echo "vhost_user_guest: no $harness"; exit 1; }

work=$(mktemp -d /tmp/sandfs-vu-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# start_server LOG ARGS... : starts sandfsd vhost-user, waits until it is ready.
start_server() {
  local log=$1
  shift
  "$SANDFSD" vhost-user --ready-fd 9 "$@" 9>"$work/ready.$$" 2>"$log" &
  pids+=($!)
  local pid=$!
  for _ in $(seq 200); do
    grep -q ready "$work/ready.$$" 2>/dev/null && { rm -f "$work/ready.$$"; return 0; }
    kill -0 "$pid" 2>/dev/null || { echo "sandfsd exited:"; cat "$log"; return 1; }
    sleep 0.05
  done
  echo "sandfsd not ready after 10 s"
  cat "$log"
  return 1
}

guest() {  # guest SOCKET SCRIPT NAME
  "$harness" --socket "$1" --tag sandfs --script "$2" --timeout 240 --log "$work/$3.console" \
    --result "$work/$3.result" >"$work/$3.out" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "--- guest $3 exited $rc; its console (last 40 lines):"
    tail -40 "$work/$3.console" 2>/dev/null || tail -40 "$work/$3.out"
  fi
  return $rc
}

# ---- 1. passthrough ----
share=$work/share
mkdir "$share"
start_server "$work/pt.log" --socket-path "$work/pt.sock" --shared-dir "$share" --queues 2 ||
  exit 1

cat >"$work/first.sh" <<'EOF'
set -u
fail() { echo "GUEST FAIL: $*"; exit 1; }
echo hello > a || fail "create"
[ "$(cat a)" = hello ] || fail "read back"
mkdir -p d/e && echo x > d/e/f || fail "mkdir -p"
[ "$(cat d/e/f)" = x ] || fail "nested file"
dd if=/dev/urandom of=big bs=1M count=16 2>/dev/null || fail "dd"
before=$(sha256sum big | cut -d' ' -f1)
sync
echo 3 > /proc/sys/vm/drop_caches
after=$(sha256sum big | cut -d' ' -f1)
[ "$before" = "$after" ] || fail "16 MiB checksum changed across drop_caches"
echo "$before" > big.sha
mv a b && [ ! -e a ] && [ "$(cat b)" = hello ] || fail "rename"
ln b hard && [ "$(stat -c %h b)" = 2 ] || fail "hard link"
ln -s b sym && [ "$(readlink sym)" = b ] && [ "$(cat sym)" = hello ] || fail "symlink"
chmod 4755 b && [ "$(stat -c %a b)" = 4755 ] || fail "chmod 4755"
chown 1234:5678 b && [ "$(stat -c %u:%g b)" = 1234:5678 ] || fail "chown"
[ "$(stat -c %a b)" = 755 ] || fail "chown kept setuid: $(stat -c %a b)"
mknod fifo p && [ -p fifo ] || fail "mknod fifo"
mknod null c 1 3 && [ -c null ] && [ "$(stat -c %t:%T null)" = 1:3 ] || fail "mknod char device"
truncate -s 100000 b && [ "$(stat -c %s b)" = 100000 ] || fail "truncate"
i=0
while [ $i -lt 500 ]; do echo $i > d/many.$i; i=$((i + 1)); done
[ "$(ls d | wc -l)" = 501 ] || fail "readdir: $(ls d | wc -l) entries, expected 501"
rm d/many.* && [ "$(ls d)" = e ] || fail "unlink many"
rm -r d/e && rmdir d && [ ! -e d ] || fail "rm -r / rmdir"
rmdir b 2>/dev/null && fail "rmdir of a file succeeded"
chmod 755 . && mkdir private && chmod 700 private || fail "chmod dir"
su user -c "touch private/denied" 2>/dev/null && fail "an unprivileged user wrote into a 0700 dir"
[ ! -e private/denied ] || fail "denied file exists"
df . >/dev/null || fail "statfs"
exit 0
EOF
guest "$work/pt.sock" "$work/first.sh" first || fail "first guest on the passthrough share"

# On the host: the data, and the guest's ownership only in the records.
[ "$(sha256sum "$share/big" | cut -d' ' -f1)" = "$(cat "$share/big.sha" 2>/dev/null)" ] ||
  fail "host copy of big differs from what the guest wrote"
[ "$(stat -c %a "$share/b" 2>/dev/null)" = 600 ] || fail "host mode of b is not 0600"
[ "$(stat -c %a "$share/private" 2>/dev/null)" = 700 ] || fail "host mode of private is not 0700"
[ "$(stat -c %u "$share/b" 2>/dev/null)" = 0 ] || fail "host owner of b changed"
[ -f "$share/fifo" ] && [ ! -p "$share/fifo" ] || fail "the guest's fifo is not a plain host file"
[ -f "$share/sym" ] && [ ! -L "$share/sym" ] || fail "strict mode: the symlink is not a host file"
record=$(getfattr --only-values -n user.sandfs.stat "$share/b" 2>/dev/null | od -An -tu4 | tr -s ' \n' '  ' | sed 's/ *$//')
[ "$record" = " 1 1234 5678 33261 0" ] || fail "record of b: '$record' (version, uid, gid, mode 0100755, rdev)"

# ---- 2. the same socket again ----
cat >"$work/second.sh" <<'EOF'
fail() { echo "GUEST FAIL: $*"; exit 1; }
[ "$(sha256sum big | cut -d' ' -f1)" = "$(cat big.sha)" ] || fail "data from the first guest"
[ "$(stat -c %u:%g:%a b)" = 1234:5678:755 ] || fail "ownership from the first guest: $(stat -c %u:%g:%a b)"
[ -c null ] || fail "device from the first guest"
echo again > second
exit 0
EOF
guest "$work/pt.sock" "$work/second.sh" second || fail "second guest on the same socket"
[ "$(cat "$share/second" 2>/dev/null)" = again ] || fail "the second guest's file is not on the host"
grep -q "#2: frontend connected" "$work/pt.log" || fail "sandfsd did not log a second connection"

# ---- 3. memfs on two sockets, two guests at once ----
start_server "$work/mem.log" --socket-path "$work/m1.sock" --socket-path "$work/m2.sock" \
  --backend memfs --capacity 64M || exit 1
for n in 1 2; do
  cat >"$work/mem$n.sh" <<EOF
fail() { echo "GUEST FAIL: \$*"; exit 1; }
[ -z "\$(ls)" ] || fail "a fresh memfs is not empty: \$(ls)"
i=0
while [ \$i -lt 200 ]; do echo "guest $n \$i" > f\$i; i=\$((i + 1)); done
sync
[ "\$(cat f199)" = "guest $n 199" ] || fail "own data"
[ "\$(ls | wc -l)" = 200 ] || fail "entries"
dd if=/dev/zero of=toobig bs=1M count=100 2>/dev/null && fail "wrote 100 MiB into a 64 MiB memfs"
exit 0
EOF
done
guest "$work/m1.sock" "$work/mem1.sh" mem1 &
g1=$!
guest "$work/m2.sock" "$work/mem2.sh" mem2 &
g2=$!
wait $g1 || fail "guest 1 on memfs"
wait $g2 || fail "guest 2 on memfs"

# Both servers stop cleanly on SIGTERM (exit 0; under ASan also no leak report).
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
for p in "${pids[@]}"; do
  wait "$p"
  rc=$?
  [ $rc -eq 0 ] || fail "sandfsd (pid $p) exited $rc after SIGTERM"
done
pids=()
if grep -l "Sanitizer" "$work/pt.log" "$work/mem.log" >/dev/null 2>&1; then
  fail "sanitizer report in the sandfsd logs"
fi
grep -q "0 malformed descriptor chains" "$work/pt.log" || fail "malformed chains from a real guest"

if [ $failures -ne 0 ]; then
  echo "vhost_user_guest: $failures failure(s); sandfsd logs:"
  tail -n 20 "$work/pt.log" "$work/mem.log"
  exit 1
fi
echo "vhost_user_guest: all checks passed"
