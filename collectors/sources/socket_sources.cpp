#include "collectors/sources/socket_sources.h"

#include "collectors/sources/netlink_source.h"
#include "collectors/sources/procnet_source.h"

namespace socket_exporter {
namespace {

class AutoSource : public SocketSource {
 public:
  AutoSource(std::string procfs_root, NetlinkSourceOptions netlink_options)
      : netlink_(std::move(netlink_options)), procfs_(std::move(procfs_root)) {}

  std::string Name() const override { return used_procfs_ ? procfs_.Name() : netlink_.Name(); }
  void Prefetch() override { netlink_.Prefetch(); }
  void Abandon() override { netlink_.Abandon(); }

  Result<SourceStats> Stream(SocketSink& sink) override {
    // Netlink is retried on every scrape: failing costs one socket() call,
    // and a transient denial should not pin the slow path forever.
    auto result = netlink_.Stream(sink);
    used_procfs_ = !result && netlink_.LastFailureMeansUnavailable();
    if (!used_procfs_) return result;
    auto fallback = procfs_.Stream(sink);
    if (!fallback) {
      return Fail(fallback.error().message +
                  " (procfs fallback; netlink: " + result.error().message + ")");
    }
    return fallback;
  }

 private:
  NetlinkSource netlink_;
  ProcNetSource procfs_;
  bool used_procfs_ = false;
};

}  // namespace

std::unique_ptr<SocketSource> MakeSocketSource(SourceKind kind, std::string procfs_root,
                                               SourceTuning tuning) {
  NetlinkSourceOptions netlink;
  netlink.background_tcp_dump = tuning.background_walk;
  switch (kind) {
    case SourceKind::kNetlink:
      return std::make_unique<NetlinkSource>(std::move(netlink));
    case SourceKind::kProcfs:
      return std::make_unique<ProcNetSource>(std::move(procfs_root));
    case SourceKind::kAuto:
      break;
  }
  return std::make_unique<AutoSource>(std::move(procfs_root), std::move(netlink));
}

}  // namespace socket_exporter
