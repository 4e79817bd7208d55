#include "collectors/sources/netlink_source.h"

#include <errno.h>
#include <fmt/format.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>

#include "collectors/sources/netlink_parser.h"
#include "common/unique_fd.h"

// Why this request order meets the ordering contract -- checked against the
// kernel source (torvalds/linux: net/ipv4/inet_diag.c, and tcp_diag_dump() in
// net/ipv4/tcp_diag.c, where the TCP walk moved from inet_diag_dump_icsk() in
// 2025; the logic below is the same in both places):
//
// * The TCP dump callback is a resumable state machine keyed on
//   cb->args[0]: phase 0 walks the listening hash (lhash2), and only when
//   LISTEN is among the requested states and no destination port is
//   filtered; phase 1 walks bhash2 for bound-but-inactive sockets (kernel
//   6.8+, only when bit 13 TCP_BOUND_INACTIVE is requested); phase 2 walks
//   the established hash (ehash), which holds every socket with a peer,
//   TIME_WAIT and request (NEW_SYN_RECV) sockets. The phase survives across
//   recvmsg calls, so within ONE dump every listener is sent before any
//   socket with a peer. A LISTEN-only request stops after phase 0
//   ("no state but LISTEN requested" exits before the ehash loop), which is
//   what makes the per-family fallback's first pass cheap.
// * The legacy TCPDIAG_GETSOCK request is handled by the compat dump
//   (inet_diag_dump_compat), which builds a v2 request with sdiag_family =
//   AF_UNSPEC regardless of what we send; every family filter in the walk is
//   written "family != AF_UNSPEC && family differs", so IPv4 and IPv6 come
//   out of one walk and all listeners of both families precede the first
//   socket with a peer.
// * With the v2 request a family must be named (sock_diag dispatches on
//   sdiag_family; AF_UNSPEC has no handler), hence the fallback: LISTEN for
//   both families first, then the rest for each family.
// * UDP has no listening table: its dump filters one table by
//   1 << sk_state (CLOSE = unconnected, ESTABLISHED = connected), so asking
//   for unconnected sockets of both families before connected ones is what
//   orders them.
// * Reply types: the kernel answers with the request's nlmsg_type
//   (TCPDIAG_GETSOCK or SOCK_DIAG_BY_FAMILY), each carrying an
//   inet_diag_msg; TIME_WAIT and request sockets report their sub-state and
//   zero queues, uid and inode.

