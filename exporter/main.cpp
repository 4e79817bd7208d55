// socket_exporter: a thin main; everything lives in socket_exporter_lib.
#include "exporter/app.h"
#include "exporter/cli.h"

int main(int argc, char** argv) {
  socket_exporter::TuneMallocForScrapes();
  socket_exporter::Options options;
  if (auto exit_code = socket_exporter::ParseCommandLine(argc, argv, options)) return *exit_code;
  return socket_exporter::RunExporter(options);
}
