// mpf_bench_capture: what capture costs the application's writes.
//
// Measures source write throughput of a MeetingPlace-like mix (70% meeting schedule, update and
// cancel with participants, 25% user-profile edits, 5% group changes; 1 to 5 rows a transaction;
// several concurrent clients) with capture on, divided by the same with no capture, in the same
// PostgreSQL and the same run. Target: at least 0.90 (median of the rounds).
//
// Exit codes:
//   0  the benchmark ran; the RESULT line says whether the target was met
//   1  the benchmark failed (database error, a client died, capture wrote nothing)
//   2  usage error
//
// NOTES
// - Two databases in one cluster: "bench_plain" holds only the application tables,
//   "bench_capture" the same tables plus the catalog and the capture triggers. Both are dropped,
//   re-created and seeded identically at the start, so a run is repeatable and each side pays for
//   the same data volume, WAL, checkpoints and fsyncs.
// - Rounds alternate plain, capture, plain, capture, ... so that drift over the run (the page
//   cache warming, the tables growing, a neighbour's load) hits both sides alike; the medians
//   discard one unlucky round. Each round starts after VACUUM ANALYZE and CHECKPOINT, so neither
//   side inherits the other's dirty buffers or dead tuples.
// - Each client's generator is seeded from (client, round), never from the clock, so a run is
//   reproducible and plain round r draws the same random sequence as capture round r. The round
//   is in the seed because the generator also makes the new meetings' keys, which must not repeat
//   those of an earlier round in the same database.
// - Each client owns a disjoint share of the meetings and groups, so clients do not queue on each
//   other's row locks: contention would measure lock waits, not capture. User rows are shared,
//   but an update there holds one row lock for one statement.
// - Only transactions that commit inside the measured window count; the warm-up fills the caches
//   and the connection's plan cache first.
// - The capture side must prove it captured: every committed row must have a change_log row.
//   An empty log fails the run, so a broken trigger cannot pass as "no overhead".
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/program_options.hpp>
#include <pqxx/pqxx>

#include <mpf/replicator/capture.hpp>
#include <mpf/schema/migrations.hpp>

