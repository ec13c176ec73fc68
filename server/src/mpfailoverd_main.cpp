// mpfailoverd: the daemon. Loads and checks its config and database before anything starts;
// any failure there is one clear message and a non-zero exit. Then it runs, until SIGTERM or
// SIGINT (SIGHUP reloads the config; docs/cli-exit-codes.md lists the signals), the receiver (this
// node as target, listening on replication.port) and the shipper (this node as source, connecting
// to the peer), each on its own thread with its own database connection, and logs the link's state
// every heartbeat.interval.
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <iostream>
#include <memory>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/program_options.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include <mpf/core/text.hpp>
#include <mpf/heartbeat/heartbeat_message.hpp>
#include <mpf/replicator/receiver.hpp>
#include <mpf/replicator/shipper.hpp>
#include <mpf/replicator/wire.hpp>
#include <mpf/schema/migrations.hpp>
#include <mpf/server/config.hpp>
#include <mpf/server/control_server.hpp>
#include <mpf/server/init_db.hpp>
#include <mpf/server/logging.hpp>
#include <mpf/server/metrics_sampler.hpp>
#include <mpf/server/metrics_server.hpp>
#include <mpf/server/node_driver.hpp>
#include <mpf/server/pair_health.hpp>
#include <mpf/server/preflight.hpp>
#include <mpf/server/queue_watch.hpp>
#include <mpf/server/resync_runner.hpp>
#include <mpf/server/sample_ring.hpp>
#include <mpf/server/status_page.hpp>
#include <mpf/server/systemd_notify.hpp>
#include <mpf/server/verify_responder.hpp>

namespace po = boost::program_options;

