#!/usr/bin/env bash
# MemFs through /dev/fuse against tmpfs and libfuse's passthrough_ll (over tmpfs), same workloads
# in one run:
#   metadata (bench/metabench): create / stat warm (10 passes) / stat cold (after drop_caches) /
#     unlink of FILES empty files in one directory, 1 and 4 threads; readdir of those FILES
#     entries, cold (after drop_caches) and warm (10 passes);
#   data (fio, buffered, psync): 1 MiB sequential write of a 512 MiB file (with the final fsync),
#     sequential read cold (after drop_caches) and warm, 4 KiB random read for 10 s.
# Prints a table and writes bench/results/<UTC timestamp>.md with the raw numbers and the ratios
# to tmpfs. Needs root (mounts, drop_caches) and /dev/fuse. Takes about 2 minutes.
#
#   bench/memfs_vs_tmpfs.sh [--no-writeback]
#
# Environment: SANDFSD, METABENCH (binaries; default: build/release via scripts/build.sh),
# FILES (10000), FIO_SIZE (512M), RANDREAD_SECONDS (10), RESULTS_DIR (bench/results).
# Note: drop_caches empties the page cache of the whole machine, not only of these mounts.
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
repo=$PWD

with_writeback=1
for arg in "$@"; do
  case "$arg" in
    --no-writeback) with_writeback=0 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

FILES=${FILES:-10000}
FIO_SIZE=${FIO_SIZE:-512M}
RANDREAD_SECONDS=${RANDREAD_SECONDS:-10}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
examples=/usr/share/doc/libfuse3-dev/examples

[ "$(id -u)" = 0 ] || { echo "bench: needs root (mount, drop_caches)" >&2; exit 1; }
[ -c /dev/fuse ] || { echo "bench: /dev/fuse is missing" >&2; exit 1; }
for tool in fio gcc pkg-config python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing (scripts/setup.sh)" >&2; exit 1; }
done
[ -f "$examples/passthrough_ll.c" ] || { echo "bench: libfuse3-dev examples missing" >&2; exit 1; }

if [ -z "${SANDFSD:-}" ] || [ -z "${METABENCH:-}" ]; then
  scripts/build.sh release sandfsd metabench >/dev/null
  SANDFSD=${SANDFSD:-$repo/build/release/src/sandfsd}
  METABENCH=${METABENCH:-$repo/build/release/bench/metabench}
fi
[ -x "$SANDFSD" ] && [ -x "$METABENCH" ] || { echo "bench: no sandfsd/metabench binary" >&2; exit 1; }

WORK=$(mktemp -d /tmp/sandfs-bench-XXXXXX)
MNT=$WORK/mnt
mkdir "$MNT"
SERVER_PID=
BACKING=

unmount_all() {
  if grep -q " $MNT " /proc/self/mounts; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  if [ -n "$SERVER_PID" ]; then
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
  if [ -n "$BACKING" ] && grep -q " $BACKING " /proc/self/mounts; then
    umount "$BACKING" 2>/dev/null || umount -l "$BACKING"
  fi
}
cleanup() {
  unmount_all
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: building passthrough_ll from $examples (not part of sandfs)"
gcc -O2 -I"$examples" "$examples/passthrough_ll.c" $(pkg-config --cflags --libs fuse3) \
  -o "$WORK/passthrough_ll"

wait_fuse_mount() {
  for _ in $(seq 300); do
    grep -qE " $MNT fuse(\.[^ ]*)? " /proc/self/mounts && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench: server exited" >&2; cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "bench: no FUSE mount at $MNT after 15 s" >&2
  exit 1
}

mount_fs() {
  case "$1" in
    tmpfs)
      mount -t tmpfs -o size=4G,mode=0755 bench-tmpfs "$MNT" ;;
    memfs)
      "$SANDFSD" mount --backend memfs "$MNT" >"$WORK/server.log" 2>&1 &
      SERVER_PID=$!
      wait_fuse_mount ;;
    memfs-wb)
      "$SANDFSD" mount --backend memfs --writeback "$MNT" >"$WORK/server.log" 2>&1 &
      SERVER_PID=$!
      wait_fuse_mount ;;
    passthrough_ll)
      BACKING=$WORK/backing
      mkdir -p "$BACKING"
      mount -t tmpfs -o size=4G,mode=0755 bench-backing "$BACKING"
      "$WORK/passthrough_ll" -f -o source="$BACKING",cache=always "$MNT" >"$WORK/server.log" 2>&1 &
      SERVER_PID=$!
      wait_fuse_mount ;;
  esac
}

drop_caches() {  # 2: dentries and inodes; 3: also the page cache
  sync
  echo "$1" >/proc/sys/vm/drop_caches
}

declare -A R  # R[fs,job] = number
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

