#!/usr/bin/env bash
# Configures and builds one build tree. Usage: scripts/build.sh [release|debug|asan] [targets...]
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-release}
shift || true
case "$kind" in
  release) dir=build/release; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  debug) dir=build/debug; args=(-DCMAKE_BUILD_TYPE=Debug) ;;
  asan) dir=build/asan; args=(-DCMAKE_BUILD_TYPE=Debug -DSANDFS_SANITIZE=ON -DSANDFS_BENCH=OFF) ;;
  *) echo "usage: $0 [release|debug|asan] [targets...]" >&2; exit 2 ;;
esac

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/sandfs-ccache}
jobs=${SANDFS_JOBS:-2}
cmake -S . -B "$dir" -G Ninja -DSANDFS_WERROR=ON "${args[@]}" >/dev/null
ninja -C "$dir" -j"$jobs" "$@"
echo "$dir"
