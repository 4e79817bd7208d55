#include "collectors/sources/bpf_socket_events.h"

#if SOCKET_EXPORTER_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <string>
#include <vector>

#include "collectors/sources/bpf/socket_events_embedded.h"
#include "common/errno_text.h"
#endif

namespace socket_exporter {

#if !SOCKET_EXPORTER_HAVE_BPF

struct BpfSocketEvents::State {};

bool BpfSocketEventsBuilt() { return false; }

Result<std::unique_ptr<BpfSocketEvents>> BpfSocketEvents::Open(std::uint32_t /*own_netns*/) {
  return Fail("this build has no BPF support (configure with libbpf-dev, clang and bpftool)");
}

Result<void> BpfSocketEvents::SetAllNamespaces(bool /*all*/) {
  return Fail("this build has no BPF support");
}

const std::string& BpfSocketEvents::Warning() const {
  static const std::string kNone;
  return kNone;
}

Result<EventsDump> BpfSocketEvents::Read() { return Fail("this build has no BPF support"); }

#else

namespace {

// Mirrors struct settings of socket_events.bpf.c (its only global, in .bss).
struct Settings {
  std::uint32_t own_netns;
  std::uint32_t all_netns;
};
static_assert(sizeof(Settings) == 8);

constexpr const char* kPrograms[] = {
    "on_set_state",  "on_retransmit", "on_retransmit_synack", "on_receive_reset",
    "on_send_reset", "on_bind_enter", "on_bind_exit",
};

// The first libbpf warning, to name what is missing when loading fails.
thread_local std::string last_libbpf_message;

int RememberPrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char text[512];
  std::vsnprintf(text, sizeof(text), format, args);
  std::string line(text);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (line.starts_with("libbpf: ")) line.erase(0, 8);
  // The first warning names the cause (a map or program that failed); the
  // verifier log after it is long and the last line only sums up.
  // (RLIMIT_MEMLOCK: libbpf's try to raise it, not the cause on 5.11+.)
  if (!line.empty() && last_libbpf_message.empty() && line.find("-- BEGIN") == std::string::npos &&
      line.find("RLIMIT_MEMLOCK") == std::string::npos) {
    last_libbpf_message = line;
  }
  return 0;
}

// One entry at a time: two syscalls per entry (the fallback where batch
// lookups are not supported).
Result<void> ReadMapByKey(bpf_map* map, MapDump& dump) {
  const int fd = bpf_map__fd(map);
  std::vector<std::uint8_t> key(dump.key_size), next(dump.key_size);
  std::vector<std::uint64_t> values(dump.cpus);
  const void* previous = nullptr;
  // Bounded by max_entries (plus slack for entries added during the walk).
  const std::size_t limit = static_cast<std::size_t>(bpf_map__max_entries(map)) * 2;
  for (std::size_t i = 0; i < limit; ++i) {
    if (bpf_map_get_next_key(fd, previous, next.data()) != 0) {
      if (errno == ENOENT) return {};
      return Fail(fmt::format("BPF: cannot walk map {}: {}", bpf_map__name(map), ErrnoText(errno)));
    }
    key = next;
    previous = key.data();
    if (bpf_map_lookup_elem(fd, key.data(), values.data()) != 0) {
      if (errno == ENOENT) continue;  // removed meanwhile (counters never are)
      return Fail(fmt::format("BPF: cannot read map {}: {}", bpf_map__name(map), ErrnoText(errno)));
    }
    AppendEntry(dump, key, values);
  }
  return {};
}

// Whole batches per syscall: a syscall costs microseconds on a VM, so one
// per entry would make a scrape of 16k entries take a quarter second.
Result<MapDump> ReadMap(bpf_map* map, std::size_t cpus) {
  MapDump dump;
  dump.key_size = bpf_map__key_size(map);
  dump.cpus = cpus;
  const int fd = bpf_map__fd(map);
  const std::uint32_t batch = 1024;
  std::vector<std::uint8_t> keys(dump.key_size * batch);
  std::vector<std::uint64_t> values(cpus * batch);
  std::uint64_t in_token = 0, out_token = 0;
  bool first = true;
  const std::size_t limit = static_cast<std::size_t>(bpf_map__max_entries(map)) * 2;
  std::size_t read = 0;
  std::vector<std::uint8_t> key(dump.key_size);
  std::vector<std::uint64_t> per_cpu(cpus);
  while (read <= limit) {
    std::uint32_t count = batch;
    const int rc = bpf_map_lookup_batch(fd, first ? nullptr : &in_token, &out_token, keys.data(),
                                        values.data(), &count, nullptr);
    const int error = rc != 0 ? errno : 0;
    if (rc != 0 && error != ENOENT) {
      if (first && (error == EINVAL || error == ENOTSUP || error == EOPNOTSUPP)) {
        TRY(ReadMapByKey(map, dump));
        return dump;
      }
      return Fail(fmt::format("BPF: cannot read map {}: {}", bpf_map__name(map), ErrnoText(error)));
    }
    for (std::uint32_t i = 0; i < count; ++i) {
      std::memcpy(key.data(), keys.data() + i * dump.key_size, dump.key_size);
      std::memcpy(per_cpu.data(), values.data() + i * cpus, cpus * sizeof(std::uint64_t));
      AppendEntry(dump, key, per_cpu);
    }
    read += count;
    if (error == ENOENT) break;  // that was the last batch
    in_token = out_token;
    first = false;
  }
  return dump;
}

}  // namespace

