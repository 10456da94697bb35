#include "store/postgres/pg_store.h"

#include <libpq-fe.h>

#include <unordered_map>

namespace siyu::store {
namespace {

std::string ToDollarParams(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  for (char c : sql) {
    if (c == '?') {
      out += '$';
      out += std::to_string(++n);
    } else {
      out += c;
    }
  }
  return out;
}

class PgConn final : public Conn {
 public:
  explicit PgConn(PGconn* c) : c_(c) {}
  ~PgConn() override { PQfinish(c_); }

  Dialect dialect() const override { return Dialect::kPostgres; }
  bool broken() const override { return PQstatus(c_) != CONNECTION_OK; }

  StatusOr<Rows> Query(std::string_view sql, const Params& params) override {
    PGresult* r = nullptr;
    RETURN_IF_ERROR(Run(sql, params, &r));
    Rows rows;
    int nr = PQntuples(r), nc = PQnfields(r);
    rows.reserve(nr);
    for (int i = 0; i < nr; ++i) {
      std::vector<Value> cols;
      cols.reserve(nc);
      for (int j = 0; j < nc; ++j) {
        if (PQgetisnull(r, i, j)) {
          cols.emplace_back(nullptr);
        } else {
          cols.emplace_back(std::string(PQgetvalue(r, i, j), PQgetlength(r, i, j)));
        }
      }
      rows.emplace_back(std::move(cols));
    }
    PQclear(r);
    return rows;
  }

  StatusOr<int64_t> Exec(std::string_view sql, const Params& params) override {
    PGresult* r = nullptr;
    RETURN_IF_ERROR(Run(sql, params, &r));
    const char* n = PQcmdTuples(r);
    int64_t changed = (n && *n) ? std::stoll(n) : 0;
    PQclear(r);
    return changed;
  }

  Status ExecScript(std::string_view sql) override {
    std::string s(sql);
    PGresult* r = PQexec(c_, s.c_str());
    Status st = Check(r, "exec script");
    PQclear(r);
    return st;
  }

 private:
  Status Run(std::string_view sql, const Params& params, PGresult** out) {
    std::string key(sql);
    auto it = prepared_.find(key);
    if (it == prepared_.end()) {
      std::string name = "s" + std::to_string(prepared_.size());
      PGresult* pr = PQprepare(c_, name.c_str(), ToDollarParams(sql).c_str(), 0, nullptr);
      Status st = Check(pr, "prepare");
      PQclear(pr);
      RETURN_IF_ERROR(st);
      it = prepared_.emplace(std::move(key), std::move(name)).first;
    }
    std::vector<std::string> text(params.size());
    std::vector<const char*> values(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      if (auto p = std::get_if<int64_t>(&params[i])) {
        text[i] = std::to_string(*p);
        values[i] = text[i].c_str();
      } else if (auto s = std::get_if<std::string>(&params[i])) {
        values[i] = s->c_str();
      } else if (auto r = std::get_if<TextRef>(&params[i])) {
        text[i] = std::string(r->text);  // libpq takes text parameters NUL-terminated
        values[i] = text[i].c_str();
      } else {
        values[i] = nullptr;
      }
    }
    PGresult* r = PQexecPrepared(c_, it->second.c_str(), static_cast<int>(params.size()),
                                 values.data(), nullptr, nullptr, 0);
    Status st = Check(r, "query");
    if (!st.ok()) {
      PQclear(r);
      return st;
    }
    *out = r;
    return Status::Ok();
  }

  Status Check(PGresult* r, std::string_view what) {
    ExecStatusType t = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) return Status::Ok();
    std::string msg = std::string(what) + ": " + PQerrorMessage(c_);
    if (broken()) return Status(ErrorCode::kStoreUnavailable, msg);
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string_view code = state ? state : "";
    if (code.substr(0, 2) == "23") return Status(ErrorCode::kAlreadyExists, msg);
    if (code == "40001" || code == "40P01" || code.substr(0, 2) == "53" ||
        code.substr(0, 2) == "57" || code.substr(0, 2) == "08") {
      return Status(ErrorCode::kStoreUnavailable, msg);
    }
    return Internal(msg);
  }

  PGconn* c_;
  std::unordered_map<std::string, std::string> prepared_;
};

class PgStore final : public Store {
 public:
  explicit PgStore(Options options) : Store(std::move(options)) {}
  ~PgStore() override { Shutdown(); }
  Dialect dialect() const override { return Dialect::kPostgres; }

  Status Init() {
    ASSIGN_OR_RETURN(auto conn, Connect());
    RETURN_IF_ERROR(Migrate(*conn));
    return Start();
  }

 protected:
  StatusOr<std::unique_ptr<Conn>> Connect() override {
    PGconn* c = PQconnectdb(options_.url.c_str());
    if (PQstatus(c) != CONNECTION_OK) {
      std::string msg = std::string("cannot connect to PostgreSQL: ") + PQerrorMessage(c);
      PQfinish(c);
      return Status(ErrorCode::kStoreUnavailable, msg);
    }
    auto conn = std::make_unique<PgConn>(c);
    RETURN_IF_ERROR(conn->ExecScript("SET client_min_messages = warning"));
    return std::unique_ptr<Conn>(std::move(conn));
  }
  std::string_view BeginWriteSql() const override { return "BEGIN"; }
  std::string_view BeginReadSql() const override {
    return "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
  }
  Status Migrate(Conn& conn) override {
    RETURN_IF_ERROR(conn.ExecScript("SELECT pg_advisory_lock(748201)"));
    Status s = ApplyMigrations(conn);
    (void)conn.ExecScript("SELECT pg_advisory_unlock(748201)");
    return s;
  }
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const Options& options) {
  auto store = std::make_unique<PgStore>(options);
  RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace siyu::store
