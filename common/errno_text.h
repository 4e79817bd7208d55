// errno values as people read them in a log line or an error message.
#pragma once

#include <string>

namespace socket_exporter {

// "Operation not permitted (EPERM)": the description and the symbolic name
// where the C library knows them. A negative value (the kernel's and
// libbpf's -errno convention) is read as its magnitude.
std::string ErrnoText(int error_number);

}  // namespace socket_exporter
