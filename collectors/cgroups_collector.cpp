#include "collectors/cgroups_collector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "collectors/sources/cgroup_path.h"
#include "collectors/sources/cgroup_resolver.h"
#include "collectors/summary.h"
#include "config/yaml_reader.h"

namespace socket_exporter {
namespace {

constexpr std::size_t kInitialBuckets = 64;

std::size_t HashId(std::uint64_t id) {
  // splitmix64's finalizer: cgroup IDs are small, dense integers.
  id ^= id >> 30;
  id *= 0xBF58476D1CE4E5B9ULL;
  id ^= id >> 27;
  id *= 0x94D049BB133111EBULL;
  id ^= id >> 31;
  return static_cast<std::size_t>(id);
}

// TIME_WAIT and request sockets are not full sockets: the kernel has no
// cgroup for them, whatever the source.
bool IsFullSocket(const SocketRecord& record) {
  if (record.protocol == Protocol::kUdp) return true;
  return record.state != kTcpTimeWait && record.state != kTcpSynRecv &&
         !(record.state == kTcpFinWait2 && record.inode == 0);
}

struct Group {
  std::array<std::array<std::uint64_t, kTcpMaxStates>, 2> states{};
  std::array<std::uint64_t, 2> ephemeral{};
  std::array<bool, 2> has_protocol{};
  std::uint64_t total = 0;
  bool special = false;  // not a path: always its own series

