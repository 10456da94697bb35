#include "domain/wechat/events.h"

#include <pugixml.hpp>

namespace siyu::wechat {
namespace {

Status Malformed(std::string message, std::string field = {}) {
  return Status(ErrorCode::kMalformedXml, std::move(message), std::move(field));
}

// Parses `xml` and returns its <xml> root.
StatusOr<pugi::xml_node> LoadRoot(pugi::xml_document& doc, std::string_view xml) {
  // pugixml neither loads external entities nor expands DTD entities: no XXE, no entity bombs.
  pugi::xml_parse_result parsed =
      doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) return Malformed(std::string("callback is not XML: ") + parsed.description());
  pugi::xml_node root = doc.child("xml");
  if (!root) return Malformed("callback has no <xml> root element", "xml");
  return root;
}

std::string Text(pugi::xml_node root, const char* name) { return root.child(name).text().get(); }

StatusOr<std::string> Required(pugi::xml_node root, const char* name) {
  std::string v = Text(root, name);
  if (v.empty()) return Malformed(std::string("callback lacks <") + name + ">", name);
  return v;
}

// An absent element is nullopt; a present one must be a non-negative decimal integer.
StatusOr<std::optional<int64_t>> OptInt(pugi::xml_node root, const char* name) {
  pugi::xml_node n = root.child(name);
  if (!n) return std::optional<int64_t>();
  std::string_view s = n.text().get();
  if (s.empty() || s.size() > 18) {
    return Malformed(std::string("<") + name + "> is not an integer", name);
  }
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return Malformed(std::string("<") + name + "> is not an integer", name);
    v = v * 10 + (c - '0');
  }
  return std::optional<int64_t>(v);
}

StatusOr<int64_t> RequiredInt(pugi::xml_node root, const char* name) {
  ASSIGN_OR_RETURN(std::optional<int64_t> v, OptInt(root, name));
  if (!v) return Malformed(std::string("callback lacks <") + name + ">", name);
  return *v;
}

std::string Join(std::initializer_list<std::string_view> parts) {
  std::string out;
  bool first = true;
  for (std::string_view p : parts) {
    if (!first) out.push_back('|');
    out.append(p);
    first = false;
  }
  return out;
}

