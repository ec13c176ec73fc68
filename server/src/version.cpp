// --version's text. Alone in its file: `git describe` changes with every commit, and only this
// file is compiled with it (server/CMakeLists.txt).
#include <string>

#include <mpf/server/config.hpp>

namespace mpf::server {

std::string build_version() {
  const std::string git = MPF_GIT_DESCRIBE;
  return git.empty() ? std::string(software_version())
                     : std::string(software_version()) + " (git " + git + ")";
}

}  // namespace mpf::server
