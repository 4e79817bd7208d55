// reference_dump: the floor a scrape is compared against. It dumps every TCP
// socket of the current network namespace over NETLINK_SOCK_DIAG and counts
// them by state -- nothing else: no classification, no allocation per
// record, no HTTP. bench/run_bench.py runs it next to the exporter.
//
//   reference_dump [--mode MODE] [--repeat N] [--states] [--states-mask MASK]
//
// --states prints the count per state; --states-mask replaces the requested
// states (a bit per state, e.g. 0x1ffe = all but bound-inactive).
//
// MODE (default legacy):
//   legacy          one TCPDIAG_GETSOCK request: IPv4 and IPv6 in one table
//                   walk (the request the exporter makes).
//   v2              SOCK_DIAG_BY_FAMILY for AF_INET, then AF_INET6: two walks.
//   v2-parallel     the two v2 dumps at once, on two threads and sockets.
//   states-parallel two legacy dumps at once with complementary state masks:
//                   ESTABLISHED on one thread, every other state on another.
//   split-parallel  like states-parallel, but split so each half holds about
//                   half of the sockets: the first thread takes ESTABLISHED
//                   sockets of IPv4, the second everything else -- the best
//                   balance a state/family split can reach on this population.
//   bound-parallel  LISTEN first (cheap: the kernel stops after the listening
//                   hash), then at once: every other state but bound-inactive
//                   on one thread, bound-inactive (the bind-hash walk) on the
//                   other -- a split that keeps listeners first.
// The parallel modes answer "do dumps that split the work beat one walk?"
// (BENCHMARKS.md).
//
// Prints one line per repetition:
//   mode=legacy sockets=N elapsed_ms=X cpu_ms=Y user_ms=U sys_ms=S datagrams=D
// elapsed and CPU cover the dump only (socket creation to the last reply);
// CPU is getrusage(RUSAGE_SELF), so it includes every thread.
//
// Thread safety: single-threaded except for the parallel modes; their two
// threads each own a socket, a buffer and a Count, merged after join().
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kBufferSize = 64 * 1024;  // the kernel sends <= ~32 KiB per read
// States 1..13, as the exporter asks (13 = bound-inactive, kernel 6.8+).
// --states-mask overrides it, for experiments; set before any dump starts.
std::uint32_t all_tcp_states = ((1U << 14) - 1) & ~1U;
constexpr std::uint32_t kEstablished = 1U << 1;
constexpr std::uint32_t kListen = 1U << 10;
constexpr std::uint32_t kBoundInactive = 1U << 13;

struct Count {
  std::array<std::uint64_t, 16> by_state{};
  std::uint64_t total = 0;
  std::uint64_t datagrams = 0;
  bool ok = true;
};

struct LegacyRequest {
  nlmsghdr header;
  inet_diag_req body;
};
struct ByFamilyRequest {
  nlmsghdr header;
  inet_diag_req_v2 body;
};

nlmsghdr Header(std::uint16_t type, std::uint32_t length) {
  nlmsghdr header{};
  header.nlmsg_len = length;
  header.nlmsg_type = type;
  header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  header.nlmsg_seq = 1;
  return header;
}

// Sends request on a fresh socket and counts the replies by state until
// NLMSG_DONE. A kernel error (NLMSG_ERROR, or DONE carrying one) fails it.
void Dump(const void* request, std::size_t length, Count& count) {
  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) {
    std::perror("socket(NETLINK_SOCK_DIAG)");
    count.ok = false;
    return;
  }
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, request, length, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof(kernel)) <
      0) {
    std::perror("sendto");
    count.ok = false;
    ::close(fd);
    return;
  }
  // Aligned storage: the loop below reads headers in place, which a minimal
  // loop can afford because it owns this buffer.
  std::vector<std::uint64_t> storage(kBufferSize / sizeof(std::uint64_t));
  auto* buffer = reinterpret_cast<std::uint8_t*>(storage.data());
  for (;;) {
    const ssize_t received = ::recv(fd, buffer, kBufferSize, 0);
    if (received < 0) {
      if (errno == EINTR) continue;
      std::perror("recv");
      count.ok = false;
      break;
    }
    ++count.datagrams;
    std::size_t offset = 0;
    const auto size = static_cast<std::size_t>(received);
    bool done = false;
    while (offset + sizeof(nlmsghdr) <= size) {
      const auto* header = reinterpret_cast<const nlmsghdr*>(buffer + offset);
      if (header->nlmsg_len < sizeof(nlmsghdr) || header->nlmsg_len > size - offset) {
        std::fprintf(stderr, "malformed netlink message\n");
        count.ok = false;
        done = true;
        break;
      }
      if (header->nlmsg_type == NLMSG_DONE || header->nlmsg_type == NLMSG_ERROR) {
        int error = 0;
        if (header->nlmsg_len >= sizeof(nlmsghdr) + sizeof(int)) {
          std::memcpy(&error, buffer + offset + sizeof(nlmsghdr), sizeof(int));
        }
        if (error != 0) {
          std::fprintf(stderr, "the kernel refused the dump: %s\n", std::strerror(-error));
          count.ok = false;
        }
        done = true;
        break;
      }
      if (header->nlmsg_len >= sizeof(nlmsghdr) + sizeof(inet_diag_msg)) {
        const auto* msg =
            reinterpret_cast<const inet_diag_msg*>(buffer + offset + sizeof(nlmsghdr));
        ++count.by_state[msg->idiag_state & 15U];
        ++count.total;
      }
      offset += (header->nlmsg_len + 3U) & ~3U;
    }
    if (done) break;
  }
  ::close(fd);
}

