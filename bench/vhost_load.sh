#!/usr/bin/env bash
# vhost-user-fs under load: N simulated guests, each on its own socket, against one
# `sandfsd vhost-user` process serving all N sockets (default flags: "sandfs"; and with
# --stat-virtualization off, which writes no ownership record per file: "sandfs-norec"), and
# against N of QEMU's C virtiofsd
# (/usr/lib/qemu/virtiofsd, which takes one connection per process), in one run on the same
# machine, for N in GUESTS (default 1 8 64 256).
#
# The load is bench/vhost_load (see its header): per guest, DEPTH lanes each looping over
# CREATE, WRITE 4 KiB, GETATTR, LOOKUP, READ, RELEASE, OPEN, READ, RELEASE, READDIR, UNLINK,
# FORGET in the guest's own directory, for WARMUP + RUN_SECONDS; any error fails the run.
# Both servers serve directories on ext4 with the same cache mode (CACHE, default auto): sandfsd
# one fresh --shared-dir for all its sockets (each guest works in a directory of its own under
# it), each virtiofsd a fresh source directory of its own. FS=dir (default) puts them in a fresh
# directory under DATA_PARENT (default /var/tmp, which must be ext4); FS=image in a journaled
# ext4 made for the run in an image file under DATA_PARENT and loop-mounted. (It matters: an
# ext4 without a journal, as this VM's root is, will not reuse an inode freed in the last
# 30 s, and every create scans past all of those; see docs/benchmarks.md.) Each server and
# guest count gets its own directory, made under a `chattr +T` parent so that ext4 puts them in
# different block groups and one phase's freed inodes do not slow the next.
# Server CPU (all threads of all its processes) over the measured window and its memory at the
# end of the window (all guests still connected) come from /proc.
#
# The client runs at nice -10: it is one process standing in for N guests that would each have
# their own vCPUs, and at the default weight the scheduler would give it 1/(N+1) of the CPU
# against N busy virtiofsd processes, so the client and not the servers would set the pace. It
# needs a fraction of a CPU (reported as "client CPU"), so the higher weight takes little from
# the servers.
#
# Prints the tables and writes bench/results/vhost-load-<UTC timestamp>.md with the raw numbers,
# the per-opcode latencies and the ratios sandfs / virtiofsd. Needs root (virtiofsd's sandbox).
# Takes about 2.5 minutes with the defaults (139–145 s here).
#
#   bench/vhost_load.sh [--guests "1 8 64 256"]
#
# Environment: SANDFSD, VHOST_LOAD (binaries; default: build/release via scripts/build.sh),
# VIRTIOFSD (/usr/lib/qemu/virtiofsd), GUESTS, SERVERS ("sandfs sandfs-norec virtiofsd"), RUN_SECONDS (10), WARMUP (1), DEPTH (4),
# CLIENT_THREADS (1), CLIENT_NICE (-10: the client's niceness, see below), CACHE (auto), SANDFS_THREADS (2), SANDFS_FLAGS (extra sandfsd flags),
# VIRTIOFSD_FLAGS (extra virtiofsd flags, e.g. --thread-pool-size=4), FS (dir or image),
# DATA_PARENT (/var/tmp), IMAGE_SIZE (4G), RESULTS_DIR (bench/results).
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
repo=$PWD

GUESTS=${GUESTS:-"1 8 64 256"}
SERVERS=${SERVERS:-"sandfs sandfs-norec virtiofsd"}
while [ $# -gt 0 ]; do
  case "$1" in
    --guests) GUESTS=$2; shift 2 ;;
    -h | --help) sed -n '2,41p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
RUN_SECONDS=${RUN_SECONDS:-10}
WARMUP=${WARMUP:-1}
DEPTH=${DEPTH:-4}
CLIENT_THREADS=${CLIENT_THREADS:-1}
CLIENT_NICE=${CLIENT_NICE:--10}
CACHE=${CACHE:-auto}
SANDFS_THREADS=${SANDFS_THREADS:-2}
SANDFS_FLAGS=${SANDFS_FLAGS:-}
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
VIRTIOFSD_FLAGS=${VIRTIOFSD_FLAGS:-}
FS=${FS:-dir}
DATA_PARENT=${DATA_PARENT:-/var/tmp}
IMAGE_SIZE=${IMAGE_SIZE:-4G}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}

