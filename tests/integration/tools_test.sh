#!/usr/bin/env bash
# Real tools on a MemFs mount (--capacity 1GiB), or with BACKEND=passthrough on a PassthroughFs
# mount of a fresh host directory, each result compared with its source:
#   cp -a (checksums of every file, symlink targets, modes/owners/mtimes, diff -r), tar round trip,
#   find | wc -l, du, rsync -a then an rsync --checksum dry run that must list nothing, git
#   (init/add/commit/log/status/gc/fsck/clone), git clone of a repository made outside the mount
#   then status/log/fsck there, a make build of a small C program and running it, find -type of
#   fifos/sockets/symlinks/devices, xattrs with setfattr/getfattr, the errors tools report (rmdir
#   of a non-empty directory, ...) and another user through setpriv.
#
# Usage: [BACKEND=memfs|passthrough] [BACKEND_FLAGS="..."] tools_test.sh PATH/TO/sandfsd [SOURCE_DIR]
#        (SOURCE_DIR defaults to /usr/share/doc; BACKEND_FLAGS are added to the mount command)
# Needs root and /dev/fuse; exits 77 (skipped) without them, 1 on the first mismatch.
set -Eeuo pipefail
export LC_ALL=C

exec 2>&1  # one ordered stream for CTest's log

SANDFSD=${1:-${SANDFSD:-}}
SRC=${2:-/usr/share/doc}
BACKEND=${BACKEND:-memfs}
case "$BACKEND" in
  memfs | passthrough) ;;
  *) echo "FAIL: BACKEND must be memfs or passthrough, not '$BACKEND'"; exit 1 ;;
esac

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root (mount(2), chown, other users)"
  exit 77
fi
if [ ! -c /dev/fuse ]; then
  echo "SKIP: /dev/fuse is missing"
  exit 77
fi
if [ -z "$SANDFSD" ] || [ ! -x "$SANDFSD" ]; then
  echo "FAIL: sandfsd binary not given or not executable: '$SANDFSD'"
  exit 1
fi
for tool in git rsync tar sha256sum diff find du setfattr getfattr setpriv make cc python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (scripts/setup.sh)"; exit 1; }
done
[ -d "$SRC" ] || { echo "FAIL: source directory $SRC missing"; exit 1; }

MNT=$(mktemp -d /tmp/sandfs-it-XXXXXX)
WORK=$(mktemp -d /tmp/sandfs-it-work-XXXXXX)
PID=
HOST=

