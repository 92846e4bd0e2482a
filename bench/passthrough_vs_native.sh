#!/usr/bin/env bash
# PassthroughFs through /dev/fuse against the ext4 directory it serves, bindfs and libfuse's
# passthrough_ll, in one run on the same data: one backing directory on the ext4 root
# filesystem, which every column reads and writes (native: directly; the others: mounted).
#
#   data (fio, buffered, psync, 1 job): 1 MiB sequential read of a FIO_SIZE file, cold (after
#     drop_caches) and warm, each the median of 3 passes; 1 MiB sequential write of a new
#     FIO_SIZE file (with the final fsync, at most SEQWRITE_SECONDS); 4 KiB random read and
#     random write of the first file for RANDOM_SECONDS each (the write with the final fsync);
#   metadata (bench/metabench, 1 thread): create / stat warm (10 passes) / stat cold (after
#     drop_caches) / unlink of FILES empty files in one directory; and stat cold again with 4
#     threads (stat_cold_4t: how a server does with concurrent cold lookups);
#   `ls -l` of a directory of LS_ENTRIES empty files made once at the start, cold (after
#     drop_caches) and warm;
#   untar: `tar -x` of a tarball of /usr/include (without boost/, ~9,000 entries, ~116 MB) made
#     once at the start, into a fresh directory, timed (no sync).
# Columns: native, sandfs (`sandfsd mount --backend passthrough`, default flags), sandfs-always
# (the same with --cache always), bindfs (Debian's, default options) and passthrough_ll
# (libfuse's example, compiled here from /usr/share/doc/libfuse3-dev/examples, default options).
# Prints a table and writes bench/results/passthrough-<UTC timestamp>.md with the raw numbers and
# the ratios to native. Needs root (mounts, drop_caches). Takes about 4 minutes.
#
#   bench/passthrough_vs_native.sh [--only COLUMN,...]
#
# Environment: SANDFSD, METABENCH (binaries; default: build/release via scripts/build.sh),
# DATA_PARENT (/var/tmp; must be on ext4), FIO_SIZE (512M), RANDOM_SECONDS (10),
# SEQWRITE_SECONDS (20), FILES (10000), LS_ENTRIES (100000), RESULTS_DIR (bench/results).
# Note: drop_caches empties the page cache of the whole machine, not only of these mounts.
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
repo=$PWD

columns=(native sandfs sandfs-always bindfs passthrough_ll)
args="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --only) IFS=, read -r -a columns <<<"$2"; shift 2 ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

DATA_PARENT=${DATA_PARENT:-/var/tmp}
FIO_SIZE=${FIO_SIZE:-512M}
RANDOM_SECONDS=${RANDOM_SECONDS:-10}
SEQWRITE_SECONDS=${SEQWRITE_SECONDS:-20}
FILES=${FILES:-10000}
LS_ENTRIES=${LS_ENTRIES:-100000}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
examples=/usr/share/doc/libfuse3-dev/examples

[ "$(id -u)" = 0 ] || { echo "bench: needs root (mount, drop_caches)" >&2; exit 1; }
[ -c /dev/fuse ] || { echo "bench: /dev/fuse is missing" >&2; exit 1; }
for tool in fio gcc pkg-config python3 bindfs tar; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing (scripts/setup.sh)" >&2; exit 1; }
done
[ -f "$examples/passthrough_ll.c" ] || { echo "bench: libfuse3-dev examples missing" >&2; exit 1; }
fstype=$(stat -f -c %T "$DATA_PARENT")
[ "$fstype" = ext2/ext3 ] || { echo "bench: $DATA_PARENT is $fstype, not ext4" >&2; exit 1; }

if [ -z "${SANDFSD:-}" ] || [ -z "${METABENCH:-}" ]; then
  scripts/build.sh release sandfsd metabench >/dev/null
  SANDFSD=${SANDFSD:-$repo/build/release/src/sandfsd}
  METABENCH=${METABENCH:-$repo/build/release/bench/metabench}
fi
[ -x "$SANDFSD" ] && [ -x "$METABENCH" ] || { echo "bench: no sandfsd/metabench binary" >&2; exit 1; }

DATA=$(mktemp -d "$DATA_PARENT/sandfs-bench-pt-XXXXXX")  # on ext4: the served data
WORK=$(mktemp -d /tmp/sandfs-bench-pt-XXXXXX)             # mountpoint, tools, logs
BACKING=$DATA/backing
MNT=$WORK/mnt
mkdir "$BACKING" "$MNT"
SERVER_PID=

