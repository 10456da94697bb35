// The one outbound HTTP client siyu uses to call WeChat's APIs (libcurl). Connect timeout 2 s,
// total 5 s. A transport failure (DNS, refused, timeout, TLS) is UPSTREAM_UNAVAILABLE; any HTTP
// answer, whatever its status, is returned for the caller to judge. Bodies are bytes: an image
// WeChat renders comes back as it was sent. Thread-safe: each call uses its own handle.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace siyu {

struct HttpResponse {
  int status = 0;
  std::string body;          // raw bytes
  std::string content_type;  // as sent, e.g. "image/png"; "" when absent
};

class OutboundHttp {
 public:
  // The body is cut off (UPSTREAM_UNAVAILABLE) past this many bytes.
  static constexpr size_t kMaxBody = 1 << 20;

  // GET `url`. The URL may carry secrets: it is never logged, nor put in a returned message.
  StatusOr<HttpResponse> Get(const std::string& url) const;
  // POST `body` as application/json to `url` (same rules for the URL; the body is not logged).
  StatusOr<HttpResponse> PostJson(const std::string& url, const std::string& body) const;
};

}  // namespace siyu