cleanup() {
  local rc=$?
  if grep -q " $MNT fuse.sandfs " /proc/self/mounts 2>/dev/null; then
    umount "$MNT" 2>/dev/null || umount -l "$MNT"
  fi
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  rmdir "$MNT" 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
  if [ -n "$HOST" ] && ! grep -q " $MNT fuse.sandfs " /proc/self/mounts 2>/dev/null; then
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$HOST"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

fail() {
  echo "FAIL: $*" >&2
  if [ -s "$WORK/server.log" ]; then
    echo "--- sandfsd log (last 40 lines):" >&2
    tail -n 40 "$WORK/server.log" >&2
  fi
  exit 1
}
# A mismatch is reported and counted, and the test goes on (so one run shows every problem);
# the exit status is 1 if there was any.
mismatches=0
mismatch() {
  echo "MISMATCH: $*" >&2
  mismatches=$((mismatches + 1))
}
step() { echo "--- $*"; }

# Fingerprints of a tree, relative to its root, sorted; each must be identical for a faithful copy.
checksums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }
symlinks() { (cd "$1" && find . -type l -printf '%p -> %l\n' | sort); }
# Type, permissions, owner, group and mtime of everything; size of files and symlinks (a
# directory's size is filesystem-specific).
metadata() {
  (cd "$1" && find . \( -type d -printf '%y %#m %u %g %TY-%Tm-%Td+%TT %p\n' \) -o \
    -printf '%y %#m %u %g %TY-%Tm-%Td+%TT %s %p\n' | sort)
}
# Reports a difference between two listings (at most 6 lines of it); returns 1 if they differ.
compare_listings() {  # compare_listings A B WHAT
  if diff "$1" "$2" >"$WORK/listing.diff"; then return 0; fi
  mismatch "$3 in $(grep -c '^>' "$WORK/listing.diff" || true) of $(wc -l <"$1") entries" \
    "(source <, copy >), e.g.:"
  grep '^[<>]' "$WORK/listing.diff" | sort -k7 >"$WORK/listing.sorted" || true
  sed -n 1,6p "$WORK/listing.sorted" >&2
  return 1
}
same_tree() {  # same_tree SRC COPY WHAT
  checksums "$1" >"$WORK/sum.a"
  # A copy whose listing misreports file types (find trusts d_type) makes sha256sum fail: that is
  # a mismatch, and the later steps still run.
  checksums "$2" >"$WORK/sum.b" 2>"$WORK/sum.err" ||
    mismatch "$3: checksumming the copy failed: $(grep -v '^$' "$WORK/sum.err" | sed -n 1,3p)"
  [ -s "$WORK/sum.a" ] || fail "$3: no files compared (empty source?)"
  compare_listings "$WORK/sum.a" "$WORK/sum.b" "$3: file checksums differ" || true
  symlinks "$1" >"$WORK/ln.a"
  symlinks "$2" >"$WORK/ln.b"
  compare_listings "$WORK/ln.a" "$WORK/ln.b" "$3: symlink targets differ" || true
}
same_metadata() {  # same_metadata SRC COPY WHAT
  metadata "$1" >"$WORK/meta.a"
  metadata "$2" >"$WORK/meta.b"
  compare_listings "$WORK/meta.a" "$WORK/meta.b" "$3: modes/owners/mtimes/sizes differ" || true
}

if [ "$BACKEND" = memfs ]; then
  step "mount MemFs (1 GiB) at $MNT"
  backend_flags=(--backend memfs --capacity 1GiB --max-inodes 200000)
else
  HOST=$(mktemp -d /tmp/sandfs-ptit-host-XXXXXX)
  chmod 0755 "$HOST"  # the root shows the host's mode until the guest changes it
  step "mount PassthroughFs of $HOST at $MNT"
  backend_flags=(--backend passthrough --root "$HOST")
fi
read -r -a extra_flags <<<"${BACKEND_FLAGS:-}"
"$SANDFSD" mount "${backend_flags[@]}" "${extra_flags[@]}" --ready-fd 3 "$MNT" \
  3>"$WORK/ready" >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 300); do
  grep -q '^ready$' "$WORK/ready" 2>/dev/null && break
  grep -q " $MNT fuse.sandfs " /proc/self/mounts && break
  kill -0 "$PID" 2>/dev/null || fail "sandfsd exited before it was ready"
  sleep 0.1
done
grep -q " $MNT fuse.sandfs " /proc/self/mounts || fail "no fuse.sandfs mount at $MNT after 30 s"

src_files=$(find "$SRC" -type f | wc -l)
src_entries=$(find "$SRC" | wc -l)
echo "source $SRC: $src_entries entries, $src_files files, $(du -sh --apparent-size "$SRC" | cut -f1)"

step "cp -a"
cp -a "$SRC" "$MNT/copy" || mismatch "cp -a $SRC into the mount failed"
same_tree "$SRC" "$MNT/copy" "cp -a"
same_metadata "$SRC" "$MNT/copy" "cp -a"
if ! diff -r --no-dereference "$SRC" "$MNT/copy" >"$WORK/diff.out" 2>&1; then
  mismatch "diff -r reports differences: $(sed -n 1,5p "$WORK/diff.out")"
fi

step "find | wc -l"
copy_entries=$(find "$MNT/copy" | wc -l)
[ "$copy_entries" = "$src_entries" ] ||
  mismatch "find counts $copy_entries entries in the copy, $src_entries in the source"
[ "$(find "$MNT/copy" -type f | wc -l)" = "$src_files" ] || mismatch "find -type f count differs"

