#include <iomanip>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <mpf/core/text.hpp>
#include <mpf/schema/migrations.hpp>
#include <mpf/server/conflict_log.hpp>

namespace mpf::server {
namespace {

std::string text_or_empty(const pqxx::field& f) { return f.is_null() ? "" : f.c_str(); }

}  // namespace

std::optional<double> parse_since_duration(const std::string& text) {
  static const std::regex kDuration(R"(^\s*([0-9]+(\.[0-9]+)?)\s*(s|min|h|d)\s*$)");
  std::smatch m;
  if (!std::regex_match(text, m, kDuration)) return std::nullopt;
  const double n = std::stod(m[1].str());
  const std::string unit = m[3].str();
  const double scale = unit == "s" ? 1 : unit == "min" ? 60 : unit == "h" ? 3600 : 86400;
  return n * scale;
}

Result<ConflictList> read_conflicts(const std::string& conninfo, const ConflictFilter& filter) {
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(conninfo);
  } catch (const std::exception& e) {
    return unavailable("could not connect to the node's database: " + one_line(e.what()) +
                       " (check that PostgreSQL runs and node.database is right)");
  }
  return read_conflicts(*conn, filter);
}

Result<ConflictList> read_conflicts(pqxx::connection& c, const ConflictFilter& filter) {
  auto* conn = &c;
  auto version = schema::installed_version(*conn, "catalog");
  if (!version) return version.status();
  if (*version == 0) {
    return failed_precondition(
        "the node's database has no mpfailover catalog (run mpfailover init-db)");
  }
  const std::optional<double> since_s =
      filter.since.empty() ? std::nullopt : parse_since_duration(filter.since);
  std::optional<std::string> since_time;
  if (!filter.since.empty() && !since_s) {
    try {
      pqxx::nontransaction q(*conn);
      since_time = q.exec_params("SELECT $1::timestamptz::text", filter.since)[0][0].c_str();
    } catch (const pqxx::data_exception&) {
      return invalid_argument("invalid --since \"" + filter.since +
                              "\": expected a duration (90s, 30min, 2h, 7d) or a time such as "
                              "\"2026-11-22 10:00\"");
    } catch (const std::exception& e) {
      return unavailable("could not read conflicts from the node's database: " +
                         one_line(e.what()));
    }
  }
  ConflictList list;
  try {
    pqxx::nontransaction q(*conn);
    auto rows = q.exec_params(
        "SELECT c.conflict_id, to_json(c.detected_at) #>> '{}', c.relation,"
        "  CASE WHEN r.key_columns IS NULL THEN to_json(c.key)::text ELSE"
        "    (SELECT json_object_agg(u.k, u.v)::text FROM unnest(r.key_columns, c.key) u(k, v))"
        "  END,"
        "  CASE WHEN r.key_columns IS NULL THEN array_to_string(c.key, ', ', 'NULL') ELSE"
        "    (SELECT string_agg(coalesce(u.k, '?') || '=' || coalesce(u.v, 'NULL'), ', ')"
        "     FROM unnest(r.key_columns, c.key) u(k, v))"
        "  END,"
        "  c.kind, c.winner_origin, to_json(to_timestamp(c.winner_hlc / 1e6)) #>> '{}',"
        "  c.loser_origin, to_json(to_timestamp(c.loser_hlc / 1e6)) #>> '{}', c.loser_op::text,"
        "  c.loser_image::text, c.loser_row::text, c.reason "
        "FROM mpfailover.conflict c "
        "LEFT JOIN mpfailover.replicated_table r ON r.relation = c.relation "
        "WHERE c.detected_at >= coalesce(now() - interval '1 second' * $1::float8,"
        "                                $2::timestamptz, '-infinity')"
        "  AND ($3::text IS NULL OR c.relation = $3"
        "       OR right(c.relation, length($3) + 1) = '.' || $3) "
        "ORDER BY c.detected_at DESC, c.conflict_id DESC LIMIT $4",
        since_s, since_time,
        filter.table.empty() ? std::optional<std::string>() : std::optional(filter.table),
        filter.limit + 1);
    for (const auto& r : rows) {
      if (static_cast<int64_t>(list.conflicts.size()) == filter.limit) {
        list.more = true;
        break;
      }
      ConflictRecord c;
      c.id = r[0].as<int64_t>();
      c.detected_at = r[1].c_str();
      c.table = r[2].c_str();
      c.key = text_or_empty(r[3]);
      c.key_text = text_or_empty(r[4]);
      c.kind = r[5].c_str();
      c.winner_origin = text_or_empty(r[6]);
      c.winner_time = text_or_empty(r[7]);
      c.loser_origin = text_or_empty(r[8]);
      c.loser_time = text_or_empty(r[9]);
      c.loser_op = text_or_empty(r[10]);
      c.loser_image = text_or_empty(r[11]);
      c.loser_row = text_or_empty(r[12]);
      c.reason = r[13].c_str();
      list.conflicts.push_back(std::move(c));
    }
  } catch (const std::exception& e) {
    return unavailable("could not read conflicts from the node's database: " + one_line(e.what()));
  }
  return list;
}

std::string format_conflicts(const ConflictList& list) {
  std::ostringstream out;
  if (list.conflicts.empty()) return "no conflicts\n";
  for (const auto& c : list.conflicts) {
    out << c.detected_at << "  " << c.table << " (" << c.key_text << ")  " << c.kind << "\n";
    if (!c.winner_origin.empty()) {
      out << "    won:  \"" << c.winner_origin << "\"";
      if (!c.winner_time.empty()) out << " (written " << c.winner_time << ")";
      out << "\n";
    }
    if (!c.loser_origin.empty()) {
      const std::string what = c.loser_op == "D"   ? "delete"
                               : c.loser_op == "I" ? "insert"
                                                   : "update";
      out << "    lost: " << what << " from \"" << c.loser_origin << "\"";
      if (!c.loser_time.empty()) out << " (written " << c.loser_time << ")";
      out << "\n";
    }
    out << "    why:  " << one_line(c.reason) << "\n";
  }
  out << list.conflicts.size() << (list.conflicts.size() == 1 ? " conflict" : " conflicts");
  if (list.more) out << " (more match: raise --limit or narrow --since/--table)";
  out << "\n";
  return out.str();
}

std::string conflicts_json(const ConflictList& list) {
  using json = nlohmann::ordered_json;
  auto opt = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json j;
  j["conflicts"] = json::array();
  for (const auto& c : list.conflicts) {
    j["conflicts"].push_back(
        {{"id", c.id},
         {"detected_at", c.detected_at},
         {"table", c.table},
         {"key", json::parse(c.key.empty() ? "null" : c.key)},
         {"kind", c.kind},
         {"winner_origin", opt(c.winner_origin)},
         {"winner_time", opt(c.winner_time)},
         {"loser_origin", opt(c.loser_origin)},
         {"loser_time", opt(c.loser_time)},
         {"loser_op", opt(c.loser_op)},
         {"loser_image", opt(c.loser_image)},
         {"loser_row", c.loser_row.empty() ? json(nullptr) : json::parse(c.loser_row)},
         {"reason", c.reason}});
  }
  j["count"] = list.conflicts.size();
  j["more"] = list.more;
  return j.dump();
}

}  // namespace mpf::server
