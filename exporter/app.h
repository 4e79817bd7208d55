// The exporter's top level: config, logging, signals, --once, serving.
#pragma once

#include "exporter/cli.h"

namespace socket_exporter {

// glibc malloc settings for a process that scrapes: call first in main(),
// before any thread starts (app.cpp says why each one).
void TuneMallocForScrapes();

// Runs the exporter with parsed options; returns the process exit code.
int RunExporter(const Options& options);

}  // namespace socket_exporter
