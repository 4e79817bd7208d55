// socket_exporter: a thin main; everything lives in socket_exporter_lib.
#include <malloc.h>

#include "exporter/app.h"
#include "exporter/cli.h"

int main(int argc, char** argv) {
  // One malloc arena for the whole process, set before any thread starts.
  // By default glibc gives each thread that allocates its own arena, and
  // every CivetWeb worker that ever served /metrics kept ~0.4 MiB of freed
  // collection memory: RSS grew by ~6 MiB over the first scrapes. Scrapes
  // are serialized, so one arena costs no contention (BENCHMARKS.md).
  mallopt(M_ARENA_MAX, 1);
  socket_exporter::Options options;
  if (auto exit_code = socket_exporter::ParseCommandLine(argc, argv, options)) return *exit_code;
  return socket_exporter::RunExporter(options);
}