[ "$(id -u)" = 0 ] || { echo "bench: needs root (virtiofsd)" >&2; exit 1; }
[ -x "$VIRTIOFSD" ] || { echo "bench: $VIRTIOFSD missing (Debian package qemu-system-common)" >&2; exit 1; }
fstype=$(stat -f -c %T "$DATA_PARENT")
[ "$fstype" = ext2/ext3 ] || { echo "bench: $DATA_PARENT is $fstype, not ext4" >&2; exit 1; }
case "$FS" in dir | image) ;; *) echo "bench: FS=$FS: dir or image" >&2; exit 2 ;; esac
if [ -z "${SANDFSD:-}" ] || [ -z "${VHOST_LOAD:-}" ]; then
  scripts/build.sh release sandfsd vhost_load >/dev/null
  SANDFSD=${SANDFSD:-$repo/build/release/src/sandfsd}
  VHOST_LOAD=${VHOST_LOAD:-$repo/build/release/bench/vhost_load}
fi
[ -x "$SANDFSD" ] && [ -x "$VHOST_LOAD" ] || { echo "bench: no sandfsd/vhost_load binary" >&2; exit 1; }

DATA=$(mktemp -d "$DATA_PARENT/sandfs-bench-vl-XXXXXX")  # on ext4: the shared directories
WORK=$(mktemp -d /tmp/sandfs-bench-vl-XXXXXX)             # sockets, logs, client output
SERVER_PIDS=()
ROOT=$DATA  # where each phase's directories go

stop_servers() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SERVER_PIDS=()
}
cleanup() {
  stop_servers
  if [ "$ROOT" != "$DATA" ] && grep -q " $ROOT " /proc/self/mounts; then umount "$ROOT"; fi
  rm -rf "$DATA" "$WORK"
}
trap cleanup EXIT
if [ "$FS" = image ]; then
  truncate -s "$IMAGE_SIZE" "$DATA/ext4.img"
  mkfs.ext4 -q -F "$DATA/ext4.img"
  ROOT=$WORK/fs
  mkdir "$ROOT"
  mount -o loop "$DATA/ext4.img" "$ROOT"
fi
chattr +T "$ROOT"

# Waits until every socket given exists (the servers create them before accepting).
wait_for_sockets() {
  local s
  for s in "$@"; do
    for _ in $(seq 200); do [ -S "$s" ] && break; sleep 0.05; done
    [ -S "$s" ] || { echo "bench: $s never appeared" >&2; return 1; }
  done
}

# value KEY FILE: KEY's value on the "result" line vhost_load printed.
value() { sed -n "s/^result .*\\b$1=\\([^ ]*\\).*/\\1/p" "$2"; }

# run_load NAME N PIDS SOCKET...: the client against running servers; its output in
# $WORK/NAME-N.out. Returns the client's status.
run_load() {
  local name=$1 n=$2 pids=$3
  shift 3
  local rc=0
  nice -n "$CLIENT_NICE" "$VHOST_LOAD" --seconds "$RUN_SECONDS" --warmup "$WARMUP" --depth "$DEPTH" \
    --client-threads "$CLIENT_THREADS" --server-pids "$pids" "$@" >"$WORK/$name-$n.out" \
    2>"$WORK/$name-$n.err" || rc=$?
  cat "$WORK/$name-$n.out" "$WORK/$name-$n.err"
  return $rc
}

# run_sandfs NAME N [FLAGS...]
run_sandfs() {
  local name=$1 n=$2 i socks=() args=()
  shift 2
  mkdir -p "$ROOT/$name-$n" "$WORK/$name-$n"
  for ((i = 0; i < n; i++)); do
    socks+=("$WORK/$name-$n/$i.sock")
    args+=(--socket-path "$WORK/$name-$n/$i.sock")
  done
  # shellcheck disable=SC2086
  "$SANDFSD" vhost-user "${args[@]}" --shared-dir "$ROOT/$name-$n" --cache "$CACHE" \
    --threads "$SANDFS_THREADS" $SANDFS_FLAGS "$@" 2>"$WORK/$name-$n.log" &
  SERVER_PIDS=($!)
  wait_for_sockets "${socks[@]}"
  local rc=0
  run_load "$name" "$n" "${SERVER_PIDS[0]}" "${socks[@]}" || rc=$?
  stop_servers
  rm -rf "${ROOT:?}/$name-$n"
  return $rc
}