namespace socket_exporter {
namespace {

// A request is a netlink header immediately followed by its body; both are
// 4-byte aligned with sizes that are multiples of 4, so the structs below have
// no padding and their bytes are exactly the wire format.
struct LegacyRequest {
  nlmsghdr header;
  inet_diag_req body;
};
struct ByFamilyRequest {
  nlmsghdr header;
  inet_diag_req_v2 body;
};
static_assert(sizeof(LegacyRequest) == sizeof(nlmsghdr) + sizeof(inet_diag_req));
static_assert(sizeof(ByFamilyRequest) == sizeof(nlmsghdr) + sizeof(inet_diag_req_v2));

constexpr std::uint32_t StateBit(std::uint8_t state) { return 1U << state; }
// Bits 1..13: every TCP state, including NEW_SYN_RECV (the kernel adds it to
// SYN_RECV anyway) and BOUND_INACTIVE (kernel 6.8+; older kernels ignore it).
constexpr std::uint32_t kAllTcpStates = ((1U << kTcpMaxStates) - 1) & ~1U;
constexpr std::uint32_t kTcpListenOnly = StateBit(kTcpListen);
constexpr std::uint32_t kTcpAllButListen = kAllTcpStates & ~StateBit(kTcpListen);
constexpr std::uint32_t kUdpUnconnected = StateBit(kTcpClose);
constexpr std::uint32_t kUdpConnected = StateBit(kTcpEstablished);

using DumpPass = NetlinkSource::DumpPass;

// The per-family requests: TCP listeners, TCP others (the fallback when the
// kernel refuses the legacy request), and UDP: every unconnected socket, of
// both families, before any connected one.
constexpr DumpPass kTcpListenPasses[] = {
    {AF_INET, kTcpListenOnly, "TCP IPv4 listening"},
    {AF_INET6, kTcpListenOnly, "TCP IPv6 listening"},
};
constexpr DumpPass kTcpOtherPasses[] = {
    {AF_INET, kTcpAllButListen, "TCP IPv4 non-listening"},
    {AF_INET6, kTcpAllButListen, "TCP IPv6 non-listening"},
};
constexpr DumpPass kUdpPasses[] = {
    {AF_INET, kUdpUnconnected, "UDP IPv4 unconnected"},
    {AF_INET6, kUdpUnconnected, "UDP IPv6 unconnected"},
    {AF_INET, kUdpConnected, "UDP IPv4 connected"},
    {AF_INET6, kUdpConnected, "UDP IPv6 connected"},
};

template <typename Request>
std::span<const std::uint8_t> AsBytes(const Request& request) {
  return {reinterpret_cast<const std::uint8_t*>(&request), sizeof(Request)};
}

nlmsghdr MakeHeader(std::uint16_t type, std::uint32_t length, std::uint32_t sequence) {
  nlmsghdr header{};
  header.nlmsg_len = length;
  header.nlmsg_type = type;
  header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  header.nlmsg_seq = sequence;
  header.nlmsg_pid = 0;  // the kernel fills in our port id
  return header;
}

// TCPDIAG_GETSOCK for `states`, no extensions. The family is ignored by the
// kernel's compat dump: IPv4 and IPv6 come from one walk.
LegacyRequest MakeLegacyRequest(std::uint32_t states, std::uint32_t sequence) {
  LegacyRequest request{};
  request.header = MakeHeader(TCPDIAG_GETSOCK, sizeof(request), sequence);
  request.body.idiag_family = AF_UNSPEC;
  request.body.idiag_ext = 0;
  request.body.idiag_states = states;
  return request;
}

bool IsUnavailableErrno(int error_number) {
  switch (error_number) {
    case EPROTONOSUPPORT:  // kernel built without NETLINK_SOCK_DIAG
    case EAFNOSUPPORT:     // no netlink at all
    case EACCES:           // LSM / seccomp
    case EPERM:
    case ENOENT:      // inet_diag / udp_diag handler missing
    case EOPNOTSUPP:  // sock_diag without the inet compat handler
      return true;
    default:
      return false;
  }
}

// 0, or the errno of a failed sendto.
int SendRequest(int fd, std::span<const std::uint8_t> request) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    const ssize_t sent = ::sendto(fd, request.data(), request.size(), 0,
                                  reinterpret_cast<const sockaddr*>(&kernel), sizeof(kernel));
    if (sent >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

// One reply datagram of a dump: `size` bytes from the kernel, or, when
// `failure` is set, why none could be received (with the errno, if any).
struct Received {
  std::size_t size = 0;
  int error_number = 0;
  std::string failure;
};

// Receives the next datagram from the kernel into buffer; datagrams from
// any other sender are skipped (nobody else may speak for the kernel).
Received ReceiveFromKernel(int fd, std::uint8_t* buffer, std::size_t capacity,
                           std::string_view what, std::chrono::milliseconds timeout) {
  Received out;
  for (;;) {
    sockaddr_nl from{};
    iovec iov{buffer, capacity};
    msghdr message{};
    message.msg_name = &from;
    message.msg_namelen = sizeof(from);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    const ssize_t received = ::recvmsg(fd, &message, 0);
    if (received < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        out.failure = fmt::format("netlink receive timed out after {} ms during the {} dump",
                                  timeout.count(), what);
      } else {
        out.error_number = error;
        out.failure =
            fmt::format("netlink: receiving the {} dump failed: {}", what, ErrnoText(error));
      }
      return out;
    }
    if (from.nl_pid != 0) continue;
    if ((message.msg_flags & MSG_TRUNC) != 0) {
      out.failure =
          fmt::format("netlink: a {} reply was larger than the {}-byte buffer and was truncated",
                      what, capacity);
    } else if (received == 0) {
      out.failure = fmt::format("netlink: empty datagram during the {} dump", what);
    }
    out.size = static_cast<std::size_t>(received);
    return out;
  }
}

}  // namespace

// The background walk: sends one request and receives its replies on a
// thread of its own, into a ring of buffers the Stream() thread parses from
// (one buffer handed out at a time). The thread is idle between walks.
//
// Thread safety: Start(), Next() and Drain() from one thread (the source's);
// the ring is shared with the receiving thread under mutex_.
class NetlinkSource::Receiver {
 public:
  struct Datagram {
    std::unique_ptr<std::uint8_t[]> bytes;  // kReceiveBufferSize, touched only as filled
    Received received;
    std::span<const std::uint8_t> Bytes() const { return {bytes.get(), received.size}; }
  };