  void Add(const Group& other) {
    for (std::size_t p = 0; p < 2; ++p) {
      for (std::size_t s = 0; s < kTcpMaxStates; ++s) states[p][s] += other.states[p][s];
      ephemeral[p] += other.ephemeral[p];
      has_protocol[p] = has_protocol[p] || other.has_protocol[p];
    }
    total += other.total;
  }
};

std::string GroupName(std::uint64_t id, const CgroupsSettings& settings) {
  std::string path;
  const std::string_view name = CgroupName(id, path);
  if (name.data() != path.data()) return std::string(name);
  switch (settings.group_by) {
    case CgroupsSettings::GroupBy::kCgroup:
      return path;
    case CgroupsSettings::GroupBy::kDepth:
      return std::string(CgroupPathAtDepth(path, settings.depth));
    case CgroupsSettings::GroupBy::kWorkload:
      return std::string(WorkloadOfCgroupPath(path));
  }
  return path;
}

bool IsSpecial(std::string_view name) { return name.empty() || name.front() != '/'; }

}  // namespace

std::string_view CgroupName(std::uint64_t id, std::string& storage) {
  if (id == 0) return kCgroupUnowned;
  switch (CgroupResolver::Shared().Resolve(id, storage)) {
    case CgroupResolver::Status::kFound:
      return storage;
    case CgroupResolver::Status::kUnknown:
      return kCgroupRemoved;
    case CgroupResolver::Status::kNoHierarchy:
      return kCgroupUnresolved;
  }
  return kCgroupUnresolved;
}

std::size_t CgroupsCollector::PairHash::operator()(const Pair& p) const {
  std::uint64_t words[4];
  std::memcpy(words, p.local.bytes.data(), 16);
  std::memcpy(words + 2, p.remote.bytes.data(), 16);
  std::uint64_t h = (std::uint64_t{p.slot} << 20) ^ (std::uint64_t{p.remote_port} << 1) ^
                    static_cast<std::uint64_t>(p.protocol);
  for (std::uint64_t w : words) h = (h ^ w) * 0x100000001B3ULL + (h >> 29);
  return static_cast<std::size_t>(h);
}

Result<void> CgroupsCollector::Begin(const ScrapeContext& context) {
  config_ = context.config;
  settings_ = &config_->Section<CgroupsSettings>(kCgroupsCollectorName);
  TRY(ports_.Load(context.procfs_root));
  CgroupResolver::UseHierarchy(settings_->hierarchy);
  slots_.clear();
  slots_.emplace_back();  // the overflow slot
  if (table_.empty()) table_.assign(kInitialBuckets, 0);
  std::fill(table_.begin(), table_.end(), 0U);
  last_valid_ = false;
  pairs_.clear();
  untracked_cgroup_sockets_ = 0;
  untracked_pair_sockets_ = 0;
  full_sockets_ = 0;
  owned_sockets_ = 0;
  return {};
}

void CgroupsCollector::Rehash(std::size_t buckets) {
  table_.assign(buckets, 0);
  const std::size_t mask = buckets - 1;
  for (std::uint32_t i = 1; i < slots_.size(); ++i) {
    std::size_t b = HashId(slots_[i].id) & mask;
    while (table_[b] != 0) b = (b + 1) & mask;
    table_[b] = i;
  }
}

std::uint32_t CgroupsCollector::SlotOf(std::uint64_t id) {
  if (last_valid_ && last_id_ == id) return last_slot_;
  const std::size_t mask = table_.size() - 1;
  std::size_t b = HashId(id) & mask;
  while (table_[b] != 0) {
    if (slots_[table_[b]].id == id) {
      last_id_ = id;
      last_slot_ = table_[b];
      last_valid_ = true;
      return last_slot_;
    }
    b = (b + 1) & mask;
  }
  if (slots_.size() - 1 >= settings_->max_tracked_cgroups) return 0;
  const auto slot = static_cast<std::uint32_t>(slots_.size());
  slots_.emplace_back().id = id;
  table_[b] = slot;
  if (slots_.size() * 2 > table_.size()) Rehash(table_.size() * 2);
  last_id_ = id;
  last_slot_ = slot;
  last_valid_ = true;
  return slot;
}

void CgroupsCollector::Observe(const SocketRecord& record, const Classification& cls) {
  if (IsFullSocket(record)) {
    ++full_sockets_;
    if (record.cgroup_id != 0) ++owned_sockets_;
  }
  const std::uint32_t slot_index = SlotOf(record.cgroup_id);
  if (slot_index == 0) ++untracked_cgroup_sockets_;
  Slot& slot = slots_[slot_index];
  const auto protocol = static_cast<std::size_t>(record.protocol);
  ++slot.states[protocol][record.state < kTcpMaxStates ? record.state : 0];
  const EphemeralUse use = ports_.Observe(record, cls);
  if (use == EphemeralUse::kLocks || use == EphemeralUse::kHeld) ++slot.ephemeral[protocol];
  if (use != EphemeralUse::kHeld || settings_->top_destinations == 0) return;
  Pair pair{record.local.Normalized(), record.remote.Normalized(), record.remote_port,
            record.protocol, slot_index};
  auto it = pairs_.find(pair);
  if (it == pairs_.end()) {
    if (pairs_.size() >= settings_->max_tracked_pairs) {
      ++untracked_pair_sockets_;
      return;
    }
    it = pairs_.emplace(pair, 0U).first;
  }
  ++it->second;
}

Result<void> CgroupsCollector::Finish(std::vector<prometheus::MetricFamily>& out) {
  using prometheus::MetricType;
  const CgroupsSettings& settings = *settings_;

  if (full_sockets_ > 0 && owned_sockets_ == 0 && !warned_no_ids_) {
    warned_no_ids_ = true;
    spdlog::warn(
        "cgroups: the socket source reported no cgroup for any of {} sockets (the /proc/net "
        "source has none; netlink has them from kernel 5.8): all are counted as "
        "cgroup=\"unowned\"",
        full_sockets_);
  }

  // Slot -> group name; groups by name.
  std::vector<std::string> slot_group(slots_.size());
  std::map<std::string, Group, std::less<>> groups;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Slot& slot = slots_[i];
    slot_group[i] = i == 0 ? std::string(kCgroupOther) : GroupName(slot.id, settings);
    Group g;
    for (std::size_t p = 0; p < 2; ++p) {
      for (std::size_t s = 0; s < kTcpMaxStates; ++s) {
        g.states[p][s] = slot.states[p][s];
        g.total += slot.states[p][s];
        if (slot.states[p][s] != 0) g.has_protocol[p] = true;
      }
      g.ephemeral[p] = slot.ephemeral[p];
    }
    if (g.total == 0) continue;
    Group& target = groups[slot_group[i]];
    target.Add(g);
    target.special = IsSpecial(slot_group[i]);
  }

