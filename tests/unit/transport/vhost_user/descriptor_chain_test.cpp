#include "transport/vhost_user/descriptor_chain.hpp"

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fake_guest.hpp"

using namespace sandfs::vhost_user;
using sandfs::vhost_user::testing::buf_a;
using sandfs::vhost_user::testing::buf_b;
using sandfs::vhost_user::testing::FakeDriver;
using sandfs::vhost_user::testing::FakeGuest;

namespace {

// Three buffers of 3, 0 and 5 bytes over one backing string.
struct Pieces {
  std::array<char, 8> bytes{};
  std::array<iovec, 3> iov{};
  Pieces() {
    iov[0] = iovec{bytes.data(), 3};
    iov[1] = iovec{bytes.data() + 3, 0};
    iov[2] = iovec{bytes.data() + 3, 5};
  }
};

}  // namespace

TEST_CASE("chain reader gathers across buffers", "[vhost_user][chain]") {
  Pieces p;
  std::memcpy(p.bytes.data(), "abcdefgh", 8);
  ChainReader reader(p.iov);
  CHECK(reader.remaining() == 8);

  char out[8] = {};
  CHECK(reader.read(out, 2) == 2);
  CHECK(std::string(out, 2) == "ab");
  CHECK(reader.read(out, 4) == 4);  // crosses the empty buffer
  CHECK(std::string(out, 4) == "cdef");
  CHECK(reader.consumed() == 6);
  CHECK(reader.remaining() == 2);

  // read_exact is all or nothing.
  CHECK_FALSE(reader.read_exact(out, 3));
  CHECK(reader.remaining() == 2);
  CHECK(reader.read_exact(out, 2));
  CHECK(std::string(out, 2) == "gh");
  CHECK(reader.read(out, 1) == 0);
  CHECK(reader.read_exact(out, 0));
}

TEST_CASE("chain reader skips and takes without copying", "[vhost_user][chain]") {
  Pieces p;
  std::memcpy(p.bytes.data(), "abcdefgh", 8);
  ChainReader reader(p.iov);
  CHECK(reader.skip(1) == 1);
  IovecList views;
  CHECK(reader.take(4, views) == 4);  // "bc" from the first buffer, "de" from the third
  REQUIRE(views.size() == 2);
  CHECK(views[0].iov_base == p.bytes.data() + 1);
  CHECK(views[0].iov_len == 2);
  CHECK(views[1].iov_base == p.bytes.data() + 3);
  CHECK(views[1].iov_len == 2);
  CHECK(reader.take(100, views) == 3);  // only what is left
  CHECK(views.size() == 3);
  CHECK(reader.remaining() == 0);
  CHECK(reader.skip(1) == 0);
}

TEST_CASE("chain writer scatters and counts what it wrote", "[vhost_user][chain]") {
  Pieces p;
  ChainWriter writer(p.iov);
  CHECK(writer.write("0123", 4) == 4);
  CHECK(writer.written() == 4);
  CHECK(writer.write("456789", 6) == 4);  // only 4 bytes of room left
  CHECK(std::string(p.bytes.data(), 8) == "01234567");
  CHECK(writer.written() == 8);
  CHECK(writer.remaining() == 0);
  CHECK_FALSE(writer.write_exact("x", 1));
}

TEST_CASE("chain writer writes a header and payload all or nothing", "[vhost_user][chain]") {
  Pieces p;
  p.bytes.fill('.');
  ChainWriter writer(p.iov);
  char header[] = "HH";
  char payload[] = "pppppp";
  const iovec too_big[] = {{header, 2}, {payload, 7}};
  CHECK_FALSE(writer.write_all(too_big));
  CHECK(writer.written() == 0);
  CHECK(std::string(p.bytes.data(), 8) == "........");
  const iovec fits[] = {{header, 2}, {payload, 6}};
  CHECK(writer.write_all(fits));
  CHECK(std::string(p.bytes.data(), 8) == "HHpppppp");
  CHECK(writer.written() == 8);
}

TEST_CASE("chain writer leaves room for payload written in place", "[vhost_user][chain]") {
  Pieces p;
  ChainWriter writer(p.iov);
  CHECK(writer.write_exact("H", 1));
  IovecList payload;
  CHECK(writer.take(6, payload) == 6);
  // A backend's preadv would land here.
  for (const iovec& v : payload)
    std::memset(v.iov_base, 'd', v.iov_len);
  CHECK(writer.written() == 7);
  CHECK(std::string(p.bytes.data(), 7) == "Hdddddd");
}

TEST_CASE("chain reader and writer work on a popped chain", "[vhost_user][chain]") {
  FakeGuest guest;
  FakeDriver driver(guest, 8);
  SplitVirtqueue q = driver.queue();
  // A request split 5 + 7 bytes over both regions, a reply area of 4 + 20 bytes.
  std::memcpy(guest.at(buf_a), "GETAT", 5);
  std::memcpy(guest.at(buf_b), "TR:1234", 7);
  driver.desc(0, buf_a, 5, VRING_DESC_F_NEXT, 1);
  driver.desc(1, buf_b, 7, VRING_DESC_F_NEXT, 2);
  driver.desc(2, buf_b + 100, 4, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
  driver.desc(3, buf_a + 100, 20, VRING_DESC_F_WRITE);
  driver.publish(0);
  PopResult r = q.pop();
  REQUIRE(r.status == PopStatus::chain);

  ChainReader reader(r.chain);
  char request[12];
  REQUIRE(reader.read_exact(request, sizeof request));
  CHECK(std::string(request, 12) == "GETATTR:1234");

  ChainWriter writer(r.chain);
  CHECK(writer.remaining() == 24);
  REQUIRE(writer.write_exact("reply-bytes", 11));
  q.push(r.head, writer.written());
  CHECK(std::memcmp(guest.at(buf_b + 100), "repl", 4) == 0);
  CHECK(std::memcmp(guest.at(buf_a + 100), "y-bytes", 7) == 0);
  CHECK(driver.used_elem(0).len == 11);
}