namespace {

// Start-up stops at the first failure: one line in the log and on stderr, exit status 1.
int refuse_startup(const mpf::Status& s) {
  spdlog::error("StartupRefused reason=\"{}\"", mpf::one_line(s.message()));
  std::cerr << "mpfailoverd: " << s.message() << "\n";
  return 1;
}

// The signals a daemon can get by accident: none may end it silently. SIGPIPE is ignored (a
// peer that closed a socket is an EPIPE where it happens); these are logged and ignored.
constexpr std::array<int, 3> kIgnoredSignals = {SIGUSR1, SIGUSR2, SIGALRM};

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGHUP:
      return "SIGHUP";
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGALRM:
      return "SIGALRM";
    default:
      return "signal";
  }
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = mpf::server::kDefaultConfigPath;
  bool check_only = false;
  po::options_description desc("usage: mpfailoverd [--config PATH] [--check] [--version]");
  desc.add_options()("help,h", "show this help")("version", "show the version and exit")(
      "config", po::value(&config_path), "node config (default /etc/mpfailover/mpfailover.conf)")(
      "check", po::bool_switch(&check_only),
      "check the config, its key files, hooks and interface, and the database (catalog and the "
      "login's rights), then exit");
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
  if (vm.count("version")) {
    std::cout << "mpfailoverd " << mpf::server::build_version() << "\n";
    return 0;
  }
  auto cfg = mpf::server::load_config(config_path);
  if (!cfg) {
    std::cerr << "mpfailoverd: " << cfg.status().message() << "\n";
    return 2;
  }
  mpf::server::setup_logging("mpfailoverd", cfg->log.level);
  if (auto s = mpf::server::check_database(*cfg); !s) {
    return refuse_startup(s);
  }
  if (check_only) {
    auto report = mpf::server::preflight(*cfg);
    if (!report) return refuse_startup(report.status());
    for (const auto& w : report->warnings) std::cerr << "mpfailoverd: warning: " << w << "\n";
    std::cout << "config \"" << config_path << "\" and database are ready for node \""
              << cfg->node.name << "\"";
    for (const auto& c : report->checked) std::cout << "; " << c << ": ok";
    std::cout << "\n";
    return 0;
  }
  int32_t catalog_version = 0;
  try {
    pqxx::connection conn(cfg->node.database);
    auto v = mpf::schema::installed_version(conn, "catalog");
    if (v) catalog_version = *v;
  } catch (const std::exception&) {
    // check_database just connected; a failure here shows up in the shipper's status.
  }

  mpf::replicator::Security security;
  security.curve = cfg->security.mode == "curve";
  if (security.curve) {
    auto pub = mpf::replicator::read_key_file(cfg->security.public_key_file, false);
    auto sec = mpf::replicator::read_key_file(cfg->security.secret_key_file, true);
    auto peer = mpf::replicator::read_key_file(cfg->security.peer_public_key_file, false);
    for (const auto* r : {&pub, &sec, &peer}) {
      if (!*r) {
        return refuse_startup(r->status());
      }
    }
    security.public_key = *pub;
    security.secret_key = *sec;
    security.peer_public_key = *peer;
  } else {
    spdlog::warn(
        "SecurityDisabled reason=\"security.mode = plain: port {} is unencrypted and "
        "unauthenticated\"",
        cfg->replication.port);
  }

  zmq::context_t zmq_context(1);
  mpf::replicator::ReceiverOptions ropt;
  ropt.node = cfg->node.name;
  ropt.peer = cfg->peer.name;
  ropt.endpoint = cfg->listen_endpoint();
  ropt.conninfo = cfg->node.database;
  ropt.catalog_version = catalog_version;
  ropt.max_protocol_version = cfg->protocol_max();
  ropt.software_version = mpf::server::software_version();
  ropt.security = security;
  // Heartbeats share port 2008: the receiver's port thread hands them to the node driver.
  std::atomic<mpf::server::NodeDriver*> driver_ptr{nullptr};
  // The peer's `mpfailover verify` and `check` ask on port 2008 too ("MPV" frames).
  mpf::server::VerifyResponder verify_responder(*cfg);
  ropt.side_channel = [&driver_ptr,
                       &verify_responder](std::string_view frame) -> std::optional<std::string> {
    if (auto* d = driver_ptr.load()) {
      if (auto answer = d->on_port_frame(frame)) return answer;
    } else if (mpf::heartbeat::is_heartbeat_frame(frame)) {
      return std::string();  // not ready: missed
    }
    return verify_responder.on_port_frame(frame);
  };
  mpf::replicator::Receiver receiver(zmq_context, ropt);
  if (auto s = receiver.bind(); !s) {
    return refuse_startup(s);
  }
  mpf::replicator::ShipperOptions sopt;
  sopt.node = cfg->node.name;
  sopt.peer = cfg->peer.name;
  sopt.endpoint = cfg->peer_endpoint();
  sopt.conninfo = cfg->node.database;
  sopt.catalog_version = catalog_version;
  sopt.max_protocol_version = cfg->protocol_max();
  sopt.software_version = mpf::server::software_version();
  sopt.security = security;
  sopt.retention = cfg->replication.retention;
  sopt.tombstone_retention = cfg->replication.tombstone_retention;
  mpf::replicator::Shipper shipper(zmq_context, sopt);

  spdlog::info(
      "DaemonStarted node={} peer={} listen={} peer_endpoint={} security={} tables={} "
      "software_version={} protocol_versions={}-{}{} catalog_version={}",
      cfg->node.name, cfg->peer.name, ropt.endpoint, sopt.endpoint, cfg->security.mode,
      cfg->replication.tables.size(), mpf::server::software_version(),
      mpf::replicator::wire::kMinProtocolVersion, cfg->protocol_max(),
      cfg->protocol_pinned() ? " pinned_by=replication.max_protocol_version" : "", catalog_version);
  boost::asio::io_context io;
  mpf::server::NodeDriver driver(io, zmq_context, *cfg, security, shipper, receiver);
  // The database numbers (backlog, conflicts) are sampled on their own thread, metrics or not:
  // status, `list` and the facts the peer's `list` shows need the backlog too. A sample is one
  // scan of change_log, at most every 5 s and 20x as long as the last one took (cheap while
  // the backlog is small, at most ~5% of one backend while it is large).
  auto metrics_sampler = std::make_unique<mpf::server::MetricsSampler>(
      cfg->node.database, cfg->node.name, cfg->peer.name);
  driver.set_sampler(metrics_sampler.get());
  if (auto s = driver.start(); !s) {
    return refuse_startup(s);
  }
  driver_ptr = &driver;
  // `mpfailover resync` runs here, on a thread of its own (resync_runner.hpp says why).
  mpf::server::ResyncRunner resync(*cfg, receiver, shipper);
  mpf::server::ControlServer control(io, cfg->control.socket, cfg->control.group,
                                     [&driver, &resync](const nlohmann::json& r) {
                                       if (mpf::server::ResyncRunner::handles(r))
                                         return resync.handle(r, driver.status_json());
                                       return driver.handle(r);
                                     });
  if (auto s = control.start(); !s) {
    return refuse_startup(s);
  }
  // The status page's last hour (GET /, status_page.hpp): one sample of the backlog and the
  // applied counter every 10 s, on the io thread (the ring is not thread-safe, nor need it be).
  mpf::server::SampleRing page_ring;
  boost::asio::steady_timer page_timer(io);
  std::function<void()> record_page_sample = [&] {
    std::optional<int64_t> backlog;
    if (auto db = metrics_sampler->latest()) backlog = db->backlog_transactions;
    page_ring.record(unix_now(), backlog, receiver.stats().transactions);
    page_timer.expires_after(
        std::chrono::milliseconds(static_cast<int64_t>(page_ring.interval() * 1000)));
    page_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) record_page_sample();
    });
  };
  // Prometheus metrics (metrics.listen): the database numbers are sampled on their own thread.
  std::unique_ptr<mpf::server::MetricsServer> metrics;
  // At start and on a reload that moved metrics.listen (the sampler stays: status needs it).
  auto start_metrics = [&]() -> mpf::Status {
    if (cfg->metrics.listen.empty()) return mpf::Status::ok();
    metrics = std::make_unique<mpf::server::MetricsServer>(
        io, cfg->metrics.address, cfg->metrics.port, [&] {
          // A connection of a server a reload replaced may still ask: nothing for it.
          if (!metrics_sampler) return std::string();
          return mpf::server::render_metrics(
              mpf::server::gather_metrics(driver, shipper, receiver, *metrics_sampler));
        });
    // GET /active, /standby, /health (HAProxy, keepalived): pair_health.hpp.
    metrics->set_health(
        [&driver](std::string_view path) -> std::optional<std::pair<int, std::string>> {
          auto a = mpf::server::health_endpoint(path, driver.status_json());
          if (!a) return std::nullopt;
          return std::pair{a->code, std::move(a->body)};
        });
    // GET / and /status.json: the status page, from memory only (the sampler read the events).
    metrics->set_page([&] {
      if (!metrics_sampler) return std::string();
      return mpf::server::status_page_json(*cfg, driver.status_json(), page_ring,
                                           metrics_sampler->recent_events(), unix_now())
          .dump();
    });
    if (auto s = metrics->start(); !s) {
      metrics.reset();
      return s;
    }
    return mpf::Status::ok();
  };
  if (auto s = start_metrics(); !s) {
    return refuse_startup(s);
  }
  metrics_sampler->start();
  record_page_sample();
  std::jthread receiver_thread([&](std::stop_token st) { receiver.run(st); });
  std::jthread shipper_thread([&](std::stop_token st) { shipper.run(st); });
  // systemd (Type=notify): ready once the receiver is bound and the driver started.
  mpf::server::SystemdNotifier notifier(io);
  notifier.ready("node " + cfg->node.name + " listening on " + ropt.endpoint);

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int sig) {
    spdlog::info("DaemonStopping signal={}", signal_name(sig));
    notifier.stopping();
    io.stop();
  });
  // SIGHUP: reload what can change at run time (plan_reload in config.cpp says which keys),
  // name what needs a restart. A config that does not load changes nothing.
  auto reload = [&] {
    auto next = mpf::server::load_config(config_path);
    if (!next) {
      spdlog::error(
          "ReloadFailed reason=\"{}\" hint=\"fix the file and send SIGHUP again; the "
          "running config stays\"",
          mpf::one_line(next.status().message()));
      return;
    }
    auto plan = mpf::server::plan_reload(*cfg, *next);
    std::vector<std::string> applied, failed;
    for (const auto& key : plan.apply) {
      if (key == "heartbeat.witness") {
        if (auto s = driver.set_witnesses(next->heartbeat.witness); !s) {
          spdlog::error("ReloadKeyFailed key={} reason=\"{}\"", key, mpf::one_line(s.message()));
          failed.push_back(key);
          continue;
        }
        cfg->heartbeat.witness = next->heartbeat.witness;
      } else if (key == "failover.automatic") {
        // Never automatic without the witnesses that make it safe.
        if (next->failover.automatic && cfg->heartbeat.witness != next->heartbeat.witness) {
          spdlog::error(
              "ReloadKeyFailed key={} reason=\"heartbeat.witness could not be "
              "applied; automatic failover needs it\"",
              key);
          failed.push_back(key);
          continue;
        }
        cfg->failover.automatic = next->failover.automatic;
      } else if (key == "metrics.listen") {
        metrics.reset();
        cfg->metrics.listen = next->metrics.listen;
        cfg->metrics.address = next->metrics.address;
        cfg->metrics.port = next->metrics.port;
        if (auto s = start_metrics(); !s) {
          spdlog::error("ReloadKeyFailed key={} reason=\"{}\"", key, mpf::one_line(s.message()));
          failed.push_back(key);
          continue;
        }
      } else if (key.rfind("hooks.", 0) == 0) {
        cfg->hooks.on_promote = next->hooks.on_promote;
        cfg->hooks.on_demote = next->hooks.on_demote;
        cfg->hooks.timeout = next->hooks.timeout;
        cfg->hooks.on_role_change = next->hooks.on_role_change;
      } else if (key == "conflicts.retention") {
        cfg->conflicts.retention = next->conflicts.retention;
      }
      applied.push_back(key);
    }
    driver.config_reloaded();
    // Logged before the new level applies, so a reload to "warn" still shows in the log.
    spdlog::info("ConfigReloaded path=\"{}\" applied={} failed={} restart_needed={}", config_path,
                 applied.empty() ? "none" : join(applied), failed.empty() ? "none" : join(failed),
                 plan.restart.empty() ? "none" : join(plan.restart));
    if (!plan.restart.empty()) {
      spdlog::warn(
          "ReloadNeedsRestart keys={} hint=\"systemctl restart mpfailoverd to apply "
          "them\"",
          join(plan.restart));
    }
    if (cfg->log.level != next->log.level) {
      cfg->log.level = next->log.level;
      spdlog::set_level(spdlog::level::from_str(cfg->log.level));
    }
  };
  std::signal(SIGPIPE, SIG_IGN);
  boost::asio::signal_set other_signals(io, SIGHUP);
  for (int sig : kIgnoredSignals) other_signals.add(sig);
  std::function<void()> wait_other = [&] {
    other_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        spdlog::info("ReloadRequested signal=SIGHUP path=\"{}\"", config_path);
        reload();
      } else {
        spdlog::warn(
            "SignalIgnored signal={} hint=\"SIGTERM stops mpfailoverd, SIGHUP reloads "
            "its config\"",
            signal_name(sig));
      }
      wait_other();
    });
  };
  wait_other();
  boost::asio::steady_timer timer(io);
  mpf::server::QueueWatch queue_watch(cfg->node.database, cfg->queue.warn_bytes);
  // LinkStatus is logged when the link's state (up/down either way, the shipper's error)
  // changes, and while only the counters move at most every 10 s: one line a second filled the
  // log of a busy pair with lines that said nothing new, and an idle pair logs nothing.
  std::string last_link_state;
  std::string last_link_counters;
  auto last_link_line = std::chrono::steady_clock::time_point{};
  std::function<void()> report = [&] {
    queue_watch.check();
    driver.recheck_catalog();
    driver.prune_conflicts();
    const auto out = shipper.stats();
    const auto in = receiver.stats();
    const std::string state = std::string(out.connected ? "up" : "down") + "/" +
                              (in.connected ? "up" : "down") + "/" + out.last_error;
    const std::string counters = out.acked.to_string() + "/" + in.applied.to_string() + "/" +
                                 std::to_string(in.dropped_frames);
    const auto t = std::chrono::steady_clock::now();
    const bool news = state != last_link_state || (counters != last_link_counters &&
                                                   t - last_link_line >= std::chrono::seconds(10));
    // The lines that say nothing new still go to the debug level, one a tick, for a trace.
    if (news || spdlog::should_log(spdlog::level::debug)) {
      spdlog::log(news ? spdlog::level::info : spdlog::level::debug,
                  "LinkStatus peer={} outbound={} acked={} sent_tx={} sent_bytes={} inbound={} "
                  "applied={} applied_tx={} dropped_frames={}{}",
                  cfg->peer.name, out.connected ? "up" : "down", out.acked.to_string(),
                  out.transactions, out.wire_bytes, in.connected ? "up" : "down",
                  in.applied.to_string(), in.transactions, in.dropped_frames,
                  out.last_error.empty() ? std::string() : " error=\"" + out.last_error + "\"");
      if (news) {
        last_link_state = state;
        last_link_counters = counters;
        last_link_line = t;
      }
    }
    // What `systemctl status` shows: the role first, then the link.
    const auto st = driver.status_json();
    notifier.status("node " + cfg->node.name + ": " + st.value("role", std::string("?")) +
                    " (epoch " + std::to_string(st.value("epoch", 0LL)) + "), peer " +
                    cfg->peer.name + " " + st.value("peer_state", std::string("?")) +
                    ", outbound " + (out.connected ? "up" : "down") + ", inbound " +
                    (in.connected ? "up" : "down") + ", acked " + out.acked.to_string());
    timer.expires_after(cfg->heartbeat.interval);
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) report();
    });
  };
  report();
  io.run();
  driver_ptr = nullptr;
  shipper_thread.request_stop();
  receiver_thread.request_stop();
  return 0;
}