  explicit Receiver(std::size_t buffers) : slots_(std::max<std::size_t>(buffers, 1)) {
    for (Datagram& slot : slots_) slot.bytes.reset(new std::uint8_t[kReceiveBufferSize]);
    scratch_.bytes.reset(new std::uint8_t[kReceiveBufferSize]);
    // The exporter waits for its signals with sigwait(); this thread must
    // never take one, whichever thread happens to start it.
    sigset_t all;
    sigset_t previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    thread_ = std::thread([this] { Run(); });
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    pthread_setname_np(thread_.native_handle(), "netlink-walk");
  }

  ~Receiver() {
    Drain();
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    worker_wakeup_.notify_one();
    thread_.join();
  }

  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Starts a walk: `request` is sent on fd, which must stay open until
  // Drain() returned. The previous walk must have been drained.
  void Start(int fd, std::span<const std::uint8_t> request, std::string what,
             std::chrono::milliseconds timeout) {
    {
      std::lock_guard lock(mutex_);
      fd_ = fd;
      request_.assign(request.begin(), request.end());
      what_ = std::move(what);
      timeout_ = timeout;
      head_ = tail_ = count_ = 0;
      handed_ = false;
      abandon_ = false;
      pending_ = true;
      running_ = true;
      // Before the wakeup: the scheduler picks the woken thread's CPU inside
      // notify_one().
      widen_ = NarrowToOtherCpus(tid_);
    }
    worker_wakeup_.notify_one();
  }

  // The next datagram of the walk, waiting until it has arrived; nullptr
  // once the walk has ended and every datagram was handed out. The buffer of
  // the previous one goes back to the ring.
  const Datagram* Next() {
    std::unique_lock lock(mutex_);
    ReleaseHandedLocked();
    if (count_ == 0) {
      consumer_wakeup_.wait(lock, [&] { return count_ >= WakeThreshold() || !running_; });
    }
    if (count_ == 0) return nullptr;
    handed_ = true;
    return &slots_[head_];
  }

  // Drops what was not handed out and waits until the walk is over. The
  // thread receives the rest into a scratch buffer: the kernel ends a dump
  // by itself (bounded by the table size), or a receive times out.
  void Drain() {
    std::unique_lock lock(mutex_);
    abandon_ = true;
    handed_ = false;
    head_ = tail_ = count_ = 0;
    worker_wakeup_.notify_one();
    consumer_wakeup_.wait(lock, [&] { return !running_; });
  }

  const std::string& What() const { return what_; }

 private:
  void ReleaseHandedLocked() {
    if (!handed_) return;
    handed_ = false;
    head_ = (head_ + 1) % slots_.size();
    --count_;
    if (waiting_for_space_) worker_wakeup_.notify_one();
  }

