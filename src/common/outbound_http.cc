#include "common/outbound_http.h"

#include <curl/curl.h>

#include <mutex>

namespace siyu {

namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t Collect(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  size_t len = size * n;
  if (out->size() + len > OutboundHttp::kMaxBody) return 0;  // aborts the transfer
  out->append(data, len);
  return len;
}

// One request on its own handle. `post_body` null: GET.
StatusOr<HttpResponse> Perform(const std::string& url, const std::string* post_body) {
  GlobalInit();
  CURL* h = curl_easy_init();
  if (!h) return Status(ErrorCode::kUpstreamUnavailable, "cannot create an HTTP client handle");
  HttpResponse resp;
  curl_slist* headers = nullptr;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  if (post_body) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_body->data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(post_body->size()));
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp.body);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  char* ct = nullptr;
  if (rc == CURLE_OK && curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct) {
    resp.content_type = ct;
  }
  curl_easy_cleanup(h);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    // curl_easy_strerror names the failure without echoing the URL.
    return Status(ErrorCode::kUpstreamUnavailable,
                  std::string("upstream request failed: ") + curl_easy_strerror(rc));
  }
  resp.status = static_cast<int>(status);
  return resp;
}

}  // namespace

StatusOr<HttpResponse> OutboundHttp::Get(const std::string& url) const {
  return Perform(url, nullptr);
}

StatusOr<HttpResponse> OutboundHttp::PostJson(const std::string& url,
                                              const std::string& body) const {
  return Perform(url, &body);
}

}  // namespace siyu
