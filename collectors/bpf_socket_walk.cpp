#include "collectors/bpf_socket_walk.h"

#if SOCKET_EXPORTER_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "collectors/bpf/netns_sockets_embedded.h"
#endif

namespace socket_exporter {

#if !SOCKET_EXPORTER_HAVE_BPF

struct BpfSocketWalk::State {};

bool BpfSocketWalkBuilt() { return false; }

Result<std::unique_ptr<BpfSocketWalk>> BpfSocketWalk::Open() {
  return Fail("this build has no BPF support (configure with libbpf-dev, clang and bpftool)");
}

Result<std::uint64_t> BpfSocketWalk::Walk(const SinkFor& /*sink_for*/) {
  return Fail("this build has no BPF support");
}

#else

namespace {

// Mirrors struct netns_socket_record of netns_sockets.bpf.c.
struct WireRecord {
  std::uint32_t netns;
  std::uint8_t protocol;
  std::uint8_t family;
  std::uint8_t state;
  std::uint8_t reserved;
  std::uint16_t local_port;
  std::uint16_t remote_port;
  std::uint32_t local[4];
  std::uint32_t remote[4];
  std::uint32_t rqueue;
  std::uint32_t wqueue;
  std::uint64_t cookie;
};
static_assert(sizeof(WireRecord) == 64);

// In the order each namespace must see its sockets (header comment).
constexpr std::array<const char*, 4> kPrograms = {"dump_tcp_bound", "dump_tcp",
                                                  "dump_udp_unconnected", "dump_udp_connected"};
constexpr std::size_t kBoundProgram = 0;

SocketRecord ToRecord(const WireRecord& wire) {
  SocketRecord record;
  record.protocol = wire.protocol == 0 ? Protocol::kTcp : Protocol::kUdp;
  record.family = wire.family == AF_INET6 ? Family::kIpv6 : Family::kIpv4;
  record.state = wire.state;
  record.local.family = record.family;
  record.remote.family = record.family;
  const std::size_t bytes = record.family == Family::kIpv6 ? 16 : 4;
  std::memcpy(record.local.bytes.data(), wire.local, bytes);
  std::memcpy(record.remote.bytes.data(), wire.remote, bytes);
  record.local_port = wire.local_port;
  record.remote_port = wire.remote_port;
  record.rqueue = wire.rqueue;
  record.wqueue = wire.wqueue;
  return record;
}

// libbpf prints through a callback; keep it quiet (Open() reports errors).
int SilentPrint(enum libbpf_print_level /*level*/, const char* /*format*/, va_list /*args*/) {
  return 0;
}

std::string ErrnoText(int error) { return std::strerror(error < 0 ? -error : error); }

}  // namespace

struct BpfSocketWalk::State {
  bpf_object* object = nullptr;
  std::array<bpf_link*, kPrograms.size()> links{};
  std::vector<std::uint8_t> buffer;

  ~State() {
    for (bpf_link* link : links) {
      if (link != nullptr) bpf_link__destroy(link);
    }
    if (object != nullptr) bpf_object__close(object);
  }
};

bool BpfSocketWalkBuilt() { return true; }

Result<std::unique_ptr<BpfSocketWalk>> BpfSocketWalk::Open() {
  libbpf_set_print(SilentPrint);
  auto state = std::make_unique<State>();
  LIBBPF_OPTS(bpf_object_open_opts, options, .object_name = "se_netns");
  state->object = bpf_object__open_mem(kNetnsSocketsBpf, kNetnsSocketsBpfSize, &options);
  if (state->object == nullptr) {
    return Fail(fmt::format("BPF: cannot open the embedded object: {}", ErrnoText(errno)));
  }
  if (const int error = bpf_object__load(state->object); error != 0) {
    return Fail(fmt::format(
        "BPF: cannot load the socket iterators: {} (needs CAP_BPF and CAP_PERFMON or "
        "CAP_SYS_ADMIN, kernel BTF and BPF iterators)",
        ErrnoText(error)));
  }
  for (std::size_t i = 0; i < kPrograms.size(); ++i) {
    bpf_program* program = bpf_object__find_program_by_name(state->object, kPrograms[i]);
    if (program == nullptr) return Fail(fmt::format("BPF: program {} missing", kPrograms[i]));
    state->links[i] = bpf_program__attach_iter(program, nullptr);
    if (state->links[i] == nullptr) {
      return Fail(fmt::format("BPF: cannot attach iterator {}: {}", kPrograms[i],
                              ErrnoText(errno)));
    }
  }
  state->buffer.resize(1 << 16);
  return std::unique_ptr<BpfSocketWalk>(new BpfSocketWalk(std::move(state)));
}

Result<std::uint64_t> BpfSocketWalk::Walk(const SinkFor& sink_for) {
  std::uint64_t delivered = 0;
  std::unordered_set<std::uint64_t> bound_seen;
  for (std::size_t i = 0; i < kPrograms.size(); ++i) {
    const int fd = bpf_iter_create(bpf_link__fd(state_->links[i]));
    if (fd < 0) {
      return Fail(fmt::format("BPF: cannot start iterator {}: {}", kPrograms[i], ErrnoText(errno)));
    }
    std::size_t pending = 0;  // bytes of an incomplete record carried over
    for (;;) {
      const ssize_t n = ::read(fd, state_->buffer.data() + pending, state_->buffer.size() - pending);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int error = errno;
        ::close(fd);
        return Fail(fmt::format("BPF: reading iterator {} failed: {}", kPrograms[i],
                                ErrnoText(error)));
      }
      if (n == 0) break;
      const std::size_t available = pending + static_cast<std::size_t>(n);
      std::size_t offset = 0;
      for (; offset + sizeof(WireRecord) <= available; offset += sizeof(WireRecord)) {
        WireRecord wire;
        std::memcpy(&wire, state_->buffer.data() + offset, sizeof(wire));
        if (i == kBoundProgram && !bound_seen.insert(wire.cookie).second) continue;
        SocketSink* sink = sink_for(wire.netns);
        if (sink == nullptr) continue;
        sink->OnSocket(ToRecord(wire));
        ++delivered;
      }
      pending = available - offset;
      std::memmove(state_->buffer.data(), state_->buffer.data() + offset, pending);
    }
    ::close(fd);
    if (pending != 0) return Fail(fmt::format("BPF: iterator {} ended mid-record", kPrograms[i]));
  }
  return delivered;
}

#endif

BpfSocketWalk::BpfSocketWalk(std::unique_ptr<State> state) : state_(std::move(state)) {}
BpfSocketWalk::~BpfSocketWalk() = default;

}  // namespace socket_exporter
