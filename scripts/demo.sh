#!/usr/bin/env bash
# Sets up, builds and runs sandfs's main job for now: a MemFs filesystem mounted through the
# host kernel's FUSE client, served in the foreground until Ctrl-C (or `umount`).
#   scripts/demo.sh [MOUNTPOINT] [extra sandfsd mount flags...]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh release sandfsd >/dev/null

mnt=${1:-/tmp/sandfs-demo}
shift || true
mkdir -p "$mnt"
echo "demo: mounting MemFs at $mnt (64 MiB, 10000 inodes); try: ls -la $mnt, cp -a /usr/share/doc $mnt/"
exec build/release/src/sandfsd mount --backend memfs --capacity 64MiB --max-inodes 10000 "$@" "$mnt"
