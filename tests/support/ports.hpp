// Ports for test daemons: below the kernel's ephemeral range (32768-60999 on Debian), where a
// client connection of any process may hold a port for a while (a daemon that failed to bind
// left a pair test waiting out ctest's timeout), and probed free before use.
#pragma once

#include <cstdint>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mpf::test {

inline bool port_is_free(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// `count` consecutive free ports in [10000, 32000), starting from a place that depends on `salt`
// and the process id (two suites at once start apart), the first run of free ones.
inline uint16_t free_ports(int count, int salt = 0) {
  constexpr int kLow = 10000;
  constexpr int kSpan = 22000;
  const int start = (salt * 7919 + static_cast<int>(::getpid()) * 2) % kSpan;
  for (int i = 0; i < kSpan; i += count) {
    const auto first = static_cast<uint16_t>(kLow + (start + i) % (kSpan - count));
    bool all = true;
    for (int k = 0; k < count && all; ++k) all = port_is_free(static_cast<uint16_t>(first + k));
    if (all) return first;
  }
  return 0;  // none: the caller's bind fails and says so
}

}  // namespace mpf::test
