#include "common/read_file.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "common/errno_text.h"

namespace socket_exporter {

Result<bool> ReadWholeFile(const std::string& path, std::string& out, std::size_t chunk) {
  out.clear();
  int fd = -1;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) return false;
    return Fail(fmt::format("cannot open {}: {}", path, ErrnoText(error)));
  }
  for (;;) {
    const std::size_t used = out.size();
    out.resize(used + chunk);
    const ssize_t got = ::read(fd, out.data() + used, chunk);
    if (got < 0) {
      const int error = errno;
      out.resize(used);
      if (error == EINTR) continue;
      ::close(fd);
      return Fail(fmt::format("cannot read {}: {}", path, ErrnoText(error)));
    }
    out.resize(used + static_cast<std::size_t>(got));
    if (got == 0) break;
  }
  ::close(fd);
  return true;
}

Result<std::string> ReadRequiredFile(const std::string& path) {
  std::string text;
  TRY_ASSIGN(auto found, ReadWholeFile(path, text));
  if (!found) return Fail(fmt::format("cannot read {}: {}", path, ErrnoText(ENOENT)));
  return text;
}

}  // namespace socket_exporter
