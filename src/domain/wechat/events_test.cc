#include "domain/wechat/events.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace siyu::wechat {
namespace {

// The sample from PROTOCOLS.md section B, verbatim.
constexpr char kAddExternalContact[] =
    "<xml><ToUserName>…</ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
    "<CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>"
    "<Event><![CDATA[change_external_contact]]></Event>"
    "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
    "<UserID><![CDATA[zhangsan]]></UserID>"
    "<ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mAAAA]]></ExternalUserID>"
    "<State><![CDATA[teststate]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>";

std::string ContactXml(std::string_view change_type, std::string_view user,
                       std::string_view external, std::string_view create_time,
                       std::string_view extra = "") {
  return "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]>"
         "</FromUserName><CreateTime>" +
         std::string(create_time) +
         "</CreateTime><MsgType><![CDATA[event]]></MsgType>"
         "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[" +
         std::string(change_type) + "]]></ChangeType><UserID><![CDATA[" + std::string(user) +
         "]]></UserID><ExternalUserID><![CDATA[" + std::string(external) + "]]></ExternalUserID>" +
         std::string(extra) + "</xml>";
}

std::string ChatXml(std::string_view change_type, std::string_view extra,
                    std::string_view create_time = "1648458575") {
  return "<xml>\n  <ToUserName><![CDATA[ww1]]></ToUserName>\n"
         "  <FromUserName><![CDATA[sys]]></FromUserName>\n  <CreateTime>" +
         std::string(create_time) +
         "</CreateTime>\n  <MsgType><![CDATA[event]]></MsgType>\n"
         "  <Event><![CDATA[change_external_chat]]></Event>\n"
         "  <ChatId><![CDATA[wrQZBhCgAA6rFGKQu3osnYwomDJLlgzg]]></ChatId>\n"
         "  <ChangeType><![CDATA[" +
         std::string(change_type) + "]]></ChangeType>\n" + std::string(extra) + "</xml>";
}

std::string OaXml(std::string_view event, std::string_view event_key_element,
                  std::string_view openid = "oABC123",
                  std::string_view create_time = "1700000000") {
  return "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[" +
         std::string(openid) + "]]></FromUserName><CreateTime>" + std::string(create_time) +
         "</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[" + std::string(event) +
         "]]></Event>" + std::string(event_key_element) + "</xml>";
}

// ---- WeCom customer contact --------------------------------------------------------------------

TEST(WeComEvents, SampleAddExternalContact) {
  auto e = ParseWeComEvent(kAddExternalContact);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->kind, WeComEventKind::kAddExternalContact);
  EXPECT_EQ(WeComEventKindName(e->kind), "add_external_contact");
  EXPECT_EQ(e->from_user_name, "sys");
  EXPECT_EQ(e->to_user_name, "…");
  EXPECT_EQ(e->event, "change_external_contact");
  EXPECT_EQ(e->change_type, "add_external_contact");
  EXPECT_EQ(e->create_time, 1403610513);
  EXPECT_EQ(e->contact.user_id, "zhangsan");
  EXPECT_EQ(e->contact.external_user_id, "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA");
  EXPECT_EQ(e->contact.state, "teststate");
  EXPECT_EQ(e->contact.welcome_code, "WELCOMECODE");
  EXPECT_EQ(e->dedup_key,
            "zhangsan|woAJ2GCAAAXtWyujaWJHDDGi0mAAAA|add_external_contact|1403610513");
}

