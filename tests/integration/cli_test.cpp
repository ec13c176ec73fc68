// The binaries as an operator runs them: exit codes and one clear message.
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "support/command.hpp"
#include "support/test_db.hpp"

namespace {

using mpf::test::Run;
using mpf::test::run;

const std::string kCli = MPF_CLI_PATH;
const std::string kDaemon = MPF_DAEMON_PATH;

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE("init-db creates the catalog and app schema, and a second run is a no-op") {
    mpf::test::TestDatabase db;
    const auto conf = db.write_config_file();
    auto first = run(kCli + " --config " + conf + " init-db --app-schema");
    CHECK_MESSAGE(first.rc == 0, first.output);
    CHECK(first.output.find("applied migration 0001_catalog") != std::string::npos);
    CHECK(first.output.find("capturing public.meetings") != std::string::npos);
    auto second = run(kCli + " --config " + conf + " init-db --app-schema");
    CHECK_MESSAGE(second.rc == 0, second.output);
    CHECK(second.output.find("catalog is up to date") != std::string::npos);
    auto check = run(kDaemon + " --config " + conf + " --check");
    CHECK_MESSAGE(check.rc == 0, check.output);
  }

  TEST_CASE("the daemon refuses to start on a table without a primary key, naming it") {
    mpf::test::TestDatabase db;
    db.init();
    {
      pqxx::connection conn(db.conninfo());
      pqxx::work tx(conn);
      tx.exec("CREATE TABLE call_records (at timestamptz, caller text)");
      tx.commit();
    }
    const auto conf = db.write_config_file("tables = users, call_records");
    auto r = run(kDaemon + " --config " + conf);
    CHECK(r.rc == 1);
    CHECK(r.output.find("replicated table \"call_records\" has no primary key") !=
          std::string::npos);
  }

  TEST_CASE("the daemon refuses to start on a table that does not exist, naming it") {
    mpf::test::TestDatabase db;
    db.init();
    const auto conf = db.write_config_file("tables = users, meetingz");
    auto r = run(kDaemon + " --config " + conf);
    CHECK(r.rc == 1);
    CHECK(r.output.find("replicated table \"meetingz\" does not exist") != std::string::npos);
  }

  TEST_CASE("config errors exit 2 naming the key and the file") {
    const std::string conf = "/tmp/mpft_cli_bad.conf";
    {
      std::ofstream out(conf);
      out << "[node]\nname = a\ndatabase = dbname=x\n[peer]\nname = b\naddress = h\n"
             "[heartbeat]\ninterval = 60 sec\n";
    }
    for (const std::string& bin :
         {kDaemon + " --config " + conf, kCli + " --config " + conf + " init-db"}) {
      CAPTURE(bin);
      auto r = run(bin);
      CHECK(r.rc == 2);
      CHECK(r.output.find("config file \"" + conf + "\" line 8: heartbeat.interval") !=
            std::string::npos);
    }
    auto missing = run(kDaemon + " --config /nonexistent.conf");
    CHECK(missing.rc == 2);
    CHECK(missing.output.find("could not open config file \"/nonexistent.conf\"") !=
          std::string::npos);
  }

  TEST_CASE("an unreachable database is one clear line and exit 1") {
    const std::string conf = "/tmp/mpft_cli_nodb.conf";
    {
      std::ofstream out(conf);
      out << "[node]\nname = a\ndatabase = host=/nonexistent-dir port=1 dbname=x "
             "connect_timeout=2\n[peer]\nname = b\naddress = h\n[security]\nmode = plain\n";
    }
    auto r = run(kCli + " --config " + conf + " init-db");
    CHECK(r.rc == 1);
    CHECK(r.output.find("could not connect to the node's database") != std::string::npos);
  }

  TEST_CASE("bad usage exits 2 with a hint") {
    auto none = run(kCli);
    CHECK(none.rc == 2);
    CHECK(none.output.find("usage: mpfailover") != std::string::npos);
    auto unknown = run(kCli + " frobnicate");
    CHECK(unknown.rc == 2);
    CHECK(unknown.output.find("unknown command \"frobnicate\"") != std::string::npos);
    auto bad_opt = run(kCli + " init-db --bogus");
    CHECK(bad_opt.rc == 2);
    auto help = run(kCli + " init-db --help");
    CHECK(help.rc == 0);
    CHECK(help.output.find("--app-schema") != std::string::npos);
  }