struct BpfSocketEvents::State {
  bpf_object* object = nullptr;
  std::vector<bpf_link*> links;
  bpf_map* bss = nullptr;
  bpf_map* connects = nullptr;
  bpf_map* destinations = nullptr;
  bpf_map* binds = nullptr;
  bpf_map* tcp_events = nullptr;
  bpf_map* overflow = nullptr;
  Settings settings{};
  std::size_t cpus = 0;
  std::string warning;

  ~State() {
    for (bpf_link* link : links) bpf_link__destroy(link);
    if (object != nullptr) bpf_object__close(object);
  }
};

bool BpfSocketEventsBuilt() { return true; }

Result<std::unique_ptr<BpfSocketEvents>> BpfSocketEvents::Open(std::uint32_t own_netns) {
  libbpf_set_print(RememberPrint);
  last_libbpf_message.clear();
  auto state = std::make_unique<State>();
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Fail("BPF: cannot count the possible CPUs");
  state->cpus = static_cast<std::size_t>(cpus);
  LIBBPF_OPTS(bpf_object_open_opts, options, .object_name = "se_events");
  state->object = bpf_object__open_mem(kSocketEventsBpf, kSocketEventsBpfSize, &options);
  if (state->object == nullptr) {
    return Fail(fmt::format("BPF: cannot open the embedded object: {}", ErrnoText(errno)));
  }
  if (const int error = bpf_object__load(state->object); error != 0) {
    return Fail(fmt::format(
        "BPF: cannot load the event counters: {} (needs CAP_BPF and CAP_PERFMON or "
        "CAP_SYS_ADMIN, and kernel BTF){}",
        ErrnoText(error),
        last_libbpf_message.empty() ? "" : fmt::format("; libbpf: {}", last_libbpf_message)));
  }
  auto find = [&](const char* name) { return bpf_object__find_map_by_name(state->object, name); };
  state->bss = find(".bss");
  state->connects = find("connects");
  state->destinations = find("destinations");
  state->binds = find("binds");
  state->tcp_events = find("tcp_events");
  state->overflow = find("overflow");
  if (state->bss == nullptr || state->connects == nullptr || state->destinations == nullptr ||
      state->binds == nullptr || state->tcp_events == nullptr || state->overflow == nullptr ||
      bpf_map__value_size(state->bss) != sizeof(Settings)) {
    return Fail("BPF: the embedded event object does not match this build");
  }
  state->settings.own_netns = own_netns;
  const std::uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(state->bss), &zero, &state->settings, BPF_ANY) != 0) {
    return Fail(fmt::format("BPF: cannot set the namespace filter: {}", ErrnoText(errno)));
  }
  for (const char* name : kPrograms) {
    bpf_program* program = bpf_object__find_program_by_name(state->object, name);
    if (program == nullptr) return Fail(fmt::format("BPF: program {} missing", name));
    const bool optional = std::strncmp(name, "on_bind_", 8) == 0;
    bpf_link* link = bpf_program__attach(program);
    if (link == nullptr) {
      const int error = errno;
      const std::string what = fmt::format(
          "cannot attach to {}: {}{}", bpf_program__section_name(program), ErrnoText(error),
          error == ENOENT ? " (no such tracepoint, or tracefs is not mounted at "
                            "/sys/kernel/tracing)"
                          : "");
      if (!optional) return Fail("BPF: " + what);
      // The syscall tracepoints need tracefs; without them bind() failures
      // are not counted and everything else is.
      if (state->warning.empty()) {
        state->warning = "bind() failures are not counted: " + what;
      }
      continue;
    }
    state->links.push_back(link);
  }
  return std::unique_ptr<BpfSocketEvents>(new BpfSocketEvents(std::move(state)));
}

const std::string& BpfSocketEvents::Warning() const { return state_->warning; }

Result<void> BpfSocketEvents::SetAllNamespaces(bool all) {
  if ((state_->settings.all_netns != 0) == all) return {};
  Settings settings = state_->settings;
  settings.all_netns = all ? 1 : 0;
  const std::uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(state_->bss), &zero, &settings, BPF_ANY) != 0) {
    return Fail(fmt::format("BPF: cannot set the namespace filter: {}", ErrnoText(errno)));
  }
  state_->settings = settings;
  return {};
}

Result<EventsDump> BpfSocketEvents::Read() {
  EventsDump dump;
  TRY_ASSIGN(dump.connects, ReadMap(state_->connects, state_->cpus));
  TRY_ASSIGN(dump.destinations, ReadMap(state_->destinations, state_->cpus));
  TRY_ASSIGN(dump.binds, ReadMap(state_->binds, state_->cpus));
  TRY_ASSIGN(dump.tcp_events, ReadMap(state_->tcp_events, state_->cpus));
  std::vector<std::uint64_t> values(state_->cpus);
  for (std::uint32_t index = 0; index < kEventMapCount; ++index) {
    if (bpf_map_lookup_elem(bpf_map__fd(state_->overflow), &index, values.data()) != 0) {
      return Fail(fmt::format("BPF: cannot read the overflow counters: {}", ErrnoText(errno)));
    }
    for (std::uint64_t value : values) dump.overflow[index] += value;
  }
  return dump;
}

#endif

BpfSocketEvents::BpfSocketEvents(std::unique_ptr<State> state) : state_(std::move(state)) {}
BpfSocketEvents::~BpfSocketEvents() = default;

}  // namespace socket_exporter