namespace {

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr double kTargetRatio = 0.90;
constexpr const char* kPlainDb = "bench_plain";
constexpr const char* kCaptureDb = "bench_capture";
constexpr const char* kNodeName = "a";

constexpr int kSeedUsers = 2000;
constexpr int kSeedGroups = 50;
constexpr int kSeedMembersPerGroup = 20;
constexpr int kSeedMeetings = 3000;

// A client that waits this long on one statement is stuck (a lock it will never get): failing
// the run beats hanging until the wrapper's time limit.
constexpr const char* kClientStatementTimeout = "30s";

const std::vector<std::string>& replicated_tables() {
  static const std::vector<std::string> kTables = {"users", "groups", "group_members", "meetings",
                                                   "meeting_participants"};
  return kTables;
}

struct Options {
  std::string conninfo;
  int clients = 4;
  int seconds = 10;
  int warmup_s = 2;
  int rounds = 3;
  std::string after_install_sql;  // file run in bench_capture after install_capture
};

// libpq keeps the last value of a repeated keyword, so appending overrides any dbname the base
// conninfo carries without having to parse it.
std::string db_conninfo(const Options& opts, const std::string& db) {
  return opts.conninfo + " dbname=" + db;
}

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

template <typename T>
T value_or_fail(mpf::Result<T> result, const std::string& context) {
  if (!result) fail(context + ": " + result.status().message());
  return std::move(result).value();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("could not open SQL file \"" + path + "\"");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// --- set-up ---------------------------------------------------------------------------------

void recreate_database(pqxx::connection& admin, const std::string& db) {
  pqxx::nontransaction n(admin);
  // FORCE: a client left over from an interrupted run must not keep the database alive.
  n.exec("DROP DATABASE IF EXISTS " + admin.quote_name(db) + " WITH (FORCE)");
  n.exec("CREATE DATABASE " + admin.quote_name(db));
}

// Deterministic keys (md5 of a name) and values, so both databases hold the same rows: the same
// table and index sizes on both sides of the comparison.
void seed(pqxx::connection& conn) {
  pqxx::work tx(conn);
  tx.exec_params(
      "INSERT INTO users (user_id, login, first_name, last_name, email, phone, time_zone, "
      "  privileges) "
      "SELECT md5('user' || i)::uuid, 'user' || i, 'First' || i, 'Last' || i, "
      "  'user' || i || '@example.com', '+1555' || lpad(i::text, 7, '0'), "
      "  (ARRAY['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Tokyo'])[1 + i % 4], "
      "  CASE WHEN i % 100 = 0 THEN 'attendant' ELSE 'end_user' END "
      "FROM generate_series(0, $1::int - 1) i",
      kSeedUsers);
  tx.exec_params(
      "INSERT INTO groups (group_id, name, description) "
      "SELECT md5('group' || g)::uuid, 'group' || g, 'Group number ' || g "
      "FROM generate_series(0, $1::int - 1) g",
      kSeedGroups);
  // A stride of 100 users keeps a group's members distinct.
  tx.exec_params(
      "INSERT INTO group_members (group_id, user_id, member_role) "
      "SELECT md5('group' || g)::uuid, md5('user' || ((g * 37 + j * 100) % $1::int))::uuid, "
      "  CASE WHEN j = 0 THEN 'owner' ELSE 'member' END "
      "FROM generate_series(0, $2::int - 1) g, generate_series(0, $3::int - 1) j",
      kSeedUsers, kSeedGroups, kSeedMembersPerGroup);
  // 40 minutes apart around the current hour: weeks of past meetings, one in progress, weeks of
  // future ones.
  tx.exec_params(
      "INSERT INTO meetings (meeting_id, meeting_number, subject, owner_id, starts_at, "
      "  duration_minutes, recurrence, status, ports) "
      "SELECT md5('meeting' || m)::uuid, lpad(m::text, 8, '0'), 'Meeting ' || m, "
      "  md5('user' || (m * 7 % $1::int))::uuid, s.starts_at, 30 + 15 * (m % 4), "
      "  CASE WHEN m % 10 = 0 THEN 'FREQ=WEEKLY;COUNT=10' END, "
      "  CASE WHEN s.starts_at + interval '1 hour' < now() THEN 'completed' "
      "       WHEN s.starts_at < now() THEN 'in_progress' ELSE 'scheduled' END, "
      "  10 + m % 20 "
      "FROM generate_series(0, $2::int - 1) m, "
      "  LATERAL (SELECT date_trunc('hour', now()) + (m - $2::int / 2) "
      "    * interval '40 minutes' AS starts_at) s",
      kSeedUsers, kSeedMeetings);
  // 1 to 4 participants a meeting; every third one a guest with no user.
  tx.exec_params(
      "INSERT INTO meeting_participants (meeting_id, participant_id, user_id, display_name, "
      "  email, participant_role) "
      "SELECT md5('meeting' || m)::uuid, md5('participant' || m || '.' || p)::uuid, "
      "  CASE WHEN p % 3 = 2 THEN NULL "
      "       ELSE md5('user' || ((m * 13 + p * 101) % $1::int))::uuid END, "
      "  'Participant ' || m || '.' || p, 'p' || m || '.' || p || '@example.com', "
      "  CASE WHEN p = 1 THEN 'host' ELSE 'attendee' END "
      "FROM generate_series(0, $2::int - 1) m, generate_series(1, 1 + m % 4) p",
      kSeedUsers, kSeedMeetings);
  tx.commit();
}

void set_up(const Options& opts) {
  {
    pqxx::connection admin(opts.conninfo);
    recreate_database(admin, kPlainDb);
    recreate_database(admin, kCaptureDb);
  }
  {
    pqxx::connection conn(db_conninfo(opts, kPlainDb));
    value_or_fail(mpf::schema::migrate(conn, "app"), std::string("database \"") + kPlainDb + "\"");
    seed(conn);
  }
  pqxx::connection conn(db_conninfo(opts, kCaptureDb));
  const std::string context = std::string("database \"") + kCaptureDb + "\"";
  value_or_fail(mpf::schema::migrate(conn, "catalog"), context);
  value_or_fail(mpf::schema::migrate(conn, "app"), context);
  // Seeding before capture is installed leaves the log empty, as a fresh node's would be.
  seed(conn);
  value_or_fail(mpf::replicator::install_capture(conn, kNodeName, replicated_tables()), context);
  if (!opts.after_install_sql.empty()) {
    pqxx::work tx(conn);
    tx.exec(read_file(opts.after_install_sql));
    tx.commit();
  }
  pqxx::work tx(conn);
  const auto triggers =
      tx.exec("SELECT count(*) FROM pg_trigger WHERE tgname = 'mpfailover_capture'")[0][0]
          .as<int>();
  if (triggers != static_cast<int>(replicated_tables().size())) {
    fail(context + ": " + std::to_string(triggers) + " capture triggers installed, expected " +
         std::to_string(replicated_tables().size()));
  }
  // A variant's SQL may have written through capture; rounds must start from an empty log.
  tx.exec("DELETE FROM mpfailover.change_log");
  tx.commit();
}

// --- workload -------------------------------------------------------------------------------

// The rows a round starts from, read once so that every client partitions the same snapshot.
struct Keys {
  std::vector<std::string> users;
  std::vector<std::string> meetings;
  std::vector<std::string> groups;
  std::vector<std::vector<size_t>> members;  // per group: indices into users
};

Keys load_keys(pqxx::connection& conn) {
  Keys keys;
  pqxx::read_transaction tx(conn);
  std::unordered_map<std::string, size_t> user_index;
  for (const auto& r : tx.exec("SELECT user_id::text FROM users ORDER BY user_id")) {
    user_index.emplace(r[0].as<std::string>(), keys.users.size());
    keys.users.push_back(r[0].as<std::string>());
  }
  for (const auto& r : tx.exec("SELECT meeting_id::text FROM meetings ORDER BY meeting_id")) {
    keys.meetings.push_back(r[0].as<std::string>());
  }
  std::unordered_map<std::string, size_t> group_index;
  for (const auto& r : tx.exec("SELECT group_id::text FROM groups ORDER BY group_id")) {
    group_index.emplace(r[0].as<std::string>(), keys.groups.size());
    keys.groups.push_back(r[0].as<std::string>());
  }
  keys.members.resize(keys.groups.size());
  for (const auto& r : tx.exec("SELECT group_id::text, user_id::text FROM group_members "
                               "ORDER BY group_id, user_id")) {
    keys.members[group_index.at(r[0].as<std::string>())].push_back(
        user_index.at(r[1].as<std::string>()));
  }
  if (keys.users.empty() || keys.meetings.empty() || keys.groups.empty()) {
    fail("database is not seeded: no users, meetings or groups");
  }
  return keys;
}

struct ClientStats {
  uint64_t tx_window = 0;  // committed inside the measured window
  uint64_t rows_window = 0;
  uint64_t tx_total = 0;  // committed at any time in the round (warm-up included)
  uint64_t rows_total = 0;
  uint64_t errors = 0;  // transactions rolled back by an SQL error
  std::string first_error;
  std::string failure;  // set when the client stopped early
};

// One application session. Not thread-safe: one thread drives it for one round.
class Client {
 public:
  Client(int index, int clients, int round, const Keys& keys)
      : keys_(keys),
        rng_(kBaseSeed ^ (static_cast<uint64_t>(index) << 32) ^ static_cast<uint64_t>(round)) {
    for (size_t i = index; i < keys.meetings.size(); i += clients) {
      meetings_.push_back(keys.meetings[i]);
    }
    for (size_t g = index; g < keys.groups.size(); g += clients) {
      OwnedGroup owned;
      owned.group = g;
      owned.members = keys.members[g];
      groups_.push_back(std::move(owned));
    }
  }

  void connect(const std::string& conninfo) {
    conn_ = std::make_unique<pqxx::connection>(conninfo);
    {
      pqxx::nontransaction n(*conn_);
      n.exec(std::string("SET statement_timeout = '") + kClientStatementTimeout + "'");
    }
    conn_->prepare("schedule_meeting",
                   "INSERT INTO meetings (meeting_id, meeting_number, subject, owner_id, "
                   "starts_at, duration_minutes, ports) "
                   "VALUES ($1, $2, $3, $4, date_trunc('minute', now()) + "
                   "make_interval(mins => $5), $6, $7)");
    conn_->prepare("add_participant",
                   "INSERT INTO meeting_participants (meeting_id, participant_id, user_id, "
                   "display_name, email, participant_role) "
                   "VALUES ($1, $2, NULLIF($3, '')::uuid, $4, NULLIF($5, ''), $6)");
    conn_->prepare("update_meeting",
                   "UPDATE meetings SET subject = $2, "
                   "starts_at = starts_at + make_interval(mins => $3), updated_at = now() "
                   "WHERE meeting_id = $1");
    conn_->prepare("remove_participant",
                   "DELETE FROM meeting_participants WHERE meeting_id = $1 AND participant_id = "
                   "(SELECT participant_id FROM meeting_participants WHERE meeting_id = $1 "
                   "ORDER BY participant_id LIMIT 1)");
    conn_->prepare("cancel_meeting",
                   "UPDATE meetings SET status = 'cancelled', updated_at = now() "
                   "WHERE meeting_id = $1");
    conn_->prepare("edit_user",
                   "UPDATE users SET first_name = $2, last_name = $3, email = $4, phone = $5, "
                   "time_zone = $6, updated_at = now() WHERE user_id = $1");
    conn_->prepare("add_member", "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)");
    conn_->prepare("remove_member",
                   "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2");
    conn_->prepare("describe_group",
                   "UPDATE groups SET description = $2, updated_at = now() WHERE group_id = $1");
  }

  // Runs transactions back to back until `window_end`; counts those committed in the window.
  void run(Clock::time_point window_start, Clock::time_point window_end) {
    try {
      while (Clock::now() < window_end) {
        uint64_t rows = 0;
        try {
          rows = one_transaction();
        } catch (const pqxx::sql_error& e) {
          // The transaction rolled back; the in-memory keys were not touched (see Pending).
          ++stats_.errors;
          if (stats_.first_error.empty()) stats_.first_error = e.what();
          continue;
        }
        const auto committed = Clock::now();
        ++stats_.tx_total;
        stats_.rows_total += rows;
        if (committed >= window_start && committed < window_end) {
          ++stats_.tx_window;
          stats_.rows_window += rows;
        }
      }
    } catch (const std::exception& e) {
      stats_.failure = e.what();
    }
  }

  const ClientStats& stats() const { return stats_; }

 private:
  static constexpr uint64_t kBaseSeed = 0x6d7066'62656e63ULL;  // "mpfbenc"

  struct OwnedGroup {
    size_t group = 0;             // index into keys_.groups
    std::vector<size_t> members;  // indices into keys_.users
  };

  // Key bookkeeping a transaction may only apply once it has committed: a rolled-back schedule
  // must not leave a meeting id behind that later updates would miss.
  struct Pending {
    std::string new_meeting;
    OwnedGroup* group = nullptr;
    size_t user = 0;
    bool add_member = false;
    bool remove_member = false;
  };

  uint64_t one_transaction() {
    pending_ = Pending{};
    pqxx::work tx(*conn_);
    uint64_t rows = 0;
    const int dice = pick(100);
    if (dice < 30 || meetings_.empty()) {
      rows = schedule_meeting(tx);
    } else if (dice < 60) {
      rows = update_meeting(tx);
    } else if (dice < 70) {
      rows = cancel_meeting(tx);
    } else if (dice < 95) {
      rows = edit_user(tx);
    } else {
      rows = change_group(tx);
    }
    tx.commit();
    apply_pending();
    return rows;
  }

  // 2 to 5 rows: the meeting and 1 to 4 participants.
  uint64_t schedule_meeting(pqxx::work& tx) {
    const std::string meeting = random_uuid();
    uint64_t rows =
        tx.exec_prepared("schedule_meeting", meeting, digits(8), "Project review " + digits(4),
                         random_user(), pick(60 * 24 * 60), 30 + 15 * pick(4), 5 + pick(20))
            .affected_rows();
    const int participants = 1 + pick(4);
    for (int p = 0; p < participants; ++p) {
      rows += add_participant(tx, meeting, p == 0 ? "host" : "attendee");
    }
    pending_.new_meeting = meeting;
    return rows;
  }

  // 1 or 2 rows: the meeting, and half the time one participant added or removed.
  uint64_t update_meeting(pqxx::work& tx) {
    const std::string& meeting = meetings_[pick(meetings_.size())];
    uint64_t rows = tx.exec_prepared("update_meeting", meeting, "Rescheduled review " + digits(4),
                                     pick(121) - 60)
                        .affected_rows();
    switch (pick(4)) {
      case 0:
        rows += add_participant(tx, meeting, "attendee");
        break;
      case 1:
        rows += tx.exec_prepared("remove_participant", meeting).affected_rows();
        break;
      default:
        break;
    }
    return rows;
  }

  uint64_t cancel_meeting(pqxx::work& tx) {
    return tx.exec_prepared("cancel_meeting", meetings_[pick(meetings_.size())]).affected_rows();
  }

  uint64_t edit_user(pqxx::work& tx) {
    static const char* const kZones[] = {"UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"};
    const std::string n = digits(5);
    return tx
        .exec_prepared("edit_user", random_user(), "First" + n, "Last" + n,
                       "user" + n + "@example.com", "+1555" + digits(7), kZones[pick(4)])
        .affected_rows();
  }

  // One row: a member added or removed, or the group's description changed.
  uint64_t change_group(pqxx::work& tx) {
    if (groups_.empty()) {
      // More clients than groups: this client owns none, so it touches a shared one.
      return describe_group(tx, keys_.groups[pick(keys_.groups.size())]);
    }
    OwnedGroup& owned = groups_[pick(groups_.size())];
    const std::string& group = keys_.groups[owned.group];
    switch (pick(3)) {
      case 0:
        for (int attempt = 0; attempt < 10; ++attempt) {
          const size_t user = pick(keys_.users.size());
          if (std::find(owned.members.begin(), owned.members.end(), user) != owned.members.end()) {
            continue;
          }
          pending_.group = &owned;
          pending_.user = user;
          pending_.add_member = true;
          return tx.exec_prepared("add_member", group, keys_.users[user]).affected_rows();
        }
        break;
      case 1:
        if (!owned.members.empty()) {
          const size_t user = owned.members[pick(owned.members.size())];
          pending_.group = &owned;
          pending_.user = user;
          pending_.remove_member = true;
          return tx.exec_prepared("remove_member", group, keys_.users[user]).affected_rows();
        }
        break;
      default:
        break;
    }
    return describe_group(tx, group);
  }

  uint64_t describe_group(pqxx::work& tx, const std::string& group) {
    return tx.exec_prepared("describe_group", group, "Team " + digits(6)).affected_rows();
  }

  uint64_t add_participant(pqxx::work& tx, const std::string& meeting, const char* role) {
    const bool guest = pick(4) == 0;
    const std::string n = digits(5);
    return tx
        .exec_prepared("add_participant", meeting, random_uuid(),
                       guest ? std::string() : random_user(), "Participant " + n,
                       guest ? std::string() : "p" + n + "@example.com", role)
        .affected_rows();
  }

  void apply_pending() {
    if (!pending_.new_meeting.empty()) meetings_.push_back(std::move(pending_.new_meeting));
    if (pending_.add_member) pending_.group->members.push_back(pending_.user);
    if (pending_.remove_member) {
      auto& members = pending_.group->members;
      members.erase(std::find(members.begin(), members.end(), pending_.user));
    }
  }

  int pick(size_t n) {
    return static_cast<int>(std::uniform_int_distribution<size_t>(0, n - 1)(rng_));
  }

  std::string digits(int count) {
    std::string out;
    for (int i = 0; i < count; ++i) out.push_back(static_cast<char>('0' + pick(10)));
    return out;
  }

  const std::string& random_user() { return keys_.users[pick(keys_.users.size())]; }

  // A version 4 UUID from the client's generator, so a round's new keys are reproducible.
  std::string random_uuid() {
    const uint64_t hi = (rng_() & ~0xF000ULL) | 0x4000ULL;
    const uint64_t lo = (rng_() & ~(3ULL << 62)) | (2ULL << 62);
    char buf[40];
    std::snprintf(buf, sizeof buf,
                  "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%012" PRIx64, hi >> 32,
                  (hi >> 16) & 0xFFFF, hi & 0xFFFF, lo >> 48, lo & uint64_t{0xFFFFFFFFFFFF});
    return std::string(buf);
  }

  const Keys& keys_;
  std::mt19937_64 rng_;
  std::unique_ptr<pqxx::connection> conn_;
  std::vector<std::string> meetings_;
  std::vector<OwnedGroup> groups_;
  Pending pending_;
  ClientStats stats_;
};

// --- rounds ---------------------------------------------------------------------------------

struct RoundResult {
  double tps = 0;
  uint64_t tx = 0;          // in the window
  uint64_t rows_total = 0;  // in the whole round, for the change_log check
  uint64_t rows_window = 0;
  uint64_t errors = 0;
  int64_t change_log_rows = -1;  // capture rounds only
};

// Starts the round on a clean footing: no dead tuples left by the previous round of this
// database, fresh statistics, and no dirty buffers of the other database to write back.
void prepare_round(pqxx::connection& conn) {
  pqxx::nontransaction n(conn);
  n.exec("VACUUM ANALYZE");
  n.exec("CHECKPOINT");
}

RoundResult run_round(const Options& opts, const std::string& db, int round, bool capture) {
  const std::string conninfo = db_conninfo(opts, db);
  pqxx::connection admin(conninfo);
  prepare_round(admin);
  const Keys keys = load_keys(admin);
  if (capture) {
    pqxx::work tx(admin);
    const auto before = tx.exec("SELECT count(*) FROM mpfailover.change_log")[0][0].as<int64_t>();
    if (before != 0) fail("change_log of \"" + db + "\" is not empty before the round");
  }

  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < opts.clients; ++i) {
    clients.push_back(std::make_unique<Client>(i, opts.clients, round, keys));
    clients.back()->connect(conninfo);
  }
  const auto start = Clock::now();
  const auto window_start = start + std::chrono::seconds(opts.warmup_s);
  const auto window_end = window_start + std::chrono::seconds(opts.seconds);
  std::vector<std::thread> threads;
  for (auto& c : clients) {
    threads.emplace_back([&c, window_start, window_end] { c->run(window_start, window_end); });
  }
  for (auto& t : threads) t.join();

  RoundResult result;
  std::string first_error;
  for (const auto& c : clients) {
    const ClientStats& s = c->stats();
    if (!s.failure.empty()) fail("client of \"" + db + "\" stopped: " + s.failure);
    result.tx += s.tx_window;
    result.rows_window += s.rows_window;
    result.rows_total += s.rows_total;
    result.errors += s.errors;
    if (first_error.empty()) first_error = s.first_error;
  }
  result.tps = static_cast<double>(result.tx) / opts.seconds;
  if (!first_error.empty()) {
    std::cerr << "mpf_bench_capture: warning: " << result.errors
              << " transactions rolled back in \"" << db << "\"; first: " << first_error << "\n";
  }
  if (capture) {
    pqxx::work tx(admin);
    result.change_log_rows =
        tx.exec("SELECT count(*) FROM mpfailover.change_log")[0][0].as<int64_t>();
    // The reader would have trimmed the log by now; the next capture round starts empty.
    tx.exec("DELETE FROM mpfailover.change_log");
    tx.commit();
  }
  return result;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void print_server(const Options& opts) {
  pqxx::connection conn(opts.conninfo);
  pqxx::read_transaction tx(conn);
  const auto r = tx.exec(
      "SELECT current_setting('server_version'), current_setting('fsync'), "
      "current_setting('synchronous_commit'), current_setting('shared_buffers')");
  std::cout << "server: PostgreSQL " << r[0][0].c_str() << ", fsync=" << r[0][1].c_str()
            << ", synchronous_commit=" << r[0][2].c_str() << ", shared_buffers=" << r[0][3].c_str()
            << "\n";
}

int run(const Options& opts) {
  print_server(opts);
  std::cout << "workload: " << opts.clients << " clients, " << opts.rounds << " rounds per side, "
            << opts.warmup_s << " s warm-up + " << opts.seconds << " s measured per round\n"
            << "seed: " << kSeedUsers << " users, " << kSeedGroups << " groups x "
            << kSeedMembersPerGroup << " members, " << kSeedMeetings << " meetings\n";
  if (!opts.after_install_sql.empty()) {
    std::cout << "capture variant: " << opts.after_install_sql << " run after install\n";
  }
  std::cout << std::flush;
  set_up(opts);

  std::vector<double> plain_tps;
  std::vector<double> capture_tps;
  uint64_t captured_rows = 0;
  uint64_t capture_rows_written = 0;
  uint64_t plain_rows = 0;
  uint64_t plain_tx = 0;
  for (int round = 0; round < opts.rounds; ++round) {
    for (const bool capture : {false, true}) {
      const std::string db = capture ? kCaptureDb : kPlainDb;
      const RoundResult r = run_round(opts, db, round, capture);
      (capture ? capture_tps : plain_tps).push_back(r.tps);
      std::cout << "BenchRound round=" << round + 1 << " side=" << (capture ? "capture" : "plain")
                << std::fixed << std::setprecision(1) << " tps=" << r.tps << " tx=" << r.tx
                << " rows=" << r.rows_window << std::setprecision(2)
                << " rows_per_tx=" << (r.tx ? static_cast<double>(r.rows_window) / r.tx : 0.0)
                << " errors=" << r.errors;
      if (capture) {
        std::cout << " rows_written=" << r.rows_total << " change_log_rows=" << r.change_log_rows;
        captured_rows += static_cast<uint64_t>(r.change_log_rows);
        capture_rows_written += r.rows_total;
      } else {
        plain_rows += r.rows_window;
        plain_tx += r.tx;
      }
      std::cout << std::endl;
    }
  }

  const double plain = median(plain_tps);
  const double with_capture = median(capture_tps);
  const double ratio = plain > 0 ? with_capture / plain : 0;
  const double overhead_us = with_capture > 0 && plain > 0 ? 1e6 / with_capture - 1e6 / plain : 0;
  const double rows_per_tx = plain_tx ? static_cast<double>(plain_rows) / plain_tx : 0;
  std::cout << std::fixed << std::setprecision(1) << "median plain: " << plain << " tx/s\n"
            << "median capture: " << with_capture << " tx/s\n"
            << std::setprecision(3) << "ratio capture/plain: " << ratio << " (target "
            << kTargetRatio << ")\n"
            << std::setprecision(1) << "capture overhead: " << overhead_us
            << " us per transaction of aggregate throughput (" << overhead_us * opts.clients
            << " us of latency per client at " << opts.clients << " clients; "
            << (rows_per_tx > 0 ? overhead_us / rows_per_tx : 0.0) << " us per row at "
            << std::setprecision(2) << rows_per_tx << " rows per transaction)\n"
            << "change_log rows written in capture rounds: " << captured_rows
            << " (rows changed: " << capture_rows_written << ")\n";
  if (captured_rows == 0) {
    std::cerr << "mpf_bench_capture: capture wrote no change_log rows in \"" << kCaptureDb
              << "\"\nhint: the capture triggers are missing or suppressed; the figures above "
                 "measure nothing\n";
    return kExitFailed;
  }
  if (captured_rows != capture_rows_written) {
    std::cerr << "mpf_bench_capture: warning: change_log rows (" << captured_rows
              << ") differ from rows changed (" << capture_rows_written << ")\n";
  }
  std::cout << std::setprecision(1) << "RESULT capture_tps=" << with_capture
            << " plain_tps=" << plain << std::setprecision(3) << " ratio=" << ratio
            << std::setprecision(2) << " target=" << kTargetRatio
            << " verdict=" << (ratio >= kTargetRatio ? "met" : "missed") << std::endl;
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  po::options_description desc("mpf_bench_capture options");
  desc.add_options()("help,h", "show this help")(
      "conninfo", po::value(&opts.conninfo)->required(),
      "libpq key=value conninfo of the cluster (a superuser); its dbname is used only to "
      "create the bench databases")(
      "clients", po::value(&opts.clients)->default_value(opts.clients), "concurrent clients")(
      "seconds", po::value(&opts.seconds)->default_value(opts.seconds),
      "measured seconds per round")("warmup",
                                    po::value(&opts.warmup_s)->default_value(opts.warmup_s),
                                    "warm-up seconds per round, not counted")(
      "rounds", po::value(&opts.rounds)->default_value(opts.rounds),
      "rounds per side (plain and capture alternate)")(
      "after-install-sql", po::value(&opts.after_install_sql),
      "SQL file run in bench_capture after capture is installed, to measure a variant of the "
      "capture functions");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << "usage: mpf_bench_capture --conninfo CONNINFO [options]\n\n"
                   "Compares write throughput with and without capture on a MeetingPlace-like\n"
                   "workload. Drops and re-creates the databases \""
                << kPlainDb << "\" and \"" << kCaptureDb << "\".\n\n"
                << desc;
      return kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpf_bench_capture: " << e.what() << "\nhint: mpf_bench_capture --help\n";
    return kExitUsage;
  }
  if (opts.clients < 1 || opts.seconds < 1 || opts.warmup_s < 0 || opts.rounds < 1) {
    std::cerr << "mpf_bench_capture: --clients, --seconds and --rounds must be at least 1 and "
                 "--warmup at least 0\n";
    return kExitUsage;
  }
  if (opts.conninfo.find("://") != std::string::npos) {
    std::cerr << "mpf_bench_capture: --conninfo must be in key=value form, not a URI\n"
                 "hint: --conninfo 'host=/tmp/dir port=55500 user=postgres'\n";
    return kExitUsage;
  }
  try {
    return run(opts);
  } catch (const std::exception& e) {
    std::cerr << "mpf_bench_capture: " << e.what() << "\n";
    return kExitFailed;
  }
}
