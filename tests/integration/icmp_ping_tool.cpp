// Test tool for tests/integration/icmp_ping_test.sh, not a product binary: pings one address
// with mpf::heartbeat::IcmpPinger and prints one line per ping:
//   outcome=reply socket=raw elapsed_ms=0 rtt_us=57 detail="..."
// Exit status (of the last ping): 0 reply, 1 timeout, 2 error, 3 open() failed (its message on
// stderr), 64 bad usage.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include <boost/asio/io_context.hpp>

#include <mpf/heartbeat/icmp_pinger.hpp>

namespace {

int usage() {
  std::cerr << "usage: mpf_icmp_ping_tool [--socket auto|raw|datagram] [--timeout-ms N] "
               "[--count N] [--repeat N] [--overlap] ADDRESS\n"
               "  --overlap  start a second ping while the first is in flight (must be refused)\n";
  return 64;
}

int exit_code(mpf::heartbeat::PingOutcome o) {
  switch (o) {
    case mpf::heartbeat::PingOutcome::kReply:
      return 0;
    case mpf::heartbeat::PingOutcome::kTimeout:
      return 1;
    case mpf::heartbeat::PingOutcome::kError:
      return 2;
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using mpf::heartbeat::IcmpSocketChoice;
  IcmpSocketChoice choice = IcmpSocketChoice::kAuto;
  int timeout_ms = 1000;
  int count = 1;
  int repeat = 1;
  bool overlap = false;
  std::string address;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--socket" && has_value) {
      const std::string v = argv[++i];
      if (v == "auto") {
        choice = IcmpSocketChoice::kAuto;
      } else if (v == "raw") {
        choice = IcmpSocketChoice::kRaw;
      } else if (v == "datagram") {
        choice = IcmpSocketChoice::kDatagram;
      } else {
        return usage();
      }
    } else if (arg == "--timeout-ms" && has_value) {
      timeout_ms = std::atoi(argv[++i]);
    } else if (arg == "--count" && has_value) {
      count = std::atoi(argv[++i]);
    } else if (arg == "--repeat" && has_value) {
      repeat = std::atoi(argv[++i]);
    } else if (arg == "--overlap") {
      overlap = true;
    } else if (!arg.empty() && arg[0] != '-' && address.empty()) {
      address = arg;
    } else {
      return usage();
    }
  }
  if (address.empty() || repeat < 1) return usage();

  boost::asio::io_context io;
  auto pinger = mpf::heartbeat::IcmpPinger::open(io, address, choice);
  if (!pinger) {
    std::cerr << "mpf_icmp_ping_tool: " << pinger.status().message() << "\n";
    return 3;
  }
  int status = 0;
  for (int r = 0; r < repeat; ++r) {
    const auto start = std::chrono::steady_clock::now();
    int calls = 0;
    int overlap_calls = 0;
    auto print = [&](const char* label, const mpf::heartbeat::PingResult& result) {
      const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - start);
      std::cout << label << "outcome=" << to_string(result.outcome)
                << " socket=" << (*pinger)->socket_kind() << " elapsed_ms=" << elapsed.count()
                << " rtt_us=" << result.rtt.count() << " detail=\"" << result.detail << "\""
                << std::endl;
    };
    (*pinger)->ping(
        std::chrono::milliseconds(timeout_ms),
        [&](mpf::heartbeat::PingResult result) {
          ++calls;
          print("", result);
          status = exit_code(result.outcome);
        },
        count);
    if (overlap) {
      (*pinger)->ping(std::chrono::milliseconds(timeout_ms),
                      [&](mpf::heartbeat::PingResult result) {
                        ++overlap_calls;
                        print("overlap ", result);
                        if (result.outcome != mpf::heartbeat::PingOutcome::kError) status = 70;
                      });
    }
    // The pinger keeps a receive outstanding, so the io_context never runs out of work: run
    // until `done` has been called, with a deadline in case it never is.
    const auto limit = start + std::chrono::milliseconds(timeout_ms) + std::chrono::seconds(5);
    while ((calls == 0 || (overlap && overlap_calls == 0)) &&
           std::chrono::steady_clock::now() < limit) {
      io.run_one_until(limit);
    }
    io.poll();  // a second call of `done` already due would show here
    if (calls != 1 || overlap_calls != (overlap ? 1 : 0)) {
      std::cout << "done called " << calls << " times, overlap " << overlap_calls << " times"
                << std::endl;
      return 70;
    }
    if (status == 70) return status;
  }
  return status;
}