// Items as <Item>a</Item><Item>b</Item>, or as the text "a,b".
std::vector<std::string> MemberList(pugi::xml_node node) {
  std::vector<std::string> out;
  if (node.child("Item")) {
    for (pugi::xml_node item : node.children("Item")) {
      std::string v = item.text().get();
      if (!v.empty()) out.push_back(std::move(v));
    }
    return out;
  }
  std::string_view s = node.text().get();
  while (!s.empty()) {
    size_t comma = s.find(',');
    std::string_view piece = s.substr(0, comma);
    while (!piece.empty() && (piece.front() == ' ' || piece.front() == '\n'))
      piece.remove_prefix(1);
    while (!piece.empty() && (piece.back() == ' ' || piece.back() == '\n')) piece.remove_suffix(1);
    if (!piece.empty()) out.emplace_back(piece);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

std::optional<WeComEventKind> ContactKind(std::string_view change_type) {
  if (change_type == "add_external_contact") return WeComEventKind::kAddExternalContact;
  if (change_type == "add_half_external_contact") return WeComEventKind::kAddHalfExternalContact;
  if (change_type == "edit_external_contact") return WeComEventKind::kEditExternalContact;
  if (change_type == "del_external_contact") return WeComEventKind::kDelExternalContact;
  if (change_type == "del_follow_user") return WeComEventKind::kDelFollowUser;
  if (change_type == "transfer_fail") return WeComEventKind::kTransferFail;
  return std::nullopt;
}

std::optional<WeComEventKind> ChatKind(std::string_view change_type) {
  if (change_type == "create") return WeComEventKind::kExternalChatCreate;
  if (change_type == "update") return WeComEventKind::kExternalChatUpdate;
  if (change_type == "dismiss") return WeComEventKind::kExternalChatDismiss;
  return std::nullopt;
}

// Messages carry MsgId, which the platform documents as their dedup key; for anything else the
// envelope fields are the best available.
std::string FallbackDedupKey(pugi::xml_node root) {
  std::string msg_id = Text(root, "MsgId");
  if (!msg_id.empty()) return "MsgId|" + msg_id;
  return Join({Text(root, "FromUserName"), Text(root, "MsgType"), Text(root, "Event"),
               Text(root, "ChangeType"), Text(root, "CreateTime")});
}

}  // namespace

std::string_view WeComEventKindName(WeComEventKind kind) {
  switch (kind) {
    case WeComEventKind::kUnknown:
      return "unknown";
    case WeComEventKind::kAddExternalContact:
      return "add_external_contact";
    case WeComEventKind::kAddHalfExternalContact:
      return "add_half_external_contact";
    case WeComEventKind::kEditExternalContact:
      return "edit_external_contact";
    case WeComEventKind::kDelExternalContact:
      return "del_external_contact";
    case WeComEventKind::kDelFollowUser:
      return "del_follow_user";
    case WeComEventKind::kTransferFail:
      return "transfer_fail";
    case WeComEventKind::kExternalChatCreate:
      return "external_chat_create";
    case WeComEventKind::kExternalChatUpdate:
      return "external_chat_update";
    case WeComEventKind::kExternalChatDismiss:
      return "external_chat_dismiss";
  }
  return "unknown";
}

StatusOr<WeComEvent> ParseWeComEvent(std::string_view xml) {
  pugi::xml_document doc;
  ASSIGN_OR_RETURN(pugi::xml_node root, LoadRoot(doc, xml));
  WeComEvent e;
  e.to_user_name = Text(root, "ToUserName");
  e.from_user_name = Text(root, "FromUserName");
  e.msg_type = Text(root, "MsgType");
  e.event = Text(root, "Event");
  e.change_type = Text(root, "ChangeType");

  std::optional<WeComEventKind> kind;
  if (e.event == "change_external_contact") kind = ContactKind(e.change_type);
  if (e.event == "change_external_chat") kind = ChatKind(e.change_type);
  if (!kind) {
    // Unmodelled: keep what is there, never fail on a field we do not need.
    auto t = OptInt(root, "CreateTime");
    if (t.ok() && *t) e.create_time = **t;
    e.dedup_key = FallbackDedupKey(root);
    return e;
  }
  e.kind = *kind;
  ASSIGN_OR_RETURN(e.create_time, RequiredInt(root, "CreateTime"));
  std::string create_time = std::to_string(e.create_time);

  if (e.event == "change_external_contact") {
    ExternalContactChange& c = e.contact;
    ASSIGN_OR_RETURN(c.user_id, Required(root, "UserID"));
    ASSIGN_OR_RETURN(c.external_user_id, Required(root, "ExternalUserID"));
    c.state = Text(root, "State");
    c.welcome_code = Text(root, "WelcomeCode");
    c.source = Text(root, "Source");
    c.fail_reason = Text(root, "FailReason");
    // FromUserName is "sys" for every one of these events, so FromUserName+CreateTime would merge
    // different customers added in the same second; staff, customer, change type and second
    // together name one change.
    e.dedup_key = Join({c.user_id, c.external_user_id, e.change_type, create_time});
    return e;
  }

  ExternalChatChange& c = e.chat;
  ASSIGN_OR_RETURN(c.chat_id, Required(root, "ChatId"));
  if (e.kind == WeComEventKind::kExternalChatUpdate) {
    ASSIGN_OR_RETURN(c.update_detail, Required(root, "UpdateDetail"));
  } else {
    c.update_detail = Text(root, "UpdateDetail");
  }
  ASSIGN_OR_RETURN(c.join_scene, OptInt(root, "JoinScene"));
  ASSIGN_OR_RETURN(c.quit_scene, OptInt(root, "QuitScene"));
  ASSIGN_OR_RETURN(c.mem_change_cnt, OptInt(root, "MemChangeCnt"));
  if (pugi::xml_node list = root.child("MemChangeList")) c.mem_change_list = MemberList(list);
  c.last_mem_ver = Text(root, "LastMemVer");
  c.cur_mem_ver = Text(root, "CurMemVer");
  // Chat events name no staff member or customer (the member ids are optional), so the chat is
  // the subject. UpdateDetail is part of the key because one chat can change in several ways in
  // the same second (a member joins while the owner renames it), and each is a separate event.
  // The third component is never a contact ChangeType, so these keys cannot collide with
  // contact keys in a shared store. CurMemVer, when WeCom sends it, tells apart two membership
  // changes of one chat in the same second (two people scanning the group QR code together),
  // which would otherwise share a key and one of them be dropped; a retry repeats it.
  e.dedup_key = Join({c.chat_id, e.change_type, c.update_detail, create_time, c.cur_mem_ver});
  return e;
}

std::string_view OfficialAccountEventKindName(OfficialAccountEventKind kind) {
  switch (kind) {
    case OfficialAccountEventKind::kUnknown:
      return "unknown";
    case OfficialAccountEventKind::kSubscribe:
      return "subscribe";
    case OfficialAccountEventKind::kUnsubscribe:
      return "unsubscribe";
    case OfficialAccountEventKind::kScan:
      return "scan";
  }
  return "unknown";
}

StatusOr<OfficialAccountEvent> ParseOfficialAccountEvent(std::string_view xml) {
  static constexpr std::string_view kScenePrefix = "qrscene_";
  pugi::xml_document doc;
  ASSIGN_OR_RETURN(pugi::xml_node root, LoadRoot(doc, xml));
  OfficialAccountEvent e;
  ASSIGN_OR_RETURN(e.openid, Required(root, "FromUserName"));
  ASSIGN_OR_RETURN(e.create_time, RequiredInt(root, "CreateTime"));
  e.to_user_name = Text(root, "ToUserName");
  e.msg_type = Text(root, "MsgType");
  e.event = Text(root, "Event");
  e.event_key = Text(root, "EventKey");
  e.ticket = Text(root, "Ticket");

  if (e.msg_type == "event" && e.event == "subscribe") {
    e.kind = OfficialAccountEventKind::kSubscribe;
    std::string_view key = e.event_key;
    if (key.substr(0, kScenePrefix.size()) == kScenePrefix) {
      e.scene = std::string(key.substr(kScenePrefix.size()));
    }
  } else if (e.msg_type == "event" && e.event == "unsubscribe") {
    e.kind = OfficialAccountEventKind::kUnsubscribe;
  } else if (e.msg_type == "event" && e.event == "SCAN") {
    e.kind = OfficialAccountEventKind::kScan;
    ASSIGN_OR_RETURN(e.scene, Required(root, "EventKey"));
  }

  if (e.kind == OfficialAccountEventKind::kUnknown && !Text(root, "MsgId").empty()) {
    e.dedup_key = FallbackDedupKey(root);
  } else {
    // The openid is the subject here (unlike WeCom's "sys"); EventKey keeps a scan of code A
    // and a scan of code B in the same second apart.
    e.dedup_key = Join({e.openid, e.event, std::to_string(e.create_time), e.event_key});
  }
  return e;
}

}  // namespace siyu::wechat
