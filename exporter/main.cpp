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
  // Every scrape allocates and frees the same few MiB. With glibc's defaults
  // the freed top of the heap is returned to the kernel (brk) at the end of a
  // scrape and faulted back in zeroed at the next one: ~5% of a small scrape.
  // Keep up to 8 MiB: RSS then holds at the largest scrape's working set.
  mallopt(M_TRIM_THRESHOLD, 8 << 20);
  mallopt(M_TOP_PAD, 1 << 20);
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  socket_exporter::Options options;
  if (auto exit_code = socket_exporter::ParseCommandLine(argc, argv, options)) return *exit_code;
  return socket_exporter::RunExporter(options);
}