  // The top K real cgroups keep their series; the rest go to "other".
  std::vector<std::pair<const std::string*, Group*>> ranked;
  for (auto& [name, group] : groups) {
    if (!group.special) ranked.emplace_back(&name, &group);
  }
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    if (a.second->total != b.second->total) return a.second->total > b.second->total;
    return *a.first < *b.first;
  });
  Group other =
      groups.count(std::string(kCgroupOther)) ? groups[std::string(kCgroupOther)] : Group{};
  std::size_t folded = 0;
  std::vector<std::pair<std::string_view, const Group*>> shown;
  for (std::size_t i = 0; i < ranked.size(); ++i) {
    if (i < settings.top) {
      shown.emplace_back(*ranked[i].first, ranked[i].second);
    } else {
      other.Add(*ranked[i].second);
      ++folded;
    }
  }
  for (auto& [name, group] : groups) {
    if (group.special && name != kCgroupOther) shown.emplace_back(name, &group);
  }
  if (other.total > 0) shown.emplace_back(kCgroupOther, &other);

  auto connections = AddFamily(out, "socket_cgroup_connections",
                               "Sockets per cgroup (cgroups.top by sockets; the rest in "
                               "cgroup=\"other\"), protocol and state.",
                               MetricType::Gauge);
  auto ephemeral = AddFamily(out, "socket_cgroup_ephemeral_ports_used",
                             "Sockets of the cgroup holding a usable ephemeral port (in "
                             "ip_local_port_range minus reserved; a socket accepted on a "
                             "listener's port shares that port and is not counted).",
                             MetricType::Gauge);
  auto info = AddFamily(out, "socket_cgroup_info",
                        "Workload identifiers read from the cgroup path: systemd unit or scope, "
                        "container ID, kubelet pod UID (\"\" when none).",
                        MetricType::Gauge);
  auto folded_family = AddFamily(out, "socket_cgroup_other_cgroups",
                                 "Cgroups (after grouping) summed into cgroup=\"other\" beyond "
                                 "cgroups.top.",
                                 MetricType::Gauge);
  auto untracked = AddFamily(out, "socket_cgroup_untracked_sockets",
                             "Sockets not broken down by cgroup: beyond "
                             "cgroups.max_tracked_cgroups (counted in cgroup=\"other\"), or "
                             "beyond cgroups.max_tracked_pairs (not in the destination series).",
                             MetricType::Gauge);
  auto destination = AddFamily(out, "socket_cgroup_destination_ports_used",
                               "For the cgroups.top_destinations busiest ephemeral "
                               "destinations, the ports used towards each by its "
                               "cgroups.cgroups_per_destination biggest cgroups.",
                               MetricType::Gauge);

  std::map<std::string, bool, std::less<>> info_done;
  auto add_info = [&](std::string_view name) {
    if (IsSpecial(name) || info_done.count(name)) return;
    info_done.emplace(std::string(name), true);
    AddGauge(info,
             {{"cgroup", std::string(name)},
              {"unit", std::string(UnitFromCgroupPath(name))},
              {"container_id", std::string(ContainerIdFromCgroupPath(name))},
              {"pod_uid", PodUidText(name)}},
             1);
  };

  for (const auto& [name, group] : shown) {
    for (Protocol protocol : {Protocol::kTcp, Protocol::kUdp}) {
      const auto p = static_cast<std::size_t>(protocol);
      if (!group->has_protocol[p]) continue;
      const std::string proto(ProtocolName(protocol));
      for (std::uint8_t s = 0; s < kTcpMaxStates; ++s) {
        if (group->states[p][s] == 0) continue;
        AddGauge(connections,
                 {{"cgroup", std::string(name)},
                  {"protocol", proto},
                  {"state", std::string(StateName(protocol, s))}},
                 static_cast<double>(group->states[p][s]));
      }
      AddGauge(ephemeral, {{"cgroup", std::string(name)}, {"protocol", proto}},
               static_cast<double>(group->ephemeral[p]));
    }
    add_info(name);
  }
  AddGauge(folded_family, {}, static_cast<double>(folded));
  AddGauge(untracked, {{"reason", "max_tracked_cgroups"}},
           static_cast<double>(untracked_cgroup_sockets_));
  AddGauge(untracked, {{"reason", "max_tracked_pairs"}},
           static_cast<double>(untracked_pair_sockets_));

  // Destinations: totals over their pairs, the busiest first; then, per
  // destination, its groups by ports.
  if (settings.top_destinations > 0 && !pairs_.empty()) {
    struct DestinationTotal {
      const Pair* key;  // any pair of the destination (slot ignored)
      std::uint64_t ports = 0;
      std::map<std::string_view, std::uint64_t> by_group;
    };
    auto same_destination = [](const Pair& a, const Pair& b) {
      return a.protocol == b.protocol && a.remote_port == b.remote_port &&
             a.remote.bytes == b.remote.bytes && a.local.bytes == b.local.bytes;
    };
    auto destination_less = [](const Pair& a, const Pair& b) {
      if (a.protocol != b.protocol) return a.protocol < b.protocol;
      if (a.remote_port != b.remote_port) return a.remote_port < b.remote_port;
      if (a.remote.bytes != b.remote.bytes) return a.remote.bytes < b.remote.bytes;
      return a.local.bytes < b.local.bytes;
    };
    std::vector<std::pair<const Pair*, std::uint32_t>> entries;
    entries.reserve(pairs_.size());
    for (const auto& [pair, count] : pairs_) entries.emplace_back(&pair, count);
    std::sort(entries.begin(), entries.end(),
              [&](const auto& a, const auto& b) { return destination_less(*a.first, *b.first); });
    std::vector<DestinationTotal> totals;
    for (const auto& [pair, count] : entries) {
      if (totals.empty() || !same_destination(*totals.back().key, *pair)) {
        totals.push_back(DestinationTotal{pair, 0, {}});
      }
      totals.back().ports += count;
      totals.back().by_group[slot_group[pair->slot]] += count;
    }
    const std::size_t n = std::min<std::size_t>(settings.top_destinations, totals.size());
    std::partial_sort(totals.begin(), totals.begin() + static_cast<std::ptrdiff_t>(n), totals.end(),
                      [&](const DestinationTotal& a, const DestinationTotal& b) {
                        if (a.ports != b.ports) return a.ports > b.ports;
                        return destination_less(*a.key, *b.key);
                      });
    for (std::size_t i = 0; i < n; ++i) {
      const DestinationTotal& d = totals[i];
      std::vector<std::pair<std::string_view, std::uint64_t>> holders(d.by_group.begin(),
                                                                      d.by_group.end());
      std::stable_sort(holders.begin(), holders.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
      const std::size_t m = std::min<std::size_t>(settings.cgroups_per_destination, holders.size());
      for (std::size_t j = 0; j < m; ++j) {
        AddGauge(destination,
                 {{"protocol", std::string(ProtocolName(d.key->protocol))},
                  {"local_address", d.key->local.ToString()},
                  {"remote_address", d.key->remote.ToString()},
                  {"remote_port", std::to_string(d.key->remote_port)},
                  {"cgroup", std::string(holders[j].first)}},
                 static_cast<double>(holders[j].second));
        add_info(holders[j].first);
      }
    }
  }

  const CgroupResolver::Stats stats = CgroupResolver::Shared().GetStats();
  AddGauge(AddFamily(out, "socket_cgroup_cache_entries",
                     "Cgroup IDs known to the path cache (from the last walk of the cgroup2 "
                     "hierarchy).",
                     MetricType::Gauge),
           {}, static_cast<double>(stats.entries));
  AddCounter(
      AddFamily(out, "socket_cgroup_cache_scans_total",
                "Walks of the cgroup2 hierarchy made to resolve cgroup IDs.", MetricType::Counter),
      {}, static_cast<double>(stats.scans));
  return {};
}

