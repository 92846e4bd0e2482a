#!/usr/bin/env bash
# shellcheck disable=SC2012,SC2016
# selftest.sh — checks run-guest.sh end to end, with QEMU's C virtiofsd as the backend on a
# temporary share (one virtiofsd per guest: it serves one connection and exits when QEMU goes).
#
#   1. --prepare builds (or finds) the cached kernel + initramfs;
#   2. setup errors exit 125 without booting;
#   3. a guest writes, reads, appends, renames, lists, links, chmods and removes files and checks
#      every result itself; the host then checks the share (contents, names, modes, checksums);
#      --env, --file, --bin, --log and --result are used on the way;
#   4. a script's own status comes back (exit 3 -> 3), with --smp/--memory/--queue-size set;
#   5. a guest kernel panic (sysrq c) -> 126;
#   6. a script that outlives --timeout -> 124;
#   7. the backend killed while the script runs -> 126 within seconds, not at the timeout.
#
# Usage: selftest.sh [--keep]   (--keep keeps the temporary folder)
# Needs root (virtiofsd) and QEMU; exits 77 (skipped) without them. Ends with "N passed, N failed".
set -uo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=$HERE/run-guest.sh
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
KEEP=0
[ "${1:-}" = --keep ] && KEEP=1

if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root (virtiofsd)"; exit 77; fi
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: qemu-system-x86_64 missing (scripts/setup.sh installs qemu-system-x86)"; exit 77
fi
if [ ! -x "$VIRTIOFSD" ]; then echo "SKIP: $VIRTIOFSD missing (qemu-system-common)"; exit 77; fi