TEST(WeComEvents, OtherContactChangeTypes) {
  struct Case {
    const char* change_type;
    WeComEventKind kind;
    const char* extra;
  };
  const Case kCases[] = {
      {"add_half_external_contact", WeComEventKind::kAddHalfExternalContact,
       "<State><![CDATA[s1]]></State><WelcomeCode><![CDATA[W]]></WelcomeCode>"},
      {"edit_external_contact", WeComEventKind::kEditExternalContact, ""},
      {"del_external_contact", WeComEventKind::kDelExternalContact,
       "<Source><![CDATA[DELETE_BY_TRANSFER]]></Source>"},
      {"del_follow_user", WeComEventKind::kDelFollowUser, ""},
      {"transfer_fail", WeComEventKind::kTransferFail,
       "<FailReason><![CDATA[customer_refused]]></FailReason>"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.change_type);
    auto e = ParseWeComEvent(ContactXml(c.change_type, "lisi", "wmEXT", "1700000001", c.extra));
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_EQ(e->kind, c.kind);
    EXPECT_EQ(WeComEventKindName(e->kind), c.change_type);
    EXPECT_EQ(e->contact.user_id, "lisi");
    EXPECT_EQ(e->contact.external_user_id, "wmEXT");
    EXPECT_EQ(e->dedup_key, std::string("lisi|wmEXT|") + c.change_type + "|1700000001");
  }
  auto half = ParseWeComEvent(
      ContactXml("add_half_external_contact", "u", "x", "1", "<State><![CDATA[s1]]></State>"));
  EXPECT_EQ(half->contact.state, "s1");
  EXPECT_EQ(half->contact.welcome_code, "");  // the console sends the welcome itself
  auto del = ParseWeComEvent(ContactXml("del_external_contact", "u", "x", "1",
                                        "<Source><![CDATA[DELETE_BY_TRANSFER]]></Source>"));
  EXPECT_EQ(del->contact.source, "DELETE_BY_TRANSFER");
  auto fail = ParseWeComEvent(ContactXml("transfer_fail", "u", "x", "1",
                                         "<FailReason><![CDATA[customer_refused]]></FailReason>"));
  EXPECT_EQ(fail->contact.fail_reason, "customer_refused");
}

TEST(WeComEvents, MissingRequiredFieldsAreMalformedXmlNamingTheField) {
  std::string no_external = kAddExternalContact;
  no_external.erase(
      no_external.find("<ExternalUserID>"),
      no_external.find("</ExternalUserID>") + 17 - no_external.find("<ExternalUserID>"));
  auto e = ParseWeComEvent(no_external);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), ErrorCode::kMalformedXml);
  EXPECT_EQ(e.status().field(), "ExternalUserID");

  e = ParseWeComEvent(ContactXml("add_external_contact", "", "x", "1"));
  EXPECT_EQ(e.status().field(), "UserID");

  std::string no_time = kAddExternalContact;
  no_time.erase(no_time.find("<CreateTime>"),
                std::string("<CreateTime>1403610513</CreateTime>").size());
  e = ParseWeComEvent(no_time);
  EXPECT_EQ(e.status().code(), ErrorCode::kMalformedXml);
  EXPECT_EQ(e.status().field(), "CreateTime");

  e = ParseWeComEvent(ContactXml("add_external_contact", "u", "x", "14036105l3"));
  EXPECT_EQ(e.status().code(), ErrorCode::kMalformedXml);
  EXPECT_EQ(e.status().field(), "CreateTime");
  e = ParseWeComEvent(ContactXml("add_external_contact", "u", "x", "-1"));
  EXPECT_EQ(e.status().field(), "CreateTime");
}

TEST(WeComEvents, NotXmlOrWrongRoot) {
  for (const char* bad : {"", "{\"Event\":\"change_external_contact\"}",
                          "<xml><UserID>zhangsan</UserID>", "<xml><a></b></xml>"}) {
    auto e = ParseWeComEvent(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.status().code(), ErrorCode::kMalformedXml) << bad;
  }
  auto e = ParseWeComEvent("<root><Event>change_external_contact</Event></root>");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().field(), "xml");
}

