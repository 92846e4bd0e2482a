// The FUSE kernel ABI, protocol 7.45, written out for sandfs.
//
// Debian 12's <linux/fuse.h> stops at 7.38 and lacks fields the kernel on our hosts (7.45) sends
// and accepts (PASSTHROUGH, OVER_IO_URING, backing ids, max_stack_depth, ...), so the ABI lives
// here. Names are the kernel's own so a reviewer can diff this file against
// include/uapi/linux/fuse.h; every struct size is pinned by a static_assert because a wrong size
// is a silent protocol corruption.
//
// Nothing in this header knows about files, sockets or guests.
#pragma once

#include <cstdint>

namespace sandfs::fuse {

inline constexpr uint32_t kernel_version = 7;
inline constexpr uint32_t kernel_minor_version = 45;
// The oldest protocol minor sandfs speaks. 7.31 is what virtio-fs guests of Linux 5.4+ send.
inline constexpr uint32_t min_minor_version = 31;

inline constexpr uint64_t root_id = 1;

// The smallest read buffer the kernel accepts on /dev/fuse.
inline constexpr uint32_t min_read_buffer = 8192;

// ---- fuse_attr flags -----------------------------------------------------------------------
inline constexpr uint32_t FUSE_ATTR_SUBMOUNT = 1u << 0;
inline constexpr uint32_t FUSE_ATTR_DAX = 1u << 1;

// ---- FATTR_*: fuse_setattr_in.valid ------------------------------------------------------------
inline constexpr uint32_t FATTR_MODE = 1u << 0;
inline constexpr uint32_t FATTR_UID = 1u << 1;
inline constexpr uint32_t FATTR_GID = 1u << 2;
inline constexpr uint32_t FATTR_SIZE = 1u << 3;
inline constexpr uint32_t FATTR_ATIME = 1u << 4;
inline constexpr uint32_t FATTR_MTIME = 1u << 5;
inline constexpr uint32_t FATTR_FH = 1u << 6;
inline constexpr uint32_t FATTR_ATIME_NOW = 1u << 7;
inline constexpr uint32_t FATTR_MTIME_NOW = 1u << 8;
inline constexpr uint32_t FATTR_LOCKOWNER = 1u << 9;
inline constexpr uint32_t FATTR_CTIME = 1u << 10;
inline constexpr uint32_t FATTR_KILL_SUIDGID = 1u << 11;

// ---- FOPEN_*: fuse_open_out.open_flags ---------------------------------------------------------
inline constexpr uint32_t FOPEN_DIRECT_IO = 1u << 0;
inline constexpr uint32_t FOPEN_KEEP_CACHE = 1u << 1;
inline constexpr uint32_t FOPEN_NONSEEKABLE = 1u << 2;
inline constexpr uint32_t FOPEN_CACHE_DIR = 1u << 3;
inline constexpr uint32_t FOPEN_STREAM = 1u << 4;
inline constexpr uint32_t FOPEN_NOFLUSH = 1u << 5;
inline constexpr uint32_t FOPEN_PARALLEL_DIRECT_WRITES = 1u << 6;
inline constexpr uint32_t FOPEN_PASSTHROUGH = 1u << 7;

// ---- INIT flags (fuse_init_in.flags | flags2 << 32) --------------------------------------------
// Kept as uint64_t so FUSE_INIT_RESERVED (bit 31) never sign-extends into the flags2 half.
inline constexpr uint64_t FUSE_ASYNC_READ = 1ull << 0;
inline constexpr uint64_t FUSE_POSIX_LOCKS = 1ull << 1;
inline constexpr uint64_t FUSE_FILE_OPS = 1ull << 2;
inline constexpr uint64_t FUSE_ATOMIC_O_TRUNC = 1ull << 3;
inline constexpr uint64_t FUSE_EXPORT_SUPPORT = 1ull << 4;
inline constexpr uint64_t FUSE_BIG_WRITES = 1ull << 5;
inline constexpr uint64_t FUSE_DONT_MASK = 1ull << 6;
inline constexpr uint64_t FUSE_SPLICE_WRITE = 1ull << 7;
inline constexpr uint64_t FUSE_SPLICE_MOVE = 1ull << 8;
inline constexpr uint64_t FUSE_SPLICE_READ = 1ull << 9;
inline constexpr uint64_t FUSE_FLOCK_LOCKS = 1ull << 10;
inline constexpr uint64_t FUSE_HAS_IOCTL_DIR = 1ull << 11;
inline constexpr uint64_t FUSE_AUTO_INVAL_DATA = 1ull << 12;
inline constexpr uint64_t FUSE_DO_READDIRPLUS = 1ull << 13;
inline constexpr uint64_t FUSE_READDIRPLUS_AUTO = 1ull << 14;
inline constexpr uint64_t FUSE_ASYNC_DIO = 1ull << 15;
inline constexpr uint64_t FUSE_WRITEBACK_CACHE = 1ull << 16;
inline constexpr uint64_t FUSE_NO_OPEN_SUPPORT = 1ull << 17;
inline constexpr uint64_t FUSE_PARALLEL_DIROPS = 1ull << 18;
inline constexpr uint64_t FUSE_HANDLE_KILLPRIV = 1ull << 19;
inline constexpr uint64_t FUSE_POSIX_ACL = 1ull << 20;
inline constexpr uint64_t FUSE_ABORT_ERROR = 1ull << 21;
inline constexpr uint64_t FUSE_MAX_PAGES = 1ull << 22;
inline constexpr uint64_t FUSE_CACHE_SYMLINKS = 1ull << 23;
inline constexpr uint64_t FUSE_NO_OPENDIR_SUPPORT = 1ull << 24;
inline constexpr uint64_t FUSE_EXPLICIT_INVAL_DATA = 1ull << 25;
inline constexpr uint64_t FUSE_MAP_ALIGNMENT = 1ull << 26;
inline constexpr uint64_t FUSE_SUBMOUNTS = 1ull << 27;
inline constexpr uint64_t FUSE_HANDLE_KILLPRIV_V2 = 1ull << 28;
inline constexpr uint64_t FUSE_SETXATTR_EXT = 1ull << 29;
inline constexpr uint64_t FUSE_INIT_EXT = 1ull << 30;
inline constexpr uint64_t FUSE_INIT_RESERVED = 1ull << 31;
inline constexpr uint64_t FUSE_SECURITY_CTX = 1ull << 32;
inline constexpr uint64_t FUSE_HAS_INODE_DAX = 1ull << 33;
inline constexpr uint64_t FUSE_CREATE_SUPP_GROUP = 1ull << 34;
inline constexpr uint64_t FUSE_HAS_EXPIRE_ONLY = 1ull << 35;
inline constexpr uint64_t FUSE_DIRECT_IO_ALLOW_MMAP = 1ull << 36;
inline constexpr uint64_t FUSE_PASSTHROUGH = 1ull << 37;
inline constexpr uint64_t FUSE_NO_EXPORT_SUPPORT = 1ull << 38;
inline constexpr uint64_t FUSE_HAS_RESEND = 1ull << 39;
inline constexpr uint64_t FUSE_ALLOW_IDMAP = 1ull << 40;
inline constexpr uint64_t FUSE_OVER_IO_URING = 1ull << 41;
inline constexpr uint64_t FUSE_REQUEST_TIMEOUT = 1ull << 42;

// ---- per-request flags -------------------------------------------------------------------------
inline constexpr uint32_t FUSE_RELEASE_FLUSH = 1u << 0;
inline constexpr uint32_t FUSE_RELEASE_FLOCK_UNLOCK = 1u << 1;
inline constexpr uint32_t FUSE_GETATTR_FH = 1u << 0;
inline constexpr uint32_t FUSE_LK_FLOCK = 1u << 0;
inline constexpr uint32_t FUSE_WRITE_CACHE = 1u << 0;
inline constexpr uint32_t FUSE_WRITE_LOCKOWNER = 1u << 1;
inline constexpr uint32_t FUSE_WRITE_KILL_SUIDGID = 1u << 2;
inline constexpr uint32_t FUSE_READ_LOCKOWNER = 1u << 1;
inline constexpr uint32_t FUSE_IOCTL_COMPAT = 1u << 0;
inline constexpr uint32_t FUSE_FSYNC_FDATASYNC = 1u << 0;
inline constexpr uint32_t FUSE_OPEN_KILL_SUIDGID = 1u << 0;
inline constexpr uint32_t FUSE_SETXATTR_ACL_KILL_SGID = 1u << 0;
inline constexpr uint32_t FUSE_EXPIRE_ONLY = 1u << 0;

// ---- opcodes -----------------------------------------------------------------------------------
enum fuse_opcode : uint32_t {
  FUSE_LOOKUP = 1,
  FUSE_FORGET = 2,  // no reply
  FUSE_GETATTR = 3,
  FUSE_SETATTR = 4,
  FUSE_READLINK = 5,
  FUSE_SYMLINK = 6,
  FUSE_MKNOD = 8,
  FUSE_MKDIR = 9,
  FUSE_UNLINK = 10,
  FUSE_RMDIR = 11,
  FUSE_RENAME = 12,
  FUSE_LINK = 13,
  FUSE_OPEN = 14,
  FUSE_READ = 15,
  FUSE_WRITE = 16,
  FUSE_STATFS = 17,
  FUSE_RELEASE = 18,
  FUSE_FSYNC = 20,
  FUSE_SETXATTR = 21,
  FUSE_GETXATTR = 22,
  FUSE_LISTXATTR = 23,
  FUSE_REMOVEXATTR = 24,
  FUSE_FLUSH = 25,
  FUSE_INIT = 26,
  FUSE_OPENDIR = 27,
  FUSE_READDIR = 28,
  FUSE_RELEASEDIR = 29,
  FUSE_FSYNCDIR = 30,
  FUSE_GETLK = 31,
  FUSE_SETLK = 32,
  FUSE_SETLKW = 33,
  FUSE_ACCESS = 34,
  FUSE_CREATE = 35,
  FUSE_INTERRUPT = 36,
  FUSE_BMAP = 37,
  FUSE_DESTROY = 38,
  FUSE_IOCTL = 39,
  FUSE_POLL = 40,
  FUSE_NOTIFY_REPLY = 41,
  FUSE_BATCH_FORGET = 42,
  FUSE_FALLOCATE = 43,
  FUSE_READDIRPLUS = 44,
  FUSE_RENAME2 = 45,
  FUSE_LSEEK = 46,
  FUSE_COPY_FILE_RANGE = 47,
  FUSE_SETUPMAPPING = 48,
  FUSE_REMOVEMAPPING = 49,
  FUSE_SYNCFS = 50,
  FUSE_TMPFILE = 51,
  FUSE_STATX = 52,
  FUSE_COPY_FILE_RANGE_64 = 53,

