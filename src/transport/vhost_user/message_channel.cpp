#include "transport/vhost_user/message_channel.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sandfs::vhost_user {

namespace asio = boost::asio;

MessageChannel::MessageChannel(Socket socket) : socket_(std::move(socket)) {
  socket_.non_blocking(true);
}

void MessageChannel::close() {
  boost::system::error_code ec;
  socket_.close(ec);
}

Task<bool> MessageChannel::read_exact(std::byte* dst, size_t size, std::vector<UniqueFd>* fds,
                                      ChannelError& error) {
  size_t got = 0;
  bool first = true;
  while (got < size) {
    iovec iov{dst + got, size - got};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fds && first) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
    }
    const ssize_t n = ::recvmsg(socket_.native_handle(), &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto [ec] =
          co_await socket_.async_wait(Socket::wait_read, asio::as_tuple(asio::use_awaitable));
      if (ec) {
        error = {ChannelError::Kind::io, ec.message()};
        co_return false;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = {ChannelError::Kind::io, std::strerror(errno)};
      co_return false;
    }
    if (fds && first) {
      // Take ownership of whatever arrived before judging it, so nothing leaks.
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          fds->emplace_back(fd);
        }
      }
      if ((msg.msg_flags & MSG_CTRUNC) != 0) {
        error = {ChannelError::Kind::protocol, "more file descriptors than any message may carry"};
        co_return false;
      }
    }
    if (n == 0) {
      error = {got == 0 && first ? ChannelError::Kind::closed : ChannelError::Kind::protocol,
               got == 0 && first ? "frontend closed the connection"
                                 : "frontend closed the connection in the middle of a message"};
      co_return false;
    }
    got += static_cast<size_t>(n);
    first = false;
  }
  co_return true;
}

Task<std::optional<Message>> MessageChannel::receive(ChannelError& error) {
  Message m;
  if (!co_await read_exact(reinterpret_cast<std::byte*>(&m.header), sizeof m.header, &m.fds,
                           error)) {
    co_return std::nullopt;
  }
  if ((m.header.flags & version_mask) != version) {
    error = {ChannelError::Kind::protocol,
             "message version " + std::to_string(m.header.flags & version_mask) + ", expected 1"};
    co_return std::nullopt;
  }
  if (m.header.size > max_payload) {
    error = {ChannelError::Kind::protocol, std::string(request_name(m.header.request)) +
                                               " payload of " + std::to_string(m.header.size) +
                                               " bytes (at most " + std::to_string(max_payload) +
                                               ")"};
    co_return std::nullopt;
  }
  if (m.fds.size() > max_fds) {
    error = {ChannelError::Kind::protocol, "too many file descriptors"};
    co_return std::nullopt;
  }
  if (m.header.size > 0 && !co_await read_exact(m.payload.data(), m.header.size, nullptr, error)) {
    if (error.kind == ChannelError::Kind::closed) error.kind = ChannelError::Kind::protocol;
    co_return std::nullopt;
  }
  co_return m;
}

bool MessageChannel::reply(uint32_t request, std::span<const std::byte> payload) {
  MessageHeader h{request, version | flag_reply, static_cast<uint32_t>(payload.size())};
  iovec iov[2] = {{&h, sizeof h}, {const_cast<std::byte*>(payload.data()), payload.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  const size_t want = sizeof h + payload.size();
  // One small message into an idle socket buffer: a short write would only come from a
  // pathological peer; treat it as gone.
  for (;;) {
    const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{socket_.native_handle(), POLLOUT, 0};
      if (::poll(&p, 1, 1000) <= 0) return false;
      continue;
    }
    return n == static_cast<ssize_t>(want);
  }
}

bool MessageChannel::reply_u64(uint32_t request, uint64_t value) {
  return reply(request, std::as_bytes(std::span(&value, 1)));
}

}  // namespace sandfs::vhost_user