metabench_round() {  # metabench_round FS THREADS
  local fs=$1 t=$2 dir=$MNT/meta$2
  mkdir "$dir"
  R[$fs,create_${t}t]=$("$METABENCH" create "$dir" "$FILES" "$t" | field ops_per_s)
  R[$fs,stat_warm_${t}t]=$("$METABENCH" stat "$dir" "$FILES" "$t" 10 | field ops_per_s)
  drop_caches 2
  R[$fs,stat_cold_${t}t]=$("$METABENCH" stat "$dir" "$FILES" "$t" | field ops_per_s)
  if [ "$t" = 1 ]; then
    drop_caches 3
    R[$fs,readdir_cold]=$("$METABENCH" readdir "$dir" 1 | field entries_per_s)
    R[$fs,readdir_warm]=$("$METABENCH" readdir "$dir" 10 | field entries_per_s)
  fi
  R[$fs,unlink_${t}t]=$("$METABENCH" unlink "$dir" "$FILES" "$t" | field ops_per_s)
  rmdir "$dir"
}

fio_job() {  # fio_job NAME RW BS [extra fio args...] -> JSON on stdout
  local name=$1 rw=$2 bs=$3
  shift 3
  fio --name="$name" --filename="$MNT/fio.dat" --size="$FIO_SIZE" --rw="$rw" --bs="$bs" \
    --ioengine=psync --invalidate=0 --fallocate=none --numjobs=1 --output-format=json "$@"
}
fio_value() {  # fio_value read|write bw_MBps|iops < JSON
  python3 -c '
import json, sys
job = json.load(sys.stdin)["jobs"][0][sys.argv[1]]
print("%.1f" % (job["bw_bytes"] / 1e6) if sys.argv[2] == "bw_MBps" else "%.0f" % job["iops"])
' "$1" "$2"
}

fio_round() {
  local fs=$1
  R[$fs,seqwrite]=$(fio_job seqwrite write 1M --end_fsync=1 | fio_value write bw_MBps)
  drop_caches 3
  R[$fs,seqread_cold]=$(fio_job seqread read 1M | fio_value read bw_MBps)
  R[$fs,seqread_warm]=$(fio_job seqread read 1M | fio_value read bw_MBps)
  R[$fs,randread]=$(fio_job randread randread 4k --runtime="$RANDREAD_SECONDS" --time_based \
    --norandommap --randrepeat=1 | fio_value read iops)
  rm -f "$MNT/fio.dat"
}

filesystems=(tmpfs memfs passthrough_ll)
[ "$with_writeback" = 1 ] && filesystems+=(memfs-wb)
start=$(date +%s)
for fs in "${filesystems[@]}"; do
  echo "bench: $fs"
  mount_fs "$fs"
  metabench_round "$fs" 1
  metabench_round "$fs" 4
  fio_round "$fs"
  unmount_all
done
elapsed=$(($(date +%s) - start))

jobs=(create_1t create_4t stat_warm_1t stat_warm_4t stat_cold_1t stat_cold_4t unlink_1t unlink_4t
  readdir_cold readdir_warm seqwrite seqread_cold seqread_warm randread)
unit() {
  case "$1" in
    readdir*) echo "entries/s" ;;
    seq*) echo "MB/s" ;;
    randread) echo "IOPS" ;;
    *) echo "ops/s" ;;
  esac
}
ratio() { python3 -c 'import sys; a, b = map(float, sys.argv[1:]); print("%.2f" % (a / b) if b else "-")' "$1" "$2"; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
out=$RESULTS_DIR/$stamp.md
{
  echo "# memfs_vs_tmpfs $stamp"
  echo
  echo "- command: bench/memfs_vs_tmpfs.sh $*"
  echo "- sandfs: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "sandfsd $SANDFSD"
  echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | sed -n 1p))," \
    "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r)"
  echo "- FILES=$FILES FIO_SIZE=$FIO_SIZE RANDREAD_SECONDS=$RANDREAD_SECONDS, took ${elapsed} s"
  echo "- memfs: \`sandfsd mount --backend memfs\` (cache always, 2 threads);" \
    "memfs-wb: the same with --writeback;"
  echo "  passthrough_ll: libfuse $(pkg-config --modversion fuse3) example, \`-o cache=always\`," \
    "over tmpfs"
  echo
  header="| job | unit |"
  rule="|---|---|"
  for fs in "${filesystems[@]}"; do
    header+=" $fs |"
    rule+="---:|"
    if [ "$fs" != tmpfs ]; then
      header+=" $fs/tmpfs |"
      rule+="---:|"
    fi
  done
  echo "$header"
  echo "$rule"
  for job in "${jobs[@]}"; do
    row="| $job | $(unit "$job") |"
    for fs in "${filesystems[@]}"; do
      row+=" ${R[$fs,$job]} |"
      [ "$fs" != tmpfs ] && row+=" $(ratio "${R[$fs,$job]}" "${R[tmpfs,$job]}") |"
    done
    echo "$row"
  done
} >"$out"
cat "$out"
echo
echo "bench: results in $out"
