// A minimal HTTP/1.1 client for tests: one request to 127.0.0.1:port over a plain socket, the
// whole answer read until the server closes (the daemon's listener answers Connection: close).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mpf::test {

struct HttpAnswer {
  int code = 0;                                // 0: refused, or not HTTP
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

inline HttpAnswer http_request(uint16_t port, const std::string& method,
                               const std::string& target) {
  HttpAnswer a;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return a;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return a;
  }
  timeval tv{15, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  std::array<char, 4096> buf{};
  ssize_t n;
  while ((n = ::recv(fd, buf.data(), buf.size(), 0)) > 0) out.append(buf.data(), n);
  ::close(fd);
  const auto end = out.find("\r\n\r\n");
  if (out.rfind("HTTP/1.", 0) != 0 || out.size() < 12 || end == std::string::npos) return a;
  a.code = std::stoi(out.substr(9, 3));
  std::istringstream head(out.substr(0, end));
  std::string line;
  std::getline(head, line);  // the status line
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    a.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  a.body = out.substr(end + 4);
  return a;
}

}  // namespace mpf::test
