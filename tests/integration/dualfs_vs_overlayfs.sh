#!/bin/bash
# DualFs against kernel overlayfs (issue 6, item 7): the same scripted sequence of file operations
# on a kernel overlayfs mount and on `sandfsd mount --backend dual --a passthrough:U --b
# passthrough:L --b-readonly --policy read-b-write-a` must leave the same visible tree.
#
#   1. build the same lower tree twice (L1 for overlayfs, L2 for DualFs): files of several sizes,
#      nested dirs, symlinks, a hard link pair, a fifo, modes 0600/0755/4755, owners, user.* xattrs;
#   2. mount both, run ops() on each mountpoint, recording every command's exit status;
#   3. compare the exit-status logs and a manifest of each visible tree (path, type, mode, uid,
#      gid, size, sha256, symlink target, sorted user.* xattrs, nlink of non-directories);
#   4. unmount, remount both on the same dirs and compare again (whiteouts and opaque directories
#      persist), and check that L1 and L2 are unchanged.
# Fields left out on purpose (inode numbers, directory sizes and nlink, times other than the
# mtime set with touch -d) are explained in docs/dualfs.md, "Differences from kernel overlayfs".
#
# Usage: dualfs_vs_overlayfs.sh PATH/TO/sandfsd
# Needs root, /dev/fuse and overlayfs; exits 77 (skipped) otherwise.
set -u

SANDFSD=${1:-${SANDFSD:-}}
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root (mount -t overlay, mount(2))"
  exit 77
fi
if [ ! -c /dev/fuse ]; then
  echo "SKIP: /dev/fuse is missing"
  exit 77
fi
if ! grep -qw overlay /proc/filesystems; then
  echo "SKIP: the kernel has no overlayfs"
  exit 77
fi
for tool in setfattr getfattr sha256sum; do
  if ! command -v $tool >/dev/null; then
    echo "SKIP: $tool is missing"
    exit 77
  fi
done
if [ -z "$SANDFSD" ] || [ ! -x "$SANDFSD" ]; then
  echo "FAIL: sandfsd binary not given or not executable: '$SANDFSD'"
  exit 1
fi

# On ext4/xfs (user xattrs) rather than a tmpfs /tmp that may lack them.
WORK=$(mktemp -d "${SANDFS_TEST_TMPDIR:-/var/tmp}/sandfs-dual-vs-ovl-XXXXXX")
L1=$WORK/L1 U1=$WORK/U1 W1=$WORK/W1 M1=$WORK/M1
L2=$WORK/L2 U2=$WORK/U2 M2=$WORK/M2
mkdir "$L1" "$U1" "$W1" "$M1" "$L2" "$U2" "$M2"
PID=

stop_dual() {
  if grep -q " $M2 " /proc/mounts; then umount "$M2" 2>/dev/null || umount -l "$M2"; fi
  if [ -n "$PID" ]; then
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null; fi
    wait "$PID" 2>/dev/null
    PID=
  fi
}

cleanup() {
  cd /
  stop_dual
  if grep -q " $M1 " /proc/mounts; then umount "$M1" 2>/dev/null || umount -l "$M1"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- sandfsd log:"
  tail -50 "$WORK"/dual.log* 2>/dev/null
  exit 1
}

# ---- the lower tree -------------------------------------------------------------------------
build_lower() {
  local d=$1
  mkdir -p "$d"/dir/sub/deep "$d"/tomove/inner "$d"/toremove/x "$d"/merged/keep "$d"/copysrc/a
  printf 'hello\n' >"$d"/small
  printf '' >"$d"/empty
  head -c 5000 /dev/zero | tr '\0' 'a' >"$d"/append_me
  seq 1 20000 >"$d"/truncate_me
  seq 1 300000 >"$d"/big                     # ~2 MB: more than one 1 MiB copy chunk
  seq 1 100000 >"$d"/dd_me
  printf 'chmod\n' >"$d"/chmod_me
  printf 'chown\n' >"$d"/chown_me
  printf 'touch\n' >"$d"/touch_me
  printf 'old content\n' >"$d"/recreate_me
  printf 'move me\n' >"$d"/mv_me
  printf 'link me\n' >"$d"/link_me
  printf 'xattr\n' >"$d"/xattr_me
  printf 'secret\n' >"$d"/mode600
  printf '#!/bin/sh\n' >"$d"/mode755
  printf 'suid\n' >"$d"/mode4755
  chmod 0600 "$d"/mode600
  chmod 0755 "$d"/mode755
  chmod 4755 "$d"/mode4755
  chown 1000:1000 "$d"/chown_me "$d"/dir/sub
  printf 'nested\n' >"$d"/dir/sub/deep/file
  printf 'in sub\n' >"$d"/dir/sub/file
  printf 'tm\n' >"$d"/tomove/f
  printf 'inner\n' >"$d"/tomove/inner/g
  ln -s ../f "$d"/tomove/inner/up
  printf 'gone\n' >"$d"/toremove/x/y
  printf 'keep\n' >"$d"/merged/keep/k
  printf 'lower\n' >"$d"/merged/lowerfile
  printf 'cp a\n' >"$d"/copysrc/a/file
  seq 1 3000 >"$d"/copysrc/data
  ln -s a/file "$d"/copysrc/link
  ln -s small "$d"/sym_rel
  ln -s /nonexistent/target "$d"/sym_dangling
  printf 'hard\n' >"$d"/hard1
  ln "$d"/hard1 "$d"/hard2
  mkfifo "$d"/fifo
  setfattr -n user.color -v blue "$d"/xattr_me
  setfattr -n user.a -v 1 "$d"/small
  setfattr -n user.b -v two "$d"/small
  setfattr -n user.dir -v yes "$d"/dir
  find "$d" -mindepth 1 -exec touch -h -d '2020-01-02 03:04:05' {} +
}

