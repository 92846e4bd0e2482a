#!/usr/bin/env bash
# shellcheck disable=SC2012,SC2015,SC2054,SC2317
# run-guest.sh — boot a throw-away Linux guest under QEMU (TCG, no KVM needed) whose
# vhost-user-fs-pci device talks to a virtio-fs backend that is already listening on a Unix
# socket (sandfsd vhost-user, or QEMU's virtiofsd). The guest mounts the share, runs a shell
# script with the share as its working directory, unmounts it and powers off. The harness exits
# with the script's exit status.
#
# Pieces: Debian's cloud kernel (fetched once with `apt-get download` and unpacked with
# dpkg-deb), a static busybox, and a small /init generated below. The kernel and the base
# initramfs are cached per kernel package version; each run adds a small second initramfs
# archive (init, script, --file/--bin extras) that the kernel unpacks on top of the first.
#
# Exit status: the script's own; 124 timeout; 125 setup error (usage, cache, socket, QEMU did
# not start); 126 failure outside the script (no virtio-fs device, mount failed, guest panic or
# early power-off, backend closed the socket); 130/143 interrupted. Use --result when a script
# may itself exit with 124..126. See README.md beside this file.
set -uo pipefail
export LC_ALL=C

readonly PROG=${0##*/}
readonly FORMAT=1                # bump when the cached base initramfs changes shape
readonly MARK='@@SANDFS-GUEST@@' # prefix of the lines the guest's /init prints for the harness
readonly QEMU=${QEMU:-qemu-system-x86_64}
readonly CACHE=${SANDFS_GUEST_CACHE:-/var/tmp/sandfs-guest-cache}
readonly KERNEL_META=${SANDFS_GUEST_KERNEL_PKG:-linux-image-cloud-amd64}

usage() {
  cat <<EOF
usage: $PROG --socket PATH --tag TAG (--script FILE|- | --cmd STRING) [options]
       $PROG --prepare

  --socket PATH      vhost-user socket of the running backend
  --tag TAG          virtio-fs tag the backend serves (at most 36 bytes)
  --script FILE|-    guest script (busybox sh; '-' reads it from stdin)
  --cmd STRING       guest script given inline
  --timeout SEC      limit for the whole guest run (default 300)
  --memory SIZE      guest RAM (default 512M)
  --smp N            guest CPUs (default 1)
  --queue-size N     virtqueue size, a power of 2 up to 1024 (default: QEMU's, 128)
  --result FILE      write status=, exit_code=, boot_s=, total_s=, kernel= to FILE
  --log FILE         save the whole serial console to FILE
  --keep             keep the run's work directory (console, QEMU stderr, initramfs)
  --wait-socket SEC  wait up to SEC for the socket to appear (default 5)
  --bin PATH         copy a host program and its ldd libraries into the guest (repeatable)
  --file SRC[:DST]   copy a host file into the guest, by default to
                     /sandfs-guest/files/NAME; a relative DST is under that folder (repeatable)
  --env NAME=VALUE   export a variable to the guest script (repeatable)
  --prepare          only build the cached kernel + initramfs, then print its folder

Environment: SANDFS_GUEST_CACHE (default /var/tmp/sandfs-guest-cache),
SANDFS_GUEST_KERNEL_PKG (default linux-image-cloud-amd64), QEMU (default qemu-system-x86_64).
Exit: the script's status; 124 timeout; 125 setup error; 126 failure outside the script.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Run state. The EXIT trap stops QEMU, writes --result and removes the work folder, so every
# exit path below only sets STATUS and calls `exit CODE`.
STATUS=setup-error BOOT_S=NA TOTAL_S=NA KERNEL_REL=NA RESULT="" WORK="" KEEP=0 QPID=""

finish() {
  local code=$?
  trap - EXIT INT TERM HUP
  stop_qemu
  if [ -n "$RESULT" ]; then
    printf 'status=%s\nexit_code=%s\nboot_s=%s\ntotal_s=%s\nkernel=%s\n' \
      "$STATUS" "$code" "$BOOT_S" "$TOTAL_S" "$KERNEL_REL" >"$RESULT" ||
      say "cannot write $RESULT"
  fi
  if [ -n "$WORK" ]; then
    if [ "$KEEP" = 1 ] || { [ "$STATUS" != ok ] && [ "$STATUS" != setup-error ]; }; then
      say "work folder kept: $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$code"
}
trap finish EXIT
trap 'STATUS=interrupted; exit 130' INT
trap 'STATUS=interrupted; exit 143' TERM HUP

setup_error() { say "$*"; STATUS=setup-error; exit 125; }

stop_qemu() {
  [ -n "$QPID" ] || return 0
  kill -TERM "$QPID" 2>/dev/null
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$QPID" 2>/dev/null
  wait "$QPID" 2>/dev/null
  QPID=""
}

# stamp VAR: microseconds since the epoch into VAR, without a fork (the watch loop runs 20
# times a second).
stamp() { local t=$EPOCHREALTIME; printf -v "$1" '%s' "$((10#${t/./}))"; }
secs() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }

# ---------------------------------------------------------------------------------------------
# Options.
SOCKET="" TAG="" SCRIPT="" CMD="" HAVE_SCRIPT=0 TIMEOUT=300 MEMORY=512M SMP=1 QSIZE=""
LOG="" WAIT_SOCKET=5 PREPARE_ONLY=0 BINS=() FILES=() ENVS=()
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    --keep) KEEP=1; shift; continue ;;
    --prepare) PREPARE_ONLY=1; shift; continue ;;
    -h | --help) usage; exit 0 ;;
    --socket | --tag | --script | --cmd | --timeout | --memory | --smp | --queue-size | --result | \
      --log | --wait-socket | --bin | --file | --env)
      [ $# -ge 2 ] || setup_error "$opt needs a value" ;;
    *) setup_error "unknown option $opt (see --help)" ;;
  esac
  val=$2
  shift 2
  case $opt in
    --socket) SOCKET=$val ;;
    --tag) TAG=$val ;;
    --script) SCRIPT=$val HAVE_SCRIPT=$((HAVE_SCRIPT + 1)) ;;
    --cmd) CMD=$val HAVE_SCRIPT=$((HAVE_SCRIPT + 1)) ;;
    --timeout) TIMEOUT=$val ;;
    --memory) MEMORY=$val ;;
    --smp) SMP=$val ;;
    --queue-size) QSIZE=$val ;;
    --result) RESULT=$val ;;
    --log) LOG=$val ;;
    --wait-socket) WAIT_SOCKET=$val ;;
    --bin) BINS+=("$val") ;;
    --file) FILES+=("$val") ;;
    --env) ENVS+=("$val") ;;
  esac
