#pragma once
// Reading procfs files without iostreams: one open(), read() into a string
// the caller may reuse between scrapes, close(). Stateless, thread-safe.
#include <cstddef>
#include <string>

#include "common/result.h"

namespace socket_exporter {

// Reads the whole file at path into out (replacing its contents), with
// read() calls of at most chunk bytes: procfs generates a file a read() at a
// time, so a chunk as large as the file means one pass. Returns false if the
// file does not exist; other errors name the path and errno.
Result<bool> ReadWholeFile(const std::string& path, std::string& out,
                           std::size_t chunk = 16 * 1024);

// ReadWholeFile for a file that must exist: a missing file is an error too,
// "cannot read PATH: No such file or directory (ENOENT)".
Result<std::string> ReadRequiredFile(const std::string& path);

}  // namespace socket_exporter