run_virtiofsd() {
  local n=$1 i socks=()
  mkdir -p "$WORK/virtiofsd-$n"
  for ((i = 0; i < n; i++)); do
    mkdir -p "$ROOT/virtiofsd-$n/$i"
    socks+=("$WORK/virtiofsd-$n/$i.sock")
    # sandbox=chroot: namespace mode forks a child that serves while the parent waits, and
    # the memory and CPU to measure would be the child's.
    # shellcheck disable=SC2086
    "$VIRTIOFSD" --socket-path="$WORK/virtiofsd-$n/$i.sock" -o source="$ROOT/virtiofsd-$n/$i" \
      -o cache="$CACHE" -o sandbox=chroot $VIRTIOFSD_FLAGS 2>>"$WORK/virtiofsd-$n.log" &
    SERVER_PIDS+=($!)
  done
  wait_for_sockets "${socks[@]}"
  local rc=0 pids
  pids=$(IFS=,; echo "${SERVER_PIDS[*]}")
  run_load virtiofsd "$n" "$pids" "${socks[@]}" || rc=$?
  stop_servers  # each exits when its frontend disconnects; this catches the rest
  rm -rf "$ROOT/virtiofsd-$n"
  return $rc
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
start_seconds=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
status=0
for n in $GUESTS; do
  for name in $SERVERS; do
    echo "== $n guests: $name"
    case "$name" in
      sandfs) run_sandfs sandfs "$n" ;;
      sandfs-norec) run_sandfs sandfs-norec "$n" --stat-virtualization off ;;
      virtiofsd) run_virtiofsd "$n" ;;
      *) echo "bench: unknown server $name" >&2; false ;;
    esac || { echo "bench: $name with $n guests FAILED" >&2; status=1; }
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$((SECONDS - start_seconds))