done

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
if [ "$PREPARE_ONLY" = 0 ]; then
  [ -n "$SOCKET" ] || setup_error "--socket is required"
  [ -n "$TAG" ] || setup_error "--tag is required"
  [ "${#TAG}" -le 36 ] || setup_error "--tag is longer than 36 bytes"
  [ "$HAVE_SCRIPT" = 1 ] || setup_error "give exactly one of --script and --cmd"
  [ -z "$SCRIPT" ] || [ "$SCRIPT" = - ] || [ -r "$SCRIPT" ] || setup_error "cannot read $SCRIPT"
fi
is_uint "$TIMEOUT" && [ "$TIMEOUT" -gt 0 ] || setup_error "--timeout: a number of seconds > 0"
is_uint "$WAIT_SOCKET" || setup_error "--wait-socket: a number of seconds"
is_uint "$SMP" && [ "$SMP" -gt 0 ] || setup_error "--smp: a number > 0"
[[ $MEMORY =~ ^[0-9]+[MG]$ ]] || setup_error "--memory: a size like 512M or 2G"
case $QSIZE in "" | 2 | 4 | 8 | 16 | 32 | 64 | 128 | 256 | 512 | 1024) ;;
  *) setup_error "--queue-size: a power of 2 up to 1024" ;; esac
