#!/usr/bin/env bash
# The microsandbox SDK against sandfs's native API, in one run on one `sandfsd serve`: calls per
# second and p50/p99 latency of volume create, list (a catalog of VOLUMES volumes), 4 KiB file
# write and 4 KiB file read, driven once by the unmodified Node SDK (bench/msb_sdk_load.mjs, its
# "cloud" backend on the server's /msb prefix) and once by bench/api_load (C++, keep-alive HTTP/1.1,
# sandfs's /v1 routes). Both keep CONNECTIONS calls in flight; the ratio is what the SDK path
# (napi + reqwest + the msb translation layer + base64 path header) costs over the native client;
# on a loaded machine the p50 ratio is steadier than the rate ratio (I/O stalls hit the tail).
# The SDK is the pinned one tests/integration/msb_sdk/install.sh caches.
#
#   bench/msb_sdk.sh     (environment: SANDFSD, API_LOAD, CONNECTIONS="1 4", SECONDS_PER=3,
#                         VOLUMES=100, DATA_PARENT=/var/tmp, RESULTS_DIR=bench/results)
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
repo=$PWD
CONNECTIONS=${CONNECTIONS:-"1 4"}
SECONDS_PER=${SECONDS_PER:-3}
VOLUMES=${VOLUMES:-100}
DATA_PARENT=${DATA_PARENT:-/var/tmp}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
if [ -z "${SANDFSD:-}" ] || [ -z "${API_LOAD:-}" ]; then
  scripts/build.sh release sandfsd api_load >/dev/null
  SANDFSD=${SANDFSD:-$repo/build/release/src/sandfsd}
  API_LOAD=${API_LOAD:-$repo/build/release/bench/api_load}
fi
MSB_SDK_DIR=$(tests/integration/msb_sdk/install.sh)
export MSB_SDK_DIR

work=$(mktemp -d "$DATA_PARENT/sandfs-bench-msb-XXXXXX")
. bench/lib/serve.sh
bench_serve_start --log-level warn
auth=(-H "Authorization: Bearer $token")

# The catalog for list, the volume for write/read and its 4 KiB file to read.
bench_make_volumes "$VOLUMES"
head -c 4096 /dev/urandom >"$work/r4k"
curl -sf -o /dev/null "${auth[@]}" -X PUT --data-binary @"$work/r4k" \
  "http://127.0.0.1:$port/v1/volumes/bench/files/r4k"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
out="$RESULTS_DIR/msb-sdk-$stamp.md"
{
  echo "# msb_sdk $stamp"
  echo
  echo "- sandfs $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'); microsandbox $(basename "$MSB_SDK_DIR"); node $(node --version); $VOLUMES volumes; ${SECONDS_PER} s per cell; load before $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| op | in flight | SDK calls/s | SDK p50 µs | SDK p99 µs | native req/s | native p50 µs | native p99 µs | SDK / native rate | SDK / native p50 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$out"
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
round=0
# create last: the volumes it makes would grow the catalog list is measured on.
for op in list write read create; do
  for c in $CONNECTIONS; do
    round=$((round + 1))
    s=$(node bench/msb_sdk_load.mjs --url "http://127.0.0.1:$port/msb" --token-file "$token_file" \
      --op "$op" --concurrency "$c" --seconds "$SECONDS_PER" --volume bench --prefix "s$round")
    n=$("$API_LOAD" --server "127.0.0.1:$port" --token "$token" --op "$op" --connections "$c" \
      --seconds "$SECONDS_PER" --volume bench --prefix "n$round")
    srps=$(field rps <<<"$s"); nrps=$(field rps <<<"$n")
    sp50=$(field p50_us <<<"$s"); np50=$(field p50_us <<<"$n")
    ratio=$(awk -v a="$srps" -v b="$nrps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    lratio=$(awk -v a="$sp50" -v b="$np50" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    echo "| $op | $c | $srps | $sp50 | $(field p99_us <<<"$s") | $nrps | $np50 | $(field p99_us <<<"$n") | $ratio | $lratio |" >>"$out"
    echo "$op c=$c: sdk    $s" >&2
    echo "$op c=$c: native $n" >&2
  done
done
echo >>"$out"
echo "- load after $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out"
cat "$out"
echo "(written to $out)" >&2
