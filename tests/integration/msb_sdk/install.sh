#!/usr/bin/env bash
# Installs the pinned microsandbox Node SDK (the JS package and its native linux-x64 binary, both
# named: npm skips the optional native package otherwise) into a cache directory reused between
# runs, and prints that directory: ${SANDFS_NPM_CACHE:-$HOME/.cache/sandfs-npm}/msb-<version>.
# A complete install there is reused without any network. Otherwise `npm install` fills a fresh
# temporary directory that is renamed into place only when complete, under a lock, so concurrent
# runs (release and ASan trees) share the cache safely. npm unreachable: exit 1 with npm's message.
# Used by tests/integration/msb_sdk.sh and bench/msb_sdk.sh.
set -uo pipefail
version=0.6.18
packages=("microsandbox@$version" "@superradcompany/microsandbox-linux-x64-gnu@$version")
cache_root=${SANDFS_NPM_CACHE:-$HOME/.cache/sandfs-npm}
sdk_dir=$cache_root/msb-$version
mkdir -p "$cache_root" || exit 1

installed() {
  local d=$1
  [ -f "$d/node_modules/microsandbox/package.json" ] &&
    [ -f "$d/node_modules/@superradcompany/microsandbox-linux-x64-gnu/microsandbox.linux-x64-gnu.node" ] &&
    [ "$(node -p "require('$d/node_modules/microsandbox/package.json').version")" = "$version" ]
}

(
  flock -w 600 9 || { echo "msb_sdk: FAIL: timed out waiting for $cache_root/.lock"; exit 1; }
  installed "$sdk_dir" && exit 0
  echo "msb_sdk: installing ${packages[*]} from npm into $sdk_dir" >&2
  tmp=$(mktemp -d "$cache_root/.install-XXXXXX") || exit 1
  # --no-package-lock/--no-save: nothing is written but node_modules; engines: the SDK declares
  # node >= 22 and runs on 20 (npm warns). npm's own cache ($HOME/.npm) is used as usual.
  if ! timeout 300 npm install --prefix "$tmp" --no-package-lock --no-save --no-audit --no-fund \
      --loglevel=error "${packages[@]}" >"$tmp.log" 2>&1; then
    echo "msb_sdk: FAIL: npm install of the pinned SDK failed (is the npm registry reachable?):"
    cat "$tmp.log"
    rm -rf "$tmp" "$tmp.log"
    exit 1
  fi
  rm -f "$tmp.log"
  installed "$tmp" || {
    echo "msb_sdk: FAIL: npm install left an incomplete SDK in $tmp (native package missing?)"
    ls -R "$tmp/node_modules" | head -20
    rm -rf "$tmp"
    exit 1
  }
  rm -rf "$sdk_dir"
  mv "$tmp" "$sdk_dir"
) 9>"$cache_root/.lock" >&2 || exit 1

echo "$sdk_dir"
