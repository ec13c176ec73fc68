// Two real daemons on loopback, each with its own fresh database: node a and node b, CURVE keys
// made with `mpfailover keygen` (or plain), config files written the way an operator would. The
// daemons are made, not started: a test starts, kills and restarts them as it needs.
//
// Everything lives in one directory per pair, /tmp/mpft_<name>_<pid>/: a.key, a.pub, a.conf,
// a.conf.log, a.conf.sock (and the same for b and any extra key names); the destructor stops the
// daemons and removes it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "support/command.hpp"
#include "support/compare.hpp"
#include "support/daemon.hpp"
#include "support/ports.hpp"
#include "support/test_db.hpp"

namespace mpf::test {

struct LoopbackPairOptions {
  std::string name;  // the directory's name: /tmp/mpft_<name>_<pid>
  // Hints only, kept for the suites that set them: the pair listens on two free ports below the
  // ephemeral range (support/ports.hpp), chosen from base_port and the process id.
  int base_port = 40000;
  int port_span = 5000;
  bool curve = true;
  std::vector<std::string> extra_keys;  // more key pairs (e.g. "stranger" for a wrong key)
  std::string heartbeat = "1s";
  bool initial_roles = false;         // node.initial_role: a active, b standby
  std::vector<std::string> tables_b;  // b replicates only these (empty: the default set)
  std::string replication_extra_a;    // lines added to a's [replication]
  std::string replication_extra_b;
  // Own tables instead of the MeetingPlace set: `setup_sql` runs on both databases before
  // init-db, and both nodes replicate `tables` (tables_b, when set, still wins for b).
  std::string setup_sql;
  std::vector<std::string> tables;
  std::string create_b;  // CREATE DATABASE options for b (see TestDatabase)
};

class LoopbackPair {
 public:
  explicit LoopbackPair(LoopbackPairOptions o) : db_b(o.create_b), options_(std::move(o)) {
    if (!options_.setup_sql.empty()) {
      for (const auto* db : {&db_a, &db_b}) {
        pqxx::connection c(db->conninfo());
        c.set_client_encoding("UTF8");
        pqxx::nontransaction tx(c);
        tx.exec(options_.setup_sql);
      }
    }
    if (options_.tables.empty()) {
      db_a.init("a");
    } else {
      db_a.init_with(db_a.config("a", options_.tables));
    }
    if (!options_.tables_b.empty()) {
      db_b.init_with(db_b.config("b", options_.tables_b));
    } else if (!options_.tables.empty()) {
      db_b.init_with(db_b.config("b", options_.tables));
    } else {
      db_b.init("b");
    }
    port_a = free_ports(2, options_.base_port + options_.port_span);
    port_b = port_a + 1;
    dir = "/tmp/mpft_" + options_.name + "_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    if (options_.curve) {
      std::vector<std::string> names{"a", "b"};
      names.insert(names.end(), options_.extra_keys.begin(), options_.extra_keys.end());
      for (const auto& n : names) {
        const std::string cmd = std::string(MPF_CLI_PATH) + " keygen --secret-key-file " + dir +
                                "/" + n + ".key --public-key-file " + dir + "/" + n +
                                ".pub > /dev/null";
        REQUIRE(std::system(cmd.c_str()) == 0);
      }
    }
    conf_a = write_conf("a");
    conf_b = write_conf("b");
    a = std::make_unique<Daemon>(MPF_DAEMON_PATH, conf_a, conf_a + ".log");
    b = std::make_unique<Daemon>(MPF_DAEMON_PATH, conf_b, conf_b + ".log");
  }

  ~LoopbackPair() {
    a.reset();  // stop the daemons before their files go
    b.reset();
    std::filesystem::remove_all(dir);
  }

  LoopbackPair(const LoopbackPair&) = delete;
  LoopbackPair& operator=(const LoopbackPair&) = delete;

  // (Re)writes a node's config file and returns its path; the log file stays. `replication_extra`
  // replaces the options' lines for that node when given; `peer_key` names the public key the
  // node trusts for its peer (default: the peer's own).
  std::string write_conf(const std::string& node,
                         const std::optional<std::string>& replication_extra = std::nullopt,
                         const std::string& peer_key = "") const {
    const bool is_a = node == "a";
    const std::string peer = is_a ? "b" : "a";
    const std::string path = dir + "/" + node + ".conf";
    std::string tables;
    const auto& listed = !is_a && !options_.tables_b.empty() ? options_.tables_b : options_.tables;
    for (const auto& t : listed) tables += (tables.empty() ? "" : ", ") + t;
    std::ofstream out(path);
    out << "[node]\nname = " << node << "\ndatabase = " << (is_a ? db_a : db_b).conninfo() << "\n";
    if (options_.initial_roles) out << "initial_role = " << (is_a ? "active" : "standby") << "\n";
    out << "[peer]\nname = " << peer << "\naddress = 127.0.0.1\nport = " << (is_a ? port_b : port_a)
        << "\n[replication]\nlisten = 127.0.0.1\nport = " << (is_a ? port_a : port_b) << "\n"
        << (tables.empty() ? "" : "tables = " + tables + "\n")
        << replication_extra.value_or(is_a ? options_.replication_extra_a
                                           : options_.replication_extra_b)
        << "[heartbeat]\ninterval = " << options_.heartbeat << "\n[log]\nlevel = debug\n"
        << "[control]\nsocket = " << path << ".sock\n";
    if (options_.curve) {
      out << "[security]\nmode = curve\nsecret_key_file = " << dir << "/" << node
          << ".key\npublic_key_file = " << dir << "/" << node
          << ".pub\npeer_public_key_file = " << dir << "/" << (peer_key.empty() ? peer : peer_key)
          << ".pub\n";
    } else {
      out << "[security]\nmode = plain\n";
    }
    return path;
  }

  const std::string& conf(const std::string& node) const { return node == "a" ? conf_a : conf_b; }

  // `mpfailover --config <node's file> ARGS`, stdout and stderr apart.
  RunSplit cli(const std::string& node, const std::string& args) const {
    return run_split(std::string(MPF_CLI_PATH) + " --config " + conf(node) + " " + args);
  }

  // True once both databases hold the same MeetingPlace content, table by table.
  bool converged() const {
    for (const auto& t : meetingplace_tables()) {
      if (table_digest(db_a.conninfo(), t) != table_digest(db_b.conninfo(), t)) return false;
    }
    return true;
  }

  // Waits (20 s at most) until b says it is standby with an active peer that answers.
  void roles_settled() const {
    // Both views: a node that has not heard its peer yet refuses a switchover request.
    auto says = [&](const char* node, const char* role, const char* peer_role) {
      auto r = cli(node, "status --json");
      if (r.rc != 0 && r.rc != 3) return false;  // 3: answered, pair not healthy yet
      auto s = nlohmann::json::parse(r.out);
      return s["role"] == role && s["peer_role"] == peer_role && s["peer_state"] == "up";
    };
    const bool ok =
        eventually([&] { return says("b", "standby", "active") && says("a", "active", "standby"); },
                   std::chrono::seconds(20));
    if (!ok) MESSAGE("a:\n" << a->log_text() << "\nb:\n" << b->log_text());
    REQUIRE(ok);
  }

  TestDatabase db_a;
  TestDatabase db_b;
  int port_a = 0;
  int port_b = 0;
  std::string dir;
  std::string conf_a;
  std::string conf_b;
  std::unique_ptr<Daemon> a;
  std::unique_ptr<Daemon> b;

 private:
  LoopbackPairOptions options_;
};

}  // namespace mpf::test
