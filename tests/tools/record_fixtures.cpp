// record_fixtures OUTDIR: captures the socket table of the current network
// namespace as test fixtures (format: tests/fixtures/README.md).
//
//   netlink_tcp.bin     reply datagrams of the TCP dump as the exporter makes
//                       it (legacy single-walk request)
//   netlink_tcp_v2.bin  reply datagrams of the per-family TCP requests (the
//                       fallback path), recorded by a second dump
//   netlink_udp.bin     reply datagrams of the four UDP requests
//   proc_net_{tcp,tcp6,udp,udp6}.txt   copies of /proc/net files
//   ss.txt              `ss -tuanH`, for humans to cross-check
//
// Each .bin file is a sequence of [u32 length, little endian][datagram].
// Run it inside a namespace holding a known population
// (tests/tools/make_fixtures.sh does).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <tuple>

#include "collectors/sources/netlink_source.h"
#include "collectors/sources/procnet_source.h"
#include "collectors/sources/socket_record.h"
#include "common/read_file.h"

namespace socket_exporter {
namespace {

class Counter : public SocketSink {
 public:
  void OnSocket(const SocketRecord& record) override {
    ++counts_[{record.protocol, record.family, record.state}];
  }
  void Print(const char* title) const {
    std::printf("%s\n", title);
    for (const auto& [key, count] : counts_) {
      const auto& [protocol, family, state] = key;
      const std::string name(StateName(protocol, state));
      const std::string proto(ProtocolName(protocol));
      const std::string fam(FamilyName(family));
      std::printf("  %s %s %-14s (state %2d): %llu\n", proto.c_str(), fam.c_str(), name.c_str(),
                  state, static_cast<unsigned long long>(count));
    }
  }

 private:
  std::map<std::tuple<Protocol, Family, std::uint8_t>, std::uint64_t> counts_;
};

void WriteFrame(std::ofstream& out, std::span<const std::uint8_t> datagram) {
  const auto length = static_cast<std::uint32_t>(datagram.size());
  const char prefix[4] = {static_cast<char>(length & 0xff), static_cast<char>((length >> 8) & 0xff),
                          static_cast<char>((length >> 16) & 0xff),
                          static_cast<char>((length >> 24) & 0xff)};
  out.write(prefix, sizeof(prefix));
  out.write(reinterpret_cast<const char*>(datagram.data()),
            static_cast<std::streamsize>(datagram.size()));
}

bool CopyProcFile(const std::string& name, const std::string& out_dir) {
  std::string text;
  auto read = ReadWholeFile("/proc/net/" + name, text);
  if (!read) {
    std::fprintf(stderr, "record_fixtures: %s\n", read.error().message.c_str());
    return false;
  }
  if (!*read) {
    std::printf("/proc/net/%s does not exist (IPv6 disabled?); not recorded\n", name.c_str());
    return true;
  }
  std::ofstream out(out_dir + "/proc_net_" + name + ".txt", std::ios::binary);
  out << text;
  return static_cast<bool>(out);
}

bool RecordSs(const std::string& out_dir) {
  FILE* pipe = ::popen("ss -tuanH", "r");
  if (pipe == nullptr) return false;
  std::ofstream out(out_dir + "/ss.txt", std::ios::binary);
  char chunk[4096];
  std::size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof(chunk), pipe)) > 0) {
    out.write(chunk, static_cast<std::streamsize>(got));
  }
  return ::pclose(pipe) == 0 && static_cast<bool>(out);
}

int Run(const std::string& out_dir) {
  std::ofstream tcp(out_dir + "/netlink_tcp.bin", std::ios::binary);
  std::ofstream tcp_v2(out_dir + "/netlink_tcp_v2.bin", std::ios::binary);
  std::ofstream udp(out_dir + "/netlink_udp.bin", std::ios::binary);
  if (!tcp || !tcp_v2 || !udp) {
    std::fprintf(stderr, "record_fixtures: cannot create files in %s\n", out_dir.c_str());
    return 1;
  }

  // Dump 1: exactly what the exporter does (legacy TCP walk, then UDP).
  NetlinkSourceOptions options;
  options.recorder = [&](Protocol protocol, std::span<const std::uint8_t> datagram) {
    WriteFrame(protocol == Protocol::kTcp ? tcp : udp, datagram);
  };
  NetlinkSource netlink(options);
  Counter counter;
  auto stats = netlink.Stream(counter);
  if (!stats) {
    std::fprintf(stderr, "record_fixtures: %s\n", stats.error().message.c_str());
    return 1;
  }
  if (!netlink.LastTcpDumpWasLegacy()) {
    std::fprintf(stderr,
                 "record_fixtures: the kernel refused the legacy TCP dump; "
                 "netlink_tcp.bin holds the per-family replies\n");
  }
  counter.Print("netlink:");

  // Dump 2: the per-family TCP requests, for the fallback path's fixture.
  NetlinkSourceOptions v2_options;
  v2_options.legacy_tcp_dump = false;
  v2_options.recorder = [&](Protocol protocol, std::span<const std::uint8_t> datagram) {
    if (protocol == Protocol::kTcp) WriteFrame(tcp_v2, datagram);
  };
  NetlinkSource netlink_v2(v2_options);
  Counter v2_counter;
  if (auto v2_stats = netlink_v2.Stream(v2_counter); !v2_stats) {
    std::fprintf(stderr, "record_fixtures: %s\n", v2_stats.error().message.c_str());
    return 1;
  }

  bool ok = true;
  for (const char* name : {"tcp", "tcp6", "udp", "udp6"}) ok = CopyProcFile(name, out_dir) && ok;
  if (!RecordSs(out_dir)) {
    std::fprintf(stderr, "record_fixtures: `ss -tuanH` failed\n");
    ok = false;
  }
  tcp.close();
  tcp_v2.close();
  udp.close();
  if (!tcp || !tcp_v2 || !udp) ok = false;
  std::printf("%llu sockets recorded in %s\n", static_cast<unsigned long long>(stats->records),
              out_dir.c_str());
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace socket_exporter

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  return socket_exporter::Run(argv[1]);
}