T=$(mktemp -d /tmp/sandfs-guest-selftest.XXXXXX) || exit 1
export TMPDIR=$T # run-guest.sh keeps the work folders of failed runs in here
BPID="" PASSED=0 FAILED=0
cleanup() {
  stop_backend
  if [ "$KEEP" = 1 ] || [ "$FAILED" -gt 0 ]; then echo "selftest: files kept in $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
# check DESCRIPTION COMMAND... : one PASS/FAIL line
check() { local d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }
# the value of KEY in a --result file
result() { sed -n "s/^$2=//p" "$1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
show_output() { echo "--- last lines of $1"; tail -n 25 "$1" | sed 's/^/  | /'; }

# start_backend NAME: a fresh share $T/NAME and a virtiofsd on $T/NAME.sock. It runs in its own
# process group so that stop/kill reaches the child it forks into its sandbox namespaces.
start_backend() {
  SHARE=$T/$1 SOCK=$T/$1.sock
  mkdir -p "$SHARE"
  setsid "$VIRTIOFSD" --socket-path="$SOCK" -o source="$SHARE" -o cache=auto \
    2>"$T/$1.virtiofsd.log" &
  BPID=$!
  for _ in $(seq 100); do
    [ -S "$SOCK" ] && return 0
    kill -0 "$BPID" 2>/dev/null || break
    sleep 0.05
  done
  echo "selftest: virtiofsd did not start:"; cat "$T/$1.virtiofsd.log"
  return 1
}
# stop_backend: it normally exits by itself once QEMU disconnects; then stop what is left
stop_backend() {
  [ -n "$BPID" ] || return 0
  for _ in $(seq 20); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$BPID" 2>/dev/null
  wait "$BPID" 2>/dev/null
  BPID=""
}

# ------------------------------------------------------------------------------------------
echo "== 1. the cached kernel and initramfs"
if "$RUN" --prepare >"$T/prepare.out" 2>&1; then
  pass "--prepare: $(grep -E '^(package|boot)=' "$T/prepare.out" | tr '\n' ' ')"
else
  fail "--prepare"; show_output "$T/prepare.out"
  echo "0 passed, $FAILED failed"; exit 1 # nothing else can work
fi

echo "== 2. setup errors"
"$RUN" --socket "$T/none.sock" --tag x --cmd true --wait-socket 0 --result "$T/nosock.res" \
  >"$T/nosock.out" 2>&1
rc=$?
check "a missing socket exits 125 (got $rc), status=setup-error" \
  test "$rc:$(result "$T/nosock.res" status)" = 125:setup-error
"$RUN" --socket "$T/none.sock" --tag x --cmd true --bogus >/dev/null 2>&1
rc=$?
check "an unknown option exits 125 (got $rc)" test "$rc" = 125

# ------------------------------------------------------------------------------------------
echo "== 3. file operations, checked in the guest and on the host"
start_backend fsops || exit 1
printf 'seeded by the host\n' >"$SHARE/from-host.txt"
printf 'delete me\n' >"$SHARE/from-host-delete.txt"
printf 'a file for the guest\n' >"$T/data.txt"
printf 'elsewhere\n' >"$T/payload.txt"
cat >"$T/fsops.sh" <<'EOF'
set -e
bad() { echo "GUEST CHECK FAILED: $*"; exit 1; }
expect() { [ "$1" = "$2" ] || bad "$3: got '$1', want '$2'"; }

expect "$(cat from-host.txt)" "seeded by the host" "a file the host wrote"
echo "hello from the guest" >a.txt
expect "$(cat a.txt)" "hello from the guest" "read back"
echo "second line" >>a.txt
expect "$(wc -l <a.txt | tr -d ' ')" 2 "append"

dd if=/dev/urandom of=big.bin bs=64k count=64 2>/dev/null # 4 MiB in 64 KiB writes
expect "$(stat -c %s big.bin)" 4194304 "size after dd"
sha256sum big.bin | cut -d' ' -f1 >big.sha256

mkdir -p dir/sub
mv a.txt dir/sub/renamed.txt
[ ! -e a.txt ] || bad "a.txt is still there after the rename"
expect "$(head -n1 dir/sub/renamed.txt)" "hello from the guest" "content after rename"
touch dir/one dir/two
expect "$(ls dir | tr '\n' ' ')" "one sub two " "listing"
mv dir/two dir/three
expect "$(ls dir | tr '\n' ' ')" "one sub three " "listing after a rename in place"

echo x >mode.txt
chmod 640 mode.txt
expect "$(stat -c %a mode.txt)" 640 "chmod"
chmod u+x,o+r mode.txt
expect "$(stat -c %a mode.txt)" 744 "chmod again"
ln -s dir/sub/renamed.txt link
expect "$(readlink link)" dir/sub/renamed.txt "symlink target"
expect "$(head -n1 link)" "hello from the guest" "read through the symlink"
ln dir/one hard
expect "$(stat -c %h dir/one)" 2 "hard link count"

rm from-host-delete.txt hard
[ ! -e from-host-delete.txt ] || bad "unlink of the host's file"
mkdir empty
rmdir empty
[ ! -e empty ] || bad "rmdir"
echo scratch >gone.txt
rm gone.txt
expect "$(ls | tr '\n' ' ')" "big.bin big.sha256 dir from-host.txt link mode.txt " "final listing"

expect "$GREETING" "hi there" "--env"
expect "$(cat "$SANDFS_GUEST_FILES/data.txt")" "a file for the guest" "--file SRC"
expect "$(cat /opt/payload.txt)" "elsewhere" "--file SRC:DST"
/usr/local/bin/xz --version | grep -q 'XZ Utils' || bad "--bin xz does not run"
/usr/local/bin/xz -k dir/sub/renamed.txt
expect "$(/usr/local/bin/xz -dc dir/sub/renamed.txt.xz | tail -n1)" "second line" "xz round trip"
sync
echo "guest: all checks passed"
EOF
"$RUN" --socket "$SOCK" --tag fsops --script "$T/fsops.sh" --timeout 240 \
  --env GREETING="hi there" --file "$T/data.txt" --file "$T/payload.txt:/opt/payload.txt" \
  --bin "$(command -v xz)" --log "$T/fsops.console" --result "$T/fsops.res" >"$T/fsops.out" 2>&1
rc=$?
stop_backend
check "guest script exits 0 (got $rc)" test "$rc" = 0
[ "$rc" = 0 ] || show_output "$T/fsops.out"
check "result: status=ok exit_code=0" test "$(result "$T/fsops.res" status):$(result "$T/fsops.res" exit_code)" = ok:0
check "result: boot_s and total_s are times ($(result "$T/fsops.res" boot_s)s, $(result "$T/fsops.res" total_s)s)" \
  grep -qE '^total_s=[0-9]+\.[0-9]+$' "$T/fsops.res"
check "the console log has the marker lines" \
  bash -c "grep -q '@@SANDFS-GUEST@@ MOUNTED' '$T/fsops.console' && grep -q '@@SANDFS-GUEST@@ DONE rc=0' '$T/fsops.console'"
check "host: the renamed file holds what the guest wrote" \
  test "$(cat "$SHARE/dir/sub/renamed.txt" 2>/dev/null)" = "hello from the guest
second line"
check "host: the old names are gone" \
  test ! -e "$SHARE/a.txt" -a ! -e "$SHARE/from-host-delete.txt" -a ! -e "$SHARE/gone.txt" -a ! -e "$SHARE/empty"
check "host: the guest's checksum matches the file" \
  test "$(sha256sum <"$SHARE/big.bin" | cut -d' ' -f1)" = "$(cat "$SHARE/big.sha256" 2>/dev/null)"
check "host: the mode is 744" test "$(stat -c %a "$SHARE/mode.txt" 2>/dev/null)" = 744
check "host: the symlink points at dir/sub/renamed.txt" \
  test "$(readlink "$SHARE/link")" = dir/sub/renamed.txt
check "host: listing of dir" test "$(ls "$SHARE/dir" | tr '\n' ' ')" = "one sub three "
check "host: the guest's xz file decompresses" \
  test "$(xz -dc "$SHARE/dir/sub/renamed.txt.xz" 2>/dev/null | head -n1)" = "hello from the guest"

# ------------------------------------------------------------------------------------------
echo "== 4. the script's exit status comes back"
start_backend status || exit 1
echo marker >"$SHARE/marker"
"$RUN" --socket "$SOCK" --tag status --smp 2 --memory 256M --queue-size 256 --timeout 240 \
  --cmd 'test "$(cat marker)" = marker || exit 1; exit 3' --result "$T/status.res" >"$T/status.out" 2>&1
rc=$?
stop_backend
check "exit 3 in the guest gives 3 (got $rc), status=ok" \
  test "$rc:$(result "$T/status.res" status)" = 3:ok
[ "$rc" = 3 ] || show_output "$T/status.out"

echo "== 5. the guest kernel panics during the script"
start_backend panic || exit 1
"$RUN" --socket "$SOCK" --tag panic --cmd 'echo c >/proc/sysrq-trigger; sleep 60' --timeout 240 \
  --result "$T/panic.res" >"$T/panic.out" 2>&1
rc=$?
stop_backend
check "a guest panic exits 126 (got $rc), status=$(result "$T/panic.res" status)" \
  test "$rc:$(result "$T/panic.res" status)" = 126:guest-died
[ "$rc" = 126 ] || show_output "$T/panic.out"

echo "== 6. timeout"
start_backend timeout || exit 1
t0=$(now)
"$RUN" --socket "$SOCK" --tag timeout --cmd 'sleep 600' --timeout 10 --result "$T/timeout.res" \
  >"$T/timeout.out" 2>&1
rc=$?
took=$(elapsed "$t0" "$(now)")
stop_backend
check "a script past --timeout 10 exits 124 (got $rc) after ${took}s, status=timeout" \
  test "$rc:$(result "$T/timeout.res" status)" = 124:timeout
[ "$rc" = 124 ] || show_output "$T/timeout.out"

echo "== 7. the backend dies while the script runs"
start_backend killed || exit 1
"$RUN" --socket "$SOCK" --tag killed --timeout 240 --result "$T/killed.res" --script - \
  >"$T/killed.out" 2>&1 <<'EOF' &
echo started >started
i=0
while :; do i=$((i + 1)); echo "$i" >counter; cat counter >/dev/null; sleep 0.1; done
EOF
gpid=$!
for _ in $(seq 1200); do [ -e "$SHARE/started" ] && break; kill -0 "$gpid" 2>/dev/null || break; sleep 0.1; done
sleep 1
t0=$(now)
kill -KILL -- "-$BPID" 2>/dev/null
wait "$gpid"
rc=$?
took=$(elapsed "$t0" "$(now)")
wait "$BPID" 2>/dev/null
BPID=""
check "a killed backend gives 126 (got $rc) after ${took}s, status=$(result "$T/killed.res" status)" \
  test "$rc:$(result "$T/killed.res" status)" = 126:backend-closed
check "... within 15 s of the kill" awk -v t="$took" 'BEGIN { exit !(t < 15) }'
[ "$rc" = 126 ] || show_output "$T/killed.out"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
