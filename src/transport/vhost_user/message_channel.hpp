// MessageChannel: vhost-user messages over one connected Unix stream socket.
//
// A frontend sends each message as one sendmsg: the 12-byte header, the payload, and any file
// descriptors in SCM_RIGHTS attached to the first byte. receive() reads exactly one message,
// however the stream splits it, and checks what the frontend claims before believing it: the
// version bits, a payload size no larger than max_payload, at most max_fds descriptors (more, or
// a truncated control message, is a protocol fault: the fds that did arrive are closed). Nothing
// here interprets a request; a fault ends the connection, never the process.
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/local/stream_protocol.hpp>

#include "core/filesystem.hpp"  // Task
#include "core/unique_fd.hpp"
#include "transport/vhost_user/protocol.hpp"

namespace sandfs::vhost_user {

struct Message {
  MessageHeader header{};
  std::array<std::byte, max_payload> payload{};
  std::vector<UniqueFd> fds;

  Request request() const { return static_cast<Request>(header.request); }
  bool needs_reply() const { return (header.flags & flag_need_reply) != 0; }
  std::span<const std::byte> body() const { return {payload.data(), header.size}; }
  // The payload as a T when it is exactly that size (or at least, with `at_least`).
  template <class T>
  std::optional<T> as(bool at_least = false) const;
};

// Why a connection ended.
struct ChannelError {
  enum class Kind { closed, io, protocol } kind = Kind::closed;
  std::string what;
};

class MessageChannel {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;

  explicit MessageChannel(Socket socket);

  // The next message, or why there is none (the peer closed, an I/O error, a protocol fault).
  Task<std::optional<Message>> receive(ChannelError& error);

  // Sends a reply to `request`: the header with the REPLY flag, then `payload`. Replies are
  // small and the socket buffer is empty between request and reply, so this blocks at most
  // briefly; false if the peer is gone.
  bool reply(uint32_t request, std::span<const std::byte> payload);
  bool reply_u64(uint32_t request, uint64_t value);

  Socket& socket() { return socket_; }
  void close();

 private:
  // Reads exactly `size` bytes into `dst`; the first read also collects fds into `fds`.
  Task<bool> read_exact(std::byte* dst, size_t size, std::vector<UniqueFd>* fds,
                        ChannelError& error);

  Socket socket_;
};

template <class T>
std::optional<T> Message::as(bool at_least) const {
  if (at_least ? header.size < sizeof(T) : header.size != sizeof(T)) return std::nullopt;
  T value;
  std::memcpy(&value, payload.data(), sizeof(T));
  return value;
}

}  // namespace sandfs::vhost_user
