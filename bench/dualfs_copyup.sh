#!/usr/bin/env bash
# DualFs copy-up against kernel overlayfs and fuse-overlayfs, in one run on the same data: one
# lower directory on the ext4 root filesystem (/var/tmp), a fresh upper (and work) directory on
# the same filesystem for every timed step, the page cache dropped (echo 3 > drop_caches) before
# each one.
#
#   big:   copy-up of a BIG_MIB lower file, triggered by open(O_WRONLY|O_APPEND) + write(1 byte)
#          + close; timed from open to close (MB/s), and to the end of a sync(2) after the close;
#   small: copy-up of SMALL_FILES 4 KiB lower files in 100 directories, triggered by utime()
#          (what `touch` does) on each, from one process; files/s;
#   stat:  getattr latency on other lower files: lstat() of STAT_SAMPLES distinct lower files
#          never looked up on this mount before, one every ~0.5 ms, first on the idle mount, then
#          again on fresh names while the big copy-up runs on a fresh upper; p50 / p99 µs.
#          Each call takes a fresh name so that no attribute or dentry cache answers for any
#          column (kernel overlayfs would otherwise never leave the dcache, and the FUSE servers'
#          attribute timeouts differ); the lower inodes are first stat'ed directly on ext4 so
#          the number is the filesystem's lookup+getattr, not the disk's.
# Columns: overlayfs (mount -t overlay, default options), fuse-overlayfs (Debian's, default
# options) and sandfs (`sandfsd mount --backend dual --a passthrough:UPPER --b passthrough:LOWER
# --b-readonly --policy read-b-write-a --cache auto`).
# Prints a table and writes bench/results/dualfs-copyup-<UTC timestamp>.md with the raw numbers
# and the ratios sandfs/overlayfs and sandfs/fuse-overlayfs. Needs root (mounts, drop_caches).
# Takes about 1.5 minutes here (2 CPUs).
#
#   bench/dualfs_copyup.sh [--only COLUMN,...]
#
# Environment: SANDFSD (default build/release/src/sandfsd; this script builds nothing),
# DATA_PARENT (/var/tmp; must be on ext4), BIG_MIB (1024), SMALL_FILES (10000),
# STAT_SAMPLES (20000, the most fresh names per phase), RESULTS_DIR (bench/results).
# Note: drop_caches empties the page cache of the whole machine, not only of these mounts.
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
repo=$PWD

columns=(overlayfs fuse-overlayfs sandfs)
args="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --only) IFS=, read -r -a columns <<<"$2"; shift 2 ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

DATA_PARENT=${DATA_PARENT:-/var/tmp}
BIG_MIB=${BIG_MIB:-1024}
SMALL_FILES=${SMALL_FILES:-10000}
STAT_SAMPLES=${STAT_SAMPLES:-20000}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
SANDFSD=${SANDFSD:-$repo/build/release/src/sandfsd}

[ "$(id -u)" = 0 ] || { echo "bench: needs root (mount, drop_caches)" >&2; exit 1; }
[ -c /dev/fuse ] || { echo "bench: /dev/fuse is missing" >&2; exit 1; }
for tool in python3 fuse-overlayfs; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing (scripts/setup.sh)" >&2; exit 1; }
done
[ -x "$SANDFSD" ] || { echo "bench: no sandfsd binary at $SANDFSD (scripts/build.sh release)" >&2; exit 1; }
fstype=$(stat -f -c %T "$DATA_PARENT")
[ "$fstype" = ext2/ext3 ] || { echo "bench: $DATA_PARENT is $fstype, not ext4" >&2; exit 1; }

DATA=$(mktemp -d "$DATA_PARENT/sandfs-bench-cu-XXXXXX")  # on ext4: lower, uppers, works
WORK=$(mktemp -d /tmp/sandfs-bench-cu-XXXXXX)             # mountpoint, helper, logs
LOWER=$DATA/lower
MNT=$WORK/mnt
mkdir "$LOWER" "$MNT"
SERVER_PID=
MOUNTED=

