// Typed views of decrypted WeChat callback XML: WeCom customer-contact events
// (change_external_contact, change_external_chat) and Official Account follow/scan events
// (subscribe, unsubscribe, SCAN), each with the key that detects the platform's retries. Pure
// functions; thread-safe.
//
// Callbacks are retried when not answered in time, so the same event can arrive several times;
// store `dedup_key` (scoped by tenant/corp) and drop repeats. Event types this adapter does not
// model parse to kind kUnknown rather than failing, so that a new platform event never turns into
// an error answer (which would only make the platform retry it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace siyu::wechat {

enum class WeComEventKind {
  kUnknown,
  // change_external_contact
  kAddExternalContact,
  kAddHalfExternalContact,
  kEditExternalContact,
  kDelExternalContact,
  kDelFollowUser,
  kTransferFail,
  // change_external_chat
  kExternalChatCreate,
  kExternalChatUpdate,
  kExternalChatDismiss,
};

// Stable lower-case name, e.g. "add_external_contact", "external_chat_update", "unknown".
std::string_view WeComEventKindName(WeComEventKind kind);

struct ExternalContactChange {
  std::string user_id;           // the staff member (UserID)
  std::string external_user_id;  // the customer (ExternalUserID)
  std::string state;             // the contact way's `state`, which attributes the channel
  std::string welcome_code;      // empty when the admin console sends the welcome itself
  std::string source;            // del_external_contact: e.g. DELETE_BY_TRANSFER
  std::string fail_reason;       // transfer_fail: customer_refused / customer_limit_exceed
};

struct ExternalChatChange {
  std::string chat_id;
  // update only: add_member, del_member, change_owner, change_name, change_notice.
  std::string update_detail;
  std::optional<int64_t> join_scene;      // add_member: 0 invited or link, 3 QR code
  std::optional<int64_t> quit_scene;      // del_member: 0 left, 1 removed
  std::optional<int64_t> mem_change_cnt;  // add_member / del_member: members changed
  // The changed members' ids when the platform sends them (<Item>s or a comma list).
  std::vector<std::string> mem_change_list;
  std::string last_mem_ver;
  std::string cur_mem_ver;
};

struct WeComEvent {
  WeComEventKind kind = WeComEventKind::kUnknown;
  std::string to_user_name;    // the corpid
  std::string from_user_name;  // "sys" for customer-contact events
  std::string msg_type;
  std::string event;
  std::string change_type;
  int64_t create_time = 0;        // seconds since the epoch
  ExternalContactChange contact;  // set for the change_external_contact kinds
  ExternalChatChange chat;        // set for the kExternalChat* kinds
  std::string dedup_key;
};

// Parses the inner XML of a WeCom callback. MALFORMED_XML (naming the field) when it is not XML,
// has no <xml> root, or lacks a field the recognised event needs (UserID, ExternalUserID, ChatId,
// UpdateDetail for updates, CreateTime).
StatusOr<WeComEvent> ParseWeComEvent(std::string_view xml);

enum class OfficialAccountEventKind { kUnknown, kSubscribe, kUnsubscribe, kScan };

std::string_view OfficialAccountEventKindName(OfficialAccountEventKind kind);

struct OfficialAccountEvent {
  OfficialAccountEventKind kind = OfficialAccountEventKind::kUnknown;
  std::string openid;        // FromUserName
  std::string to_user_name;  // the account's original id (gh_…)
  std::string msg_type;
  std::string event;      // as sent: "subscribe", "unsubscribe", "SCAN", …
  std::string event_key;  // as sent
  // The parametric QR code's scene: EventKey without "qrscene_" for subscribe, EventKey itself
  // for SCAN; empty for a subscribe that did not come from a parametric code.
  std::string scene;
  std::string ticket;  // the QR ticket, when present
  int64_t create_time = 0;
  std::string dedup_key;
};

// Parses a (decrypted, or plain-mode) Official Account push. MALFORMED_XML when it is not XML,
// has no <xml> root, or lacks FromUserName, CreateTime, or SCAN's EventKey.
StatusOr<OfficialAccountEvent> ParseOfficialAccountEvent(std::string_view xml);

}  // namespace siyu::wechat
