#!/usr/bin/env bash
# One real guest (QEMU, TCG) doing file I/O on a virtio-fs share, served in turn by
# `sandfsd vhost-user --shared-dir` and by QEMU's C virtiofsd (/usr/lib/qemu/virtiofsd) on the
# same kind of fresh directory, in one run. The guest runs fio (copied into its initramfs) and a
# metadata loop; the script prints a table and writes bench/results/guest-<UTC>.md.
#
#   jobs: seq write 1 MiB (64 MiB file, with fsync), seq read 1 MiB of it after drop_caches,
#         4 KiB random read for RANDOM_SECONDS, 4 KiB random write for RANDOM_SECONDS,
#         create + stat + unlink of FILES empty files (busybox, timed in the guest)
#
# TCG emulates every guest instruction, so absolute numbers are far below a KVM guest's; both
# servers run under the same guest, so their ratio is what this measures. Needs root, QEMU, fio.
#
#   bench/guest_vs_virtiofsd.sh            (environment: SANDFSD, RANDOM_SECONDS=5, FILES=1000,
#                                           CACHE=auto, RESULTS_DIR=bench/results)
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
repo=$PWD
RANDOM_SECONDS=${RANDOM_SECONDS:-5}
FILES=${FILES:-1000}
CACHE=${CACHE:-auto}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
virtiofsd=/usr/lib/qemu/virtiofsd

[ "$(id -u)" = 0 ] || { echo "bench: needs root" >&2; exit 1; }
for tool in fio qemu-system-x86_64; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing (scripts/setup.sh)" >&2; exit 1; }
done
[ -x "$virtiofsd" ] || { echo "bench: $virtiofsd missing (qemu-system-common)" >&2; exit 1; }
if [ -z "${SANDFSD:-}" ]; then
  scripts/build.sh release sandfsd >/dev/null
  SANDFSD=$repo/build/release/src/sandfsd
fi

work=$(mktemp -d /var/tmp/sandfs-bench-guest-XXXXXX)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/guest.sh" <<EOF
set -e
export PATH=/usr/local/bin:\$PATH  # where run-guest.sh --bin puts fio
run() { fio --output-format=terse --terse-version=3 --name=j --directory=. --ioengine=psync "\$@"; }
# terse v3: field 7 read KB/s, 8 read IOPS, 48 write KB/s, 49 write IOPS
w=\$(run --rw=write --bs=1M --size=64M --end_fsync=1 | cut -d';' -f48)
sync; echo 3 > /proc/sys/vm/drop_caches
r=\$(run --rw=read --bs=1M --size=64M | cut -d';' -f7)
rr=\$(run --rw=randread --bs=4k --size=64M --runtime=$RANDOM_SECONDS --time_based | cut -d';' -f8)
rw=\$(run --rw=randwrite --bs=4k --size=64M --runtime=$RANDOM_SECONDS --time_based --end_fsync=1 | cut -d';' -f49)
rm -f j.0.0
mkdir meta; cd meta
# busybox date has no %N: the guest's uptime in centiseconds
cs() { cut -d' ' -f1 /proc/uptime | tr -d .; }
t0=\$(cs); i=0; while [ \$i -lt $FILES ]; do : > f\$i; i=\$((i+1)); done; t1=\$(cs)
i=0; while [ \$i -lt $FILES ]; do stat f\$i >/dev/null; i=\$((i+1)); done; t2=\$(cs)
rm -f f*; t3=\$(cs)
cd ..; rmdir meta
per_s() { echo \$(( $FILES * 100 / (\$1 > 0 ? \$1 : 1) )); }
echo "RESULT seqwrite_MBps=\$((w / 1024)) seqread_MBps=\$((r / 1024)) randread_iops=\$rr randwrite_iops=\$rw create_per_s=\$(per_s \$((t1 - t0))) stat_per_s=\$(per_s \$((t2 - t1))) unlink_per_s=\$(per_s \$((t3 - t2)))"
EOF

declare -A R
columns=(sandfs virtiofsd)
for c in "${columns[@]}"; do
  share=$work/share-$c
  sock=$work/$c.sock
  mkdir "$share"
  case $c in
    sandfs)
      "$SANDFSD" vhost-user --socket-path "$sock" --shared-dir "$share" --cache "$CACHE" \
        2>"$work/$c.log" &
      ;;
    virtiofsd)
      "$virtiofsd" --socket-path="$sock" -o source="$share" -o cache="$CACHE" \
        -o sandbox=chroot 2>"$work/$c.log" &
      ;;
  esac
  server=$!
  echo "bench: $c"
  tests/guest/run-guest.sh --socket "$sock" --tag bench --script "$work/guest.sh" \
    --bin "$(command -v fio)" --memory 1G --timeout 900 --wait-socket 10 \
    --log "$work/$c.console" >"$work/$c.out" 2>&1 || {
    echo "bench: the guest failed on $c:" >&2
    tail -30 "$work/$c.console" >&2
    exit 1
  }
  line=$(grep -ao 'RESULT .*' "$work/$c.console" | tail -1 | tr -d '\r')
  for kv in ${line#RESULT }; do R[$c,${kv%%=*}]=${kv#*=}; done
  kill "$server" 2>/dev/null || true  # virtiofsd exits by itself when its one VMM leaves
  wait "$server" 2>/dev/null || true
  server=
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
out=$RESULTS_DIR/guest-$stamp.md
{
  echo "# guest_vs_virtiofsd $stamp"
  echo
  echo "- sandfs $(git -C "$repo" rev-parse --short HEAD), cache $CACHE; virtiofsd $($virtiofsd --version 2>&1 | head -1)"
  echo "- one TCG guest, 1 vCPU, 1 GiB; $(nproc) host CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| job | sandfs | virtiofsd | sandfs / virtiofsd |"
  echo "|---|---:|---:|---:|"
  for job in seqwrite_MBps seqread_MBps randread_iops randwrite_iops create_per_s stat_per_s unlink_per_s; do
    a=${R[sandfs,$job]:-0}
    b=${R[virtiofsd,$job]:-0}
    ratio=$(python3 -c "import sys; a,b=map(float,sys.argv[1:]); print('%.2f' % (a/b) if b else '-')" "$a" "$b")
    echo "| $job | $a | $b | $ratio |"
  done
} >"$out"
cat "$out"
echo "bench: results in $out"
