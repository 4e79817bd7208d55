// The collector interface. The Scraper runs every enabled collector once per
// scrape:
//
//   Begin(context)                         -- per-scrape setup (may fail)
//   Observe(record, classification) x N    -- only if UsesSockets(): every
//                                             socket of the one shared pass
//   Finish(out)                            -- append metric families
//
// A collector whose Begin fails, or that uses sockets when the socket pass
// fails, is not finished: it reports socket_exporter_collector_success 0 and
// publishes nothing, while the other collectors still answer.
//
// Thread safety: the Scraper serializes scrapes, so a collector is used by one
// thread at a time and may keep per-scrape state in members.
#pragma once

#include <prometheus/metric_family.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "collectors/classifier.h"
#include "collectors/sources/socket_record.h"
#include "common/result.h"
#include "config/config.h"

namespace socket_exporter {

struct ScrapeContext {
  // A constructor rather than aggregate initialization, so that adding a
  // field does not touch every `ScrapeContext{config, root}`.
  ScrapeContext() = default;
  ScrapeContext(std::shared_ptr<const Config> config_in, std::string procfs_root_in = "/proc",
                std::string procfs_net_root_in = {})
      : config(std::move(config_in)),
        procfs_root(std::move(procfs_root_in)),
        procfs_net_root(std::move(procfs_net_root_in)) {}

  std::shared_ptr<const Config> config;
  // procfs mount: sysctls under <procfs_root>/sys/net/ follow the network
  // namespace of the thread that opens them.
  std::string procfs_root = "/proc";
  // Directory whose net/ holds this pass's /proc/net files (netstat, snmp,
  // tcp, ...); empty = procfs_root. <procfs_root>/net follows the process's
  // main thread, so a pass run in another namespace (collector `netns`, on a
  // thread that setns()'d) sets "/proc/thread-self" here. Read it through
  // NetRoot().
  std::string procfs_net_root;
  // True when this run covers every network namespace of the host: the netns
  // scrape mode (kNetnsMode, collectors/registry.h) is on and the collector
  // runs once for all of them, not once per namespace (UsesSockets() false).
  // A collector that sees every namespace at once (events) then labels its
  // series by namespace. False in the mode's per-namespace passes.
  bool all_namespaces = false;

  const std::string& NetRoot() const {
    return procfs_net_root.empty() ? procfs_root : procfs_net_root;
  }
};

class Collector {
 public:
  virtual ~Collector() = default;
  virtual bool UsesSockets() const { return true; }
  virtual Result<void> Begin(const ScrapeContext& context) = 0;
  virtual void Observe(const SocketRecord& /*record*/, const Classification& /*cls*/) {}
  virtual Result<void> Finish(std::vector<prometheus::MetricFamily>& out) = 0;
};

// Small helpers to build families without repeating prometheus-cpp boilerplate.
using Labels = std::vector<prometheus::ClientMetric::Label>;

// Refers to a family by position, so it stays valid while more families are
// appended to the same vector (a reference would dangle on reallocation).
class FamilyRef {
 public:
  FamilyRef(std::vector<prometheus::MetricFamily>& out, std::size_t index)
      : out_(&out), index_(index) {}
  prometheus::MetricFamily* operator->() const { return &(*out_)[index_]; }
  prometheus::MetricFamily& operator*() const { return (*out_)[index_]; }

 private:
  std::vector<prometheus::MetricFamily>* out_;
  std::size_t index_;
};

FamilyRef AddFamily(std::vector<prometheus::MetricFamily>& out, std::string name, std::string help,
                    prometheus::MetricType type);
void AddGauge(FamilyRef family, Labels labels, double value);
void AddCounter(FamilyRef family, Labels labels, double value);

}  // namespace socket_exporter