unmount_all() {
  if grep -q " $MNT " /proc/self/mounts; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  if [ -n "$SERVER_PID" ]; then
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
cleanup() {
  unmount_all
  rm -rf "$WORK" "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# passthrough_ll keeps an fd per inode it has looked up: as many as the hard limit allows.
ulimit -n "$(ulimit -Hn)"

echo "bench: building passthrough_ll from $examples (not part of sandfs)"
gcc -O2 -I"$examples" "$examples/passthrough_ll.c" $(pkg-config --cflags --libs fuse3) \
  -o "$WORK/passthrough_ll"

echo "bench: preparing the data in $DATA"
fio --name=prepare --filename="$BACKING/fio.dat" --size="$FIO_SIZE" --rw=write --bs=1M \
  --ioengine=psync --end_fsync=1 --output=/dev/null
mkdir "$BACKING/ls"
(cd "$BACKING/ls" && seq -f "entry-%06g" 0 $((LS_ENTRIES - 1)) | xargs touch)
tar -C /usr --exclude=include/boost -cf "$DATA/src.tar" include
tar_entries=$(tar -tf "$DATA/src.tar" | wc -l)
tar_mb=$(($(stat -c %s "$DATA/src.tar") / 1000000))
sync

wait_fuse_mount() {
  for _ in $(seq 300); do
    grep -qE " $MNT fuse(\.[^ ]*)? " /proc/self/mounts && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench: server exited" >&2; cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "bench: no FUSE mount at $MNT after 15 s" >&2
  exit 1
}

# Mounts COLUMN and prints the directory the jobs run in.
mount_fs() {
  case "$1" in
    native) ;;
    sandfs)
      "$SANDFSD" mount --backend passthrough --root "$BACKING" "$MNT" >"$WORK/server.log" 2>&1 &
      SERVER_PID=$!
      wait_fuse_mount ;;
    sandfs-always)
      "$SANDFSD" mount --backend passthrough --root "$BACKING" --cache always "$MNT" \
        >"$WORK/server.log" 2>&1 &
      SERVER_PID=$!
      wait_fuse_mount ;;
    bindfs)
      bindfs -f "$BACKING" "$MNT" >"$WORK/server.log" 2>&1 &
      SERVER_PID=$!
      wait_fuse_mount ;;
    passthrough_ll)
      "$WORK/passthrough_ll" -f -o source="$BACKING" "$MNT" >"$WORK/server.log" 2>&1 &
      SERVER_PID=$!
      wait_fuse_mount ;;
    *) echo "bench: unknown column $1" >&2; exit 2 ;;
  esac
}
dir_of() { if [ "$1" = native ]; then echo "$BACKING"; else echo "$MNT"; fi; }

drop_caches() {  # 2: dentries and inodes; 3: also the page cache
  sync
  echo "$1" >/proc/sys/vm/drop_caches
}

declare -A R  # R[column,job] = number
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
# timed_rate N COMMAND...: N / the command's wall time; "failed" (and its first error line on
# stderr) if it fails, so one server's limit does not end the run.
timed_rate() {
  local n=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  if ! "$@" >/dev/null 2>"$WORK/job.err"; then
    echo "bench: '$*' failed: $(sed -n 1p "$WORK/job.err")" >&2
    echo failed
    return 0
  fi
  t1=$(date +%s.%N)
  python3 -c 'import sys; n, a, b = map(float, sys.argv[1:]); print("%.0f" % (n / (b - a)))' "$n" "$t0" "$t1"
}

fio_job() {  # fio_job DIR FILE RW BS [extra fio args...] -> JSON on stdout
  local dir=$1 file=$2 rw=$3 bs=$4
  shift 4
  fio --name="$rw" --filename="$dir/$file" --size="$FIO_SIZE" --rw="$rw" --bs="$bs" \
    --ioengine=psync --invalidate=0 --fallocate=none --numjobs=1 --output-format=json "$@"
}
fio_value() {  # fio_value read|write bw_MBps|iops < JSON
  python3 -c '
import json, sys
job = json.load(sys.stdin)["jobs"][0][sys.argv[1]]
print("%.1f" % (job["bw_bytes"] / 1e6) if sys.argv[2] == "bw_MBps" else "%.0f" % job["iops"])
' "$1" "$2"
}

median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