TEST(WeComEvents, UnknownEventsParseAsUnknown) {
  // A new event, a new ChangeType of a known event, and a plain message.
  auto tag = ParseWeComEvent(
      "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
      "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
      "<Event><![CDATA[change_external_tag]]></Event><Id><![CDATA[et1]]></Id>"
      "<TagType><![CDATA[tag]]></TagType><ChangeType><![CDATA[create]]></ChangeType></xml>");
  ASSERT_TRUE(tag.ok()) << tag.status().ToString();
  EXPECT_EQ(tag->kind, WeComEventKind::kUnknown);
  EXPECT_EQ(tag->event, "change_external_tag");
  EXPECT_EQ(tag->create_time, 1700000000);
  EXPECT_EQ(tag->dedup_key, "sys|event|change_external_tag|create|1700000000");

  auto future = ParseWeComEvent(ContactXml("some_future_change", "", "", "1700000000"));
  ASSERT_TRUE(future.ok());
  EXPECT_EQ(future->kind, WeComEventKind::kUnknown);
  EXPECT_EQ(future->change_type, "some_future_change");

  auto text = ParseWeComEvent(
      "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
      "<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n"
      "<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n"
      "<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->kind, WeComEventKind::kUnknown);
  EXPECT_EQ(text->msg_type, "text");
  EXPECT_EQ(text->dedup_key, "MsgId|4561255354251345929");

  // Even a bare <xml/> is not an error: nothing recognised, nothing required.
  auto bare = ParseWeComEvent("<xml/>");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->kind, WeComEventKind::kUnknown);
}

// ---- WeCom customer groups ---------------------------------------------------------------------

TEST(WeComEvents, ExternalChatCreateUpdateDismiss) {
  auto create = ParseWeComEvent(ChatXml("create", ""));
  ASSERT_TRUE(create.ok()) << create.status().ToString();
  EXPECT_EQ(create->kind, WeComEventKind::kExternalChatCreate);
  EXPECT_EQ(create->chat.chat_id, "wrQZBhCgAA6rFGKQu3osnYwomDJLlgzg");
  EXPECT_EQ(create->dedup_key, "wrQZBhCgAA6rFGKQu3osnYwomDJLlgzg|create||1648458575|");

  auto add = ParseWeComEvent(
      ChatXml("update",
              "  <UpdateDetail><![CDATA[add_member]]></UpdateDetail>\n  <JoinScene>3</JoinScene>\n"
              "  <MemChangeCnt>2</MemChangeCnt>\n"
              "  <MemChangeList>\n    <Item><![CDATA[wmJack]]></Item>\n    <Item>Rose</Item>\n"
              "  </MemChangeList>\n  <LastMemVer><![CDATA[9c3f]]></LastMemVer>\n"
              "  <CurMemVer><![CDATA[7121]]></CurMemVer>\n"));
  ASSERT_TRUE(add.ok()) << add.status().ToString();
  EXPECT_EQ(add->kind, WeComEventKind::kExternalChatUpdate);
  EXPECT_EQ(add->chat.update_detail, "add_member");
  EXPECT_EQ(add->chat.join_scene, 3);
  EXPECT_FALSE(add->chat.quit_scene.has_value());
  EXPECT_EQ(add->chat.mem_change_cnt, 2);
  EXPECT_EQ(add->chat.mem_change_list, (std::vector<std::string>{"wmJack", "Rose"}));
  EXPECT_EQ(add->chat.last_mem_ver, "9c3f");
  EXPECT_EQ(add->chat.cur_mem_ver, "7121");
  EXPECT_EQ(add->dedup_key, "wrQZBhCgAA6rFGKQu3osnYwomDJLlgzg|update|add_member|1648458575|7121");
  // A second join in the same second has the next member version: not a duplicate.
  auto add2 = ParseWeComEvent(
      ChatXml("update", "<UpdateDetail>add_member</UpdateDetail><CurMemVer>7122</CurMemVer>"));
  ASSERT_TRUE(add2.ok()) << add2.status().ToString();
  EXPECT_NE(add2->dedup_key, add->dedup_key);

  auto del = ParseWeComEvent(ChatXml("update",
                                     "<UpdateDetail>del_member</UpdateDetail><QuitScene>1</"
                                     "QuitScene><MemChangeCnt>3</MemChangeCnt>"
                                     "<MemChangeList><![CDATA[a, b,,c]]></MemChangeList>"));
  ASSERT_TRUE(del.ok()) << del.status().ToString();
  EXPECT_EQ(del->chat.quit_scene, 1);
  EXPECT_EQ(del->chat.mem_change_list, (std::vector<std::string>{"a", "b", "c"}));

  auto rename = ParseWeComEvent(ChatXml("update", "<UpdateDetail>change_name</UpdateDetail>"));
  ASSERT_TRUE(rename.ok());
  EXPECT_TRUE(rename->chat.mem_change_list.empty());
  EXPECT_FALSE(rename->chat.mem_change_cnt.has_value());

  auto dismiss = ParseWeComEvent(ChatXml("dismiss", ""));
  ASSERT_TRUE(dismiss.ok());
  EXPECT_EQ(dismiss->kind, WeComEventKind::kExternalChatDismiss);
  EXPECT_EQ(WeComEventKindName(dismiss->kind), "external_chat_dismiss");
}