  CUSE_INIT = 4096,
  CUSE_INIT_BSWAP_RESERVED = 1048576,
  FUSE_INIT_BSWAP_RESERVED = 436207616,
};

// One past the largest ordinary opcode: sizes per-opcode tables.
inline constexpr uint32_t opcode_table_size = 54;

enum fuse_notify_code : int32_t {
  FUSE_NOTIFY_POLL = 1,
  FUSE_NOTIFY_INVAL_INODE = 2,
  FUSE_NOTIFY_INVAL_ENTRY = 3,
  FUSE_NOTIFY_STORE = 4,
  FUSE_NOTIFY_RETRIEVE = 5,
  FUSE_NOTIFY_DELETE = 6,
  FUSE_NOTIFY_RESEND = 7,
  FUSE_NOTIFY_INC_EPOCH = 8,
};

// ---- structs -----------------------------------------------------------------------------------
struct fuse_attr {
  uint64_t ino;
  uint64_t size;
  uint64_t blocks;
  uint64_t atime;
  uint64_t mtime;
  uint64_t ctime;
  uint32_t atimensec;
  uint32_t mtimensec;
  uint32_t ctimensec;
  uint32_t mode;
  uint32_t nlink;
  uint32_t uid;
  uint32_t gid;
  uint32_t rdev;
  uint32_t blksize;
  uint32_t flags;
};
static_assert(sizeof(fuse_attr) == 88);

struct fuse_kstatfs {
  uint64_t blocks;
  uint64_t bfree;
  uint64_t bavail;
  uint64_t files;
  uint64_t ffree;
  uint32_t bsize;
  uint32_t namelen;
  uint32_t frsize;
  uint32_t padding;
  uint32_t spare[6];
};
static_assert(sizeof(fuse_kstatfs) == 80);

struct fuse_file_lock {
  uint64_t start;
  uint64_t end;
  uint32_t type;
  uint32_t pid;
};
static_assert(sizeof(fuse_file_lock) == 24);

struct fuse_entry_out {
  uint64_t nodeid;
  uint64_t generation;
  uint64_t entry_valid;
  uint64_t attr_valid;
  uint32_t entry_valid_nsec;
  uint32_t attr_valid_nsec;
  fuse_attr attr;
};
static_assert(sizeof(fuse_entry_out) == 128);

struct fuse_forget_in {
  uint64_t nlookup;
};
static_assert(sizeof(fuse_forget_in) == 8);

struct fuse_forget_one {
  uint64_t nodeid;
  uint64_t nlookup;
};
static_assert(sizeof(fuse_forget_one) == 16);

struct fuse_batch_forget_in {
  uint32_t count;
  uint32_t dummy;
};
static_assert(sizeof(fuse_batch_forget_in) == 8);

struct fuse_getattr_in {
  uint32_t getattr_flags;
  uint32_t dummy;
  uint64_t fh;
};
static_assert(sizeof(fuse_getattr_in) == 16);

struct fuse_attr_out {
  uint64_t attr_valid;
  uint32_t attr_valid_nsec;
  uint32_t dummy;
  fuse_attr attr;
};
static_assert(sizeof(fuse_attr_out) == 104);

struct fuse_mknod_in {
  uint32_t mode;
  uint32_t rdev;
  uint32_t umask;
  uint32_t padding;
};
static_assert(sizeof(fuse_mknod_in) == 16);

struct fuse_mkdir_in {
  uint32_t mode;
  uint32_t umask;
};
static_assert(sizeof(fuse_mkdir_in) == 8);

struct fuse_rename_in {
  uint64_t newdir;
};
static_assert(sizeof(fuse_rename_in) == 8);

struct fuse_rename2_in {
  uint64_t newdir;
  uint32_t flags;
  uint32_t padding;
};
static_assert(sizeof(fuse_rename2_in) == 16);

struct fuse_link_in {
  uint64_t oldnodeid;
};
static_assert(sizeof(fuse_link_in) == 8);

struct fuse_setattr_in {
  uint32_t valid;
  uint32_t padding;
  uint64_t fh;
  uint64_t size;
  uint64_t lock_owner;
  uint64_t atime;
  uint64_t mtime;
  uint64_t ctime;
  uint32_t atimensec;
  uint32_t mtimensec;
  uint32_t ctimensec;
  uint32_t mode;
  uint32_t unused4;
  uint32_t uid;
  uint32_t gid;
  uint32_t unused5;
};
static_assert(sizeof(fuse_setattr_in) == 88);

struct fuse_open_in {
  uint32_t flags;
  uint32_t open_flags;  // FUSE_OPEN_KILL_SUIDGID
};
static_assert(sizeof(fuse_open_in) == 8);

struct fuse_create_in {
  uint32_t flags;
  uint32_t mode;
  uint32_t umask;
  uint32_t open_flags;  // FUSE_OPEN_KILL_SUIDGID
};
static_assert(sizeof(fuse_create_in) == 16);

struct fuse_open_out {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;  // 7.40: was padding
};
static_assert(sizeof(fuse_open_out) == 16);

struct fuse_release_in {
  uint64_t fh;
  uint32_t flags;
  uint32_t release_flags;
  uint64_t lock_owner;
};
static_assert(sizeof(fuse_release_in) == 24);

struct fuse_flush_in {
  uint64_t fh;
  uint32_t unused;
  uint32_t padding;
  uint64_t lock_owner;
};
static_assert(sizeof(fuse_flush_in) == 24);

struct fuse_read_in {
  uint64_t fh;
  uint64_t offset;
  uint32_t size;
  uint32_t read_flags;
  uint64_t lock_owner;
  uint32_t flags;
  uint32_t padding;
};
static_assert(sizeof(fuse_read_in) == 40);

struct fuse_write_in {
  uint64_t fh;
  uint64_t offset;
  uint32_t size;
  uint32_t write_flags;
  uint64_t lock_owner;
  uint32_t flags;
  uint32_t padding;
};
static_assert(sizeof(fuse_write_in) == 40);

struct fuse_write_out {
  uint32_t size;
  uint32_t padding;
};
static_assert(sizeof(fuse_write_out) == 8);

struct fuse_statfs_out {
  fuse_kstatfs st;
};
static_assert(sizeof(fuse_statfs_out) == 80);

struct fuse_fsync_in {
  uint64_t fh;
  uint32_t fsync_flags;
  uint32_t padding;
};
static_assert(sizeof(fuse_fsync_in) == 16);

// Without FUSE_SETXATTR_EXT the kernel sends only the first 8 bytes.
inline constexpr uint32_t FUSE_COMPAT_SETXATTR_IN_SIZE = 8;
struct fuse_setxattr_in {
  uint32_t size;
  uint32_t flags;
  uint32_t setxattr_flags;
  uint32_t padding;
};
static_assert(sizeof(fuse_setxattr_in) == 16);

struct fuse_getxattr_in {
  uint32_t size;
  uint32_t padding;
};
static_assert(sizeof(fuse_getxattr_in) == 8);

struct fuse_getxattr_out {
  uint32_t size;
  uint32_t padding;
};
static_assert(sizeof(fuse_getxattr_out) == 8);

struct fuse_lk_in {
  uint64_t fh;
  uint64_t owner;
  fuse_file_lock lk;
  uint32_t lk_flags;
  uint32_t padding;
};
static_assert(sizeof(fuse_lk_in) == 48);

struct fuse_lk_out {
  fuse_file_lock lk;
};
static_assert(sizeof(fuse_lk_out) == 24);

struct fuse_access_in {
  uint32_t mask;
  uint32_t padding;
};
static_assert(sizeof(fuse_access_in) == 8);

struct fuse_init_in {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint32_t flags2;
  uint32_t unused[11];
};
static_assert(sizeof(fuse_init_in) == 64);
// Kernels before 7.36 send only major, minor, max_readahead and flags.
inline constexpr uint32_t FUSE_COMPAT_INIT_IN_SIZE = 16;

struct fuse_init_out {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint16_t max_background;
  uint16_t congestion_threshold;
  uint32_t max_write;
  uint32_t time_gran;
  uint16_t max_pages;
  uint16_t map_alignment;
  uint32_t flags2;
  uint32_t max_stack_depth;
  uint16_t request_timeout;
  uint16_t unused[11];
};
static_assert(sizeof(fuse_init_out) == 64);

struct fuse_interrupt_in {
  uint64_t unique;
};
static_assert(sizeof(fuse_interrupt_in) == 8);

struct fuse_bmap_in {
  uint64_t block;
  uint32_t blocksize;
  uint32_t padding;
};
static_assert(sizeof(fuse_bmap_in) == 16);

struct fuse_bmap_out {
  uint64_t block;
};
static_assert(sizeof(fuse_bmap_out) == 8);

struct fuse_ioctl_in {
  uint64_t fh;
  uint32_t flags;
  uint32_t cmd;
  uint64_t arg;
  uint32_t in_size;
  uint32_t out_size;
};
static_assert(sizeof(fuse_ioctl_in) == 32);

struct fuse_poll_in {
  uint64_t fh;
  uint64_t kh;
  uint32_t flags;
  uint32_t events;
};
static_assert(sizeof(fuse_poll_in) == 24);

struct fuse_fallocate_in {
  uint64_t fh;
  uint64_t offset;
  uint64_t length;
  uint32_t mode;
  uint32_t padding;
};
static_assert(sizeof(fuse_fallocate_in) == 32);

struct fuse_in_header {
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid;
  uint32_t gid;
  uint32_t pid;
  uint16_t total_extlen;  // length of extensions in 8-byte units
  uint16_t padding;
};
static_assert(sizeof(fuse_in_header) == 40);

struct fuse_out_header {
  uint32_t len;
  int32_t error;  // zero or a negative errno
  uint64_t unique;
};
static_assert(sizeof(fuse_out_header) == 16);

struct fuse_dirent {
  uint64_t ino;
  uint64_t off;
  uint32_t namelen;
  uint32_t type;
  // char name[];
};
static_assert(sizeof(fuse_dirent) == 24);

struct fuse_direntplus {
  fuse_entry_out entry_out;
  fuse_dirent dirent;
};
static_assert(sizeof(fuse_direntplus) == 152);

constexpr uint64_t fuse_dirent_align(uint64_t x) {
  return (x + 7) & ~uint64_t{7};
}
constexpr uint64_t fuse_dirent_size(uint64_t namelen) {
  return fuse_dirent_align(sizeof(fuse_dirent) + namelen);
}
constexpr uint64_t fuse_direntplus_size(uint64_t namelen) {
  return fuse_dirent_align(sizeof(fuse_direntplus) + namelen);
}

struct fuse_notify_inval_inode_out {
  uint64_t ino;
  int64_t off;
  int64_t len;
};
static_assert(sizeof(fuse_notify_inval_inode_out) == 24);

struct fuse_notify_inval_entry_out {
  uint64_t parent;
  uint32_t namelen;
  uint32_t flags;
};
static_assert(sizeof(fuse_notify_inval_entry_out) == 16);

struct fuse_notify_delete_out {
  uint64_t parent;
  uint64_t child;
  uint32_t namelen;
  uint32_t padding;
};
static_assert(sizeof(fuse_notify_delete_out) == 24);

struct fuse_lseek_in {
  uint64_t fh;
  uint64_t offset;
  uint32_t whence;
  uint32_t padding;
};
static_assert(sizeof(fuse_lseek_in) == 24);

struct fuse_lseek_out {
  uint64_t offset;
};
static_assert(sizeof(fuse_lseek_out) == 8);

struct fuse_copy_file_range_in {
  uint64_t fh_in;
  uint64_t off_in;
  uint64_t nodeid_out;
  uint64_t fh_out;
  uint64_t off_out;
  uint64_t len;
  uint64_t flags;
};
static_assert(sizeof(fuse_copy_file_range_in) == 56);

// 7.45: FUSE_COPY_FILE_RANGE_64 answers with a 64-bit count.
struct fuse_copy_file_range_out {
  uint64_t bytes_copied;
};
static_assert(sizeof(fuse_copy_file_range_out) == 8);

struct fuse_syncfs_in {
  uint64_t padding;
};
static_assert(sizeof(fuse_syncfs_in) == 8);

// Request extensions (fuse_in_header.total_extlen), each 8-byte aligned.
struct fuse_ext_header {
  uint32_t size;
  uint32_t type;
};
static_assert(sizeof(fuse_ext_header) == 8);

// ---- /dev/fuse ioctls (_IOR/_IOW(229, n, ...))
// ---------------------------------------------------
struct fuse_backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
static_assert(sizeof(fuse_backing_map) == 16);

inline constexpr unsigned long FUSE_DEV_IOC_CLONE = 0x8004e500;          // _IOR(229, 0, uint32_t)
inline constexpr unsigned long FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;   // _IOW(229, 1, map)
inline constexpr unsigned long FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;  // _IOW(229, 2, uint32_t)

}  // namespace sandfs::fuse