void DumpLegacy(std::uint32_t states, Count& count) {
  LegacyRequest request{};
  request.header = Header(TCPDIAG_GETSOCK, sizeof(request));
  request.body.idiag_family = AF_UNSPEC;
  request.body.idiag_states = states;
  Dump(&request, sizeof(request), count);
}

void DumpByFamily(std::uint8_t family, std::uint32_t states, Count& count) {
  ByFamilyRequest request{};
  request.header = Header(SOCK_DIAG_BY_FAMILY, sizeof(request));
  request.body.sdiag_family = family;
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = states;
  Dump(&request, sizeof(request), count);
}

Count Merge(const Count& a, const Count& b) {
  Count out;
  for (std::size_t i = 0; i < out.by_state.size(); ++i)
    out.by_state[i] = a.by_state[i] + b.by_state[i];
  out.total = a.total + b.total;
  out.datagrams = a.datagrams + b.datagrams;
  out.ok = a.ok && b.ok;
  return out;
}

Count RunMode(std::string_view mode) {
  if (mode == "legacy") {
    Count count;
    DumpLegacy(all_tcp_states, count);
    return count;
  }
  if (mode == "v2") {
    Count v4;
    Count v6;
    DumpByFamily(AF_INET, all_tcp_states, v4);
    DumpByFamily(AF_INET6, all_tcp_states, v6);
    return Merge(v4, v6);
  }
  Count a;
  Count b;
  if (mode == "v2-parallel") {
    std::thread second([&b] { DumpByFamily(AF_INET6, all_tcp_states, b); });
    DumpByFamily(AF_INET, all_tcp_states, a);
    second.join();
  } else if (mode == "states-parallel") {
    std::thread second([&b] { DumpLegacy(all_tcp_states & ~kEstablished, b); });
    DumpLegacy(kEstablished, a);
    second.join();
  } else if (mode == "split-parallel") {
    // ESTABLISHED IPv4 on one thread (a v2 request can name the family);
    // ESTABLISHED IPv6 plus every other state of both families on the other.
    std::thread second([&b] {
      Count rest;
      DumpLegacy(all_tcp_states & ~kEstablished, rest);
      Count v6;
      DumpByFamily(AF_INET6, kEstablished, v6);
      b = Merge(rest, v6);
    });
    DumpByFamily(AF_INET, kEstablished, a);
    second.join();
  } else if (mode == "bound-parallel") {
    Count listeners;
    DumpLegacy(kListen, listeners);
    std::thread second([&b] { DumpLegacy(kBoundInactive, b); });
    DumpLegacy(all_tcp_states & ~(kListen | kBoundInactive), a);
    second.join();
    a = Merge(a, listeners);
  } else {
    std::fprintf(stderr, "unknown mode %.*s\n", static_cast<int>(mode.size()), mode.data());
    std::exit(2);
  }
  return Merge(a, b);
}

double CpuMs(const rusage& usage, bool user) {
  const timeval& t = user ? usage.ru_utime : usage.ru_stime;
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3;
}

constexpr const char* kStateNames[16] = {"unknown",      "established",    "syn_sent",  "syn_recv",
                                         "fin_wait1",    "fin_wait2",      "time_wait", "close",
                                         "close_wait",   "last_ack",       "listen",    "closing",
                                         "new_syn_recv", "bound_inactive", "s14",       "s15"};

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "legacy";
  int repeat = 1;
  bool print_states = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--mode" && i + 1 < argc) {
      mode = argv[++i];
    } else if (arg == "--repeat" && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    } else if (arg == "--states-mask" && i + 1 < argc) {
      all_tcp_states = static_cast<std::uint32_t>(std::strtoul(argv[++i], nullptr, 0));
    } else if (arg == "--states") {
      print_states = true;
    } else {
      std::fprintf(stderr,
                   "usage: reference_dump [--mode legacy|v2|v2-parallel|states-parallel|"
                   "split-parallel|bound-parallel] [--repeat N] [--states] "
                   "[--states-mask MASK]\n");
      return 2;
    }
  }
  for (int r = 0; r < repeat; ++r) {
    rusage before{};
    rusage after{};
    ::getrusage(RUSAGE_SELF, &before);
    const auto start = std::chrono::steady_clock::now();
    const Count count = RunMode(mode);
    const auto stop = std::chrono::steady_clock::now();
    ::getrusage(RUSAGE_SELF, &after);
    if (!count.ok) return 1;
    const double user = CpuMs(after, true) - CpuMs(before, true);
    const double sys = CpuMs(after, false) - CpuMs(before, false);
    std::printf(
        "mode=%s sockets=%llu elapsed_ms=%.3f cpu_ms=%.3f user_ms=%.3f sys_ms=%.3f "
        "datagrams=%llu\n",
        mode.c_str(), static_cast<unsigned long long>(count.total),
        std::chrono::duration<double, std::milli>(stop - start).count(), user + sys, user, sys,
        static_cast<unsigned long long>(count.datagrams));
    if (print_states) {
      for (std::size_t s = 0; s < count.by_state.size(); ++s) {
        if (count.by_state[s] != 0) {
          std::printf("  %s %llu\n", kStateNames[s],
                      static_cast<unsigned long long>(count.by_state[s]));
        }
      }
    }
    std::fflush(stdout);
  }
  return 0;
}
