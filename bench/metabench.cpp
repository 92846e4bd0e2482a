// metabench: metadata operations per second on any mounted filesystem.
//
//   metabench create  DIR FILES THREADS [SIZE]  open(O_CREAT|O_EXCL) (+ SIZE bytes written) + close
//   metabench stat    DIR FILES THREADS [PASSES] stat() every file, PASSES times (default 1)
//   metabench unlink  DIR FILES THREADS         unlink() every file
//   metabench readdir DIR PASSES                list DIR with getdents64 (32 KiB buffer)
//
// Files are DIR/f<i> for i in [0, FILES), all in the one directory; thread t of T handles the i
// with i % T == t, so the threads contend on one directory as a parallel build does. Prints one
// line: "<op> files=<n> threads=<t> seconds=<s> ops_per_s=<r>" (readdir: entries and
// entries_per_s). Any failing syscall stops the run with exit status 1. Cache state (warm, cold
// after drop_caches) is the caller's business.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "metabench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: metabench create DIR FILES THREADS [SIZE]\n"
               "       metabench stat DIR FILES THREADS [PASSES]\n"
               "       metabench unlink DIR FILES THREADS\n"
               "       metabench readdir DIR PASSES\n");
  std::exit(2);
}

long parse_count(const char* s) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0) usage();
  return v;
}

enum class Op { create, stat, unlink };

void run_files(Op op, const std::string& dir, long files, int threads, long size, long passes) {
  const std::string payload(static_cast<size_t>(size), 'm');
  std::atomic<bool> failed{false};
  // The clock starts in the barrier's completion step, which runs before any thread is released:
  // taken after the main thread's arrive_and_wait() instead, a descheduled main thread could miss
  // the whole run (seen: unlink of 1,000 files "in 3 µs" on ext4).
  Clock::time_point t0;
  std::barrier start(threads + 1, [&t0]() noexcept { t0 = Clock::now(); });
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::string path;
      start.arrive_and_wait();
      for (long n = t; n < files * passes && !failed.load(std::memory_order_relaxed);
           n += threads) {
        path = dir + "/f" + std::to_string(n % files);
        bool ok = true;
        switch (op) {
          case Op::create: {
            const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
            ok = fd >= 0;
            if (ok && size > 0) ok = ::write(fd, payload.data(), payload.size()) == size;
            if (fd >= 0 && ::close(fd) != 0) ok = false;
            break;
          }
          case Op::stat: {
            struct stat st {};
            ok = ::stat(path.c_str(), &st) == 0;
            break;
          }
          case Op::unlink:
            ok = ::unlink(path.c_str()) == 0;
            break;
        }
        if (!ok) {
          std::fprintf(stderr, "metabench: %s: %s\n", path.c_str(), std::strerror(errno));
          failed = true;
        }
      }
    });
  }
  start.arrive_and_wait();
  for (auto& th : pool)
    th.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (failed) std::exit(1);
  const char* name = op == Op::create ? "create" : op == Op::stat ? "stat" : "unlink";
  std::printf("%s files=%ld threads=%d passes=%ld seconds=%.6f ops_per_s=%.0f\n", name, files,
              threads, passes, secs, static_cast<double>(files * passes) / secs);
}

void run_readdir(const std::string& dir, long passes) {
  std::vector<char> buf(32 * 1024);
  long entries = 0;
  const auto t0 = Clock::now();
  for (long p = 0; p < passes; ++p) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) die("open " + dir);
    for (;;) {
      const long n = ::syscall(SYS_getdents64, fd, buf.data(), buf.size());
      if (n < 0) die("getdents64 " + dir);
      if (n == 0) break;
      for (long pos = 0; pos < n;) {
        unsigned short reclen = 0;
        // d_reclen sits after d_ino (8 bytes) and d_off (8 bytes) in struct linux_dirent64.
        std::memcpy(&reclen, buf.data() + pos + 16, sizeof reclen);
        ++entries;
        pos += reclen;
      }
    }
    ::close(fd);
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("readdir entries=%ld passes=%ld seconds=%.6f entries_per_s=%.0f\n", entries, passes,
              secs, static_cast<double>(entries) / secs);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) usage();
  const std::string op = argv[1];
  const std::string dir = argv[2];
  if (op == "readdir") {
    if (argc != 4) usage();
    run_readdir(dir, parse_count(argv[3]));
    return 0;
  }
  if (argc < 5 || argc > 6) usage();
  const long files = parse_count(argv[3]);
  const long threads = parse_count(argv[4]);
  if (threads < 1 || threads > 256) usage();
  // The optional fifth argument: the file size for create, the number of passes for stat.
  const long extra = argc == 6 ? parse_count(argv[5]) : -1;
  if (op == "create") {
    run_files(Op::create, dir, files, static_cast<int>(threads), std::max(extra, 0L), 1);
  } else if (op == "stat") {
    run_files(Op::stat, dir, files, static_cast<int>(threads), 0, std::max(extra, 1L));
  } else if (op == "unlink" && extra < 0) {
    run_files(Op::unlink, dir, files, static_cast<int>(threads), 0, 1);
  } else {
    usage();
  }
  return 0;
}
