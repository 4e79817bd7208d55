#pragma once

namespace socket_exporter {
extern const char* const kVersion;   // project version, e.g. "0.1.0"
extern const char* const kRevision;  // git revision the binary was built from
}  // namespace socket_exporter
