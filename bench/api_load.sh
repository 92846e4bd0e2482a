#!/usr/bin/env bash
# The admin API under load: requests/s and p50/p99 latency of `sandfsd serve` for volume
# create, get, list (with 1,000 volumes in the catalog) and 4 KiB file writes, each driven by
# bench/api_load (keep-alive connections, one request in flight each, every response checked),
# side by side in one run with the same work done directly on the host by the same program
# (mkdir, stat, readdir+stat, open/write/close in a directory of the same file system): the
# ratio is what the HTTP + JSON + catalog layers cost over the bare syscalls.
#
#   bench/api_load.sh     (environment: SANDFSD, API_LOAD, CONNECTIONS="1 4", SECONDS_PER=5,
#                          VOLUMES=1000, DATA_PARENT=/var/tmp, RESULTS_DIR=bench/results)
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
repo=$PWD
CONNECTIONS=${CONNECTIONS:-"1 4"}
SECONDS_PER=${SECONDS_PER:-5}
VOLUMES=${VOLUMES:-1000}
DATA_PARENT=${DATA_PARENT:-/var/tmp}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
if [ -z "${SANDFSD:-}" ] || [ -z "${API_LOAD:-}" ]; then
  scripts/build.sh release sandfsd api_load >/dev/null
  SANDFSD=${SANDFSD:-$repo/build/release/src/sandfsd}
  API_LOAD=${API_LOAD:-$repo/build/release/bench/api_load}
fi

work=$(mktemp -d "$DATA_PARENT/sandfs-bench-api-XXXXXX")
. bench/lib/serve.sh
bench_serve_start
api() { "$API_LOAD" --server "127.0.0.1:$port" --token "$token" "$@"; }

# The catalog for get/list: VOLUMES volumes, made through the API.
bench_make_volumes "$VOLUMES"
# The host baseline: the same number of directories next to one another.
mkdir -p "$work/direct/bench"
for i in $(seq "$VOLUMES"); do mkdir "$work/direct/v$i"; done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
out="$RESULTS_DIR/api-load-$stamp.md"
{
  echo "# api_load $stamp"
  echo
  echo "- sandfs $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'); $VOLUMES volumes; ${SECONDS_PER} s per cell; load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| op | connections | sandfs req/s | p50 µs | p99 µs | host req/s | host p50 µs | host p99 µs | sandfs / host req/s |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$out"
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
round=0
# create last: the volumes it makes would grow the catalog that get and list are measured on.
for op in get list write create; do
  for c in $CONNECTIONS; do
    round=$((round + 1))
    s=$(api --op "$op" --connections "$c" --seconds "$SECONDS_PER" --volume bench --prefix "r$round")
    d=$("$API_LOAD" --direct "$work/direct" --op "$op" --connections "$c" --seconds "$SECONDS_PER" \
      --volume bench --prefix "r$round")
    srps=$(field rps <<<"$s"); hrps=$(field rps <<<"$d")
    ratio=$(awk -v a="$srps" -v b="$hrps" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
    echo "| $op | $c | $srps | $(field p50_us <<<"$s") | $(field p99_us <<<"$s") | $hrps | $(field p50_us <<<"$d") | $(field p99_us <<<"$d") | $ratio |" >>"$out"
    echo "$op c=$c: sandfs $s" >&2
    echo "$op c=$c: host   $d" >&2
  done
done
cat "$out"
echo "(written to $out)" >&2