  // The parser sleeps until this many datagrams wait (or the walk ended)
  // rather than waking for each: every wakeup costs a context switch, and
  // the woken thread may be queued behind the receiving one on its CPU. At
  // small tables the parser then wakes once, when the walk is over.
  std::size_t WakeThreshold() const { return std::max<std::size_t>(slots_.size() / 2, 1); }

  void Run() {
    {
      std::lock_guard lock(mutex_);
      tid_ = gettid();
    }
    for (;;) {
      std::unique_lock lock(mutex_);
      worker_wakeup_.wait(lock, [&] { return stop_ || pending_; });
      if (stop_) return;
      pending_ = false;
      lock.unlock();
      Walk();
    }
  }

  // Lets the thread be woken only on CPUs other than the caller's; it
  // widens its mask again as soon as it runs (Walk), so it may move later
  // (an idle CPU can pull it off a busy one). Without this, on machines whose
  // CPUs share no cache as far as the kernel knows (common in VMs, this one
  // included), the scheduler tends to queue a woken thread on its waker's
  // CPU, where it preempts the caller or waits for it: the two run one after
  // the other while the other CPU idles (BENCHMARKS.md, "Overlapping the
  // walk", has the measurements). The thread widens its own mask, rather
  // than the caller right after the wakeup, so that the widening is certain
  // to come after the placement. When every other CPU is busy the thread
  // waits for its turn there. False: nothing done (one CPU allowed, or a
  // call failed).
  bool NarrowToOtherCpus(pid_t tid) {
    if (tid <= 0 || sched_getaffinity(0, sizeof(allowed_), &allowed_) != 0) return false;
    const int here = sched_getcpu();
    if (here < 0 || CPU_COUNT(&allowed_) < 2 || !CPU_ISSET(here, &allowed_)) return false;
    cpu_set_t elsewhere = allowed_;
    CPU_CLR(here, &elsewhere);
    return sched_setaffinity(tid, sizeof(elsewhere), &elsewhere) == 0;
  }

  // fd_, request_, what_, timeout_, allowed_ and widen_ are written by
  // Start() with pending_, and not again until the walk ended: read here
  // without the lock.
  void Walk() {
    if (widen_) sched_setaffinity(0, sizeof(allowed_), &allowed_);
    if (const int error = SendRequest(fd_, request_); error != 0) {
      Datagram* slot = TakeSlot();
      slot->received = Received{
          0, error,
          fmt::format("netlink: sending the {} request failed: {}", what_, ErrnoText(error))};
      Publish(true);
      return;
    }
    for (;;) {
      Datagram* slot = TakeSlot();
      slot->received =
          ReceiveFromKernel(fd_, slot->bytes.get(), kReceiveBufferSize, what_, timeout_);
      const bool ends = !slot->received.failure.empty() || EndsDump(slot->Bytes());
      Publish(ends);
      if (ends) return;
    }
  }

  // The buffer to receive into: the ring's next free one, waiting for the
  // parser to free one, or the scratch buffer once the walk is abandoned.
  Datagram* TakeSlot() {
    std::unique_lock lock(mutex_);
    waiting_for_space_ = true;
    worker_wakeup_.wait(lock, [&] { return abandon_ || count_ < slots_.size(); });
    waiting_for_space_ = false;
    return abandon_ ? &scratch_ : &slots_[tail_];
  }

  // Queues the buffer TakeSlot() returned (unless abandoned meanwhile).
  void Publish(bool ends) {
    bool wake = ends;
    {
      std::lock_guard lock(mutex_);
      if (!abandon_) {
        tail_ = (tail_ + 1) % slots_.size();
        ++count_;
        wake = wake || count_ == WakeThreshold();
      }
      if (ends) running_ = false;
    }
    if (wake) consumer_wakeup_.notify_one();
  }