unmount_all() {
  if grep -q " $MNT " /proc/self/mounts; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  if [ -n "$SERVER_PID" ]; then
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
  MOUNTED=
}
cleanup() {
  unmount_all
  rm -rf "$WORK" "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: preparing the lower directory in $DATA ($BIG_MIB MiB file, $SMALL_FILES small files)"
dd if=/dev/urandom of="$LOWER/big.dat" bs=1M count="$BIG_MIB" status=none
python3 - "$LOWER" "$SMALL_FILES" "$STAT_SAMPLES" <<'PY'
import os, sys
lower, n, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blob = os.urandom(4096)
for i in range(n):
    d = os.path.join(lower, "small", "d%03d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(blob)
for phase in ("idle", "busy"):
    for i in range(s):
        d = os.path.join(lower, "stat-" + phase, "d%02d" % (i // 1000))
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "s%05d" % i), "wb").close()
PY
sync

# The helper: "big DIR" (copy-up of DIR/big.dat), "small DIR N", "stat DIR PHASE N [BIG]":
# lstat() of fresh names under DIR/stat-PHASE, every ~0.5 ms, N at most; with BIG, only while a
# thread copies DIR/BIG up (and prints its times too).
cat >"$WORK/cu.py" <<'PY'
import os, sys, threading, time
def copy_up(path, out):
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    t1 = time.perf_counter()
    os.write(fd, b"x")
    os.close(fd)
    t2 = time.perf_counter()
    os.sync()
    t3 = time.perf_counter()
    out.update(open=t1 - t0, close=t2 - t0, synced=t3 - t0)
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]
mode, d = sys.argv[1], sys.argv[2]
if mode == "big":
    r = {}
    copy_up(os.path.join(d, "big.dat"), r)
    print("close=%.4f synced=%.4f open=%.4f" % (r["close"], r["synced"], r["open"]))
elif mode == "small":
    n = int(sys.argv[3])
    paths = [os.path.join(d, "small", "d%03d" % (i % 100), "f%05d" % i) for i in range(n)]
    t0 = time.perf_counter()
    for p in paths:
        os.utime(p)
    t = time.perf_counter() - t0
    print("seconds=%.4f rate=%.1f" % (t, n / t))
elif mode == "stat":
    phase, n = sys.argv[3], int(sys.argv[4])
    big = sys.argv[5] if len(sys.argv) > 5 else None
    base = os.path.join(d, "stat-" + phase)
    r, th = {}, None
    if big:
        th = threading.Thread(target=copy_up, args=(os.path.join(d, big), r))
        th.start()
        time.sleep(0.05)  # let the copy start
    lat = []
    for i in range(n):
        # At least one sample: a copy-up that ends within the start delay (a small BIG_MIB on a
        # fast column) would otherwise leave nothing to take percentiles of.
        if th is not None and not th.is_alive() and lat:
            break
        p = os.path.join(base, "d%02d" % (i // 1000), "s%05d" % i)
        t0 = time.perf_counter_ns()
        os.lstat(p)
        lat.append((time.perf_counter_ns() - t0) / 1000.0)
        time.sleep(0.0005)
    if th is not None:
        th.join()
    extra = " close=%.4f" % r["close"] if big else ""
    if th is not None and len(lat) >= n:
        extra += " ran_out=1"
    print("n=%d p50=%.1f p99=%.1f max=%.1f%s" % (len(lat), pct(lat, 50), pct(lat, 99), max(lat), extra))
PY

wait_fuse_mount() {
  for _ in $(seq 300); do
    grep -qE " $MNT fuse(\.[^ ]*)? " /proc/self/mounts && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench: server exited" >&2; cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "bench: no FUSE mount at $MNT after 15 s" >&2
  exit 1
}

# mount_fs COLUMN: a fresh upper (and work) directory, mounted over LOWER at MNT.
n_upper=0
mount_fs() {
  n_upper=$((n_upper + 1))
  UPPER=$DATA/upper-$n_upper
  local wk=$DATA/work-$n_upper
  mkdir "$UPPER" "$wk"
  case "$1" in
    overlayfs)
      mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$wk" "$MNT" ;;
    fuse-overlayfs)
      fuse-overlayfs -f -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$wk" "$MNT" \
        >"$WORK/server.log" 2>&1 &
      SERVER_PID=$!
      wait_fuse_mount ;;
    sandfs)
      "$SANDFSD" mount --backend dual --a "passthrough:$UPPER" --b "passthrough:$LOWER" \
        --b-readonly --policy read-b-write-a --cache auto "$MNT" >"$WORK/server.log" 2>&1 &
      SERVER_PID=$!
      wait_fuse_mount ;;
    *) echo "bench: unknown column $1" >&2; exit 2 ;;
  esac
  MOUNTED=$1
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# warm_stat PHASE: the lower inodes the stat job will look up, into ext4's caches (not the mount's)
warm_stat() { find "$LOWER/stat-$1" -printf '%s\n' >/dev/null; }  # -printf %s: an lstat each
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p"; }
# check_big: the upper side holds the copied-up file with the appended byte
check_big() {
  local want=$((BIG_MIB * 1048576 + 1)) got
  got=$(stat -c %s "$UPPER/big.dat" 2>/dev/null || echo missing)
  [ "$got" = "$want" ] || echo "bench: $MOUNTED: upper big.dat is $got bytes, not $want" >&2
  cmp -s -n $((BIG_MIB * 1048576)) "$UPPER/big.dat" "$LOWER/big.dat" \
    || echo "bench: $MOUNTED: copied-up big.dat differs from the lower file" >&2
}