run_column() {
  local c=$1 d
  d=$(dir_of "$c")
  # Cold reads of the virtual disk swing 2x from one pass to the next here: median of three.
  local cold=() warm=() i
  for i in 1 2 3; do
    drop_caches 3
    cold+=("$(fio_job "$d" fio.dat read 1M | fio_value read bw_MBps)")
  done
  for i in 1 2 3; do
    warm+=("$(fio_job "$d" fio.dat read 1M | fio_value read bw_MBps)")
  done
  R[$c,seqread_cold]=$(median "${cold[@]}")
  R[$c,seqread_warm]=$(median "${warm[@]}")
  R[$c,randread]=$(fio_job "$d" fio.dat randread 4k --runtime="$RANDOM_SECONDS" --time_based \
    --norandommap --randrepeat=1 | fio_value read iops)
  R[$c,randwrite]=$(fio_job "$d" fio.dat randwrite 4k --runtime="$RANDOM_SECONDS" --time_based \
    --norandommap --randrepeat=1 --end_fsync=1 | fio_value write iops)
  R[$c,seqwrite]=$(fio_job "$d" seqwrite.dat write 1M --runtime="$SEQWRITE_SECONDS" \
    --end_fsync=1 | fio_value write bw_MBps)
  rm -f "$d/seqwrite.dat"

  mkdir "$d/meta"
  R[$c,create]=$("$METABENCH" create "$d/meta" "$FILES" 1 | field ops_per_s)
  R[$c,stat_warm]=$("$METABENCH" stat "$d/meta" "$FILES" 1 10 | field ops_per_s)
  drop_caches 2
  R[$c,stat_cold]=$("$METABENCH" stat "$d/meta" "$FILES" 1 | field ops_per_s)
  drop_caches 2
  R[$c,stat_cold_4t]=$("$METABENCH" stat "$d/meta" "$FILES" 4 | field ops_per_s)
  R[$c,unlink]=$("$METABENCH" unlink "$d/meta" "$FILES" 1 | field ops_per_s)
  rmdir "$d/meta"

  drop_caches 3
  R[$c,ls_cold]=$(timed_rate "$LS_ENTRIES" ls -l "$d/ls")
  R[$c,ls_warm]=$(timed_rate "$LS_ENTRIES" ls -l "$d/ls")

  cat "$DATA/src.tar" >/dev/null  # the tarball itself is read warm, from outside the mount
  mkdir "$d/untar"
  R[$c,untar]=$(timed_rate "$tar_entries" tar -C "$d/untar" -xf "$DATA/src.tar")
  rm -rf "$d/untar"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
for c in "${columns[@]}"; do
  echo "bench: $c"
  mount_fs "$c"
  run_column "$c"
  unmount_all
done
elapsed=$(($(date +%s) - start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

jobs=(seqread_cold seqread_warm seqwrite randread randwrite create stat_warm stat_cold stat_cold_4t unlink
  ls_cold ls_warm untar)
unit() {
  case "$1" in
    seq*) echo "MB/s" ;;
    rand*) echo "IOPS" ;;
    ls*) echo "entries/s" ;;
    untar) echo "entries/s" ;;
    *) echo "ops/s" ;;
  esac
}
ratio() {
  python3 -c '
import sys
try:
    a, b = map(float, sys.argv[1:])
    print("%.2f" % (a / b) if b else "-")
except ValueError:
    print("-")
' "$1" "$2"
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
out=$RESULTS_DIR/passthrough-$stamp.md
{
  echo "# passthrough_vs_native $stamp"
  echo
  echo "- command: bench/passthrough_vs_native.sh $args"
  echo "- sandfs: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "sandfsd $SANDFSD"
  echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | sed -n 1p))," \
    "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r)," \
    "data on $(findmnt -no SOURCE,FSTYPE -T "$DATA_PARENT" | tr -s ' ')"
  echo "- load average before: $load_before, after: $load_after; took ${elapsed} s"
  echo "- FIO_SIZE=$FIO_SIZE RANDOM_SECONDS=$RANDOM_SECONDS SEQWRITE_SECONDS=$SEQWRITE_SECONDS" \
    "FILES=$FILES LS_ENTRIES=$LS_ENTRIES; untar: $tar_entries entries, $tar_mb MB"
  echo "- RLIMIT_NOFILE $(ulimit -n) (passthrough_ll holds one fd per inode it knows)"
  echo "- bindfs $(bindfs --version | awk '{print $2}'), passthrough_ll from libfuse" \
    "$(pkg-config --modversion fuse3), both with default options"
  echo
  header="| job | unit |"
  rule="|---|---|"
  for c in "${columns[@]}"; do
    header+=" $c |"
    rule+="---:|"
    if [ "$c" != native ] && [ -n "${R[native,create]:-}" ]; then
      header+=" /native |"
      rule+="---:|"
    fi
  done
  echo "$header"
  echo "$rule"
  for job in "${jobs[@]}"; do
    row="| $job | $(unit "$job") |"
    for c in "${columns[@]}"; do
      row+=" ${R[$c,$job]} |"
      if [ "$c" != native ] && [ -n "${R[native,create]:-}" ]; then
        row+=" $(ratio "${R[$c,$job]}" "${R[native,$job]}") |"
      fi
    done
    echo "$row"
  done
} >"$out"
cat "$out"
echo
echo "bench: results in $out"