TEST(WeComEvents, ExternalChatRequiredFields) {
  auto e = ParseWeComEvent(ChatXml("update", "<JoinScene>0</JoinScene>"));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), ErrorCode::kMalformedXml);
  EXPECT_EQ(e.status().field(), "UpdateDetail");

  std::string no_chat = ChatXml("create", "");
  no_chat.erase(no_chat.find("<ChatId>"), no_chat.find("</ChatId>") + 9 - no_chat.find("<ChatId>"));
  e = ParseWeComEvent(no_chat);
  EXPECT_EQ(e.status().field(), "ChatId");

  e = ParseWeComEvent(ChatXml("update",
                              "<UpdateDetail>add_member</UpdateDetail>"
                              "<MemChangeCnt>two</MemChangeCnt>"));
  EXPECT_EQ(e.status().code(), ErrorCode::kMalformedXml);
  EXPECT_EQ(e.status().field(), "MemChangeCnt");
}

// ---- Deduplication -----------------------------------------------------------------------------

TEST(WeComEvents, RetriesAreDuplicatesButSimultaneousEventsAreNot) {
  std::set<std::string> seen;
  auto accept = [&](const std::string& xml) {
    auto e = ParseWeComEvent(xml);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return seen.insert(e->dedup_key).second;
  };
  // The platform retries the same callback: only the first is processed.
  EXPECT_TRUE(accept(kAddExternalContact));
  EXPECT_FALSE(accept(kAddExternalContact));
  EXPECT_FALSE(accept(kAddExternalContact));
  // Same second, all from "sys": two customers scanning the same staff member's code, one customer
  // adding two staff members, and an add followed by a delete. A FromUserName+CreateTime key
  // would keep only the first of these.
  EXPECT_TRUE(accept(ContactXml("add_external_contact", "zhangsan", "wmOTHER", "1403610513")));
  EXPECT_TRUE(accept(
      ContactXml("add_external_contact", "lisi", "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA", "1403610513")));
  EXPECT_TRUE(accept(ContactXml("del_external_contact", "zhangsan",
                                "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA", "1403610513")));
  // The same customer re-added later is a new event.
  EXPECT_TRUE(accept(ContactXml("add_external_contact", "zhangsan",
                                "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA", "1403610999")));
  // Chat: a join and a rename in the same second are two events; a retried join is not.
  std::string join = ChatXml("update", "<UpdateDetail>add_member</UpdateDetail>");
  EXPECT_TRUE(accept(join));
  EXPECT_FALSE(accept(join));
  EXPECT_TRUE(accept(ChatXml("update", "<UpdateDetail>change_name</UpdateDetail>")));
  EXPECT_TRUE(accept(ChatXml("create", "")));
}

TEST(WeComEvents, EveryPrefixOfTheSampleFailsCleanly) {
  std::string xml = kAddExternalContact;
  for (size_t n = 0; n < xml.size(); ++n) {
    auto e = ParseWeComEvent(xml.substr(0, n));
    ASSERT_FALSE(e.ok()) << n;
    EXPECT_EQ(e.status().code(), ErrorCode::kMalformedXml) << n;
  }
}

// ---- Official Account --------------------------------------------------------------------------