for e in "${ENVS[@]}"; do
  [[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || setup_error "--env wants NAME=VALUE, not '$e'"
done

# ---------------------------------------------------------------------------------------------
# The cache: $CACHE/<kernel package>_<version>.f<FORMAT>/ holds
#   kernel      the uncompressed vmlinux (booted through PVH), or the bzImage when that fails
#   base.cpio   busybox and its applet links, the virtio-fs modules, /etc/passwd
#   busybox     the same static busybox, used on the host to pack each run's extra archive
#   info        kernel_release=, package=, boot=pvh|bzimage
# A folder is built under a temporary name and renamed into place, so a folder that exists is
# complete; a lock keeps concurrent first runs from downloading twice.

# Sets KPKG/KVER to the real image package behind the meta package and its version. apt-cache
# costs about 0.5 s of CPU where apt keeps no binary cache (Debian's container images), so the
# answer is remembered until apt's package lists change.
resolve_kernel_package() {
  local info stamp s memo=$CACHE/.resolved-$KERNEL_META
  stamp=$(stat -c %Y /var/lib/apt/lists/*Packages* 2>/dev/null | sort -n | tail -n1)
  if [ -n "$stamp" ] && [ -f "$memo" ] && read -r s KPKG KVER <"$memo" && [ "$s" = "$stamp" ] &&
    [ -n "$KVER" ]; then
    return 0
  fi
  info=$(apt-cache show --no-all-versions "$KERNEL_META" 2>/dev/null)
  if [ -z "$info" ] && [ "$(id -u)" = 0 ]; then
    say "apt knows no $KERNEL_META; running apt-get update"
    apt-get update -qq >/dev/null 2>&1
    info=$(apt-cache show --no-all-versions "$KERNEL_META" 2>/dev/null)
  fi
  [ -n "$info" ] || return 1
  KVER=$(sed -n 's/^Version: //p' <<<"$info" | head -n1)
  # linux-image-cloud-amd64 depends on exactly one linux-image-<abi>-cloud-amd64 (= version)
  KPKG=$(sed -n 's/^Depends: //p' <<<"$info" | tr ',' '\n' |
    sed -n 's/^ *\(linux-image-[^ ]*\).*/\1/p' | head -n1)
  [ -n "$KPKG" ] || KPKG=$KERNEL_META # already a real image package
  [ -n "$KVER" ] || return 1
  [ -z "$stamp" ] || { echo "$stamp $KPKG $KVER" >"$memo.$$" && mv -f "$memo.$$" "$memo"; }
}

# Writes the uncompressed kernel inside bzImage $1 to $2, using the payload_offset and
# payload_length fields of the x86 boot header (boot protocol 2.08+). $3 is the kernel config.
extract_vmlinux() {
  local bz=$1 out=$2 config=$3 sects start off len tool
  case $(grep -o '^CONFIG_KERNEL_[A-Z0-9]*=y' "$config") in
    CONFIG_KERNEL_GZIP=y) tool="gzip -dc" ;;
    CONFIG_KERNEL_XZ=y) tool="xz -dc" ;;
    CONFIG_KERNEL_LZ4=y) tool="lz4 -dc" ;;
    CONFIG_KERNEL_ZSTD=y) tool="zstd -dc" ;;
    *) return 1 ;;
  esac
  command -v "${tool%% *}" >/dev/null || return 1
  sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
  [ "$sects" = 0 ] && sects=4
  start=$(((sects + 1) * 512)) # the protected-mode part follows the real-mode setup sectors
  off=$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')
  len=$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')
  [ -n "$off" ] && [ -n "$len" ] && [ "$len" -gt 4 ] || return 1
  # all but gzip carry the uncompressed size as 4 trailing bytes; the decompressors stop at
  # the end of their stream, so they are left in and complaints about them ignored
  tail -c +$((start + off + 1)) "$bz" | head -c "$len" | $tool >"$out" 2>/dev/null
  [ "$(head -c4 "$out" | od -An -c | tr -d ' ')" = '177ELF' ]
}

