// People (用户): one row per person a brand knows, reached through external ids (an openid per
// app, a unionid, a phone number). Upsert by external id: the first call creates the person and
// records the channel that brought them (first touch, kept for ever); later calls with a channel
// move only the last touch. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/fact_scope.h"
#include "store/store.h"

namespace siyu::domain {

class Identity;

// A parsed, canonical external id, in the grammar of src/domain/identity/external_id.h:
// "openid:<app>:<id>", "unionid:<id>", "external_userid:<corp>:<id>" (a WeCom customer),
// "phone:+<digits>", "member_no:<id>", "custom:<namespace>:<id>".
struct ExternalId {
  std::string kind;
  std::string canonical;
};
// INVALID_FIELD (field `field`) when `s` is not a supported, well-formed id.
StatusOr<ExternalId> ParseExternalId(std::string_view s, const std::string& field = "external_id");

// A person as callers see it: when person rows were merged (identity.h), the survivor (the oldest
// row) with the ids of every merged row; its name, first touch and acquisition are the survivor's.
struct Person {
  int64_t id = 0;
  std::vector<int64_t> merged_from;  // the other person rows merged into this one, ascending
  std::optional<std::string> name;
  std::vector<std::string> external_ids;
  std::optional<int64_t> first_channel_id;
  std::optional<int64_t> last_channel_id;
  int64_t acquired_at = 0;
  int64_t created_at = 0;
};

struct PersonUpsert {
  ExternalId external_id;
  std::optional<std::string> channel_state;
  std::optional<int64_t> acquired_at;
  std::optional<std::string> name;
};

struct PersonPage {
  std::vector<Person> items;
  std::optional<int64_t> next_after;
};

class People {
 public:
  People(store::Store& store, Identity& identity) : store_(store), identity_(identity) {}
  // Returns the person and whether it was created.
  StatusOr<std::pair<Person, bool>> Upsert(int64_t tenant_id, const PersonUpsert& in);
  // Held from before a person is written until the observer has run.
  void SetFactScope(FactScope fn) { fact_scope_ = std::move(fn); }
  // Called after Upsert created a person, once committed.
  void SetCreatedObserver(std::function<void(int64_t tenant_id, int64_t person_id)> fn) {
    created_observer_ = std::move(fn);
  }
  // The person `id` belongs to (`id` may be a row merged into another: the answer is that one).
  StatusOr<Person> Get(int64_t tenant_id, int64_t id);
  StatusOr<Person> FindByExternalId(int64_t tenant_id, const ExternalId& id);
  // Persons (merged rows once, as their survivor) by id.
  StatusOr<PersonPage> List(int64_t tenant_id, int64_t after, int limit);

 private:
  store::Store& store_;
  Identity& identity_;
  std::function<void(int64_t, int64_t)> created_observer_;
  FactScope fact_scope_;
};

// Inside a transaction: the person row `id` in the tenant (NOT_FOUND otherwise) with the ids of
// the rows in `members` (its merged person's rows; empty: just its own).
StatusOr<Person> LoadPerson(store::Conn& c, int64_t tenant_id, int64_t id,
                            const std::vector<int64_t>& members = {});
// Inside a write: a new person row (an origin person) with no ids yet, numbered `id` when given
// (Identity::NewPersonRow), else by the store.
StatusOr<int64_t> CreateOriginPerson(store::Conn& c, int64_t tenant_id,
                                     std::optional<int64_t> channel_id, int64_t acquired_at,
                                     const std::optional<std::string>& name, int64_t now,
                                     std::optional<int64_t> id = std::nullopt);
// Inside a write: attaches `id` (not yet anybody's) to person row `person` in the store and in the
// identity graph.
Status AttachId(store::Conn& c, Identity& identity, int64_t tenant_id, const ExternalId& id,
                int64_t person, int64_t now);

}  // namespace siyu::domain