  TEST_CASE("keygen writes a key pair once, the secret key private") {
    const std::string dir = "/tmp/mpft_keys_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string sec = dir + "/a.key";
    const std::string pub = dir + "/a.pub";
    auto r = run(kCli + " keygen --secret-key-file " + sec + " --public-key-file " + pub);
    CHECK_MESSAGE(r.rc == 0, r.output);
    CHECK((std::filesystem::status(sec).permissions() & std::filesystem::perms::group_read) ==
          std::filesystem::perms::none);
    CHECK(std::filesystem::file_size(pub) == 41);  // 40 Z85 characters and a newline
    auto again = run(kCli + " keygen --secret-key-file " + sec + " --public-key-file " + pub);
    CHECK(again.rc == 1);
    CHECK(again.output.find("already exists; not overwriting it") != std::string::npos);
    auto nowhere = run(kCli + " --config /nonexistent.conf keygen");
    CHECK(nowhere.rc == 2);
    std::filesystem::remove_all(dir);
  }
}

TEST_SUITE("cli") {
  TEST_CASE("init-db grants node.app_role what capture needs, so the application can delete") {
    mpf::test::TestDatabase db;
    const std::string role = "mpft_app_del_" + std::to_string(::getpid());
    {
      pqxx::connection c(db.conninfo());
      pqxx::nontransaction tx(c);
      tx.exec("DROP ROLE IF EXISTS " + role);
      tx.exec("CREATE ROLE " + role + " LOGIN");
    }
    const auto conf = db.write_config_file();
    {
      std::ofstream out(conf, std::ios::app);
      out << "[node]\napp_role = " << role << "\n";  // a section may appear twice
    }
    auto r = run(kCli + " --config " + conf + " init-db --app-schema");
    CHECK_MESSAGE(r.rc == 0, r.output);
    CHECK(r.output.find("granted " + role) != std::string::npos);
    {
      pqxx::connection c(db.conninfo());
      pqxx::nontransaction tx(c);
      tx.exec("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role);
      tx.exec("INSERT INTO users (login) VALUES ('leaving')");
    }
    {
      pqxx::connection app(mpf::test::with_dbname(mpf::test::base_conninfo(), db.name()) +
                           " user=" + role);
      pqxx::work tx(app);
      tx.exec("DELETE FROM users WHERE login = 'leaving'");  // writes a tombstone
      tx.commit();
    }
    pqxx::connection c(db.conninfo());
    pqxx::nontransaction tx(c);
    CHECK(tx.exec("SELECT count(*) FROM mpfailover.tombstone")[0][0].as<int>() == 1);
    tx.exec("DROP OWNED BY " + role);
    tx.exec("DROP ROLE " + role);
  }
}

TEST_SUITE("cli") {
  TEST_CASE("keygen and init-db answer in JSON with --json") {
    const std::string dir = "/tmp/mpft_cli_json_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    auto k = run(kCli + " keygen --json --secret-key-file " + dir + "/x.key --public-key-file " +
                 dir + "/x.pub");
    REQUIRE_MESSAGE(k.rc == 0, k.output);
    auto kj = nlohmann::json::parse(k.output);
    CHECK(kj["ok"] == true);
    CHECK(kj["public_key"].get<std::string>().size() == 40);  // Z85 of 32 bytes
    CHECK(kj["secret_key_file"] == dir + "/x.key");
    CHECK(std::filesystem::exists(dir + "/x.pub"));
    std::filesystem::remove_all(dir);

    mpf::test::TestDatabase db;
    const auto conf = db.write_config_file();
    auto i = run(kCli + " --config " + conf + " init-db --app-schema --json");
    REQUIRE_MESSAGE(i.rc == 0, i.output);
    auto ij = nlohmann::json::parse(i.output);
    CHECK(ij["migrations_applied"].size() >= 5);
    CHECK(ij["tables_captured"].size() == 5);
  }

  // Issue #13.
  TEST_CASE("--version on both binaries names the release") {
    for (const auto& bin : {kCli, kDaemon}) {
      CAPTURE(bin);
      auto r = run(bin + " --version");
      CHECK(r.rc == 0);
      CHECK(r.output.find(MPF_PROJECT_VERSION) != std::string::npos);
    }
    CHECK(run(kCli + " --version").output.rfind("mpfailover ", 0) == 0);
    CHECK(run(kDaemon + " --version").output.rfind("mpfailoverd ", 0) == 0);
  }

  // Issue #13: --check (the unit's ExecStartPre) skipped the key files, the hooks, the
  // interface and the database rights; each now fails --check by name.
  TEST_CASE("mpfailoverd --check checks key files, hooks, the interface and database rights") {
    mpf::test::TestDatabase db;
    db.init();
    const std::string dir = "/tmp/" + db.name() + "_check";
    std::filesystem::create_directories(dir);
    auto write = [&](const std::string& name, const std::string& text, mode_t mode) {
      const std::string path = dir + "/" + name;
      std::ofstream(path) << text;
      std::filesystem::permissions(path, static_cast<std::filesystem::perms>(mode));
      return path;
    };
    const std::string hook = write("hook", "#!/bin/sh\nexit 0\n", 0755);
    const std::string not_exec = write("hook_not_exec", "#!/bin/sh\nexit 0\n", 0644);
    auto conf = [&](const std::string& database, const std::string& extra) {
      return write("node.conf",
                   "[node]\nname = a\ndatabase = " + database +
                       "\n[peer]\nname = b\naddress = 198.18.0.12\n[control]\nsocket = " +
                       db.control_socket() + "\n" + extra,
                   0644);
    };
    auto check = [&](const std::string& path) {
      return run(kDaemon + " --config " + path + " --check");
    };
    const std::string plain = "[security]\nmode = plain\n";
    auto ok = check(conf(db.conninfo(), plain +
                                            "[shared]\naddress = 198.18.0.10/24\n"
                                            "interface = lo\n[hooks]\non_promote = " +
                                            hook + "\non_demote = " + hook + "\n"));
    CHECK_MESSAGE(ok.rc == 0, ok.output);
    CHECK(ok.output.find("interface lo: ok") != std::string::npos);
    CHECK(ok.output.find("database rights: ok") != std::string::npos);

    auto keys =
        check(conf(db.conninfo(), "[security]\nmode = curve\nsecret_key_file = " + dir +
                                      "/none.key\npublic_key_file = " + dir +
                                      "/none.pub\npeer_public_key_file = " + dir + "/peer.pub\n"));
    CHECK(keys.rc == 1);
    CHECK_MESSAGE(
        keys.output.find("security.secret_key_file: could not open key file") != std::string::npos,
        keys.output);

    auto hooks = check(conf(db.conninfo(), plain +
                                               "[shared]\naddress = 198.18.0.10/24\n"
                                               "interface = lo\n[hooks]\non_promote = " +
                                               not_exec + "\non_demote = " + hook + "\n"));
    CHECK(hooks.rc == 1);
    CHECK_MESSAGE(hooks.output.find("hooks.on_promote \"" + not_exec + "\" is not executable") !=
                      std::string::npos,
                  hooks.output);

    auto iface = check(conf(db.conninfo(), plain +
                                               "[shared]\naddress = 198.18.0.10/24\n"
                                               "interface = mpfnope0\n[hooks]\non_promote = " +
                                               hook + "\non_demote = " + hook + "\n"));
    CHECK(iface.rc == 1);
    CHECK_MESSAGE(
        iface.output.find("shared.interface \"mpfnope0\" is not an interface") != std::string::npos,
        iface.output);

    // A login that is not a superuser and was granted nothing.
    const std::string role = "mpft_weak_" + std::to_string(::getpid());
    {
      pqxx::connection c(db.conninfo());
      pqxx::nontransaction tx(c);
      tx.exec("DROP ROLE IF EXISTS " + role);
      tx.exec("CREATE ROLE " + role + " LOGIN");
      tx.exec("GRANT USAGE ON SCHEMA mpfailover TO " + role);
      tx.exec("GRANT SELECT ON ALL TABLES IN SCHEMA mpfailover TO " + role);
    }
    auto weak = check(conf(db.conninfo() + " user=" + role, plain));
    CHECK(weak.rc == 1);
    CHECK_MESSAGE(weak.output.find("database login \"" + role + "\" (node.database) lacks") !=
                      std::string::npos,
                  weak.output);
    CHECK(weak.output.find("DELETE on mpfailover.change_log") != std::string::npos);
    CHECK(weak.output.find("INSERT on users") != std::string::npos);
    {
      pqxx::connection c(db.conninfo());
      pqxx::nontransaction tx(c);
      tx.exec("DROP OWNED BY " + role);
      tx.exec("DROP ROLE " + role);
    }
    std::filesystem::remove_all(dir);
  }
}