  std::vector<Datagram> slots_;
  Datagram scratch_;
  std::thread thread_;
  pid_t tid_ = 0;  // the thread's id once it runs, for sched_setaffinity
  // The caller's CPUs at the last Start(), and whether the thread must
  // restore them; written by Start() with pending_, like fd_.
  cpu_set_t allowed_{};
  bool widen_ = false;

  std::mutex mutex_;
  std::condition_variable worker_wakeup_;    // a walk to start, a free buffer, abandon, stop
  std::condition_variable consumer_wakeup_;  // a datagram, or the walk ended
  bool stop_ = false;
  bool pending_ = false;  // Start() called, the thread has not picked it up
  bool running_ = false;  // a walk is between Start() and its last datagram
  bool abandon_ = false;
  bool handed_ = false;             // slots_[head_] is out with the parser
  bool waiting_for_space_ = false;  // the thread waits in TakeSlot()
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
  std::size_t count_ = 0;  // datagrams received and not yet released

  int fd_ = -1;
  std::vector<std::uint8_t> request_;
  std::string what_;
  std::chrono::milliseconds timeout_{};
};

NetlinkSource::NetlinkSource(NetlinkSourceOptions options) : options_(std::move(options)) {}

NetlinkSource::~NetlinkSource() { Abandon(); }

std::unexpected<Error> NetlinkSource::FailWithErrno(int error_number, std::string message) {
  // Falling back is only safe while the sink has seen nothing: otherwise the
  // scrape would count some sockets twice.
  unavailable_ = delivered_ == 0 && IsUnavailableErrno(error_number);
  return Fail(std::move(message));
}

Result<bool> NetlinkSource::Deliver(std::span<const std::uint8_t> datagram, Protocol protocol,
                                    std::string_view what, SocketSink& sink, DumpOutcome& outcome) {
  if (options_.recorder) options_.recorder(protocol, datagram);
  auto batch = ParseSockDiagBatch(datagram, protocol, sink);
  if (!batch) return Fail(fmt::format("{} (during the {} dump)", batch.error().message, what));
  outcome.records += batch->records;
  delivered_ += batch->records;
  outcome.interrupted = outcome.interrupted || batch->dump_interrupted;
  if (batch->done) outcome.kernel_errno = batch->kernel_errno;
  return batch->done;
}

Result<NetlinkSource::DumpOutcome> NetlinkSource::Dump(int fd, Protocol protocol,
                                                       std::span<const std::uint8_t> request,
                                                       std::string_view what, SocketSink& sink) {
  if (const int error = SendRequest(fd, request); error != 0) {
    return FailWithErrno(
        error, fmt::format("netlink: sending the {} request failed: {}", what, ErrnoText(error)));
  }
  DumpOutcome outcome;
  for (;;) {
    const Received received =
        ReceiveFromKernel(fd, buffer_.data(), buffer_.size(), what, options_.receive_timeout);
    if (!received.failure.empty()) return FailWithErrno(received.error_number, received.failure);
    TRY_ASSIGN(auto done, Deliver({buffer_.data(), received.size}, protocol, what, sink, outcome));
    if (done) return outcome;
  }
}

Result<void> NetlinkSource::DumpByFamily(int fd, Protocol protocol, std::uint8_t family,
                                         std::uint32_t states, std::string_view what,
                                         SocketSink& sink, SourceStats& stats) {
  ByFamilyRequest request{};
  request.header = MakeHeader(SOCK_DIAG_BY_FAMILY, sizeof(request), ++sequence_);
  request.body.sdiag_family = family;
  request.body.sdiag_protocol = protocol == Protocol::kTcp ? IPPROTO_TCP : IPPROTO_UDP;
  request.body.idiag_ext = 0;  // counting needs no extensions; they triple the reply size
  request.body.idiag_states = states;

  TRY_ASSIGN(auto outcome, Dump(fd, protocol, AsBytes(request), what, sink));
  stats.records += outcome.records;
  if (outcome.interrupted) ++stats.dump_interrupted;
  if (outcome.kernel_errno == 0) return {};
  if (family == AF_INET6 && outcome.kernel_errno == ENOENT && outcome.records == 0) return {};
  return FailWithErrno(outcome.kernel_errno,
                       fmt::format("netlink: the kernel refused the {} dump: {}", what,
                                   ErrnoText(outcome.kernel_errno)));
}

Result<void> NetlinkSource::DumpPasses(int fd, Protocol protocol, std::span<const DumpPass> passes,
                                       SocketSink& sink, SourceStats& stats) {
  for (const DumpPass& pass : passes) {
    auto done = DumpByFamily(fd, protocol, pass.family, pass.states, pass.what, sink, stats);
    if (!done) return done;
  }
  return {};
}

Result<int> NetlinkSource::OpenSocket(int& error_number) {
  error_number = 0;
  const int fd = options_.open_socket
                     ? options_.open_socket()
                     : ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) {
    error_number = errno;
    return Fail("netlink: cannot open a NETLINK_SOCK_DIAG socket: " + ErrnoText(errno));
  }
  const auto timeout_ms = options_.receive_timeout.count();
  timeval timeout{};
  timeout.tv_sec = static_cast<time_t>(timeout_ms / 1000);
  timeout.tv_usec = static_cast<suseconds_t>((timeout_ms % 1000) * 1000);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0) {
    error_number = errno;
    ::close(fd);
    return Fail("netlink: cannot set a receive timeout: " + ErrnoText(error_number));
  }
  return fd;
}