std::shared_ptr<const SectionSettings> ParseCgroupsSettings(yaml::FieldReader& reader,
                                                            const yaml::Field* section) {
  static constexpr std::array<std::string_view, 8> kKeys = {"top",
                                                            "group_by",
                                                            "depth",
                                                            "top_destinations",
                                                            "cgroups_per_destination",
                                                            "max_tracked_cgroups",
                                                            "max_tracked_pairs",
                                                            "hierarchy"};
  auto settings = std::make_shared<CgroupsSettings>();
  if (section == nullptr) return settings;
  const auto number = [&](const yaml::Field& value, std::uint32_t& out, std::uint32_t min,
                          std::uint32_t max) {
    if (auto v = reader.ParseUint(value, min, max)) out = *v;
  };
  reader.ForEachEntry(
      *section, [&](const std::string& key, yaml::Position key_pos, const yaml::Field& value) {
        if (key == "top") {
          number(value, settings->top, 0, 1000);
        } else if (key == "depth") {
          number(value, settings->depth, 1, 64);
        } else if (key == "top_destinations") {
          number(value, settings->top_destinations, 0, 100);
        } else if (key == "cgroups_per_destination") {
          number(value, settings->cgroups_per_destination, 1, 100);
        } else if (key == "max_tracked_cgroups") {
          number(value, settings->max_tracked_cgroups, 1, 1'000'000);
        } else if (key == "max_tracked_pairs") {
          number(value, settings->max_tracked_pairs, 1, 10'000'000);
        } else if (key == "hierarchy") {
          if (!value.node.IsScalar() || !value.node.Scalar().starts_with('/')) {
            reader.Expected(value, "an absolute path");
          } else {
            settings->hierarchy = value.node.Scalar();
          }
        } else if (key == "group_by") {
          const std::string text = value.node.IsScalar() ? value.node.Scalar() : std::string();
          if (text == "cgroup") {
            settings->group_by = CgroupsSettings::GroupBy::kCgroup;
          } else if (text == "depth") {
            settings->group_by = CgroupsSettings::GroupBy::kDepth;
          } else if (text == "workload") {
            settings->group_by = CgroupsSettings::GroupBy::kWorkload;
          } else {
            reader.Expected(value, "'cgroup', 'depth' or 'workload'");
          }
        } else {
          reader.UnknownKey(*section, key, key_pos, kKeys);
        }
      });
  return settings;
}

