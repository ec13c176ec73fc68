// mpfailoverd: the daemon. Loads and checks its config and database before anything starts;
// any failure there is one clear message and a non-zero exit.
//
// Until replication lands (issue 4) the daemon runs its checks, then records capture windows
// (ticks) and reports the local backlog every heartbeat interval, until SIGTERM or SIGINT.
#include <csignal>
#include <iostream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/program_options.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <mpf/replicator/pg_log_reader.hpp>
#include <mpf/server/config.hpp>
#include <mpf/server/init_db.hpp>
#include <mpf/server/logging.hpp>

namespace po = boost::program_options;

int main(int argc, char** argv) {
  std::string config_path = mpf::server::kDefaultConfigPath;
  bool check_only = false;
  po::options_description desc("usage: mpfailoverd [--config PATH] [--check]");
  desc.add_options()("help,h", "show this help")(
      "config", po::value(&config_path), "node config (default /etc/mpfailover/mpfailover.conf)")(
      "check", po::bool_switch(&check_only), "check config and database, then exit");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailoverd: " << e.what() << "\nhint: mpfailoverd --help\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  auto cfg = mpf::server::load_config(config_path);
  if (!cfg) {
    std::cerr << "mpfailoverd: " << cfg.status().message() << "\n";
    return 2;
  }
  mpf::server::setup_logging("mpfailoverd", cfg->log.level);
  if (auto s = mpf::server::check_database(*cfg); !s) {
    spdlog::error("StartupRefused reason=\"{}\"", s.message());
    std::cerr << "mpfailoverd: " << s.message() << "\n";
    return 1;
  }
  if (check_only) {
    std::cout << "config \"" << config_path << "\" and database are ready for node \""
              << cfg->node.name << "\"\n";
    return 0;
  }

  auto reader = mpf::replicator::PgLogReader::open(cfg->node.database);
  if (!reader) {
    spdlog::error("StartupRefused reason=\"{}\"", reader.status().message());
    return 1;
  }
  spdlog::info("DaemonStarted node={} peer={} tables={}", cfg->node.name, cfg->peer.name,
               cfg->replication.tables.size());

  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int sig) {
    spdlog::info("DaemonStopping signal={}", sig);
    io.stop();
  });
  boost::asio::steady_timer timer(io);
  std::function<void()> report = [&] {
    auto newest = (*reader)->tick();
    if (newest) {
      try {
        pqxx::connection conn(cfg->node.database);
        pqxx::nontransaction q(conn);
        auto r = q.exec("SELECT count(DISTINCT txid), count(*) FROM mpfailover.change_log");
        spdlog::info("Backlog transactions={} rows={} newest_tick={}", r[0][0].as<int64_t>(),
                     r[0][1].as<int64_t>(), *newest);
      } catch (const std::exception& e) {
        spdlog::warn("BacklogUnknown reason=\"{}\"", e.what());
      }
    } else {
      spdlog::warn("TickFailed reason=\"{}\"", newest.status().message());
      (void)(*reader)->seek({});
    }
    timer.expires_after(cfg->heartbeat.interval);
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) report();
    });
  };
  report();
  io.run();
  return 0;
}
