// The compiled BPF object of netns_sockets.bpf.c, embedded at build time
// (collectors/sources/bpf/bpf.cmake). Only built with SOCKET_EXPORTER_BPF.
#pragma once

#include <cstddef>

namespace socket_exporter {

extern const unsigned char kNetnsSocketsBpf[];
extern const std::size_t kNetnsSocketsBpfSize;

}  // namespace socket_exporter