# ---- the manifest ---------------------------------------------------------------------------
# One line per object: path type mode uid gid size nlink sha256 target xattrs. Directories show
# neither size nor nlink (overlayfs and DualFs count them differently). Times are left out except
# for the mtimes of a list of files whose mtime the operations must keep or set.
manifest() {
  local root=$1
  (
    cd "$root" || exit 1
    find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort | while IFS= read -r p; do
      local t mode uid gid size nlink sum='-' target='-' xattrs
      IFS='|' read -r t mode uid gid size nlink < <(stat -c '%F|%a|%u|%g|%s|%h' -- "$p")
      case $t in 'regular empty file' | 'regular file') t=file ;; 'symbolic link') t=symlink ;; esac
      case $t in
        directory) size='-' nlink='-' ;;
        file) sum=$(sha256sum <"$p" | cut -c1-64) ;;
        symlink) target=$(readlink -- "$p") ;;
      esac
      if [ "$t" = symlink ]; then
        xattrs='-'
      else
        xattrs=$(getfattr -h -d -m '^user\.' --absolute-names -- "$p" 2>/dev/null |
          grep -v '^#' | grep -v '^$' | LC_ALL=C sort | tr '\n' ',')
      fi
      echo "$p $t $mode $uid $gid $size $nlink $sum $target [$xattrs]"
    done
    # mtimes that copy-up, rename, chmod/chown/setfattr, touch -d and cp -a must keep or set.
    for p in touch_me chmod_me chown_me xattr_me moved_file mode755 hard1 sym_dangling \
      copydst/data copydst/link copydst/a/file moved_dir/f moved_dir/inner/up dir/sub_renamed/file; do
      echo "$p mtime $(stat -c %Y -- "$p" 2>/dev/null)"
    done
  )
}

# ---- the scripted sequence ------------------------------------------------------------------
# Every step is logged as "step: exit status" so both mounts must also agree on which steps fail.
ops() {
  local m=$1
  cd "$m" || exit 1
  step() {
    local name=$1
    shift
    "$@" >/dev/null 2>&1
    echo "$name: $?"
  }
  step append sh -c 'printf "appended\n" >>append_me'
  step truncate truncate -s 1234 truncate_me
  step truncate0 truncate -s 0 big
  step chmod chmod 0640 chmod_me
  step chmod_dir chmod 0700 dir/sub/deep
  step chown chown 1234:4321 chown_me
  step chown_dir chown 555:555 tomove/inner
  step touch touch -d '2021-06-07 08:09:10' touch_me
  step rm_recreate1 rm recreate_me
  step rm_recreate2 test ! -e recreate_me
  step rm_recreate3 sh -c 'printf "new content\n" >recreate_me'
  step rm_sym rm sym_rel
  step rm_fifo rm fifo
  step mkfifo mkfifo fifo2
  step rmr rm -r toremove
  step rmr_mkdir mkdir toremove
  step rmr_new sh -c 'printf "fresh\n" >toremove/z'
  step rmr_ls sh -c 'test "$(ls -A toremove)" = z'
  step mv_file mv mv_me moved_file
  step mv_file_gone test ! -e mv_me
  step mv_dir mv tomove moved_dir
  step mv_dir_gone test ! -e tomove
  step mv_dir_into mv dir/sub dir/sub_renamed
  step hardlink ln link_me hard_of_link
  step hardlink_write sh -c 'printf "via link\n" >>hard_of_link'
  # One name of a lower hard-link pair: copy-up breaks the pair (overlayfs without index=on), the
  # name written gets the data, the other keeps the lower content. hard1 is looked up first, so a
  # copy-up that went to the first name seen (not the one written) would show here.
  step hardlink_lower sh -c 'stat hard1 hard2 && printf "lower pair\n" >>hard2'
  step hardlink_lower_other sh -c 'test "$(cat hard1)" = hard'
  step symlink ln -s moved_file new_symlink
  step symlink_dir ln -s dir/sub_renamed new_dirlink
  step setfattr setfattr -n user.color -v red xattr_me
  step setfattr_new setfattr -n user.added -v x mode755
  step removexattr setfattr -x user.a small
  step many sh -c 'for i in $(seq 1 200); do printf "f%s\n" "$i" >merged/many_$i; done'
  step many_rm sh -c 'for i in $(seq 1 200 | grep 7); do rm merged/many_$i; done'
  # ENOTEMPTY on both: merged/keep still has a lower entry.
  step rmdir_merged rmdir merged/keep
  step rmdir_merged_err sh -c 'rmdir merged/keep 2>&1 | grep -q "not empty"'
  step rmdir_emptied sh -c 'rm merged/keep/k && rmdir merged/keep'
  step rmdir_gone test ! -e merged/keep
  step dd_mid sh -c 'printf "XXXXXXXXXXXXXXXX" | dd of=dd_me bs=1 seek=300000 conv=notrunc'
  step dd_mid2 sh -c 'head -c 70000 /dev/zero | tr "\0" "Q" | dd of=dd_me bs=4096 seek=10 conv=notrunc'
  step cp_a cp -a copysrc copydst
  step cp_a_file cp -a mode4755 mode4755_copy
  step write_mode600 sh -c 'printf "more\n" >>mode600'
  step suid_write sh -c 'printf "x\n" >>mode4755'
  step new_nested mkdir -p new/a/b
  step new_nested_file sh -c 'printf "n\n" >new/a/b/c'
  step rename_over sh -c 'printf "over\n" >tmp_over && mv tmp_over small'
  cd /
}