step "du"
src_bytes=$(find "$SRC" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
copy_bytes=$(find "$MNT/copy" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
[ "$src_bytes" = "$copy_bytes" ] || mismatch "file sizes sum to $copy_bytes, source $src_bytes"
du_alloc=$(du -s -B1 "$MNT/copy" | cut -f1)
du_apparent=$(du -s -B1 --apparent-size "$MNT/copy" | cut -f1)
du_src_apparent=$(du -s -B1 --apparent-size "$SRC" | cut -f1)
echo "du: allocated $du_alloc, apparent $du_apparent (source apparent $du_src_apparent, files $src_bytes)"
[ "$du_alloc" -gt 0 ] || mismatch "du -s reports 0 bytes allocated"
# Allocation is in 4 KiB pages: at least the data, at most data plus a page per file.
[ "$du_alloc" -ge "$src_bytes" ] || mismatch "du -s: $du_alloc allocated < $src_bytes of data"
[ "$du_alloc" -le $((src_bytes + 4096 * src_files + 4096 * (src_entries - src_files))) ] ||
  mismatch "du -s: $du_alloc allocated, far more than $src_bytes of data in $src_files files"
# Apparent sizes: the files' are identical; directories' sizes are filesystem-specific, so the
# totals only have to be close (within 10 %).
diffpct=$(( (du_apparent - du_src_apparent) * 100 / du_src_apparent ))
[ "${diffpct#-}" -le 10 ] ||
  mismatch "du --apparent-size: $du_apparent vs source $du_src_apparent ($diffpct %)"
statfs_used=$(stat -f -c '%b %f %S' "$MNT" | awk '{printf "%.0f\n", ($1 - $2) * $3}')
[ "$statfs_used" -ge "$src_bytes" ] || mismatch "statfs says $statfs_used bytes used < $src_bytes copied"

step "tar -c | tar -x"
mkdir "$MNT/untarred"
tar -C "$SRC" --format=posix -cf - . | tar -C "$MNT/untarred" -xpf - ||
  mismatch "tar -c | tar -x into the mount failed"
same_tree "$SRC" "$MNT/untarred" "tar round trip"
same_metadata "$SRC" "$MNT/untarred" "tar round trip"
# An archive stored on the mount, listed and extracted from there.
tar -C "$SRC" -cf "$MNT/archive.tar" . || mismatch "tar -cf onto the mount failed"
[ "$(tar -tf "$MNT/archive.tar" | wc -l)" = "$src_entries" ] ||
  mismatch "tar -tf of the archive on the mount lists the wrong number of entries"
rm -rf "$MNT/untarred"
mkdir "$MNT/untarred"
tar -C "$MNT/untarred" -xpf "$MNT/archive.tar" || mismatch "tar -xf from the mount failed"
same_tree "$SRC" "$MNT/untarred" "tar archive on the mount"
rm -rf "$MNT/untarred" "$MNT/archive.tar"

step "rsync -a"
rsync -a "$SRC/" "$MNT/rsynced/" || mismatch "rsync -a into the mount failed"
rsync -a --checksum --dry-run --itemize-changes "$SRC/" "$MNT/rsynced/" >"$WORK/rsync.out" ||
  mismatch "rsync --checksum --dry-run failed"
[ ! -s "$WORK/rsync.out" ] || mismatch "rsync --checksum --dry-run reports changes: $(sed -n 1,5p "$WORK/rsync.out")"
same_tree "$SRC" "$MNT/rsynced" "rsync -a"
# An update in place: change a file on the mount, rsync must notice and fix it.
victim=$(cd "$MNT/rsynced" && find . -type f -size +1k | sort | sed -n 1p)
victim=${victim#./}
[ -n "$victim" ] || fail "no file over 1 KiB to modify"
byte=$(od -An -tx1 -j100 -N1 "$SRC/$victim" | tr -d ' ')
if [ "$byte" = 58 ]; then other=Y; else other=X; fi
printf '%s' "$other" | dd of="$MNT/rsynced/$victim" bs=1 seek=100 conv=notrunc status=none
cmp -s "$SRC/$victim" "$MNT/rsynced/$victim" && mismatch "modifying $victim on the mount changed nothing"
touch -r "$SRC/$victim" "$MNT/rsynced/$victim"  # same size and mtime: only --checksum sees it
rsync -a --checksum --itemize-changes "$SRC/" "$MNT/rsynced/" >"$WORK/rsync2.out"
grep -qF "$victim" "$WORK/rsync2.out" || mismatch "rsync --checksum did not see the modified $victim"
cmp -s "$SRC/$victim" "$MNT/rsynced/$victim" || mismatch "rsync did not repair $victim"
rm -rf "$MNT/rsynced"

step "git"
repo=$MNT/repo
mkdir "$repo"
cp -a "$SRC/." "$repo/" || mismatch "cp -a into the repository directory failed"
(
  set -e
  cd "$repo"
  git init -q
  git config user.email it@sandfs.invalid
  git config user.name "sandfs integration"
  git config gc.auto 0
  git add -A
  git commit -q -m "import" 
) || fail "git init/add/commit on the mount failed"
[ "$(git -C "$repo" log --oneline | wc -l)" = 1 ] || mismatch "git log does not show exactly 1 commit"
[ -z "$(git -C "$repo" status --porcelain)" ] ||
  mismatch "git status --porcelain not empty after commit: $(git -C "$repo" status --porcelain | sed -n 1,5p)"
tracked=$(git -C "$repo" ls-files | wc -l)
expect_tracked=$(cd "$SRC" && find . \( -type f -o -type l \) | wc -l)
[ "$tracked" = "$expect_tracked" ] || mismatch "git tracks $tracked paths, expected $expect_tracked"
git -C "$repo" gc -q || mismatch "git gc failed"
git -C "$repo" fsck --strict --no-progress >"$WORK/fsck.out" 2>&1 ||
  mismatch "git fsck after gc: $(sed -n 1,5p "$WORK/fsck.out")"
[ -z "$(git -C "$repo" status --porcelain)" ] || mismatch "git status not empty after gc"
# Edit, status shows it, commit, then a local clone (hard-links the objects) checks out the same.
echo "changed on sandfs" >>"$repo/$(cd "$repo" && git ls-files | grep -v '^\.' | sed -n 1p)"
[ "$(git -C "$repo" status --porcelain | wc -l)" = 1 ] || mismatch "git status does not see one change"
git -C "$repo" commit -q -am "edit" || mismatch "git commit -a failed"
git clone -q "$repo" "$MNT/clone" || mismatch "git clone on the mount failed"
git -C "$MNT/clone" rev-parse HEAD >"$WORK/clone.head"
git -C "$repo" rev-parse HEAD >"$WORK/repo.head"
cmp -s "$WORK/clone.head" "$WORK/repo.head" || mismatch "clone HEAD differs"
(cd "$repo" && git ls-files -s) >"$WORK/ls.a"
(cd "$MNT/clone" && git ls-files -s) >"$WORK/ls.b"
cmp -s "$WORK/ls.a" "$WORK/ls.b" || mismatch "clone index differs from the repository's"
[ -z "$(git -C "$MNT/clone" status --porcelain)" ] || mismatch "fresh clone is not clean"
rm -rf "$repo" "$MNT/clone"

step "git clone of a repository made outside the mount"
origin=$WORK/origin
mkdir "$origin"
(
  set -e
  cd "$origin"
  git init -q -b main
  git config user.email it@sandfs.invalid
  git config user.name "sandfs integration"
  printf 'first\n' >README
  mkdir -p src/lib
  printf 'int lib(void) { return 1; }\n' >src/lib/lib.c
  ln -s src/lib/lib.c lib-link
  printf '#!/bin/sh\necho run\n' >run.sh
  chmod 0755 run.sh
  git add -A
  git commit -q -m one
  printf 'second\n' >>README
  git commit -q -am two
  git checkout -q -b topic
  printf 'topic\n' >topic.txt
  git add topic.txt
  git commit -q -m three
  git tag v1
  git checkout -q main
) || fail "making the origin repository failed"
git clone -q "$origin" "$MNT/cloned" || mismatch "git clone into the mount failed"
[ "$(git -C "$MNT/cloned" log --format=%s | tr '\n' ' ')" = "two one " ] ||
  mismatch "git log in the clone: $(git -C "$MNT/cloned" log --format=%s | tr '\n' ' ')"
[ "$(git -C "$MNT/cloned" rev-parse HEAD)" = "$(git -C "$origin" rev-parse HEAD)" ] ||
  mismatch "clone HEAD differs from the origin's"
[ "$(git -C "$MNT/cloned" rev-parse origin/topic)" = "$(git -C "$origin" rev-parse topic)" ] ||
  mismatch "clone's origin/topic differs"
[ "$(git -C "$MNT/cloned" tag)" = v1 ] || mismatch "tag v1 missing in the clone"
[ -z "$(git -C "$MNT/cloned" status --porcelain)" ] ||
  mismatch "fresh clone not clean: $(git -C "$MNT/cloned" status --porcelain | sed -n 1,5p)"
git -C "$MNT/cloned" fsck --strict --no-progress >"$WORK/fsck2.out" 2>&1 ||
  mismatch "git fsck of the clone: $(sed -n 1,5p "$WORK/fsck2.out")"
[ "$(readlink "$MNT/cloned/lib-link")" = src/lib/lib.c ] || mismatch "symlink in the clone"
[ -x "$MNT/cloned/run.sh" ] && [ "$("$MNT/cloned/run.sh")" = run ] ||
  mismatch "executable script in the clone does not run"
git -C "$MNT/cloned" checkout -q topic || mismatch "git checkout topic in the clone"
[ -f "$MNT/cloned/topic.txt" ] || mismatch "checkout of topic did not bring topic.txt"
git -C "$MNT/cloned" checkout -q main
printf 'edited\n' >>"$MNT/cloned/README"
[ "$(git -C "$MNT/cloned" status --porcelain)" = " M README" ] ||
  mismatch "git status does not show the edit: $(git -C "$MNT/cloned" status --porcelain)"
git -C "$MNT/cloned" -c user.email=it@sandfs.invalid -c user.name=it commit -q -am three ||
  mismatch "commit in the clone"
git -C "$MNT/cloned" gc -q || mismatch "git gc in the clone"
git -C "$MNT/cloned" fsck --strict --no-progress >/dev/null 2>&1 || mismatch "fsck after gc"
git -C "$origin" fetch -q "$MNT/cloned" main:from-clone || mismatch "fetching back from the mount"
[ "$(git -C "$origin" rev-parse from-clone)" = "$(git -C "$MNT/cloned" rev-parse HEAD)" ] ||
  mismatch "fetched commit differs"
rm -rf "$MNT/cloned"

step "make: build a small C program on the mount and run it"
proj=$MNT/proj
mkdir -p "$proj/src"
cat >"$proj/src/greet.h" <<'EOF_H'
#define GREETING "hello from a build on sandfs"
int add(int a, int b);
const char *greeting(void);
EOF_H
cat >"$proj/src/add.c" <<'EOF_C'
#include "greet.h"
int add(int a, int b) { return a + b; }
EOF_C
cat >"$proj/src/greet.c" <<'EOF_C'
#include "greet.h"
const char *greeting(void) { return GREETING; }
EOF_C
cat >"$proj/src/main.c" <<'EOF_C'
#include <stdio.h>
#include "greet.h"
int main(void) {
  printf("%s: %d\n", greeting(), add(40, 2));
  return 0;
}
EOF_C
cat >"$proj/Makefile" <<'EOF_MK'
OBJS := build/main.o build/add.o build/greet.o
CFLAGS := -O1 -Wall -Werror -MMD -MP
app: $(OBJS)
	$(CC) -o $@ $(OBJS)
build/%.o: src/%.c | build
	$(CC) $(CFLAGS) -c -o $@ $<
build:
	mkdir -p build
clean:
	rm -rf build app
-include $(OBJS:.o=.d)
EOF_MK
make -s -C "$proj" -j2 >"$WORK/make.out" 2>&1 || mismatch "make failed: $(sed -n 1,10p "$WORK/make.out")"
[ "$("$proj/app" 2>&1)" = "hello from a build on sandfs: 42" ] ||
  mismatch "the built program printed '$("$proj/app" 2>&1)'"
# Nothing to do right after a build; a header change rebuilds (make trusts mtimes here).
make -s -C "$proj" -q app || mismatch "make -q: not up to date right after the build"
sleep 0.01
sed -i 's/hello from a build/rebuilt/' "$proj/src/greet.h"
make -s -C "$proj" >>"$WORK/make.out" 2>&1 || mismatch "make after a header change failed"
[ "$("$proj/app" 2>&1)" = "rebuilt on sandfs: 42" ] || mismatch "header change not rebuilt"
make -s -C "$proj" clean || mismatch "make clean"
[ ! -e "$proj/app" ] && [ ! -e "$proj/build" ] || mismatch "make clean left files"
rm -rf "$proj"

step "find -type: fifos / sockets / devices / symlinks made on the mount"
mkdir "$MNT/types"
mkfifo "$MNT/types/fifo"
mknod "$MNT/types/null" c 1 3
mknod "$MNT/types/loop" b 7 0
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$MNT/types/sock"
ln -s fifo "$MNT/types/link"
mkdir "$MNT/types/dir"
touch "$MNT/types/file"
for t in p:fifo c:null b:loop s:sock l:link d:dir f:file; do
  found=$(find "$MNT/types" -mindepth 1 -type "${t%%:*}" -printf '%f\n')
  [ "$found" = "${t#*:}" ] || mismatch "find -type ${t%%:*} found '$found', expected ${t#*:}"
done
[ "$(find "$MNT/types" -mindepth 1 -printf '%y %f\n' | sort | tr '\n' ' ')" = \
  "b loop c null d dir f file l link p fifo s sock " ] ||
  mismatch "find -printf %y: $(find "$MNT/types" -mindepth 1 -printf '%y %f\n' | sort | tr '\n' ' ')"
rm -rf "$MNT/types"

step "xattrs with setfattr/getfattr, preserved by cp -a"
setfattr -n user.origin -v "from the tools test" "$MNT/copy" || mismatch "setfattr on a directory"
f=$(cd "$MNT/copy" && find . -type f | sed -n 1p)
setfattr -n user.checksum -v "$(sha256sum <"$MNT/copy/$f" | cut -c1-64)" "$MNT/copy/$f" ||
  mismatch "setfattr on a file"
cp -a "$MNT/copy/$f" "$MNT/xattr-copy"
[ "$(getfattr --absolute-names --only-values -n user.checksum "$MNT/xattr-copy")" = \
  "$(sha256sum <"$SRC/$f" | cut -c1-64)" ] || mismatch "cp -a did not carry the xattr, or it changed"
getfattr --absolute-names -d "$MNT/copy" | grep -q '^user.origin="from the tools test"$' || mismatch "getfattr -d"
setfattr -x user.origin "$MNT/copy" || mismatch "setfattr -x"
getfattr --absolute-names -n user.origin "$MNT/copy" >/dev/null 2>&1 && mismatch "removed xattr still readable"

step "errors reported by tools"
expect_error() {  # expect_error "message part" command...
  local want=$1
  shift
  if "$@" >"$WORK/err.out" 2>&1; then mismatch "'$*' succeeded, expected '$want'"; fi
  grep -qF "$want" "$WORK/err.out" || mismatch "'$*' failed with '$(cat "$WORK/err.out")', expected '$want'"
}
mkdir -p "$MNT/e/full/sub"
touch "$MNT/e/file"
expect_error "Directory not empty" rmdir "$MNT/e/full"
expect_error "File exists" mkdir "$MNT/e/full"
expect_error "Is a directory" rm "$MNT/e/full"
expect_error "Not a directory" rmdir "$MNT/e/file"
expect_error "No such file or directory" cat "$MNT/e/missing"
expect_error "hard link not allowed for directory" ln "$MNT/e/full" "$MNT/e/link"
expect_error "cannot move" mv "$MNT/e/full" "$MNT/e/full/sub/inside"
expect_error "Not a directory" touch "$MNT/e/file/x"
ln -s target "$MNT/e/sym" || mismatch "ln -s"
[ "$(readlink "$MNT/e/sym")" = target ] || mismatch "readlink of a fresh symlink"
rm -r "$MNT/e" || mismatch "rm -r"
[ ! -e "$MNT/e" ] || mismatch "rm -r left $MNT/e behind"

step "another user (setpriv --reuid=65534 --regid=65534 --clear-groups)"
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
mkdir "$MNT/perm" && chmod 0755 "$MNT/perm"
echo "for everyone" >"$MNT/perm/public" && chmod 0644 "$MNT/perm/public"
echo "for root" >"$MNT/perm/private" && chmod 0600 "$MNT/perm/private"
[ "$("${nobody[@]}" cat "$MNT/perm/public")" = "for everyone" ] ||
  mismatch "another user cannot read a 0644 file"
"${nobody[@]}" ls "$MNT/perm" >/dev/null || mismatch "another user cannot list a 0755 directory"
expect_error "Permission denied" "${nobody[@]}" cat "$MNT/perm/private"
expect_error "Permission denied" "${nobody[@]}" touch "$MNT/perm/new-by-nobody"
expect_error "Permission denied" "${nobody[@]}" rm -f "$MNT/perm/public"
expect_error "Operation not permitted" "${nobody[@]}" chmod 0777 "$MNT/perm/public"
mkdir "$MNT/shared" && chmod 1777 "$MNT/shared"
"${nobody[@]}" sh -c "echo mine > '$MNT/shared/by-nobody'" ||
  mismatch "another user cannot create in a 1777 directory"
[ "$(stat -c '%u:%g' "$MNT/shared/by-nobody" 2>&1)" = 65534:65534 ] ||
  mismatch "the other user's new file is not owned by 65534:65534"
touch "$MNT/shared/by-root"
expect_error "Operation not permitted" "${nobody[@]}" rm -f "$MNT/shared/by-root"
# cp -a by the other user into its own directory keeps the modes it can keep.
"${nobody[@]}" mkdir "$MNT/shared/mine"
"${nobody[@]}" cp -a "$MNT/perm/public" "$MNT/shared/mine/copied" ||
  mismatch "cp -a by another user failed"
[ "$(stat -c '%a %u' "$MNT/shared/mine/copied" 2>&1)" = "644 65534" ] ||
  mismatch "cp -a by another user: $(stat -c '%a %u' "$MNT/shared/mine/copied" 2>&1), expected 644 65534"

step "rm -rf everything: the filesystem is empty and the space is back"
rm -rf "$MNT/copy" "$MNT/shared" "$MNT/perm" "$MNT/xattr-copy"
[ -z "$(ls -A "$MNT")" ] || mismatch "mount not empty after rm -rf: $(ls -A "$MNT" | sed -n 1,10p)"
if [ "$BACKEND" = memfs ]; then
  used=0
  for _ in $(seq 200); do  # the kernel sends FORGET (which frees the last pages) asynchronously
    used=$(stat -f -c '%b %f' "$MNT" | awk '{print $1 - $2}')
    [ "$used" = 0 ] && break
    sleep 0.05
  done
  [ "$used" = 0 ] || mismatch "statfs still shows $used blocks in use on an empty filesystem"
else
  [ -z "$(ls -A "$HOST")" ] || mismatch "host directory not empty: $(ls -A "$HOST" | sed -n 1,10p)"
fi

step "umount"
umount "$MNT" || fail "umount"
for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null && fail "sandfsd still running 30 s after umount"
status=0
wait "$PID" || status=$?
PID=
[ "$status" = 0 ] || fail "sandfsd exited with status $status after umount"
if [ "$mismatches" != 0 ]; then
  echo "FAIL: $mismatches mismatch(es), see MISMATCH lines above" >&2
  exit 1
fi
echo "PASS: tools on $BACKEND"
