#include "common/version.h"

namespace socket_exporter {
const char* const kVersion = SOCKET_EXPORTER_VERSION;
const char* const kRevision = SOCKET_EXPORTER_REVISION;
}  // namespace socket_exporter
