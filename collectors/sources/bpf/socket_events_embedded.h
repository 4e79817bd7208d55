// The compiled BPF object of socket_events.bpf.c, embedded at build time
// (collectors/sources/bpf/bpf.cmake). Only built with SOCKET_EXPORTER_BPF.
#pragma once

#include <cstddef>

namespace socket_exporter {

extern const unsigned char kSocketEventsBpf[];
extern const std::size_t kSocketEventsBpfSize;

}  // namespace socket_exporter