// Sockets by cgroup: the cgroups collector's series, summed over states (and
// namespaces), busiest first; cgroup="other" and the values that are not
// paths last.
void WriteCgroupTables(const std::vector<prometheus::MetricFamily>& families,
                       const Config& /*config*/, std::ostream& out) {
  out << "\nSockets by cgroup (socket_cgroup_connections):\n";
  const auto* connections = FindFamily(families, "socket_cgroup_connections");
  if (connections == nullptr) {
    out << CollectorProblem(families, kCgroupsCollectorName) << "\n";
    return;
  }
  struct Row {
    double tcp = 0;
    double udp = 0;
    double time_wait = 0;
    double ephemeral = 0;
  };
  std::map<std::string, Row> rows;
  for (const auto& metric : connections->metric) {
    Row& row = rows[std::string(LabelOf(metric, "cgroup"))];
    const double value = ValueOf(*connections, metric);
    (LabelOf(metric, "protocol") == "udp" ? row.udp : row.tcp) += value;
    if (LabelOf(metric, "state") == "time_wait") row.time_wait += value;
  }
  if (const auto* ephemeral = FindFamily(families, "socket_cgroup_ephemeral_ports_used")) {
    for (const auto& metric : ephemeral->metric) {
      rows[std::string(LabelOf(metric, "cgroup"))].ephemeral += ValueOf(*ephemeral, metric);
    }
  }
  if (rows.empty()) {
    out << "(none)\n";
    return;
  }
  std::vector<std::pair<std::string, Row>> ordered(rows.begin(), rows.end());
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    const bool a_path = a.first.starts_with('/');
    const bool b_path = b.first.starts_with('/');
    if (a_path != b_path) return a_path;
    return a.second.tcp + a.second.udp > b.second.tcp + b.second.udp;
  });
  Table table({"cgroup", "tcp", "udp", "total", "time_wait", "ephemeral_ports"},
              {false, true, true, true, true, true});
  for (const auto& [cgroup, row] : ordered) {
    table.Add({cgroup, Count(row.tcp), Count(row.udp), Count(row.tcp + row.udp),
               Count(row.time_wait), Count(row.ephemeral)});
  }
  table.Write(out);
}

}  // namespace socket_exporter
