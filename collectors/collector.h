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

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>

#include "collectors/classifier.h"
#include "collectors/socket_record.h"
#include "common/result.h"
#include "config/config.h"

namespace socket_exporter {

struct ScrapeContext {
  std::shared_ptr<const Config> config;
  std::string procfs_root = "/proc";
};

class Collector {
 public:
  virtual ~Collector() = default;
  virtual std::string_view Name() const = 0;
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
