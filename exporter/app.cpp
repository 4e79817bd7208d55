#include "exporter/app.h"

#include <malloc.h>
#include <prometheus/text_serializer.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>

#include "common/version.h"
#include "config/web_config.h"
#include "exporter/http/tls_front.h"
#include "exporter/http/web.h"
#include "exporter/scraper.h"
#include "exporter/socket_view.h"

namespace socket_exporter {
namespace {

void SetUpLogging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("socket_exporter");
  logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%eZ level=%l msg=\"%v\"",
                      spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

Result<std::shared_ptr<const Config>> LoadConfig(const std::string& path) {
  if (path.empty()) return DefaultConfig();
  return LoadConfigFile(path);
}

SourceKind ParseSourceKind(const std::string& name) {
  if (name == "netlink") return SourceKind::kNetlink;
  if (name == "procfs") return SourceKind::kProcfs;
  return SourceKind::kAuto;
}

// What Prometheus learns about config reloads (SIGHUP).
class ReloadStatus {
 public:
  void Record(bool ok) {
    std::lock_guard lock(mutex_);
    ok_ = ok;
    if (ok) {
      success_time_ =
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count();
    }
  }
  std::vector<prometheus::MetricFamily> Families() const {
    std::lock_guard lock(mutex_);
    std::vector<prometheus::MetricFamily> out;
    AddGauge(AddFamily(out, "socket_exporter_config_last_reload_successful",
                       "1 if the last load of --config.file and --web.config.file (start or "
                       "SIGHUP) succeeded, 0 if either failed and its previous version is still "
                       "in use.",
                       prometheus::MetricType::Gauge),
             {}, ok_ ? 1.0 : 0.0);
    AddGauge(
        AddFamily(out, "socket_exporter_config_last_reload_success_timestamp_seconds",
                  "Unix time of the last successful config load.", prometheus::MetricType::Gauge),
        {}, success_time_);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  bool ok_ = true;
  double success_time_ = 0;
};

// The HTTP front end's connections (exporter/http/tls_front.h).
void AddConnectionFamilies(std::vector<prometheus::MetricFamily>& out,
                           const FrontEnd::Stats& stats) {
  AddGauge(AddFamily(out, "socket_exporter_http_connections_open",
                     "HTTP connections open now, in any state (TLS handshake, reading a request, "
                     "being answered, idle keep-alive).",
                     prometheus::MetricType::Gauge),
           {}, static_cast<double>(stats.open));
  AddGauge(
      AddFamily(out, "socket_exporter_http_connections_limit",
                "Most HTTP connections open at once (--web.max-connections, lowered to fit "
                "the open files limit); at the limit the oldest idle or slowest one is closed.",
                prometheus::MetricType::Gauge),
      {}, static_cast<double>(stats.limit));
  auto closed = AddFamily(out, "socket_exporter_http_connections_closed_total",
                          "HTTP connections closed, by reason: client_closed, done (answered with "
                          "Connection: close), handshake_timeout, handshake_failed, "
                          "header_timeout, idle_timeout, head_too_large, bad_request, "
                          "write_timeout, evicted (to make room at the limit), engine_error.",
                          prometheus::MetricType::Counter);
  for (std::size_t i = 0; i < stats.closed.size(); ++i) {
    AddCounter(closed, {{"reason", std::string(CloseReasonName(static_cast<CloseReason>(i)))}},
               static_cast<double>(stats.closed[i]));
  }
}

}  // namespace

int RunExporter(const Options& options) {
  SetUpLogging(options.log_level);

  auto config = LoadConfig(options.config_file);
  if (!config) {
    std::cerr << "socket_exporter: invalid configuration:\n" << config.error().message << "\n";
    return 1;
  }
  if (options.check_config) {
    std::cout << "config " << (*config)->source << " is valid: " << (*config)->port_ranges.size()
              << " port ranges, " << (*config)->services.size() << " services\n";
    // The web config is checked too, so a deploy can validate both files
    // before a SIGHUP (a bad one would be refused and keep the old one).
    if (!options.web_config_file.empty()) {
      auto web_config = LoadWebConfigFile(options.web_config_file);
      if (!web_config) {
        std::cerr << "socket_exporter: invalid web config:\n" << web_config.error().message << "\n";
        return 1;
      }
      // Loads the certificate, key and CA as startup would (a key that does
      // not match its certificate is only found here).
      if (web_config->tls) {
        auto context = BuildTlsContext(*web_config->tls);
        if (!context) {
          std::cerr << "socket_exporter: invalid web config:\n"
                    << options.web_config_file << ": " << context.error().message << "\n";
          return 1;
        }
      }
      std::cout << "web config " << options.web_config_file
                << " is valid: " << DescribeWebConfig(*web_config) << "\n";
    }
    return 0;
  }

  ScraperOptions scraper_options;
  scraper_options.source = ParseSourceKind(options.socket_source);
  scraper_options.procfs_root = options.procfs_root;
  scraper_options.collector_overrides = options.collector_overrides;
  auto scraper = std::make_shared<Scraper>(scraper_options, *config);
  auto reload_status = std::make_shared<ReloadStatus>();
  reload_status->Record(true);
  // Set once the server runs; --once and the socket view have no server.
  auto http_server = std::make_shared<std::atomic<const WebServer*>>(nullptr);
  scraper->SetExtraFamiliesProvider([reload_status, http_server] {
    auto families = reload_status->Families();
    if (const WebServer* server = http_server->load(std::memory_order_acquire)) {
      AddConnectionFamilies(families, server->ConnectionStats());
    }
    return families;
  });

  if (options.list || options.summary) {
    // Same config, source and collectors as a scrape (exporter/socket_view.h).
    return RunSocketView(options, *config, *scraper, scraper_options);
  }
  if (options.once) {
    ScrapeOutcome outcome = scraper->CollectNow();
    prometheus::TextSerializer().Serialize(std::cout, outcome.families);
    std::cout.flush();
    return outcome.all_succeeded ? 0 : 2;
  }

  // Block the signals we handle before any thread starts, so every thread
  // inherits the mask and only sigwait() below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  WebOptions web_options;
  web_options.listen_address = options.listen_address;
  web_options.telemetry_path = options.telemetry_path;
  web_options.on_request = &Scraper::NoteRequestArrival;
  web_options.front_end.handshake_timeout = options.web_tls_handshake_timeout;
  web_options.front_end.header_timeout = options.web_header_timeout;
  web_options.front_end.idle_timeout = options.web_idle_timeout;
  web_options.front_end.write_timeout = options.web_write_timeout;
  web_options.front_end.max_header_bytes = options.web_max_header_bytes;
  web_options.front_end.max_connections = options.web_max_connections;
  if (!options.web_config_file.empty()) {
    auto web_config = LoadWebConfigFile(options.web_config_file);
    if (!web_config) {
      std::cerr << "socket_exporter: invalid web config:\n" << web_config.error().message << "\n";
      return 1;
    }
    web_options.web_config = std::make_shared<const WebConfig>(std::move(*web_config));
  }
  auto server = WebServer::Start(web_options, scraper);
  if (!server) {
    spdlog::error("{}", server.error().message);
    return 1;
  }
  http_server->store(server->get(), std::memory_order_release);
  std::string enabled;
  for (const auto& name : scraper->EnabledCollectors())
    enabled += (enabled.empty() ? "" : ",") + name;
  // Tests and people find the port in "(port N)"; the first address comes
  // first, on the line that has always carried it.
  const std::vector<ListenEndpoint> endpoints = (*server)->Endpoints();
  spdlog::info(
      "socket_exporter {} (revision {}) listening on {} (port {}), telemetry path {}, config {}, "
      "collectors {}",
      kVersion, kRevision, endpoints.front().address, endpoints.front().port,
      options.telemetry_path, (*config)->source, enabled);
  for (std::size_t i = 1; i < endpoints.size(); ++i) {
    spdlog::info("also listening on {} (port {})", endpoints[i].address, endpoints[i].port);
  }
  if (web_options.web_config) {
    spdlog::info("web config {}: {}", options.web_config_file,
                 DescribeWebConfig(*web_options.web_config));
  }
  if ((*server)->InternalPort() != 0) {
    spdlog::debug("internal HTTP port 127.0.0.1:{}, for the TLS/IPv6 front end only",
                  (*server)->InternalPort());
  }

  for (;;) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) continue;
    if (signal_number == SIGHUP) {
      // Both files are re-read; each one that fails keeps its previous
      // version, and the one reload metric reports whether both succeeded.
      bool ok = true;
      if (options.config_file.empty()) {
        spdlog::info("SIGHUP: no --config.file, keeping the embedded default");
      } else if (auto reloaded = LoadConfigFile(options.config_file); !reloaded) {
        spdlog::error("SIGHUP: config reload failed, keeping the previous config: {}",
                      reloaded.error().message);
        ok = false;
      } else {
        scraper->SetConfig(*reloaded);
        spdlog::info("SIGHUP: config {} reloaded", options.config_file);
      }
      if (!options.web_config_file.empty()) {
        auto web_config = LoadWebConfigFile(options.web_config_file);
        Result<void> applied =
            web_config ? (*server)->ApplyWebConfig(std::make_shared<const WebConfig>(*web_config))
                       : Result<void>(std::unexpected(web_config.error()));
        if (!applied) {
          spdlog::error("SIGHUP: web config reload failed, keeping the previous web config: {}",
                        applied.error().message);
          ok = false;
        } else {
          spdlog::info("SIGHUP: web config {} reloaded: {}", options.web_config_file,
                       DescribeWebConfig(*web_config));
        }
      }
      reload_status->Record(ok);
      continue;
    }
    spdlog::info("received signal {}, shutting down", signal_number);
    break;
  }
  // CivetWeb's orderly stop waits for its master thread's 2 s poll quantum.
  // There is nothing to flush but the log, so leave at once: stopping within
  // a second matters more to service managers than tearing down threads.
  spdlog::shutdown();
  std::fflush(nullptr);
#if defined(__SANITIZE_ADDRESS__)
  // _Exit skips LeakSanitizer's atexit check; run it here so the sanitizer
  // stage also finds leaks in a serving exporter (what is still reachable
  // from this frame and the threads is not a leak). Exits non-zero on a leak.
  __lsan_do_leak_check();
#endif
  std::_Exit(0);
}

void TuneMallocForScrapes() {
  // One malloc arena for the whole process, set before any thread starts.
  // By default glibc gives each thread that allocates its own arena, and
  // every CivetWeb worker that ever served /metrics kept ~0.4 MiB of freed
  // collection memory: RSS grew by ~6 MiB over the first scrapes. Scrapes
  // are serialized, so one arena costs no contention (BENCHMARKS.md).
  mallopt(M_ARENA_MAX, 1);
  // Every scrape allocates and frees the same few MiB. With glibc's defaults
  // the freed top of the heap is returned to the kernel (brk) at the end of a
  // scrape and faulted back in zeroed at the next one (BENCHMARKS.md).
  // Keep up to 8 MiB: RSS then holds at the largest scrape's working set.
  mallopt(M_TRIM_THRESHOLD, 8 << 20);
  mallopt(M_TOP_PAD, 1 << 20);
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

}  // namespace socket_exporter
