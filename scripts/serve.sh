#!/usr/bin/env bash
# Sets up, builds and runs sandfs's main job: `sandfsd serve`, the volume service and its
# HTTP/JSON admin API, with its embedded defaults (API on 127.0.0.1:7270; data, SQLite catalog
# and bearer token in /var/lib/sandfs as root, else ${XDG_DATA_HOME:-~/.local/share}/sandfs).
# Runs in the foreground until Ctrl-C, which removes every mount it made.
#   scripts/serve.sh [sandfsd serve flags...]      e.g. --listen 0.0.0.0:7270 --data-dir /srv/sandfs
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh release sandfsd >/dev/null

exec build/release/src/sandfsd serve "$@"
