#!/bin/bash
# Quick end-to-end check of `sandfsd mount` through the real kernel:
#   1. mount memfs, wait for --ready-fd, mkdir/echo/cat/ls/cp/rm, `umount` from outside,
#      and check the server notices (ENODEV) and exits 0;
#   2. mount again, SIGTERM the server, and check it unmounts itself and exits 0;
#   3. mount again, abort the connection through sysfs, and check the server exits 0 and the
#      dead mount is detached.
#
# Usage: smoke_mount.sh PATH/TO/sandfsd     (or SANDFSD=... smoke_mount.sh)
# Needs root and /dev/fuse; exits 77 (skipped) otherwise.
set -u

SANDFSD=${1:-${SANDFSD:-}}
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root (mount(2))"
  exit 77
fi
if [ ! -c /dev/fuse ]; then
  echo "SKIP: /dev/fuse is missing"
  exit 77
fi
if [ -z "$SANDFSD" ] || [ ! -x "$SANDFSD" ]; then
  echo "FAIL: sandfsd binary not given or not executable: '$SANDFSD'"
  exit 1
fi

WORK=$(mktemp -d /tmp/sandfs-transport-smoke-XXXXXX)
MNT=$WORK/mnt
mkdir "$MNT"
PID=
T="timeout 10"

cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
  fi
  if grep -q " $MNT " /proc/mounts; then umount -l "$MNT"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- sandfsd log:"
  cat "$WORK"/log* 2>/dev/null
  exit 1
}

# Starts sandfsd in the background and waits for "ready" on its --ready-fd.
start_server() {
  local log=$1
  rm -f "$WORK/ready"
  "$SANDFSD" mount --backend memfs --capacity 64MiB --threads 2 --ready-fd 3 "$MNT" \
    3>"$WORK/ready" 2>"$log" &
  PID=$!
  for _ in $(seq 100); do
    grep -q '^ready$' "$WORK/ready" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || fail "sandfsd exited before it was ready"
    sleep 0.1
  done
  grep -q '^ready$' "$WORK/ready" || fail "sandfsd not ready after 10 s"
  grep -q " $MNT fuse.sandfs " /proc/mounts || fail "no fuse.sandfs mount at $MNT"
  grep -q "sandfsd: mounted memfs on $MNT" "$log" || fail "no 'mounted' line on stderr"
}

# Waits up to 10 s for the server to exit; checks its status and that the mount is gone.
expect_exit_0() {
  local status
  for _ in $(seq 100); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$PID" 2>/dev/null && fail "sandfsd still running 10 s after $1"
  wait "$PID"
  status=$?
  PID=
  [ "$status" = 0 ] || fail "sandfsd exited with status $status after $1"
  grep -q " $MNT " /proc/mounts && fail "mount still present after $1"
  return 0
}

# ---- 1. file operations, then an outside umount ---------------------------------------------
start_server "$WORK/log1"

$T mkdir "$MNT/dir" || fail "mkdir"
$T sh -c "echo hello sandfs > '$MNT/dir/greeting'" || fail "echo > file"
[ "$($T cat "$MNT/dir/greeting")" = "hello sandfs" ] || fail "cat returned the wrong content"
[ "$($T ls "$MNT/dir")" = "greeting" ] || fail "ls of dir: '$($T ls "$MNT/dir")'"
[ "$($T stat -c %s "$MNT/dir/greeting")" = 13 ] || fail "file size"

# Several max_write-sized requests each way.
head -c 3000000 /dev/urandom >"$WORK/blob"
$T cp "$WORK/blob" "$MNT/dir/blob" || fail "cp into the mount"
$T cmp "$WORK/blob" "$MNT/dir/blob" || fail "3 MB file read back differs"
# O_DIRECT bypasses the page cache, so these bytes come from the server's READ replies.
$T dd if="$MNT/dir/blob" iflag=direct bs=1M status=none | cmp - "$WORK/blob" ||
  fail "3 MB file read back with O_DIRECT differs"

$T rm "$MNT/dir/greeting" "$MNT/dir/blob" || fail "rm"
$T rmdir "$MNT/dir" || fail "rmdir"
[ -z "$($T ls -A "$MNT")" ] || fail "mount not empty after rm"

umount "$MNT" || fail "umount"
expect_exit_0 "umount"

# ---- 2. SIGTERM unmounts and exits 0 ---------------------------------------------------------
start_server "$WORK/log2"
$T touch "$MNT/x" || fail "touch"
kill -TERM "$PID"
expect_exit_0 "SIGTERM"

# ---- 3. an aborted connection (umount -f / sysfs abort) ends the server cleanly --------------
# With FUSE_ABORT_ERROR the kernel reports the abort as ECONNABORTED, not ENODEV; the server must
# stop, detach the dead mount and exit 0 rather than report a failure.
start_server "$WORK/log3"
$T touch "$MNT/y" || fail "touch"
if ! grep -q " /sys/fs/fuse/connections fusectl " /proc/mounts; then
  mount -t fusectl fusectl /sys/fs/fuse/connections || fail "cannot mount fusectl"
fi
dev=$(stat -c %d "$MNT")
conn=$(( (dev & 0xff) | ((dev >> 12) & 0xfff00) ))
[ -w "/sys/fs/fuse/connections/$conn/abort" ] || fail "no abort file for connection $conn"
echo 1 >"/sys/fs/fuse/connections/$conn/abort"
expect_exit_0 "a connection abort"
grep -q "connection aborted" "$WORK/log3" || fail "no 'connection aborted' in the server log"

echo "PASS: smoke_mount"
exit 0