# Prints "name.ko path" for the module $1 and, first, every module it depends on (.modinfo's
# depends= field), skipping the ones already in the array SEEN.
declare -A SEEN=()
module_closure() {
  local name=${1//-/_} moddir=$2 path deps d
  [ -z "${SEEN[$name]:-}" ] || return 0
  SEEN[$name]=1
  path=$(find "$moddir" -name "$name.ko" -o -name "${name//_/-}.ko" | head -n1)
  [ -n "$path" ] || { say "module $name not found in $moddir"; return 1; }
  deps=$(tr '\0' '\n' <"$path" | sed -n 's/^depends=//p' | head -n1)
  for d in ${deps//,/ }; do module_closure "$d" "$moddir" || return 1; done
  echo "$name $path"
}

build_cache() { # $1 = final folder, $2 = an empty scratch folder
  local final=$1 tmp=$2 pkgroot rel config boot m line want=() bb
  say "building the guest kernel + initramfs in $final (once per kernel version)"
  (cd "$tmp" && apt-get download "$KPKG=$KVER" >download.log 2>&1) ||
    { cat "$tmp/download.log" >&2; say "apt-get download $KPKG=$KVER failed"; return 1; }
  pkgroot=$tmp/pkg
  dpkg-deb -x "$tmp"/*.deb "$pkgroot" || return 1
  rel=$(basename "$(ls "$pkgroot"/boot/vmlinuz-* | head -n1)")
  rel=${rel#vmlinuz-}
  config=$pkgroot/boot/config-$rel
  [ -f "$config" ] || { say "no kernel config in $KPKG"; return 1; }

  mkdir -p "$tmp/out" "$tmp/root"
  boot=bzimage
  if grep -q '^CONFIG_PVH=y' "$config" &&
    extract_vmlinux "$pkgroot/boot/vmlinuz-$rel" "$tmp/out/kernel" "$config"; then
    boot=pvh # QEMU loads the ELF and enters it directly: no decompression under TCG
  else
    cp "$pkgroot/boot/vmlinuz-$rel" "$tmp/out/kernel"
  fi

  # Modules, dependencies first: FUSE, the virtio-fs driver and the virtio PCI transport,
  # unless the kernel has them built in (=y).
  for m in FUSE_FS:fuse VIRTIO_FS:virtiofs VIRTIO_PCI:virtio_pci; do
    case $(sed -n "s/^CONFIG_${m%%:*}=//p" "$config") in
      m) want+=("${m#*:}") ;;
      y) ;;
      *) say "kernel $rel has no CONFIG_${m%%:*}"; return 1 ;;
    esac
  done
  mkdir -p "$tmp/root/lib/modules"
  : >"$tmp/root/lib/modules/order"
  for m in "${want[@]}"; do
    module_closure "$m" "$pkgroot/lib/modules/$rel" >"$tmp/closure" || return 1
    while read -r m line; do
      cp "$line" "$tmp/root/lib/modules/$m.ko" # Debian 12 ships them uncompressed
      echo "$m" >>"$tmp/root/lib/modules/order"
    done <"$tmp/closure"
  done

  # busybox must be the static one (busybox-static), since the guest has no libc
  bb=$(command -v busybox) || { say "busybox not found (scripts/setup.sh installs busybox-static)"; return 1; }
  if ldd "$bb" >/dev/null 2>&1; then
    say "$bb is dynamically linked; install busybox-static (scripts/setup.sh)"
    return 1
  fi
  mkdir -p "$tmp/root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,dev,proc,sys,tmp,mnt,root,etc}
  cp "$bb" "$tmp/root/bin/busybox"
  cp "$bb" "$tmp/out/busybox"
  for m in $("$bb" --list); do
    [ -e "$tmp/root/bin/$m" ] || ln -s busybox "$tmp/root/bin/$m"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'user:x:1000:1000:user:/tmp:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$tmp/root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'user:x:1000:' 'nogroup:x:65534:' >"$tmp/root/etc/group"
  (cd "$tmp/root" && find . | sort | "$bb" cpio -o -H newc >"$tmp/out/base.cpio" 2>/dev/null) ||
    { say "packing the base initramfs failed"; return 1; }
  printf 'kernel_release=%s\npackage=%s_%s\nboot=%s\nmodules=%s\n' "$rel" "$KPKG" "$KVER" \
    "$boot" "$(paste -sd' ' "$tmp/root/lib/modules/order")" >"$tmp/out/info"

  # rename into place; if another run got there first its folder is just as good
  mv -T "$tmp/out" "$final" 2>/dev/null || [ -d "$final" ]
}

# Sets KDIR to a complete cache folder, building it if needed.
prepare_cache() {
  local final lock
  mkdir -p "$CACHE" || return 1
  if resolve_kernel_package; then
    final=$CACHE/${KPKG}_${KVER}.f$FORMAT
  else
    # offline and apt knows nothing: fall back on the newest folder already built
    final=$(ls -td "$CACHE"/*.f$FORMAT 2>/dev/null | head -n1)
    [ -n "$final" ] || { say "cannot resolve $KERNEL_META (apt-get update?)"; return 1; }
    say "apt knows no $KERNEL_META; using the cached $(basename "$final")"
  fi
  if [ ! -d "$final" ]; then
    exec {lock}>"$CACHE/.lock"
    flock -w 600 "$lock" || { say "timed out waiting for $CACHE/.lock"; return 1; }
    local rc=0 tmp
    if [ ! -d "$final" ]; then
      tmp=$(mktemp -d "$CACHE/.build.XXXXXX") || return 1
      build_cache "$final" "$tmp"
      rc=$?
      rm -rf "$tmp"
    fi
    exec {lock}>&-
    [ "$rc" = 0 ] || return 1
  fi
  KDIR=$final
  KERNEL_REL=$(sed -n 's/^kernel_release=//p' "$KDIR/info")
}

# ---------------------------------------------------------------------------------------------
# The guest's /init (busybox sh, PID 1). It reports progress on the serial console with lines
# starting with $MARK: INIT, MOUNTED, START, END rc=N (script finished), DONE rc=N (share
# unmounted, about to power off), FAIL <reason> (a failure outside the script).
write_init() {
  cat >"$1" <<'EOF'
#!/bin/sh
export PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
mkdir -p /dev/pts /dev/shm && mount -t devpts pts /dev/pts && mount -t tmpfs shm /dev/shm
ln -s /proc/self/fd /dev/fd
. /sandfs-guest/config
M=@@SANDFS-GUEST@@
up() { read -r u _ </proc/uptime; echo "$u"; }
off() { sync; poweroff -f; sleep 2; reboot -f; } # QEMU runs with -no-reboot: either ends it
fail() { echo "$M FAIL $*"; off; }

echo "$M INIT uptime=$(up) kernel=$(uname -r)"
while read -r m; do
  insmod "/lib/modules/$m.ko" || echo "$M WARN insmod $m failed"
done </lib/modules/order

# the PCI device is probed asynchronously; give it up to 10 s to bind to the virtiofs driver
i=0
until ls /sys/bus/virtio/drivers/virtiofs 2>/dev/null | grep -q '^virtio'; do
  i=$((i + 1))
  [ "$i" -le 100 ] || fail "no-device: no virtio-fs device appeared"
  sleep 0.1
done
mkdir -p "$GUEST_MNT"
mount -t virtiofs "$GUEST_TAG" "$GUEST_MNT" 2>/tmp/mount.err ||
  fail "mount-failed: $(cat /tmp/mount.err)"
echo "$M MOUNTED uptime=$(up)"

cd "$GUEST_MNT" || fail "mount-failed: cannot cd to $GUEST_MNT"
echo "$M START uptime=$(up)"
(
  . /sandfs-guest/env
  exec sh /sandfs-guest/script </dev/null
)
rc=$?
echo "$M END rc=$rc uptime=$(up)"
cd /
kill -KILL -1 2>/dev/null # whatever the script left running in the background
sync
umount "$GUEST_MNT" || echo "$M WARN umount failed" # sends FUSE_DESTROY
echo "$M DONE rc=$rc uptime=$(up)"
off
EOF
  chmod 755 "$1"
}

# Quotes $1 for sh.
shquote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Copies program $1 and every library ldd names for it into the tree $2, at the same paths.
add_bin() {
  local src=$1 root=$2 lib
  [ -f "$src" ] && [ -x "$src" ] || setup_error "--bin $src: not an executable file"
  mkdir -p "$root/usr/local/bin"
  cp -L "$src" "$root/usr/local/bin/" || setup_error "cannot copy $src"
  for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*'); do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root${lib%/*}" && cp -L "$lib" "$root$lib" || setup_error "cannot copy $lib"
  done
}

# Builds the per-run archive $WORK/run.cpio: /init, the script and its environment, extras.
build_run_archive() {
  local root=$WORK/run e src dst
  mkdir -p "$root/sandfs-guest/files"
  write_init "$root/init"
  printf 'GUEST_TAG=%s\nGUEST_MNT=/mnt\n' "$(shquote "$TAG")" >"$root/sandfs-guest/config"
  {
    echo "export SANDFS_GUEST_TAG=$(shquote "$TAG") SANDFS_GUEST_MNT=/mnt"
    echo "export SANDFS_GUEST_FILES=/sandfs-guest/files"
    for e in "${ENVS[@]}"; do echo "export ${e%%=*}=$(shquote "${e#*=}")"; done
  } >"$root/sandfs-guest/env"
  if [ -n "$CMD" ]; then
    printf '%s\n' "$CMD" >"$root/sandfs-guest/script"
  elif [ "$SCRIPT" = - ]; then
    cat >"$root/sandfs-guest/script"
  else
    cp "$SCRIPT" "$root/sandfs-guest/script"
  fi || setup_error "cannot copy the guest script"
  for e in "${FILES[@]}"; do
    src=${e%%:*} dst=${e#*:}
    [ "$dst" != "$e" ] || dst=${src##*/}
    [[ $dst == /* ]] || dst=/sandfs-guest/files/$dst
    [ -e "$src" ] || setup_error "--file $src: no such file"
    mkdir -p "$root${dst%/*}" && cp -a "$src" "$root$dst" || setup_error "cannot copy $src"
  done
  for e in "${BINS[@]}"; do add_bin "$e" "$root"; done
  (cd "$root" && find . | "$KDIR/busybox" cpio -o -H newc >"$WORK/run.cpio" 2>/dev/null) ||
    setup_error "packing the run's initramfs failed"
}

# ---------------------------------------------------------------------------------------------
# Backend disconnect: a virtio-fs guest whose backend has gone just waits for its requests
# forever, and QEMU 7.2 reports nothing, so the harness watches QEMU's Unix sockets itself. Once
# the guest runs, it notes them (the vhost-user connection, and the backend channel if any).
# When the backend goes, QEMU either closes its end (it saw the hang-up) or keeps it with a dead
# peer, which sock_diag reports as peer inode 0 ("* 0" in ss -xn).
QSOCKS=""
qemu_sockets() { ls -l "/proc/$QPID/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\]$/\1/p' | tr '\n' ' '; }
backend_gone() {
  local now_socks ino
  if [ -z "$QSOCKS" ]; then QSOCKS=" $(qemu_sockets)"; return 1; fi
  now_socks=" $(qemu_sockets)"
  for ino in $QSOCKS; do
    [[ $now_socks == *" $ino "* ]] || return 0 # QEMU closed it
  done
  command -v ss >/dev/null || return 1
  ss -xn 2>/dev/null | awk -v mine="$QSOCKS" '
    $1 == "u_str" && $2 == "ESTAB" && index(mine, " " $6 " ") && $8 == "0" { gone = 1 }
    END { exit !gone }'
}

# ---------------------------------------------------------------------------------------------
prepare_cache || setup_error "could not prepare the guest kernel and initramfs"
if [ "$PREPARE_ONLY" = 1 ]; then
  cat "$KDIR/info"
  echo "cache=$KDIR"
  STATUS=ok
  exit 0
fi
command -v "$QEMU" >/dev/null || setup_error "$QEMU not found (scripts/setup.sh installs qemu-system-x86)"

for ((i = 0; i < WAIT_SOCKET * 10; i++)); do [ -S "$SOCKET" ] && break; sleep 0.1; done
[ -S "$SOCKET" ] || setup_error "no socket at $SOCKET (is the backend running?)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sandfs-guest.XXXXXX") || setup_error "mktemp failed"
build_run_archive
cat "$KDIR/base.cpio" "$WORK/run.cpio" >"$WORK/initrd" # the kernel unpacks both, in order

comma() { printf '%s' "${1//,/,,}"; } # QEMU option values escape ',' as ',,'
# Kernel arguments: serial console, warnings only, a panic ends QEMU (-no-reboot); the rest
# skips work that is slow under TCG and useless here (mitigations, crypto self-tests, timer
# checks, PS/2 probing, extra UARTs).
CMDLINE="console=ttyS0 quiet panic=-1 rdinit=/init mitigations=off cryptomgr.notests"
CMDLINE+=" no_timer_check tsc=reliable i8042.noaux i8042.nokbd i8042.nopnp 8250.nr_uarts=1"
fsdev="vhost-user-fs-pci,chardev=vufs,tag=$(comma "$TAG")"
[ -z "$QSIZE" ] || fsdev+=",queue-size=$QSIZE"
qemu=("$QEMU" -accel tcg -nodefaults -no-user-config -display none -no-reboot
  -machine q35,memory-backend=ram -m "$MEMORY" -smp "$SMP"
  # vhost-user needs guest RAM the backend can map: a shared memfd
  -object "memory-backend-memfd,id=ram,size=$MEMORY,share=on"
  -chardev "socket,id=vufs,path=$(comma "$SOCKET")" -device "$fsdev"
  -chardev "file,id=con,path=$(comma "$WORK/console.log")" -serial chardev:con
  -kernel "$KDIR/kernel" -initrd "$WORK/initrd" -append "$CMDLINE")
# qboot (from qemu-system-data) starts much faster than SeaBIOS and can boot PVH kernels
[ -f /usr/share/qemu/qboot.rom ] && qemu+=(-bios /usr/share/qemu/qboot.rom)

: >"$WORK/console.log"
stamp T0
"${qemu[@]}" </dev/null >"$WORK/qemu.err" 2>&1 &
QPID=$!

# Follow the console: print it, note the marker lines, and stop on timeout, on a backend that
# went away, or when QEMU exits.
exec {con}<"$WORK/console.log"
mkfifo "$WORK/tick" && exec {tick}<>"$WORK/tick" # nobody ever writes to it
now=0 partial="" init_seen=0 end_rc="" done_rc="" fail_msg="" t_start="" t_done="" t_gone="" t_check=0
on_line() {
  local line=${1%$'\r'}
  printf '%s\n' "$line"
  case $line in
    "$MARK INIT"*) init_seen=1 ;;
    "$MARK START"*) stamp t_start ;;
    "$MARK END rc="*) end_rc=${line#"$MARK END rc="} end_rc=${end_rc%% *} ;;
    "$MARK DONE rc="*) done_rc=${line#"$MARK DONE rc="} done_rc=${done_rc%% *}; stamp t_done ;;
    "$MARK FAIL "*) fail_msg=${line#"$MARK FAIL "} ;;
  esac
}
read_console() {
  local chunk
  while IFS= read -r -u "$con" chunk; do
    on_line "$partial$chunk"
    partial=""
  done
  partial+=$chunk # a line QEMU has not finished writing yet
}

deadline=$((T0 + TIMEOUT * 1000000))
while :; do
  read_console
  if ! kill -0 "$QPID" 2>/dev/null; then
    read_console
    [ -z "$partial" ] || on_line "$partial"
    wait "$QPID" 2>/dev/null
    qemu_rc=$?
    QPID=""
    break
  fi
  stamp now
  if [ "$now" -ge "$deadline" ]; then STATUS=timeout; break; fi
  # the guest said goodbye but QEMU lingers: do not wait for it
  if [ -n "$t_done" ] && [ $((now - t_done)) -gt 5000000 ]; then break; fi
  if [ "$init_seen" = 1 ] && [ -z "$t_gone$done_rc" ] && [ $((now - t_check)) -ge 500000 ]; then
    t_check=$now
    backend_gone && t_gone=$now
  fi
  # a short grace, in case the guest was already on its way out
  if [ -n "$t_gone" ] && [ -z "$done_rc" ] && [ $((now - t_gone)) -ge 2000000 ]; then
    STATUS=backend-closed
    break
  fi
  read -r -t 0.05 -u "$tick" _ # a 50 ms nap that forks no sleep(1)
done
stop_qemu
stamp T_END
[ -z "$t_start" ] || BOOT_S=$(secs $((t_start - T0)))
TOTAL_S=$(secs $((T_END - T0)))
[ -z "$LOG" ] || cp "$WORK/console.log" "$LOG" 2>/dev/null || say "cannot write $LOG"

qemu_tail() { grep -v '^$' "$WORK/qemu.err" | tail -n 15 | sed 's/^/  qemu: /' >&2; }
if [ -n "$done_rc" ]; then
  STATUS=ok
  say "guest script exited $done_rc (boot ${BOOT_S}s, total ${TOTAL_S}s)"
  exit "$done_rc"
fi
case $STATUS in
  timeout)
    say "timed out after ${TIMEOUT}s$([ -n "$t_start" ] && echo ' (the script was running)')"
    exit 124 ;;
  backend-closed)
    say "the backend closed the vhost-user connection$([ -n "$end_rc" ] && echo " (after the script exited $end_rc)")"
    qemu_tail
    exit 126 ;;
esac
if [ -n "$fail_msg" ]; then
  STATUS=${fail_msg%%:*}
  say "guest: $fail_msg"
  exit 126
fi
if [ "$init_seen" = 0 ] && [ ! -s "$WORK/console.log" ]; then
  # QEMU never ran the kernel: a bad option, a refused socket connection, ...
  say "QEMU did not start the guest (exit status $qemu_rc)"
  qemu_tail
  exit 125
fi
STATUS=guest-died
say "the guest stopped without a result$(grep -q 'Kernel panic' "$WORK/console.log" && echo ' (kernel panic)')"
qemu_tail
exit 126
