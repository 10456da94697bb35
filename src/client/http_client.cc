#include "client/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

namespace siyu::client {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::string Response::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return v;
  }
  return {};
}

struct HttpClient::Impl {
  static constexpr size_t kReadBuffer = 64 * 1024;
  std::string host;
  uint16_t port;
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  std::vector<std::pair<std::string, std::string>> headers;

  bool Connect(std::string& err) {
    beast::error_code ec;
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec) {
      err = ec.message();
      return false;
    }
    stream.emplace(ioc);
    stream->connect(results, ec);
    if (ec) {
      err = ec.message();
      stream.reset();
      return false;
    }
    stream->socket().set_option(tcp::no_delay(true), ec);
    buffer.clear();
    // A read takes what the buffer has room for: a batch's answer in one or two reads, not in
    // pieces of the few hundred bytes an empty buffer starts with.
    buffer.reserve(kReadBuffer);
    return true;
  }
};

HttpClient::HttpClient(std::string host, uint16_t port) : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
}
HttpClient::~HttpClient() = default;

void HttpClient::SetHeader(std::string name, std::string value) {
  for (auto& [k, v] : impl_->headers) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  impl_->headers.emplace_back(std::move(name), std::move(value));
}

Response HttpClient::Get(const std::string& target) { return Send("GET", target, "", ""); }
Response HttpClient::Post(const std::string& target, const std::string& body) {
  return Send("POST", target, body);
}
Response HttpClient::Delete(const std::string& target) { return Send("DELETE", target, "", ""); }

Response HttpClient::Send(const std::string& method, const std::string& target,
                          const std::string& body, const std::string& content_type,
                          const std::vector<std::pair<std::string, std::string>>& extra) {
  Response out;
  // A kept-alive connection may have been closed by the server: retry once on a fresh one, but
  // only when nothing of the response was read (the request may not have arrived).
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool fresh = false;
    if (!impl_->stream) {
      if (!impl_->Connect(out.error)) return out;
      fresh = true;
    }
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, impl_->host);
    req.keep_alive(true);
    for (const auto& [k, v] : impl_->headers) req.set(k, v);
    for (const auto& [k, v] : extra) req.set(k, v);
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    req.body() = body;
    if (!body.empty() || method == "POST" || method == "PUT") req.prepare_payload();
    beast::error_code ec;
    http::write(*impl_->stream, req, ec);
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    if (!ec) http::read(*impl_->stream, impl_->buffer, parser, ec);
    if (ec) {
      impl_->stream.reset();
      out.error = ec.message();
      if (!fresh && !parser.got_some()) continue;
      return out;
    }
    auto res = parser.release();
    out.status = res.result_int();
    out.body = std::move(res.body());
    for (const auto& f : res) out.headers.emplace_back(f.name_string(), f.value());
    if (!res.keep_alive()) impl_->stream.reset();
    out.error.clear();
    return out;
  }
  return out;
}

}  // namespace siyu::client