TEST(OfficialAccountEvents, SubscribeUnsubscribeScan) {
  auto plain = ParseOfficialAccountEvent(OaXml("subscribe", "<EventKey><![CDATA[]]></EventKey>"));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->kind, OfficialAccountEventKind::kSubscribe);
  EXPECT_EQ(plain->openid, "oABC123");
  EXPECT_EQ(plain->scene, "");
  EXPECT_EQ(plain->create_time, 1700000000);
  EXPECT_EQ(plain->dedup_key, "oABC123|subscribe|1700000000|");

  auto no_key = ParseOfficialAccountEvent(OaXml("subscribe", ""));
  ASSERT_TRUE(no_key.ok());
  EXPECT_EQ(no_key->scene, "");

  auto scene = ParseOfficialAccountEvent(
      OaXml("subscribe",
            "<EventKey><![CDATA[qrscene_ch_4fZ]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>"));
  ASSERT_TRUE(scene.ok());
  EXPECT_EQ(scene->kind, OfficialAccountEventKind::kSubscribe);
  EXPECT_EQ(scene->scene, "ch_4fZ");
  EXPECT_EQ(scene->event_key, "qrscene_ch_4fZ");
  EXPECT_EQ(scene->ticket, "TICKET");
  EXPECT_EQ(scene->dedup_key, "oABC123|subscribe|1700000000|qrscene_ch_4fZ");

  auto scan = ParseOfficialAccountEvent(
      OaXml("SCAN", "<EventKey><![CDATA[123]]></EventKey><Ticket><![CDATA[T]]></Ticket>"));
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->kind, OfficialAccountEventKind::kScan);
  EXPECT_EQ(OfficialAccountEventKindName(scan->kind), "scan");
  EXPECT_EQ(scan->scene, "123");
  EXPECT_EQ(scan->dedup_key, "oABC123|SCAN|1700000000|123");

  auto unsub = ParseOfficialAccountEvent(OaXml("unsubscribe", "<EventKey><![CDATA[]]></EventKey>"));
  ASSERT_TRUE(unsub.ok());
  EXPECT_EQ(unsub->kind, OfficialAccountEventKind::kUnsubscribe);
}

TEST(OfficialAccountEvents, UnknownAndMalformed) {
  auto click = ParseOfficialAccountEvent(OaXml("CLICK", "<EventKey><![CDATA[MENU_1]]></EventKey>"));
  ASSERT_TRUE(click.ok());
  EXPECT_EQ(click->kind, OfficialAccountEventKind::kUnknown);
  EXPECT_EQ(click->event, "CLICK");

  auto text = ParseOfficialAccountEvent(
      "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>"
      "<CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType>"
      "<Content><![CDATA[hi]]></Content><MsgId>42</MsgId></xml>");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->kind, OfficialAccountEventKind::kUnknown);
  EXPECT_EQ(text->dedup_key, "MsgId|42");

  auto e = ParseOfficialAccountEvent(OaXml("SCAN", ""));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), ErrorCode::kMalformedXml);
  EXPECT_EQ(e.status().field(), "EventKey");

  e = ParseOfficialAccountEvent(OaXml("subscribe", "", ""));
  EXPECT_EQ(e.status().field(), "FromUserName");
  e = ParseOfficialAccountEvent(OaXml("subscribe", "", "o1", ""));
  EXPECT_EQ(e.status().field(), "CreateTime");
  e = ParseOfficialAccountEvent("<xml><FromUserName>o1</FromUserName>");
  EXPECT_EQ(e.status().code(), ErrorCode::kMalformedXml);
}

TEST(OfficialAccountEvents, DedupKeepsSimultaneousScansOfDifferentCodes) {
  std::set<std::string> seen;
  auto accept = [&](const std::string& xml) {
    auto e = ParseOfficialAccountEvent(xml);
    EXPECT_TRUE(e.ok());
    return seen.insert(e->dedup_key).second;
  };
  std::string scan_a = OaXml("SCAN", "<EventKey>a</EventKey>");
  EXPECT_TRUE(accept(scan_a));
  EXPECT_FALSE(accept(scan_a));  // retry
  EXPECT_TRUE(accept(OaXml("SCAN", "<EventKey>b</EventKey>")));
  EXPECT_TRUE(accept(OaXml("SCAN", "<EventKey>a</EventKey>", "oOTHER")));
  EXPECT_TRUE(accept(OaXml("unsubscribe", "")));
}

}  // namespace
}  // namespace siyu::wechat
