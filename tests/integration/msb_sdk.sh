#!/usr/bin/env bash
# The microsandbox SDK suite: the unmodified Node SDK (npm `microsandbox`, pinned in
# msb_sdk/install.sh) drives a real `sandfsd serve` through its "cloud" backend pointed at the
# server's /msb prefix, under node's built-in test runner (msb_sdk/*.test.mjs; each file starts its
# own server on a fresh data directory and a free port).
#
# The SDK is installed from the npm registry at test time into a cache directory reused between
# runs, ${SANDFS_NPM_CACHE:-$HOME/.cache/sandfs-npm}/msb-<version> (msb_sdk/install.sh: a complete
# install there is reused without network; npm unreachable on a first run is a failure, never a
# skip).
# Needs root and /dev/fuse (the suite mounts a volume through the kernel): exits 77 (skipped)
# without them. Needs node >= 18 (tested on 20) and npm (scripts/setup.sh installs them).
#
#   tests/integration/msb_sdk.sh SANDFSD [node --test args...]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SANDFSD=${1:-${SANDFSD:-}}
shift || true

[ "$(id -u)" = 0 ] || { echo "msb_sdk: needs root for the /dev/fuse mount (skipped)"; exit 77; }
[ -e /dev/fuse ] || { echo "msb_sdk: no /dev/fuse (skipped)"; exit 77; }
[ -x "$SANDFSD" ] || { echo "msb_sdk: no sandfsd binary (pass it or set SANDFSD)"; exit 1; }
SANDFSD=$(realpath "$SANDFSD")  # the tests run from msb_sdk/
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "msb_sdk: FAIL: node and npm are required (run scripts/setup.sh)"; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] ||
  { echo "msb_sdk: FAIL: node $(node --version) is too old (>= 18 needed)"; exit 1; }

sdk_dir=$("$here/msb_sdk/install.sh") || exit 1

export SANDFSD MSB_SDK_DIR=$sdk_dir
cd "$here/msb_sdk" || exit 1
# One file at a time (node 18's runner has no --test-concurrency): each file is a process of
# its own with its own servers, as the SDK's backend is process-wide.
status=0
for f in ./*.test.mjs; do
  echo "msb_sdk: $f"
  node --test "$@" "$f" || status=1
done
exit $status