void NetlinkSource::Prefetch() {
  if (!options_.background_tcp_dump || !options_.legacy_tcp_dump || background_started_) return;
  background_started_ = true;
  prefetch_errno_ = 0;
  prefetch_error_.clear();
  // The socket is opened here, on the caller's thread: a netlink socket
  // reports the network namespace it was created in.
  auto fd = OpenSocket(prefetch_errno_);
  if (!fd) {
    prefetch_error_ = fd.error().message;
    return;
  }
  if (!receiver_) receiver_ = std::make_unique<Receiver>(options_.background_buffers);
  const LegacyRequest request = MakeLegacyRequest(kTcpAllButListen, ++sequence_);
  background_fd_ = *fd;
  receiver_->Start(background_fd_, AsBytes(request), "TCP (legacy, all families, all but LISTEN)",
                   options_.receive_timeout);
}

void NetlinkSource::Abandon() {
  if (background_fd_ >= 0) {
    receiver_->Drain();
    ::close(background_fd_);
    background_fd_ = -1;
  }
  background_started_ = false;
}

Result<void> NetlinkSource::ConsumeBackground(SocketSink& sink, DumpOutcome& outcome) {
  for (;;) {
    const Receiver::Datagram* datagram = receiver_->Next();
    if (datagram == nullptr) {
      return Fail(fmt::format("netlink: the {} dump ended without NLMSG_DONE", receiver_->What()));
    }
    if (!datagram->received.failure.empty()) {
      return FailWithErrno(datagram->received.error_number, datagram->received.failure);
    }
    TRY_ASSIGN(auto done,
               Deliver(datagram->Bytes(), Protocol::kTcp, receiver_->What(), sink, outcome));
    if (done) return {};
  }
}

