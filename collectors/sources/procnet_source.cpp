#include "collectors/sources/procnet_source.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "collectors/sources/netlink_parser.h"
#include "collectors/sources/procnet_parser.h"
#include "common/read_file.h"

namespace socket_exporter {

ProcNetSource::ProcNetSource(std::string procfs_root) : root_(std::move(procfs_root)) {}

Result<SourceStats> ProcNetSource::Stream(SocketSink& sink) {
  struct File {
    const char* name;
    Family family;
    bool required;
    std::string path;
    std::string text;
    bool present = false;
  };
  SourceStats stats;
  // Both files of a protocol are held at once: the LISTEN lines of tcp6 must
  // come before the established lines of tcp. One protocol at a time keeps
  // peak memory to the TCP files.
  for (const Protocol protocol : {Protocol::kTcp, Protocol::kUdp}) {
    const bool tcp = protocol == Protocol::kTcp;
    File files[2] = {
        {tcp ? "tcp" : "udp", Family::kIpv4, true, {}, {}, false},
        {tcp ? "tcp6" : "udp6", Family::kIpv6, false, {}, {}, false},
    };
    for (File& file : files) {
      file.path = fmt::format("{}/net/{}", root_, file.name);
      TRY_ASSIGN(auto read, ReadWholeFile(file.path, file.text, kReadChunk));
      if (!read && file.required) return Fail(fmt::format("{} does not exist", file.path));
      file.present = read;
    }
    for (const ProcNetSelect select : {ProcNetSelect::kWithoutPeer, ProcNetSelect::kWithPeer}) {
      for (const File& file : files) {
        if (!file.present) continue;
        auto parsed = ParseProcNet(file.text, protocol, file.family, select, sink);
        if (!parsed) return Fail(fmt::format("{}: {}", file.path, parsed.error().message));
        stats.records += *parsed;
      }
    }
  }
  return stats;
}

}  // namespace socket_exporter
