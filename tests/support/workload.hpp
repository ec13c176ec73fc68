// A MeetingPlace-like write mix for tests: users, groups and membership, meetings with
// participants; inserts, updates, deletes (with cascades) and primary-key changes. Deterministic
// for a seed. Every transaction commits (or the test fails).
#pragma once

#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <pqxx/pqxx>

namespace mpf::test {

class Workload {
 public:
  Workload(const std::string& conninfo, uint64_t seed, std::string tag = "w")
      : conn_(conninfo), rng_(seed), tag_(std::move(tag)) {
    pqxx::nontransaction q(conn_);
    for (const auto& r : q.exec("SELECT user_id::text FROM users")) users_.push_back(r[0].c_str());
    for (const auto& r : q.exec("SELECT meeting_id::text FROM meetings"))
      meetings_.push_back(r[0].c_str());
    for (const auto& r : q.exec("SELECT group_id::text FROM groups"))
      groups_.push_back(r[0].c_str());
  }

  // Runs n transactions of the mix.
  void run(int n) {
    for (int i = 0; i < n; ++i) one();
  }

  int transactions() const { return done_; }

 private:
  std::string q(const std::string& s) { return conn_.quote(s); }
  size_t pick(size_t n) { return static_cast<size_t>(rng_() % n); }

  void one() {
    pqxx::work tx(conn_);
    const int dice = static_cast<int>(rng_() % 100);
    const std::string n = tag_ + std::to_string(counter_++);
    if (users_.size() < 5 || dice < 10) {
      auto r =
          tx.exec("INSERT INTO users (login, first_name, last_name, email, time_zone) VALUES (" +
                  q("login-" + n) + ", 'First', " + q("Last " + n) + ", " + q(n + "@example.com") +
                  ", 'Europe/Paris') RETURNING user_id::text");
      users_.push_back(r[0][0].c_str());
    } else if (dice < 30) {
      tx.exec("UPDATE users SET phone = " + q("+1555" + n) +
              ", language = 'fr', updated_at = now() "
              "WHERE user_id = " +
              q(users_[pick(users_.size())]));
    } else if (dice < 50 || meetings_.empty()) {
      auto r = tx.exec(
          "INSERT INTO meetings (meeting_number, subject, owner_id, starts_at, "
          "duration_minutes, recurrence) VALUES (" +
          q(n) + ", " + q("Review " + n) + ", " + q(users_[pick(users_.size())]) +
          ", now() + interval '1 day' * " + std::to_string(static_cast<long>(pick(60)) - 30) +
          ", " + std::to_string(15 + pick(120)) + ", " +
          (pick(3) == 0 ? q("FREQ=WEEKLY;COUNT=4") : std::string("NULL")) +
          ") RETURNING meeting_id::text");
      const std::string m = r[0][0].c_str();
      meetings_.push_back(m);
      const size_t parts = 1 + pick(4);
      for (size_t p = 0; p < parts; ++p) {
        tx.exec("INSERT INTO meeting_participants (meeting_id, user_id, display_name) VALUES (" +
                q(m) + ", " + q(users_[pick(users_.size())]) + ", " + q("Guest " + n) + ")");
      }
    } else if (dice < 70) {
      tx.exec(
          "UPDATE meetings SET subject = " + q("Moved " + n) +
          ", starts_at = starts_at + interval '1 hour', updated_at = now() WHERE meeting_id = " +
          q(meetings_[pick(meetings_.size())]));
    } else if (dice < 80) {
      tx.exec("UPDATE meetings SET status = 'cancelled' WHERE meeting_id = " +
              q(meetings_[pick(meetings_.size())]));
    } else if (dice < 85 && meetings_.size() > 3) {
      const size_t i = pick(meetings_.size());
      tx.exec("DELETE FROM meetings WHERE meeting_id = " + q(meetings_[i]));  // cascades
      meetings_.erase(meetings_.begin() + static_cast<long>(i));
    } else if (dice < 92 || groups_.empty()) {
      auto r = tx.exec("INSERT INTO groups (name) VALUES (" + q("group-" + n) +
                       ") RETURNING group_id::text");
      groups_.push_back(r[0][0].c_str());
      tx.exec("INSERT INTO group_members (group_id, user_id) VALUES (" + q(groups_.back()) + ", " +
              q(users_[pick(users_.size())]) + ") ON CONFLICT DO NOTHING");
    } else if (dice < 97) {
      tx.exec("INSERT INTO group_members (group_id, user_id) VALUES (" +
              q(groups_[pick(groups_.size())]) + ", " + q(users_[pick(users_.size())]) +
              ") ON CONFLICT (group_id, user_id) DO UPDATE SET member_role = 'owner'");
    } else {
      // A primary-key change (captured as delete + insert). The members' FK has no ON UPDATE
      // CASCADE, so only an empty group can change its key.
      const size_t i = pick(groups_.size());
      auto r = tx.exec(
          "UPDATE groups SET group_id = gen_random_uuid() WHERE group_id = " + q(groups_[i]) +
          " AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = "
          "groups.group_id) RETURNING group_id::text");
      if (!r.empty()) groups_[i] = r[0][0].c_str();
    }
    tx.commit();
    ++done_;
  }

  pqxx::connection conn_;
  std::mt19937_64 rng_;
  std::string tag_;
  uint64_t counter_ = 0;
  int done_ = 0;
  std::vector<std::string> users_, meetings_, groups_;
};

}  // namespace mpf::test