declare -A R
for col in "${columns[@]}"; do
  echo "bench: $col"
  # (1) big copy-up, alone
  mount_fs "$col"; drop_caches
  line=$(python3 "$WORK/cu.py" big "$MNT"); echo "  big: $line"
  R[$col,big_close]=$(field close <<<"$line"); R[$col,big_synced]=$(field synced <<<"$line")
  unmount_all; check_big
  # (2) small-file copy-up
  mount_fs "$col"; drop_caches
  line=$(python3 "$WORK/cu.py" small "$MNT" "$SMALL_FILES"); echo "  small: $line"
  R[$col,small]=$(field rate <<<"$line")
  unmount_all
  # (DualFs also leaves a whiteout marker, .sandfs-dual.wh.NAME, beside every copied-up file)
  ups=$(find "$UPPER/small" -type f ! -name '.sandfs-dual.*' 2>/dev/null | wc -l)
  [ "$ups" = "$SMALL_FILES" ] || echo "bench: $col: $ups small files in the upper, not $SMALL_FILES" >&2
  # (3) getattr latency: idle, then during a big copy-up, on one fresh mount
  mount_fs "$col"; drop_caches; warm_stat idle; warm_stat busy
  line=$(python3 "$WORK/cu.py" stat "$MNT" idle 2000); echo "  stat idle: $line"
  R[$col,idle_p50]=$(field p50 <<<"$line"); R[$col,idle_p99]=$(field p99 <<<"$line")
  R[$col,idle_n]=$(field n <<<"$line"); R[$col,idle_max]=$(field max <<<"$line")
  line=$(python3 "$WORK/cu.py" stat "$MNT" busy "$STAT_SAMPLES" big.dat); echo "  stat busy: $line"
  R[$col,busy_p50]=$(field p50 <<<"$line"); R[$col,busy_p99]=$(field p99 <<<"$line")
  R[$col,busy_n]=$(field n <<<"$line"); R[$col,busy_max]=$(field max <<<"$line")
  R[$col,busy_close]=$(field close <<<"$line")
  grep -q ran_out <<<"$line" && echo "bench: $col: the stat loop ran out of fresh names before the copy ended" >&2
  unmount_all; check_big
done

mbps() { awk -v s="$1" -v m="$BIG_MIB" 'BEGIN { if (s == "" || s == 0) print "-"; else printf "%.0f", m * 1.048576 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
out=$RESULTS_DIR/dualfs-copyup-$stamp.md
{
  echo "# dualfs_copyup $stamp"
  echo
  echo "\`bench/dualfs_copyup.sh $args\` on $(uname -r), $(nproc) CPUs, $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "(sandfsd $SANDFSD), BIG_MIB=$BIG_MIB SMALL_FILES=$SMALL_FILES; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| job | $(IFS='|'; echo "${columns[*]}" | sed 's/|/ | /g') |"
  echo "|---|$(for _ in "${columns[@]}"; do printf -- '---|'; done)"
  row() { local name=$1; shift; printf '| %s |' "$name"; for c in "${columns[@]}"; do printf ' %s |' "$("$@" "$c")"; done; echo; }
  get() { echo "${R[$2,$1]:--}"; }
  big_mbps() { mbps "${R[$1,big_close]:-}"; }
  big_sync_mbps() { mbps "${R[$1,big_synced]:-}"; }
  busy_mbps() { mbps "${R[$1,busy_close]:-}"; }
  row "big copy-up, open→close, MB/s" big_mbps
  row "big copy-up, open→close+sync, MB/s" big_sync_mbps
  row "big copy-up, open→close, s" get big_close
  row "small copy-up, files/s" get small
  row "getattr idle p50 µs" get idle_p50
  row "getattr idle p99 µs" get idle_p99
  row "getattr during copy-up p50 µs" get busy_p50
  row "getattr during copy-up p99 µs" get busy_p99
  row "getattr idle max µs" get idle_max
  row "getattr during copy-up max µs" get busy_max
  printf '| getattr samples idle / during |'; for c in "${columns[@]}"; do printf ' %s / %s |' "${R[$c,idle_n]:--}" "${R[$c,busy_n]:--}"; done; echo
  row "big copy-up with the stat loop, MB/s" busy_mbps
  echo
  echo "Ratios (sandfs / peer; for MB/s and files/s higher is better for sandfs, for µs lower):"
  echo
  echo "| job | sandfs/overlayfs | sandfs/fuse-overlayfs |"
  echo "|---|---|---|"
  for k in big_close big_synced small idle_p50 idle_p99 busy_p50 busy_p99; do
    case $k in
      big_close | big_synced)  # rates: invert the time ratio
        a=$(ratio "${R[overlayfs,$k]:-}" "${R[sandfs,$k]:-}"); b=$(ratio "${R[fuse-overlayfs,$k]:-}" "${R[sandfs,$k]:-}")
        k="$k (MB/s)" ;;
      *) a=$(ratio "${R[sandfs,$k]:-}" "${R[overlayfs,$k]:-}"); b=$(ratio "${R[sandfs,$k]:-}" "${R[fuse-overlayfs,$k]:-}") ;;
    esac
    echo "| $k | $a | $b |"
  done
  echo
  echo "During/idle getattr on the same mount:"
  for c in "${columns[@]}"; do echo "- $c: p50 $(ratio "${R[$c,busy_p50]:-}" "${R[$c,idle_p50]:-}")x, p99 $(ratio "${R[$c,busy_p99]:-}" "${R[$c,idle_p99]:-}")x"; done
} >"$out"
cat "$out"
echo "bench: results in $out"
