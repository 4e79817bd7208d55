#include "collectors/sources/bpf_socket_walk.h"

#include "common/errno_text.h"

#if SOCKET_EXPORTER_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "collectors/sources/bpf/netns_sockets_embedded.h"
#endif

namespace socket_exporter {

#if !SOCKET_EXPORTER_HAVE_BPF

struct BpfSocketWalk::State {};

bool BpfSocketWalkBuilt() { return false; }

Result<std::unique_ptr<BpfSocketWalk>> BpfSocketWalk::Open() {
  return Fail("this build has no BPF support (configure with libbpf-dev, clang and bpftool)");
}

Result<BpfSocketWalk::Stats> BpfSocketWalk::Walk(const SinkFor& /*sink_for*/) {
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
  std::uint8_t reserved0;
  std::uint16_t local_port;
  std::uint16_t remote_port;
  std::uint32_t local[4];
  std::uint32_t remote[4];
  std::uint32_t rqueue;
  std::uint32_t wqueue;
  std::uint64_t cgroup_id;
};
static_assert(sizeof(WireRecord) == 64);

// Mirrors struct walk_state, the program's only global (its .bss map).
struct WalkState {
  std::uint64_t dropped;
  std::uint64_t truncated;
  std::uint64_t run_pending;
  std::uint32_t table;
  std::uint32_t next_bucket;
  std::uint32_t table_netns;
  std::uint32_t reserved;
};
static_assert(sizeof(WalkState) == 40);
constexpr std::uint32_t kFinished = 5;  // enum walk_table FINISHED
// Far more runs than a walk needs (the tables have at most a few million
// buckets, 16384 per run): a stuck walk ends instead of looping.
constexpr int kMaxRuns = 4096;

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
  record.cgroup_id = wire.cgroup_id;
  return record;
}

// libbpf prints through a callback; keep it quiet (Open() reports errors).
int SilentPrint(enum libbpf_print_level /*level*/, const char* /*format*/, va_list /*args*/) {
  return 0;
}

// What the ring buffer callback needs during one Walk().
struct Delivery {
  const BpfSocketWalk::SinkFor* sink_for = nullptr;
  BpfSocketWalk::Stats stats;
  bool malformed = false;
};

int OnRecord(void* context, void* data, std::size_t size) {
  auto* delivery = static_cast<Delivery*>(context);
  if (size != sizeof(WireRecord)) {
    delivery->malformed = true;
    return 0;
  }
  WireRecord wire;
  std::memcpy(&wire, data, sizeof(wire));
  if (SocketSink* sink = (*delivery->sink_for)(wire.netns)) {
    sink->OnSocket(ToRecord(wire));
    ++delivery->stats.delivered;
  }
  return 0;
}

}  // namespace

struct BpfSocketWalk::State {
  bpf_object* object = nullptr;
  bpf_link* link = nullptr;
  bpf_map* globals = nullptr;
  ring_buffer* ring = nullptr;
  Delivery delivery;

  ~State() {
    if (ring != nullptr) ring_buffer__free(ring);
    if (link != nullptr) bpf_link__destroy(link);
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
        "BPF: cannot load the socket walk: {} (needs CAP_BPF and CAP_PERFMON or CAP_SYS_ADMIN, "
        "kernel BTF, bpf_loop and ring buffers)",
        ErrnoText(error)));
  }
  bpf_program* program = bpf_object__find_program_by_name(state->object, "walk_all");
  state->globals = bpf_object__find_map_by_name(state->object, ".bss");
  bpf_map* records = bpf_object__find_map_by_name(state->object, "records");
  if (program == nullptr || state->globals == nullptr || records == nullptr ||
      bpf_map__value_size(state->globals) != sizeof(WalkState)) {
    return Fail("BPF: the embedded object does not match this build");
  }
  state->link = bpf_program__attach_iter(program, nullptr);
  if (state->link == nullptr) {
    return Fail(fmt::format("BPF: cannot attach the task iterator: {}", ErrnoText(errno)));
  }
  state->ring = ring_buffer__new(bpf_map__fd(records), OnRecord, &state->delivery, nullptr);
  if (state->ring == nullptr) {
    return Fail(fmt::format("BPF: cannot map the ring buffer: {}", ErrnoText(errno)));
  }
  return std::unique_ptr<BpfSocketWalk>(new BpfSocketWalk(std::move(state)));
}

Result<BpfSocketWalk::Stats> BpfSocketWalk::Walk(const SinkFor& sink_for) {
  const int globals_fd = bpf_map__fd(state_->globals);
  const std::uint32_t key = 0;
  WalkState walk{};
  if (bpf_map_update_elem(globals_fd, &key, &walk, BPF_ANY) != 0) {
    return Fail(fmt::format("BPF: cannot reset the walk: {}", ErrnoText(errno)));
  }
  state_->delivery = Delivery{&sink_for, {}, false};
  // One slice of the tables per run of the iterator; the ring is drained
  // after each, so it only ever holds one slice's sockets.
  for (int run = 0; run < kMaxRuns; ++run) {
    walk.run_pending = 1;
    if (bpf_map_update_elem(globals_fd, &key, &walk, BPF_ANY) != 0) {
      return Fail(fmt::format("BPF: cannot start a slice: {}", ErrnoText(errno)));
    }
    const int fd = bpf_iter_create(bpf_link__fd(state_->link));
    if (fd < 0) return Fail(fmt::format("BPF: cannot start the walk: {}", ErrnoText(errno)));
    char scratch[256];
    for (;;) {
      const ssize_t n = ::read(fd, scratch, sizeof(scratch));
      if (n > 0 || (n < 0 && errno == EINTR)) continue;
      if (n < 0) {
        const int error = errno;
        ::close(fd);
        return Fail(fmt::format("BPF: the walk failed: {}", ErrnoText(error)));
      }
      break;
    }
    ::close(fd);
    if (const int consumed = ring_buffer__consume(state_->ring); consumed < 0) {
      return Fail(fmt::format("BPF: reading the ring buffer failed: {}", ErrnoText(consumed)));
    }
    if (bpf_map_lookup_elem(globals_fd, &key, &walk) != 0) {
      return Fail(fmt::format("BPF: cannot read the walk's state: {}", ErrnoText(errno)));
    }
    if (walk.run_pending != 0) {
      return Fail("BPF: no process in a namespace that uses the shared socket tables");
    }
    if (walk.dropped != 0) {
      return Fail(
          fmt::format("BPF: {} sockets did not fit in the 16 MiB ring buffer", walk.dropped));
    }
    if (walk.truncated != 0) {
      return Fail(
          fmt::format("BPF: {} hash chains were longer than the walk follows", walk.truncated));
    }
    if (state_->delivery.malformed) return Fail("BPF: malformed record");
    if (walk.table >= kFinished) {
      state_->delivery.stats.table_netns = walk.table_netns;
      return state_->delivery.stats;
    }
  }
  return Fail("BPF: the walk did not finish");
}

#endif

BpfSocketWalk::BpfSocketWalk(std::unique_ptr<State> state) : state_(std::move(state)) {}
BpfSocketWalk::~BpfSocketWalk() = default;

}  // namespace socket_exporter
