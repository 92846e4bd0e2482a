#!/usr/bin/env bash
# Installs everything sandfs needs to build, test and benchmark, from Debian 12 packages.
# Idempotent: when every package is already installed it changes nothing and needs no network.
set -euo pipefail

packages=(
  # build
  build-essential g++ cmake ninja-build ccache pkg-config clang-format
  libboost1.81-dev liburing-dev nlohmann-json3-dev catch2 libsqlite3-dev
  # the kernel FUSE client's helpers and libfuse's examples (a benchmark peer)
  fuse3 libfuse3-dev
  # tools the integration tests drive through a mount
  git rsync tar attr findutils coreutils diffutils python3 e2fsprogs curl
  # benchmarks
  fio bindfs fuse-overlayfs
  # the real-guest harness (tests/guest): QEMU with its C virtiofsd, a static busybox for the
  # initramfs, the decompressors for the Debian cloud kernel and its modules, and ss(8)
  qemu-system-x86 qemu-system-common busybox-static xz-utils lz4 zstd iproute2
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm for the microsandbox SDK suite (tests/integration/msb_sdk.sh): Debian's packages
# only when the commands are missing, so a node installed otherwise (e.g. nodesource's nodejs,
# which bundles npm and conflicts with Debian's npm package) is left alone.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# The kernel's FUSE client must be available for the mount tests and the demo.
if [ ! -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
  modprobe fuse 2>/dev/null || true
fi
