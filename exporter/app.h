// The exporter's top level: config, logging, signals, --once, serving.
#pragma once

#include "exporter/cli.h"

namespace socket_exporter {

// Runs the exporter with parsed options; returns the process exit code.
int RunExporter(const Options& options);

}  // namespace socket_exporter
