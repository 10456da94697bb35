#include "domain/channels/codes.h"

#include <algorithm>
#include <array>
#include <set>

namespace siyu::domain {

namespace {

struct KindInfo {
  CodeKind kind;
  std::string_view name;
  std::string_view touchpoint;  // "" for every touchpoint
};
constexpr std::array<KindInfo, 4> kKinds = {{
    {CodeKind::kWecomContactWay, "wecom_contact_way", "wecom"},
    {CodeKind::kOaQrcode, "oa_qrcode", "official_account"},
    {CodeKind::kMpCode, "mp_code", "mini_program"},
    {CodeKind::kLink, "link", ""},
}};

bool IsBase62(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  });
}

bool IsVisibleAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

Status NotFor(std::string_view field, CodeKind kind) {
  return InvalidField(std::string(field), "'" + std::string(field) + "' does not apply to " +
                                              std::string(CodeKindName(kind)) +
                                              " codes; leave it out");
}

Status CheckPage(const std::string& page) {
  auto bad = [](std::string why) { return InvalidField("page", "page " + why); };
  if (page.empty() || page.size() > 128) return bad("must have 1 to 128 characters");
  if (page.front() == '/') return bad("must not start with '/', e.g. pages/index/index");
  for (char c : page) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '_' || c == '-' || c == '.' || c == '/';
    if (!ok) {
      return bad(c == '?' ? "must not carry a query: siyu adds the state"
                          : "may hold only letters, digits and _ - . /");
    }
  }
  if (page.find("//") != std::string::npos || page.find("..") != std::string::npos) {
    return bad("must be a page path such as pages/index/index");
  }
  return Status::Ok();
}

