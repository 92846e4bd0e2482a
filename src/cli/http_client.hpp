// A small blocking HTTP/1.1 client for the `sandfsd volume …` commands, which talk to a running
// `sandfsd serve` over TCP or its Unix socket. One request per connection (Connection: close);
// bodies with Content-Length or chunked; streamed uploads from an fd and downloads into one.
// Not a general client: no TLS, no redirects, no proxies — the admin API is local.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sandfs::cli {

struct Endpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 7270;
  std::string unix_socket;  // when set, host and port are not used
  std::string token;        // bearer token; empty = none
};

// Parses "http://HOST:PORT" (or "HOST:PORT") into `out`; false with `error` set otherwise.
bool parse_server_url(const std::string& url, Endpoint& out, std::string& error);

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;                                          // empty when streamed to an fd
  std::string header(const std::string& lower_name) const;
};

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";  // already percent-encoded
  std::string content_type;
  std::string body;
  int body_fd = -1;        // when >= 0: upload from this fd (read to EOF) instead of `body`
  int64_t body_size = -1;  // size of body_fd's content if known (else chunked)
  int response_fd = -1;    // when >= 0: a 2xx body goes here instead of into `body`
};

// Sends the request and reads the whole response. On a transport failure (cannot connect, the
// server closed early, a malformed response) returns false with `error` set.
bool http_exchange(const Endpoint& endpoint, const HttpRequest& request, HttpResponse& response,
                   std::string& error);

// Percent-encodes a volume-relative file path for a URL: every byte outside unreserved
// characters and '/' is %XX.
std::string encode_path(const std::string& path);

}  // namespace sandfs::cli
