#include "api/csv_import.h"

#include <atomic>
#include <charconv>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "api/codec.h"
#include "api/csv.h"
#include "common/json.h"
#include "common/time.h"

namespace siyu::api {

namespace {

struct Row {
  int64_t line = 0;
  // field → raw text, only non-empty cells
  std::map<std::string, std::string> values;
  std::optional<std::string> Get(const std::string& field) const {
    auto it = values.find(field);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
};

// Reads the header and every record into rows keyed by field name.
StatusOr<std::vector<Row>> ReadRows(std::string csv, const std::vector<std::string>& fields,
                                    const std::map<std::string, std::string>& mapping,
                                    std::vector<ImportRowError>* errors) {
  for (const auto& [field, column] : mapping) {
    if (std::find(fields.begin(), fields.end(), field) == fields.end()) {
      return InvalidField("mapping", "unknown field '" + field + "' in the column mapping");
    }
  }
  CsvReader reader(std::move(csv));
  ASSIGN_OR_RETURN(auto header, reader.Next());
  if (!header) return InvalidField("file", "the file is empty; the first row must name columns");
  std::map<std::string, size_t> index;        // field → column index
  std::map<std::string, std::string> prefix;  // field → text put before each cell
  for (const auto& field : fields) {
    auto m = mapping.find(field);
    std::string column = m != mapping.end() ? m->second : field;
    auto find = [&](const std::string& name) {
      return std::find(header->fields.begin(), header->fields.end(), name);
    };
    auto it = find(column);
    // "phone:手机号" maps a column of bare numbers to ids of one kind.
    for (const char* kind : {"phone:", "unionid:", "member_no:"}) {
      if (it == header->fields.end() && column.starts_with(kind) &&
          find(column.substr(strlen(kind))) != header->fields.end()) {
        prefix[field] = kind;
        column = column.substr(strlen(kind));
        it = find(column);
      }
    }
    if (it != header->fields.end()) {
      index[field] = static_cast<size_t>(it - header->fields.begin());
    } else if (m != mapping.end()) {
      return InvalidField("mapping",
                          "column '" + column + "' (for " + field + ") is not in the header row");
    }
  }
  std::vector<Row> rows;
  for (;;) {
    auto rec = reader.Next();
    if (!rec.ok()) {
      // A broken quote makes the rest of the file unreadable: report it and stop there.
      errors->push_back(
          {0, std::string(ErrorCodeName(rec.status().code())), "", rec.status().message()});
      break;
    }
    if (!*rec) break;
    Row row;
    row.line = (*rec)->line;
    for (const auto& [field, col] : index) {
      if (col < (*rec)->fields.size() && !(*rec)->fields[col].empty()) {
        auto p = prefix.find(field);
        row.values[field] = (p == prefix.end() ? "" : p->second) + (*rec)->fields[col];
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// An integer cell as a JSON integer; anything else stays text so the codec names the field.
json::value IntCell(const std::string& s) {
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return v;
  return json::value(s);
}

StatusOr<int64_t> TimeCell(const std::string& s, const std::string& field) {
  if (auto t = ParseTimeParam(s)) return *t;
  // "YYYY-MM-DD HH:MM[:SS]" in the tenant time zone.
  if (s.size() >= 16 && s[10] == ' ') {
    if (auto day = ParseTimeParam(s.substr(0, 10))) {
      int h = -1, m = -1, sec = 0;
      auto num = [&](size_t pos, int& out) {
        auto r = std::from_chars(s.data() + pos, s.data() + pos + 2, out);
        return r.ec == std::errc() && r.ptr == s.data() + pos + 2;
      };
      bool ok = s[13] == ':' && num(11, h) && num(14, m) &&
                (s.size() == 16 || (s.size() == 19 && s[16] == ':' && num(17, sec)));
      if (ok && h < 24 && m < 60 && sec < 60) {
        return *day + ((h * 60 + m) * 60 + sec) * int64_t{1000};
      }
    }
  }
  return InvalidField(field, field + " '" + s.substr(0, 40) +
                                 "' must be milliseconds, YYYY-MM-DD or YYYY-MM-DD HH:MM:SS");
}

// "49.9" / "49.90" / "49" yuan → fen, exactly.
StatusOr<int64_t> YuanCell(const std::string& s) {
  size_t dot = s.find('.');
  std::string whole = s.substr(0, dot), frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  int64_t w = 0, f = 0;
  auto bad = [&] {
    return Status(ErrorCode::kInvalidField,
                  "unit_price '" + s.substr(0, 40) + "' must be yuan with at most 2 decimals",
                  "unit_price");
  };
  if (whole.empty() || whole.size() > 12 || frac.size() > 2) return bad();
  auto r = std::from_chars(whole.data(), whole.data() + whole.size(), w);
  if (r.ec != std::errc() || r.ptr != whole.data() + whole.size() || w < 0) return bad();
  if (!frac.empty()) {
    r = std::from_chars(frac.data(), frac.data() + frac.size(), f);
    if (r.ec != std::errc() || r.ptr != frac.data() + frac.size()) return bad();
    if (frac.size() == 1) f *= 10;
  }
  return w * 100 + f;
}

ImportRowError RowError(int64_t line, const Status& s) {
  return {line, std::string(ErrorCodeName(s.code())), s.field(), s.message()};
}

// Runs `fn(i)` for i in [0, n) on `threads` threads; the store batches their writes.
void RunParallel(size_t n, int threads, const std::function<void(size_t)>& fn,
                 const std::function<void(int64_t, int64_t)>& progress) {
  std::atomic<size_t> next{0}, done{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) {
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < n;) {
        fn(i);
        size_t d = ++done;
        if (progress && (d % 1000 == 0 || d == n)) progress(static_cast<int64_t>(d), n);
      }
    });
  }
  for (auto& th : pool) th.join();
}

struct Outcome {
  Status status;
  bool created = false;
  bool updated = false;
};

void Tally(const std::vector<int64_t>& lines, const std::vector<Outcome>& outcomes,
           ImportSummary* sum) {
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (!outcomes[i].status.ok()) {
      sum->failed++;
      sum->errors.push_back(RowError(lines[i], outcomes[i].status));
    } else if (outcomes[i].created) {
      sum->created++;
    } else if (outcomes[i].updated) {
      sum->updated++;
    } else {
      sum->unchanged++;
    }
  }
  std::stable_sort(sum->errors.begin(), sum->errors.end(),
                   [](const auto& a, const auto& b) { return a.line < b.line; });
}

}  // namespace

StatusOr<ImportSummary> ImportPeople(domain::People& people, int64_t tenant_id, std::string csv,
                                     const ImportOptions& options) {
  ImportSummary sum;
  ASSIGN_OR_RETURN(std::vector<Row> rows,
                   ReadRows(std::move(csv), {"external_id", "name", "channel_state", "acquired_at"},
                            options.mapping, &sum.errors));
  sum.rows = static_cast<int64_t>(rows.size());
  std::vector<Outcome> outcomes(rows.size());
  int64_t now = NowMs();
  RunParallel(
      rows.size(), options.concurrency,
      [&](size_t i) {
        const Row& row = rows[i];
        json::object body;
        for (const char* f : {"external_id", "name", "channel_state"}) {
          if (auto v = row.Get(f)) body[f] = *v;
        }
        if (auto v = row.Get("acquired_at")) {
          auto t = TimeCell(*v, "acquired_at");
          if (!t.ok()) {
            outcomes[i].status = t.status();
            return;
          }
          body["acquired_at"] = *t;
        }
        auto in = ParsePersonUpsert(siyu::ToJson(body), now);
        if (!in.ok()) {
          outcomes[i].status = in.status();
          return;
        }
        auto res = people.Upsert(tenant_id, *in);
        if (!res.ok()) {
          outcomes[i].status = res.status();
          return;
        }
        outcomes[i].created = res->second;
      },
      options.progress);
  std::vector<int64_t> lines;
  for (const auto& r : rows) lines.push_back(r.line);
  Tally(lines, outcomes, &sum);
  return sum;
}

StatusOr<ImportSummary> ImportOrders(domain::Orders& orders, int64_t tenant_id, std::string csv,
                                     const ImportOptions& options) {
  ImportSummary sum;
  const std::vector<std::string> fields = {
      "order_no",       "external_id", "person_id", "sku",     "category",   "quantity",
      "unit_price_fen", "unit_price",  "total_fen", "paid_at", "refunded_at"};
  ASSIGN_OR_RETURN(std::vector<Row> rows,
                   ReadRows(std::move(csv), fields, options.mapping, &sum.errors));
  // Group the rows of each order_no, in order of first appearance.
  struct Group {
    std::vector<const Row*> rows;
    Status status;
  };
  std::vector<Group> groups;
  std::map<std::string, size_t> by_no;
  for (const Row& row : rows) {
    auto no = row.Get("order_no");
    if (!no) {
      sum.failed++;
      sum.errors.push_back({row.line, "MISSING_FIELD", "order_no", "order_no is empty"});
      continue;
    }
    auto [it, fresh] = by_no.emplace(*no, groups.size());
    if (fresh) groups.emplace_back();
    Group& g = groups[it->second];
    // Order-level cells must agree across the lines of one order.
    if (!g.rows.empty() && g.status.ok()) {
      for (const char* f : {"external_id", "person_id", "paid_at", "total_fen", "refunded_at"}) {
        auto a = g.rows.front()->Get(f), b = row.Get(f);
        if (b && a != b) {
          g.status = InvalidField(
              f, std::string(f) + " on line " + std::to_string(row.line) + " differs from line " +
                     std::to_string(g.rows.front()->line) + " of the same order");
        }
      }
    }
    g.rows.push_back(&row);
  }
  sum.rows = static_cast<int64_t>(groups.size());
  std::vector<Outcome> outcomes(groups.size());
  int64_t now = NowMs();
  RunParallel(
      groups.size(), options.concurrency,
      [&](size_t i) {
        Group& g = groups[i];
        Outcome& out = outcomes[i];
        if (!g.status.ok()) {
          out.status = g.status;
          return;
        }
        const Row& first = *g.rows.front();
        json::object body;
        body["order_no"] = *first.Get("order_no");
        if (auto v = first.Get("external_id")) body["external_id"] = *v;
        if (auto v = first.Get("person_id")) body["person_id"] = IntCell(*v);
        json::array lines;
        int64_t sum_fen = 0;
        bool sum_known = true;
        for (const Row* r : g.rows) {
          json::object line;
          if (auto v = r->Get("sku")) line["sku"] = *v;
          if (auto v = r->Get("category")) line["category"] = *v;
          if (auto v = r->Get("quantity")) line["quantity"] = IntCell(*v);
          if (auto v = r->Get("unit_price_fen")) {
            line["unit_price_fen"] = IntCell(*v);
          } else if (auto y = r->Get("unit_price")) {
            auto fen = YuanCell(*y);
            if (!fen.ok()) {
              out.status = fen.status();
              return;
            }
            line["unit_price_fen"] = *fen;
          }
          auto q = line.if_contains("quantity");
          auto p = line.if_contains("unit_price_fen");
          if (q && p && q->is_int64() && p->is_int64() && q->as_int64() >= 0 &&
              q->as_int64() <= domain::kMaxQuantity && p->as_int64() >= 0 &&
              p->as_int64() <= domain::kMaxUnitPriceFen) {
            sum_fen += q->as_int64() * p->as_int64();
          } else {
            sum_known = false;
          }
          lines.emplace_back(std::move(line));
        }
        body["lines"] = std::move(lines);
        if (auto v = first.Get("total_fen")) {
          body["total_fen"] = IntCell(*v);
        } else if (sum_known) {
          body["total_fen"] = sum_fen;
        }
        if (auto v = first.Get("paid_at")) {
          auto t = TimeCell(*v, "paid_at");
          if (!t.ok()) {
            out.status = t.status();
            return;
          }
          body["paid_at"] = *t;
        }
        std::optional<int64_t> refunded_at;
        if (auto v = first.Get("refunded_at")) {
          auto t = TimeCell(*v, "refunded_at");
          if (!t.ok()) {
            out.status = t.status();
            return;
          }
          refunded_at = *t;
        }
        auto in = ParseNewOrder(siyu::ToJson(body), now);
        if (!in.ok()) {
          out.status = in.status();
          return;
        }
        std::string order_no = in->order_no;
        auto res = orders.Create(tenant_id, std::move(*in));
        if (!res.ok()) {
          out.status = res.status();
          return;
        }
        out.created = res->second;
        if (refunded_at && res->first.status != "refunded") {
          auto r = orders.Refund(tenant_id, order_no, std::string("imported"), refunded_at);
          if (!r.ok()) {
            out.status = r.status();
            return;
          }
          out.updated = !out.created;
        }
      },
      options.progress);
  std::vector<int64_t> lines;
  for (const auto& g : groups) lines.push_back(g.rows.front()->line);
  Tally(lines, outcomes, &sum);
  return sum;
}

StatusOr<ImportSummary> ImportTags(domain::Audience& audience, domain::People& people,
                                   int64_t tenant_id, std::string csv,
                                   const ImportOptions& options) {
  ImportSummary sum;
  ASSIGN_OR_RETURN(
      std::vector<Row> rows,
      ReadRows(std::move(csv), {"tag", "external_id", "person_id"}, options.mapping, &sum.errors));
  sum.rows = static_cast<int64_t>(rows.size());
  ASSIGN_OR_RETURN(std::vector<domain::AudienceTag> tags, audience.Tags(tenant_id));
  std::vector<Outcome> outcomes(rows.size());
  std::vector<int64_t> lines(rows.size()), person_of(rows.size(), 0), tag_of(rows.size(), 0);
  // The tag a cell names: "group/name", or a name unique across groups (else created ungrouped).
  auto tag_for = [&](const std::string& text) -> StatusOr<int64_t> {
    std::string group, name = text;
    const size_t slash = text.find('/');
    if (slash != std::string::npos) {
      group = text.substr(0, slash);
      name = text.substr(slash + 1);
    }
    const domain::AudienceTag* found = nullptr;
    for (const auto& t : tags) {
      if (t.name != name || (slash != std::string::npos && t.group != group)) continue;
      if (found) {
        return InvalidField(
            "tag", "several groups have a tag named '" + name + "'; write it as group/name");
      }
      found = &t;
    }
    if (!found) {
      ASSIGN_OR_RETURN(domain::AudienceTag t,
                       audience.CreateTag(tenant_id, domain::NewTag{group, name, std::nullopt}));
      tags.push_back(std::move(t));
      found = &tags.back();
    }
    if (found->rule) {
      return InvalidField("tag", "'" + text +
                                     "' is a rule tag: its members are computed from its rule; "
                                     "import into a manual tag");
    }
    return found->id;
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    lines[i] = row.line;
    Outcome& out = outcomes[i];
    auto tag = row.Get("tag");
    auto ext = row.Get("external_id");
    auto pid = row.Get("person_id");
    if (!tag) {
      out.status = Status(ErrorCode::kMissingField, "tag is empty", "tag");
      continue;
    }
    if (ext.has_value() == pid.has_value()) {
      out.status = Status(ErrorCode::kMissingField, "give exactly one of external_id and person_id",
                          "external_id");
      continue;
    }
    StatusOr<domain::Person> person = Status(ErrorCode::kInternal, "");
    if (pid) {
      int64_t id = 0;
      auto [p, ec] = std::from_chars(pid->data(), pid->data() + pid->size(), id);
      if (ec != std::errc() || p != pid->data() + pid->size() || id <= 0) {
        out.status = InvalidField("person_id", "person_id is a positive integer");
        continue;
      }
      person = people.Get(tenant_id, id);
    } else {
      auto parsed = domain::ParseExternalId(*ext);
      if (!parsed.ok()) {
        out.status = parsed.status();
        continue;
      }
      person = people.FindByExternalId(tenant_id, *parsed);
    }
    if (!person.ok()) {
      out.status = person.status().code() == ErrorCode::kNotFound
                       ? Status(ErrorCode::kUnknownPerson, "no such person in this tenant",
                                pid ? "person_id" : "external_id")
                       : person.status();
      continue;
    }
    auto t = tag_for(*tag);
    if (!t.ok()) {
      out.status = t.status().field().empty()
                       ? Status(t.status().code(), t.status().message(), "tag")
                       : t.status();
      continue;
    }
    person_of[i] = person->id;
    tag_of[i] = *t;
  }
  // Per tag, each person once, in calls of up to 10,000 people; the calls count who was new.
  std::map<int64_t, std::vector<size_t>> by_tag;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (outcomes[i].status.ok()) by_tag[tag_of[i]].push_back(i);
  }
  int64_t done = 0, added = 0;
  for (const auto& [tag, idx] : by_tag) {
    std::vector<int64_t> people;
    std::set<int64_t> seen;
    for (size_t i : idx) {
      if (seen.insert(person_of[i]).second) people.push_back(person_of[i]);
    }
    for (size_t k = 0; k < people.size(); k += 10'000) {
      domain::TagMembersChange change;
      change.add.assign(
          people.begin() + static_cast<std::ptrdiff_t>(k),
          people.begin() + static_cast<std::ptrdiff_t>(std::min(people.size(), k + 10'000)));
      ASSIGN_OR_RETURN(domain::TagMembersResult r,
                       audience.ChangeTagMembers(tenant_id, tag, change));
      added += static_cast<int64_t>(r.changed);
    }
    done += static_cast<int64_t>(idx.size());
    if (options.progress) options.progress(done, sum.rows);
  }
  // Valid rows count as unchanged, but for the memberships the calls added.
  Tally(lines, outcomes, &sum);
  sum.created += added;
  sum.unchanged -= added;
  return sum;
}

}  // namespace siyu::api
