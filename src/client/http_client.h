// A small blocking HTTP/1.1 client with keep-alive, used by `siyu demo` (which loads its data
// through the public API), `siyu bench` and the integration tests. Not thread-safe: one client
// per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace siyu::client {

struct Response {
  int status = 0;  // 0: transport failure (see error)
  std::string body;
  std::string error;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string Header(std::string_view name) const;
};

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port);
  ~HttpClient();

  void SetHeader(std::string name, std::string value);  // sent with every request
  Response Get(const std::string& target);
  Response Post(const std::string& target, const std::string& json_body);
  Response Delete(const std::string& target);
  // Any method, body and extra headers; `content_type` empty sends none.
  Response Send(const std::string& method, const std::string& target, const std::string& body,
                const std::string& content_type = "application/json",
                const std::vector<std::pair<std::string, std::string>>& extra = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace siyu::client