# ---- the report ----
mkdir -p "$RESULTS_DIR"
out=$RESULTS_DIR/vhost-load-$stamp.md
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
kib_per_guest() { awk -v k="$1" -v n="$2" 'BEGIN { if (k == "") print "-"; else printf "%.0f", k / n }'; }
{
  echo "# vhost-user load: sandfs against virtiofsd, $stamp"
  echo
  echo "\`bench/vhost_load.sh\`, ${elapsed} s. $("$SANDFSD" --version 2>/dev/null | head -1)" \
    "(git $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD -- src 2>/dev/null || echo ', src modified')):" \
    "\`sandfsd vhost-user --socket-path ... (xN) --shared-dir DIR --cache $CACHE --threads $SANDFS_THREADS $SANDFS_FLAGS\`;" \
    "sandfs-norec: the same with \`--stat-virtualization off\` (no ownership record per file);" \
    "virtiofsd: \`$VIRTIOFSD -o source=DIR -o cache=$CACHE -o sandbox=chroot $VIRTIOFSD_FLAGS\` per guest" \
    "($("$VIRTIOFSD" --version 2>/dev/null | head -1))."
  echo "Load: $RUN_SECONDS s measured after $WARMUP s warm-up, $DEPTH requests in flight per guest," \
    "$CLIENT_THREADS client thread(s) at nice $CLIENT_NICE. Machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1))," \
    "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)," \
    "data (FS=$FS) on $(findmnt -n -o SOURCE,FSTYPE --target "$ROOT" | tr -s ' ' ' ')" \
    "($(if [ -d "/proc/fs/jbd2/$(basename "$(findmnt -n -o SOURCE --target "$ROOT")")-8" ]; then echo journaled; else echo "no journal"; fi))," \
    "load average $load_before before, $load_after after."
  echo
  echo "| guests | server | ops/s | p50 µs | p99 µs | worst guest p99 µs | min/max guest ops | errors | server CPU | client CPU | RSS MiB | RSS/guest KiB | PSS/guest KiB | anon/guest KiB |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for n in $GUESTS; do
    for name in $SERVERS; do
      f=$WORK/$name-$n.out
      if [ -z "$(value ops_per_s "$f" 2>/dev/null)" ]; then
        echo "| $n | $name | failed | | | | | | | | | | | |"
        continue
      fi
      echo "| $n | $name | $(value ops_per_s "$f") | $(value p50_us "$f") | $(value p99_us "$f") |" \
        "$(value worst_p99_us "$f") | $(value fairness "$f") | $(value errors "$f") |" \
        "$(value server_cpu "$f") | $(value client_cpu "$f") |" \
        "$(awk -v k="$(value server_rss_kib "$f")" 'BEGIN { printf "%.1f", k / 1024 }') |" \
        "$(kib_per_guest "$(value server_rss_kib "$f")" "$n") |" \
        "$(kib_per_guest "$(value server_pss_kib "$f")" "$n") |" \
        "$(kib_per_guest "$(value server_anon_kib "$f")" "$n") |"
    done
  done
  echo
  echo "Ratios sandfs / virtiofsd (ops/s, ops per server CPU-second and min/max: higher is better"
  echo "for sandfs; latency and memory: lower is better for sandfs). Server CPU: cores used by all"
  echo "threads of the server process(es) over the measured window; memory: at the end of it, all"
  echo "guests connected; PSS divides pages shared between processes (libraries, guest RAM) among them."
  echo
  echo "| guests | sandfs column | ops/s | ops per CPU-s | p50 | p99 | worst guest p99 | min/max | RSS/guest | PSS/guest | anon/guest |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for n in $GUESTS; do
    v=$WORK/virtiofsd-$n.out
    for name in $SERVERS; do
      [ "$name" != virtiofsd ] || continue
      s=$WORK/$name-$n.out
      eff_s=$(awk -v o="$(value ops_per_s "$s" 2>/dev/null)" -v c="$(value server_cpu "$s" 2>/dev/null)" 'BEGIN { if (c > 0) print o / c }')
      eff_v=$(awk -v o="$(value ops_per_s "$v" 2>/dev/null)" -v c="$(value server_cpu "$v" 2>/dev/null)" 'BEGIN { if (c > 0) print o / c }')
      echo "| $n | $name | $(ratio "$(value ops_per_s "$s" 2>/dev/null)" "$(value ops_per_s "$v" 2>/dev/null)") |" \
        "$(ratio "$eff_s" "$eff_v") |" \
        "$(ratio "$(value p50_us "$s" 2>/dev/null)" "$(value p50_us "$v" 2>/dev/null)") |" \
        "$(ratio "$(value p99_us "$s" 2>/dev/null)" "$(value p99_us "$v" 2>/dev/null)") |" \
        "$(ratio "$(value worst_p99_us "$s" 2>/dev/null)" "$(value worst_p99_us "$v" 2>/dev/null)") |" \
        "$(ratio "$(value fairness "$s" 2>/dev/null)" "$(value fairness "$v" 2>/dev/null)") |" \
        "$(ratio "$(value server_rss_kib "$s" 2>/dev/null)" "$(value server_rss_kib "$v" 2>/dev/null)") |" \
        "$(ratio "$(value server_pss_kib "$s" 2>/dev/null)" "$(value server_pss_kib "$v" 2>/dev/null)") |" \
        "$(ratio "$(value server_anon_kib "$s" 2>/dev/null)" "$(value server_anon_kib "$v" 2>/dev/null)") |"
    done
  done
  echo
  echo "## Client output"
  for n in $GUESTS; do
    for name in $SERVERS; do
      echo
      echo "$name, $n guests:"
      echo
      echo '```'
      cat "$WORK/$name-$n.out" "$WORK/$name-$n.err" 2>/dev/null || true
      echo '```'
    done
  done
} >"$out"
sed -n '1,/^## Client output/p' "$out" | head -n -1
echo "results: $out"
exit $status