Result<void> NetlinkSource::StreamTcpSplit(int fd, SocketSink& sink, SourceStats& stats,
                                           const std::function<Result<void>()>& udp) {
  if (!prefetch_error_.empty()) return FailWithErrno(prefetch_errno_, prefetch_error_);

  // Listeners: the kernel walks only the listening hash for this request.
  const LegacyRequest request = MakeLegacyRequest(kTcpListenOnly, ++sequence_);
  TRY_ASSIGN(auto listeners,
             Dump(fd, Protocol::kTcp, AsBytes(request), "TCP listening (legacy)", sink));
  stats.records += listeners.records;
  if (listeners.interrupted) ++stats.dump_interrupted;
  bool legacy = listeners.kernel_errno == 0;
  if (!legacy) {
    if (listeners.records > 0) {
      return FailWithErrno(listeners.kernel_errno,
                           "netlink: the kernel aborted the TCP listening (legacy) dump: " +
                               ErrnoText(listeners.kernel_errno));
    }
    // Refused outright: so is the background request; ask per family.
    Abandon();
    if (auto done = DumpPasses(fd, Protocol::kTcp, kTcpListenPasses, sink, stats); !done) {
      return done;
    }
  }

  if (auto done = udp(); !done) return done;

  if (legacy) {
    DumpOutcome rest;
    auto consumed = ConsumeBackground(sink, rest);
    if (!consumed) return consumed;
    stats.records += rest.records;
    if (rest.interrupted) ++stats.dump_interrupted;
    if (rest.kernel_errno == 0) {
      last_tcp_legacy_ = true;
      return {};
    }
    if (rest.records > 0) {
      return FailWithErrno(rest.kernel_errno, "netlink: the kernel aborted the " +
                                                  receiver_->What() +
                                                  " dump: " + ErrnoText(rest.kernel_errno));
    }
    // Refused although the listening request was not: ask per family.
  }
  return DumpPasses(fd, Protocol::kTcp, kTcpOtherPasses, sink, stats);
}

Result<SourceStats> NetlinkSource::Stream(SocketSink& sink) {
  unavailable_ = false;
  last_tcp_legacy_ = false;
  delivered_ = 0;
  const bool split = options_.background_tcp_dump && options_.legacy_tcp_dump;
  if (split) Prefetch();  // no-op when the caller already did
  // Whatever happens below, the background walk is over when this returns.
  struct EndBackground {
    NetlinkSource* source;
    ~EndBackground() { source->Abandon(); }
  } end_background{this};

  int open_error = 0;
  auto opened = OpenSocket(open_error);
  if (!opened) return FailWithErrno(open_error, opened.error().message);
  // One socket per Stream(): nothing from an earlier, possibly failed, dump
  // can be left queued to confuse this one.
  const int fd = *opened;
  const UniqueFd closer(fd);
  if (buffer_.size() != kReceiveBufferSize) buffer_.resize(kReceiveBufferSize);

  SourceStats stats;
  const auto udp = [&] { return DumpPasses(fd, Protocol::kUdp, kUdpPasses, sink, stats); };

  if (split) {
    TRY(StreamTcpSplit(fd, sink, stats, udp));
    return stats;
  }

  bool tcp_done = false;
  if (options_.legacy_tcp_dump) {
    const LegacyRequest request = MakeLegacyRequest(kAllTcpStates, ++sequence_);
    TRY_ASSIGN(auto outcome,
               Dump(fd, Protocol::kTcp, AsBytes(request), "TCP (legacy, all families)", sink));
    stats.records += outcome.records;
    if (outcome.interrupted) ++stats.dump_interrupted;
    if (outcome.kernel_errno == 0) {
      tcp_done = true;
      last_tcp_legacy_ = true;
    } else if (outcome.records > 0) {
      // Aborted midway: the per-family dumps would repeat what was sent.
      return FailWithErrno(
          outcome.kernel_errno,
          "netlink: the kernel aborted the TCP (legacy) dump: " + ErrnoText(outcome.kernel_errno));
    }
    // Refused outright (no compat handler): fall back below.
  }

  if (!tcp_done) {
    for (const auto passes : {std::span(kTcpListenPasses), std::span(kTcpOtherPasses)}) {
      TRY(DumpPasses(fd, Protocol::kTcp, passes, sink, stats));
    }
  }
  TRY(udp());
  return stats;
}

}  // namespace socket_exporter
