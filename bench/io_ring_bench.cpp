// 4 KiB random reads from a page-cache-hot file: io::Ring on io_uring, io::Ring on its thread
// pool, and plain pread(2) in a loop, at several queue depths. Prints ops/s.
//
//   io_ring_bench [--seconds S] [--size-mib N] [--dir D] [--qd 1,16,64] [--rounds R]
//                 [--engines uring,pool,pread]
//
// The file (N MiB, default 256) is created in D (default $TMPDIR or /tmp), read once to warm
// the page cache, and removed at exit. Each cell runs S seconds (default 1.5); with R rounds
// (default 3) the median is printed.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "core/io/ring.hpp"

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using sandfs::Task;
using sandfs::io::Ring;

namespace {

constexpr size_t block = 4096;

struct Options {
  double seconds = 1.5;
  size_t size_mib = 256;
  std::string dir;
  std::vector<unsigned> depths{1, 16, 64};
  int rounds = 3;
  std::string engines = "uring,pool,pread";
};

uint64_t next_random(uint64_t& state) {  // xorshift64
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

struct Cell {
  double ops_per_s = 0;
  double enters_per_op = 0;
  double cpu_ns_per_op = 0;  // user + system time of the whole process: robust to a busy host
};

double process_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

Cell run_ring(int fd, size_t blocks, Ring::Mode mode, unsigned depth, double seconds) {
  asio::io_context ctx;
  Ring ring(ctx, 256, mode);
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  uint64_t ops = 0;
  uint64_t errors = 0;
  for (unsigned q = 0; q < depth; ++q) {
    asio::co_spawn(
        ctx,
        [&, q]() -> Task<void> {
          std::vector<char> buf(block);
          const std::array<iovec, 1> iov{{{buf.data(), buf.size()}}};
          uint64_t state = 0x9e3779b97f4a7c15ULL * (q + 1);
          while (Clock::now() < deadline) {
            const uint64_t offset = (next_random(state) % blocks) * block;
            auto n = co_await ring.preadv(fd, iov, offset);
            if (!n.ok() || *n != block) ++errors;
            ++ops;
          }
        },
        asio::detached);
  }
  const auto start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  ctx.run();
  const double cpu = process_cpu_seconds() - cpu_start;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  if (errors) std::fprintf(stderr, "warning: %llu failed reads\n", (unsigned long long)errors);
  const Ring::Stats s = ring.stats();
  const double n = static_cast<double>(std::max<uint64_t>(ops, 1));
  return {static_cast<double>(ops) / elapsed, static_cast<double>(s.enter_calls) / n,
          cpu * 1e9 / n};
}

Cell run_pread(int fd, size_t blocks, double seconds) {
  std::vector<char> buf(block);
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  uint64_t ops = 0;
  const auto start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    for (int i = 0; i < 64; ++i) {
      const uint64_t offset = (next_random(state) % blocks) * block;
      if (::pread(fd, buf.data(), block, static_cast<off_t>(offset)) != block) {
        std::perror("pread");
        std::exit(1);
      }
      ++ops;
    }
  }
  const double cpu = process_cpu_seconds() - cpu_start;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return {static_cast<double>(ops) / elapsed, 0, cpu * 1e9 / static_cast<double>(ops)};
}

Cell median(std::vector<Cell> cells) {
  std::sort(cells.begin(), cells.end(),
            [](const Cell& a, const Cell& b) { return a.ops_per_s < b.ops_per_s; });
  return cells[cells.size() / 2];
}

Options parse(int argc, char** argv) {
  Options o;
  const char* tmp = std::getenv("TMPDIR");
  o.dir = tmp && *tmp ? tmp : "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const char* value = argv[i + 1];
    if (key == "--seconds") {
      o.seconds = std::atof(value);
    } else if (key == "--size-mib") {
      o.size_mib = std::strtoull(value, nullptr, 10);
    } else if (key == "--dir") {
      o.dir = value;
    } else if (key == "--engines") {
      o.engines = value;
    } else if (key == "--rounds") {
      o.rounds = std::max(1, std::atoi(value));
    } else if (key == "--qd") {
      o.depths.clear();
      for (const char* p = value; *p;) {
        char* end = nullptr;
        o.depths.push_back(static_cast<unsigned>(std::strtoul(p, &end, 10)));
        p = *end == ',' ? end + 1 : end;
        if (end == p && *p) break;
      }
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      std::exit(2);
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::string path = o.dir + "/io_ring_bench.XXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0) {
    std::perror("mkstemp");
    return 1;
  }
  ::unlink(path.c_str());
  const size_t blocks = o.size_mib * 1024 * 1024 / block;
  {
    std::vector<char> chunk(1 << 20);
    for (size_t i = 0; i < chunk.size(); ++i)
      chunk[i] = static_cast<char>(i * 31);
    for (size_t off = 0; off < blocks * block; off += chunk.size()) {
      if (::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(off)) < 0) {
        std::perror("pwrite");
        return 1;
      }
    }
    for (size_t off = 0; off < blocks * block; off += chunk.size()) {  // warm the page cache
      if (::pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(off)) < 0) return 1;
    }
  }
  std::printf("4 KiB random preadv, %zu MiB page-cache-hot file, %.1f s per cell, median of %d\n",
              o.size_mib, o.seconds, o.rounds);
  std::printf("%-22s %4s %12s %12s %10s\n", "engine", "QD", "ops/s", "CPU ns/op", "enters/op");

  auto report = [&](const char* name, unsigned depth, auto&& run) {
    std::vector<Cell> cells;
    for (int r = 0; r < o.rounds; ++r)
      cells.push_back(run());
    const Cell c = median(cells);
    std::printf("%-22s %4u %12.0f %12.0f %10.3f\n", name, depth, c.ops_per_s, c.cpu_ns_per_op,
                c.enters_per_op);
    std::fflush(stdout);
  };
  auto wanted = [&](const char* engine) { return o.engines.find(engine) != std::string::npos; };
  for (unsigned depth : o.depths) {
    if (wanted("uring")) {
      report("Ring (io_uring)", depth,
             [&] { return run_ring(fd, blocks, Ring::Mode::io_uring, depth, o.seconds); });
    }
    if (wanted("pool")) {
      report("Ring (thread_pool)", depth,
             [&] { return run_ring(fd, blocks, Ring::Mode::thread_pool, depth, o.seconds); });
    }
  }
  if (wanted("pread")) report("pread loop", 1, [&] { return run_pread(fd, blocks, o.seconds); });
  ::close(fd);
  return 0;
}