# ---- mounting -------------------------------------------------------------------------------
mount_ovl() {
  mount -t overlay overlay -o "lowerdir=$L1,upperdir=$U1,workdir=$W1" "$M1" ||
    fail "mount -t overlay failed"
}

mount_dual() {
  local log=$1
  rm -f "$WORK/ready"
  "$SANDFSD" mount --backend dual --a "passthrough:$U2" --b "passthrough:$L2" --b-readonly \
    --policy read-b-write-a --ready-fd 3 "$M2" 3>"$WORK/ready" 2>"$log" &
  PID=$!
  for _ in $(seq 100); do
    grep -q '^ready$' "$WORK/ready" 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || fail "sandfsd exited before it was ready"
    sleep 0.1
  done
  fail "sandfsd was not ready within 10 s"
}

compare() {
  local what=$1
  manifest "$M1" >"$WORK/ovl.$what" || fail "manifest of overlayfs ($what)"
  manifest "$M2" >"$WORK/dual.$what" || fail "manifest of DualFs ($what)"
  [ "$(wc -l <"$WORK/ovl.$what")" -gt 200 ] || fail "the overlayfs manifest is too short ($what)"
  if ! diff -u "$WORK/ovl.$what" "$WORK/dual.$what"; then
    fail "the visible trees differ ($what; - overlayfs, + DualFs)"
  fi
  echo "ok: the visible trees match ($what)"
}

build_lower "$L1"
build_lower "$L2"
manifest "$L1" >"$WORK/L1.before"
manifest "$L2" >"$WORK/L2.before"
diff -u "$WORK/L1.before" "$WORK/L2.before" || fail "the two lower trees differ before the test"

mount_ovl
mount_dual "$WORK/dual.log1"

manifest "$M1" >"$WORK/ovl.initial"
manifest "$M2" >"$WORK/dual.initial"
diff -u "$WORK/ovl.initial" "$WORK/dual.initial" || fail "the trees differ before any operation"

(ops "$M1") >"$WORK/ovl.ops"
(ops "$M2") >"$WORK/dual.ops"
if ! diff -u "$WORK/ovl.ops" "$WORK/dual.ops"; then
  fail "the operations' exit statuses differ (- overlayfs, + DualFs)"
fi
grep -q '^rmdir_merged: 1$' "$WORK/dual.ops" || fail "rmdir of a merged directory did not fail"
if grep -v '^rmdir_merged: ' "$WORK/dual.ops" | grep -v ': 0$'; then
  fail "steps above failed on both mounts"
fi
echo "ok: every step has the same exit status on both mounts"

compare after-ops

umount "$M1" || fail "umount of overlayfs failed"
stop_dual
mount_ovl
mount_dual "$WORK/dual.log2"
compare after-remount

umount "$M1" || fail "umount of overlayfs failed"
stop_dual
manifest "$L1" >"$WORK/L1.after"
manifest "$L2" >"$WORK/L2.after"
diff -u "$WORK/L1.before" "$WORK/L1.after" || fail "overlayfs changed its lower dir"
diff -u "$WORK/L2.before" "$WORK/L2.after" || fail "DualFs changed its lower dir"
echo "ok: the lower dirs are unchanged"
echo "PASS"