// True when the query of `url` (between '?' and '#') has a parameter named `state`.
bool HasStateParam(std::string_view url) {
  size_t q = url.find('?');
  if (q == std::string_view::npos) return false;
  std::string_view query = url.substr(q + 1, url.find('#', q) - q - 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    if (kv.substr(0, kv.find('=')) == "state") return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

Status CheckUrl(const std::string& url) {
  auto bad = [](std::string why) { return InvalidField("url", "url " + why); };
  if (url.size() > kMaxLinkUrl) return bad("must have at most 512 characters");
  if (!IsVisibleAscii(url) || url.find_first_of("\"<>\\^`{|}") != std::string::npos) {
    return bad("must be an ASCII URL without spaces or quotes (percent-encode other characters)");
  }
  size_t scheme = url.starts_with("https://") ? 8 : url.starts_with("http://") ? 7 : 0;
  if (scheme == 0) return bad("must start with https:// (or http://)");
  size_t host_end = url.find_first_of("/?#", scheme);
  std::string_view host = std::string_view(url).substr(scheme, host_end - scheme);
  if (host.empty() || host.find('@') != std::string_view::npos) {
    return bad("must name a host, e.g. https://m.example.com/landing");
  }
  if (HasStateParam(url)) return bad("must not carry a state parameter: siyu adds the channel's");
  return Status::Ok();
}

Status CheckUsers(const std::vector<std::string>& users) {
  if (users.empty() || users.size() > kMaxCodeUsers) {
    return InvalidField("users", "users must list 1 to 100 WeCom member user ids");
  }
  std::set<std::string_view> seen;
  for (size_t i = 0; i < users.size(); ++i) {
    const std::string field = "users[" + std::to_string(i) + "]";
    const std::string& u = users[i];
    if (u.empty() || u.size() > 64 || !IsVisibleAscii(u)) {
      return InvalidField(field, field +
                                     " must be a WeCom member user id (1 to 64 visible ASCII "
                                     "characters, as in WeCom's admin console)");
    }
    if (!seen.insert(u).second) return InvalidField(field, field + " repeats '" + u + "'");
  }
  return Status::Ok();
}

// Channel states are siyu's own (13 base62 characters); one that does not fit is a defect.
Status CheckState(std::string_view state, size_t max, std::string_view where) {
  if (state.empty() || state.size() > max || !IsBase62(state)) {
    return Internal("channel state '" + std::string(state.substr(0, 64)) + "' does not fit " +
                    std::string(where) + " (1 to " + std::to_string(max) + " base62 characters)");
  }
  return Status::Ok();
}

}  // namespace

std::string_view CodeKindName(CodeKind k) {
  for (const auto& i : kKinds) {
    if (i.kind == k) return i.name;
  }
  return "link";
}

std::optional<CodeKind> ParseCodeKind(std::string_view s) {
  for (const auto& i : kKinds) {
    if (i.name == s) return i.kind;
  }
  return std::nullopt;
}

std::vector<CodeKind> CodeKindsFor(std::string_view touchpoint) {
  std::vector<CodeKind> out;
  for (const auto& i : kKinds) {
    if (i.touchpoint == touchpoint) out.push_back(i.kind);
  }
  out.push_back(CodeKind::kLink);
  return out;
}

std::string_view CodeAppKind(CodeKind k) {
  switch (k) {
    case CodeKind::kWecomContactWay:
      return "wecom";
    case CodeKind::kOaQrcode:
      return "official_account";
    case CodeKind::kMpCode:
      return "mini_program";
    case CodeKind::kLink:
      return "";
  }
  return "";
}

Status CheckCodeOptions(CodeKind kind, const CodeOptions& o) {
  const bool wecom = kind == CodeKind::kWecomContactWay;
  if (o.users && !wecom) return NotFor("users", kind);
  if (o.skip_verify && !wecom) return NotFor("skip_verify", kind);
  if (o.page && kind != CodeKind::kMpCode && kind != CodeKind::kLink) return NotFor("page", kind);
  if (o.url && kind != CodeKind::kLink) return NotFor("url", kind);
  if (wecom) {
    if (!o.users) {
      return Status(ErrorCode::kMissingField,
                    "a wecom_contact_way code needs 'users': the WeCom members it adds people to",
                    "users");
    }
    RETURN_IF_ERROR(CheckUsers(*o.users));
  }
  if (o.page) RETURN_IF_ERROR(CheckPage(*o.page));
  if (kind == CodeKind::kLink) {
    if (!o.url) {
      return Status(ErrorCode::kMissingField,
                    "a link code needs 'url': the H5 landing page that siyu adds the state to",
                    "url");
    }
    RETURN_IF_ERROR(CheckUrl(*o.url));
  }
  return Status::Ok();
}

StatusOr<Payload> CodePayload(CodeKind kind, std::string_view state, const CodeOptions& o) {
  const std::string s(state);
  switch (kind) {
    case CodeKind::kWecomContactWay:
      RETURN_IF_ERROR(CheckState(state, kMaxContactWayState, "a WeCom contact-way state"));
      return Payload{{"state", s}};
    case CodeKind::kOaQrcode:
      RETURN_IF_ERROR(CheckState(state, kMaxOaSceneStr, "an official-account scene_str"));
      return Payload{{"scene_str", s}, {"event_key", "qrscene_" + s}};
    case CodeKind::kMpCode:
      RETURN_IF_ERROR(CheckState(state, kMaxMpScene, "a mini-program scene"));
      if (o.page) return Payload{{"scene", s}, {"page", *o.page}};
      return Payload{{"scene", s}};
    case CodeKind::kLink: {
      // The state travels as a query parameter, so it has the same bound as a contact way's:
      // the mini-program passes it on as channel_state, which is at most 30 characters.
      RETURN_IF_ERROR(CheckState(state, kMaxContactWayState, "a link's state parameter"));
      Payload p{{"path", o.page.value_or(std::string(kDefaultMpPage)) + "?state=" + s}};
      if (o.url) p.emplace_back("url", WithState(*o.url, state));
      return p;
    }
  }
  return Internal("unknown code kind");
}

std::string WithState(std::string_view url, std::string_view state) {
  size_t hash = url.find('#');
  std::string_view base = url.substr(0, hash);
  std::string_view fragment = hash == std::string_view::npos ? "" : url.substr(hash);
  std::string out(base);
  if (base.find('?') == std::string_view::npos) {
    out += '?';
  } else if (!base.ends_with('?') && !base.ends_with('&')) {
    out += '&';
  }
  out.append("state=").append(state).append(fragment);
  return out;
}

}  // namespace siyu::domain
