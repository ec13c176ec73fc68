// A fresh PostgreSQL database per test, in the cluster the CTest fixture started
// (tests/support/pg_cluster.sh). Dropped on destruction, also when the test fails.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include <doctest/doctest.h>
#include <pqxx/pqxx>
#include <unistd.h>

#include <mpf/server/config.hpp>
#include <mpf/server/init_db.hpp>

namespace mpf::test {

inline std::string base_conninfo() {
  if (const char* env = std::getenv("MPF_TEST_PG")) return env;
  return MPF_TEST_PG;
}

// Replaces "dbname=..." in a key=value conninfo.
inline std::string with_dbname(const std::string& conninfo, const std::string& db) {
  std::string out;
  std::string word;
  std::istringstream in(conninfo);
  while (in >> word) {
    if (word.rfind("dbname=", 0) == 0) continue;
    out += word + " ";
  }
  return out + "dbname=" + db;
}

class TestDatabase {
 public:
  // `create_options` follows CREATE DATABASE name, e.g. "ENCODING 'LATIN1' LC_COLLATE 'C'
  // LC_CTYPE 'C' TEMPLATE template0" for a node whose database is not UTF8.
  explicit TestDatabase(const std::string& create_options = "") {
    static std::atomic<int> counter{0};
    name_ = "mpft_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    pqxx::connection admin(base_conninfo());
    pqxx::nontransaction tx(admin);
    tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    tx.exec("CREATE DATABASE " + name_ + (create_options.empty() ? "" : " " + create_options));
    conninfo_ = with_dbname(base_conninfo(), name_);
  }
  ~TestDatabase() {
    std::remove(("/tmp/" + name_ + ".conf").c_str());
    try {
      pqxx::connection admin(base_conninfo());
      pqxx::nontransaction tx(admin);
      tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception&) {
      // The cluster fixture removes everything at the end anyway.
    }
  }
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& conninfo() const { return conninfo_; }
  const std::string& name() const { return name_; }

  // A node config pointing at this database.
  server::Config config(const std::string& node = "a",
                        std::vector<std::string> tables = {"users", "groups", "group_members",
                                                           "meetings",
                                                           "meeting_participants"}) const {
    server::Config cfg;
    cfg.path = "(test)";
    cfg.node.name = node;
    cfg.node.database = conninfo_;
    cfg.peer.name = node == "a" ? "b" : "a";
    cfg.peer.address = "198.18.0.12";
    cfg.replication.tables = std::move(tables);
    return cfg;
  }

  // init-db with the MeetingPlace schema; fails the test on error.
  void init(const std::string& node = "a") const { init_with(config(node)); }

  void init_with(const server::Config& cfg) const {
    server::InitDbOptions options;
    options.app_schema = true;
    auto report = server::init_db(cfg, options);
    REQUIRE_MESSAGE(report, report.status().message());
  }

  // Writes a config file for the CLI; returns its path.
  std::string write_config_file(const std::string& extra_replication = "") const {
    const std::string path = "/tmp/" + name_ + ".conf";
    std::ofstream out(path);
    out << "[node]\nname = a\ndatabase = " << conninfo_
        << "\n[peer]\nname = b\naddress = 198.18.0.12\n[security]\nmode = plain\n"
        << "[control]\nsocket = " << control_socket() << "\n"
        << "[replication]\n"
        << extra_replication << "\n";
    return path;
  }

  // Each test database's daemon gets its own control socket.
  std::string control_socket() const { return "/tmp/" + name_ + ".sock"; }

 private:
  std::string name_;
  std::string conninfo_;
};

inline int64_t scalar(pqxx::connection& conn, const std::string& sql) {
  pqxx::nontransaction tx(conn);
  return tx.exec(sql)[0][0].as<int64_t>();
}

}  // namespace mpf::test
