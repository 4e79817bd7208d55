// The cgroups collector's parts: workload IDs from paths, the cgroup2 mount
// from mountinfo, the ID -> path resolver over a directory tree (a cgroup's
// ID is its directory's inode, so any tree stands in for the hierarchy),
// and the collector on hand-made records.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "collectors/cgroups_collector.h"
#include "collectors/registry.h"
#include "collectors/sources/cgroup_path.h"
#include "collectors/sources/cgroup_resolver.h"
#include "collectors/sources/netns_discovery.h"
#include "test_util.h"

namespace socket_exporter {
namespace {

using testing::SeriesCount;
using testing::Tcp;
using testing::Udp;
using testing::Value;

const std::string kHex(64, 'a');
const std::string kHex2 = std::string(32, '0') + std::string(32, 'f');

TEST(CgroupPath, SystemdUnitsAndScopes) {
  EXPECT_EQ(UnitFromCgroupPath("/system.slice/nginx.service"), "nginx.service");
  EXPECT_EQ(UnitFromCgroupPath("/user.slice/user-0.slice/session-3.scope"), "session-3.scope");
  EXPECT_EQ(UnitFromCgroupPath("/system.slice"), "");
  EXPECT_EQ(UnitFromCgroupPath("/"), "");
  EXPECT_EQ(UnitFromCgroupPath("/.service"), "");
  EXPECT_EQ(ContainerIdFromCgroupPath("/system.slice/nginx.service"), "");
}

TEST(CgroupPath, ContainerRuntimes) {
  for (const std::string& path :
       {"/system.slice/docker-" + kHex + ".scope", "/docker/" + kHex,
        "/machine.slice/libpod-" + kHex + ".scope", "/system.slice/crio-" + kHex + ".scope",
        "/kubepods.slice/kubepods-pod12_34.slice/cri-containerd-" + kHex + ".scope"}) {
    EXPECT_EQ(ContainerIdFromCgroupPath(path), kHex) << path;
  }
  // The deepest component with an ID wins; 63 or 65 digits are no ID.
  EXPECT_EQ(ContainerIdFromCgroupPath("/docker/" + kHex + "/docker-" + kHex2 + ".scope"), kHex2);
  EXPECT_EQ(ContainerIdFromCgroupPath("/docker/" + kHex.substr(1)), "");
  EXPECT_EQ(ContainerIdFromCgroupPath("/docker/" + kHex + "a"), "");
  // netns discovery reads /proc/PID/cgroup with the same rule.
  EXPECT_EQ(ContainerIdFromCgroup("0::/system.slice/docker-" + kHex + ".scope\n"), kHex);
}

TEST(CgroupPath, KubeletPods) {
  const std::string systemd =
      "/kubepods.slice/kubepods-besteffort.slice/"
      "kubepods-besteffort-pod1f2e3d4c_5b6a_4789_8abc_def012345678.slice/cri-containerd-" +
      kHex + ".scope";
  EXPECT_EQ(PodUidText(systemd), "1f2e3d4c-5b6a-4789-8abc-def012345678");
  EXPECT_EQ(WorkloadOfCgroupPath(systemd),
            "/kubepods.slice/kubepods-besteffort.slice/"
            "kubepods-besteffort-pod1f2e3d4c_5b6a_4789_8abc_def012345678.slice");
  const std::string cgroupfs = "/kubepods/burstable/pod0a1b-2c/" + kHex;
  EXPECT_EQ(PodUidText(cgroupfs), "0a1b-2c");
  EXPECT_EQ(WorkloadOfCgroupPath(cgroupfs), "/kubepods/burstable/pod0a1b-2c");
  EXPECT_EQ(PodUidText("/kubepods.slice/kubepods-besteffort.slice"), "");
}

TEST(CgroupPath, WorkloadAndDepth) {
  EXPECT_EQ(WorkloadOfCgroupPath("/system.slice/docker-" + kHex + ".scope/init"),
            "/system.slice/docker-" + kHex + ".scope");
  EXPECT_EQ(WorkloadOfCgroupPath("/user.slice/user-0.slice/user@0.service/app.slice/x.service"),
            "/user.slice/user-0.slice/user@0.service");
  EXPECT_EQ(WorkloadOfCgroupPath("/a/b"), "/a/b");
  EXPECT_EQ(CgroupPathAtDepth("/a/b/c", 1), "/a");
  EXPECT_EQ(CgroupPathAtDepth("/a/b/c", 2), "/a/b");
  EXPECT_EQ(CgroupPathAtDepth("/a/b/c", 5), "/a/b/c");
  EXPECT_EQ(CgroupPathAtDepth("/", 2), "/");
  EXPECT_EQ(CgroupPathAtDepth("/a/b", 0), "/a/b");
}

TEST(CgroupMount, FromMountinfo) {
  const std::string hybrid =
      "25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw\n"
      "33 25 0:28 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
      "34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n"
      "35 33 0:30 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,name=systemd\n";
  EXPECT_EQ(FindCgroup2Mount(hybrid), "/sys/fs/cgroup/unified");
  EXPECT_EQ(FindCgroup2Mount("30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
            "/sys/fs/cgroup");
  // A bind mount of a subtree is used only if there is no whole one;
  // escaped spaces are unescaped.
  EXPECT_EQ(FindCgroup2Mount("40 1 0:26 /kubepods /host\\040cg rw - cgroup2 cgroup2 rw\n"),
            "/host cg");
  EXPECT_EQ(FindCgroup2Mount("40 1 0:26 /kubepods /a rw - cgroup2 cgroup2 rw\n"
                             "41 1 0:26 / /b rw - cgroup2 cgroup2 rw\n"),
            "/b");
  EXPECT_EQ(FindCgroup2Mount(hybrid.substr(0, hybrid.find("34 "))), std::nullopt);
  EXPECT_EQ(FindCgroup2Mount("garbage\n- cgroup2\n\n"), std::nullopt);
}

class CgroupTree : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("se-cg-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::uint64_t Make(const std::string& relative) {
    std::filesystem::create_directories(root_ / relative.substr(1));
    return Inode(relative);
  }
  std::uint64_t Inode(const std::string& relative) {
    struct stat st {};
    EXPECT_EQ(::stat((root_.string() + relative).c_str(), &st), 0) << relative;
    return st.st_ino;
  }
  CgroupResolver::Options Options() {
    CgroupResolver::Options options;
    options.hierarchy = root_.string();
    return options;
  }
  std::filesystem::path root_;
};

TEST_F(CgroupTree, ResolvesInodesToPaths) {
  const std::uint64_t app = Make("/system.slice/app.service");
  CgroupResolver resolver(Options());
  std::string path;
  ASSERT_EQ(resolver.Resolve(app, path), CgroupResolver::Status::kFound);
  EXPECT_EQ(path, "/system.slice/app.service");
  ASSERT_EQ(resolver.Resolve(Inode(""), path), CgroupResolver::Status::kFound);
  EXPECT_EQ(path, "/");
  EXPECT_EQ(resolver.GetStats().scans, 1U);
  EXPECT_EQ(resolver.GetStats().entries, 3U);
}

TEST_F(CgroupTree, UnknownIdRescansAtABoundedRate) {
  auto options = Options();
  options.min_rescan_interval = std::chrono::hours(1);
  CgroupResolver resolver(options);
  std::string path;
  ASSERT_EQ(resolver.Resolve(Make("/a.service"), path), CgroupResolver::Status::kFound);
  // Created after the walk: not seen until the interval has passed.
  const std::uint64_t later = Make("/b.service");
  EXPECT_EQ(resolver.Resolve(later, path), CgroupResolver::Status::kUnknown);
  EXPECT_EQ(resolver.Resolve(later, path), CgroupResolver::Status::kUnknown);
  EXPECT_EQ(resolver.GetStats().scans, 1U);

  options.min_rescan_interval = std::chrono::seconds(0);
  CgroupResolver eager(options);
  ASSERT_EQ(eager.Resolve(later, path), CgroupResolver::Status::kFound);
  const std::uint64_t third = Make("/c.service");
  ASSERT_EQ(eager.Resolve(third, path), CgroupResolver::Status::kFound);
  EXPECT_EQ(path, "/c.service");
  EXPECT_EQ(eager.GetStats().scans, 2U);
  // Removed: the next walk forgets it.
  std::filesystem::remove(root_ / "c.service");
  EXPECT_EQ(eager.Resolve(123456789012ULL, path), CgroupResolver::Status::kUnknown);
  EXPECT_EQ(eager.Resolve(third, path), CgroupResolver::Status::kUnknown);
}

TEST_F(CgroupTree, MissingHierarchyResolvesNothing) {
  CgroupResolver::Options options;
  options.hierarchy = (root_ / "absent").string();
  CgroupResolver resolver(options);
  std::string path;
  EXPECT_EQ(resolver.Resolve(1, path), CgroupResolver::Status::kNoHierarchy);
  EXPECT_NE(resolver.GetStats().error, "");
  CgroupResolver::Options none;
  none.mountinfo_path = (root_ / "mountinfo").string();
  std::ofstream(none.mountinfo_path) << "25 30 0:23 / /sys rw - sysfs sysfs rw\n";
  CgroupResolver no_mount(none);
  EXPECT_EQ(no_mount.Resolve(1, path), CgroupResolver::Status::kNoHierarchy);
  EXPECT_NE(no_mount.GetStats().error.find("no cgroup2"), std::string::npos);
}

// 10,000 cgroups shaped like a Kubernetes node's (pod slice / container
// scope, ~150-byte paths): the table's heap, measured with mallinfo2, and
// the walk stopping at max_entries.
TEST_F(CgroupTree, TenThousandCgroupsMemoryAndCap) {
  std::vector<std::uint64_t> ids;
  const std::string pods = "/kubepods.slice/kubepods-burstable.slice";
  for (int pod = 0; pod < 2500; ++pod) {
    const std::string slice = fmt::format(
        "{}/kubepods-burstable-pod{:08x}_1111_2222_3333_"
        "444455556666.slice",
        pods, pod);
    for (int c = 0; c < 4; ++c) {
      ids.push_back(Make(fmt::format("{}/cri-containerd-{:064x}.scope", slice, pod * 4 + c)));
    }
  }
  const std::size_t before = ::mallinfo2().uordblks;
  {
    CgroupResolver resolver(Options());
    std::string path;
    ASSERT_EQ(resolver.Resolve(ids.back(), path), CgroupResolver::Status::kFound);
    const auto stats = resolver.GetStats();
    EXPECT_EQ(stats.entries, 10000U + 2500U + 3U);  // containers, pods, 2 slices, the root
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    // The sanitizers' allocators do not report through mallinfo2: the
    // memory figure is measured in the normal build only.
    (void)before;
    std::cout << "MEMORY | cgroup cache: not measured under a sanitizer\n";
#else
    const std::size_t held = ::mallinfo2().uordblks - before - path.capacity();
    std::cout << "MEMORY | cgroup cache, " << stats.entries << " cgroups (~150-byte paths) | "
              << held << " bytes measured, " << stats.bytes << " estimated, "
              << held / stats.entries << " bytes per cgroup\n";
    EXPECT_LT(held, 4U << 20);
    EXPECT_GT(stats.bytes, held / 2);
    EXPECT_LT(stats.bytes, held * 2);
#endif
  }
  auto capped = Options();
  capped.max_entries = 100;
  CgroupResolver resolver(capped);
  std::string path;
  resolver.Resolve(ids.front(), path);
  EXPECT_EQ(resolver.GetStats().entries, 100U);
  EXPECT_TRUE(resolver.GetStats().truncated);
}

class CgroupsCollectorTest : public CgroupTree {
 protected:
  void SetUp() override {
    CgroupTree::SetUp();
    std::filesystem::create_directories(root_ / "proc/sys/net/ipv4");
    std::ofstream(root_ / "proc/sys/net/ipv4/ip_local_port_range") << "40000\t40009\n";
    std::ofstream(root_ / "proc/sys/net/ipv4/ip_local_reserved_ports") << "40009\n";
    std::filesystem::create_directories(root_ / "cg");
    auto options = Options();
    options.hierarchy = (root_ / "cg").string();
    CgroupResolver::ResetShared(options);
  }
  void TearDown() override {
    CgroupResolver::ResetShared(CgroupResolver::Options{});
    CgroupTree::TearDown();
  }
  std::uint64_t Cgroup(const std::string& relative) { return Make("/cg" + relative); }
  std::vector<prometheus::MetricFamily> Scrape(const std::vector<SocketRecord>& records,
                                               std::shared_ptr<const Config> config = nullptr) {
    if (!config) config = WithHierarchy("");
    auto begun = collector_.Begin(ScrapeContext{config, (root_ / "proc").string()});
    EXPECT_TRUE(begun.has_value()) << (begun ? "" : begun.error().message);
    Classifier classifier(config);
    for (const auto& r : records) collector_.Observe(r, classifier.Classify(r));
    std::vector<prometheus::MetricFamily> out;
    EXPECT_TRUE(collector_.Finish(out).has_value());
    return out;
  }
  // A config with `extra` in its cgroups section, resolving in root_/cg.
  std::shared_ptr<const Config> WithHierarchy(const std::string& extra) {
    auto config = ParseConfig("cgroups:\n  hierarchy: " + (root_ / "cg").string() + "\n" + extra,
                              "test.yaml");
    EXPECT_TRUE(config.has_value()) << config.error().message;
    return config ? *config : DefaultConfig();
  }
  static SocketRecord In(SocketRecord record, std::uint64_t cgroup) {
    record.cgroup_id = cgroup;
    return record;
  }
  CgroupsCollector collector_;
};

TEST_F(CgroupsCollectorTest, CountsAndPortsPerCgroup) {
  const std::uint64_t web = Cgroup("/system.slice/web.service");
  const std::uint64_t box = Cgroup("/system.slice/docker-" + kHex + ".scope");
  const std::vector<SocketRecord> records = {
      In(Tcp(kTcpListen, "0.0.0.0", 40005, "0.0.0.0", 0), web),  // in the range: locks 40005
      In(Tcp(kTcpListen, "0.0.0.0", 80, "0.0.0.0", 0), web),
      In(Tcp(kTcpEstablished, "10.0.0.1", 40005, "10.0.0.2", 50000), web),  // shares 40005
      In(Tcp(kTcpEstablished, "10.0.0.2", 40001, "10.0.0.9", 443), box),
      In(Tcp(kTcpEstablished, "10.0.0.2", 40002, "10.0.0.9", 443), box),
      In(Tcp(kTcpEstablished, "10.0.0.2", 40001, "10.0.0.8", 443), box),  // same port, other dest
      In(Tcp(kTcpEstablished, "10.0.0.2", 40009, "10.0.0.9", 443), box),  // reserved port
      Tcp(kTcpTimeWait, "10.0.0.2", 40003, "10.0.0.9", 443),
      In(Udp(true, "10.0.0.2", 40004, "10.0.0.53", 53), box),
      In(Tcp(kTcpEstablished, "10.0.0.2", 40006, "10.0.0.9", 443), 999999999999ULL),
  };
  const auto out = Scrape(records);
  const std::string w = "/system.slice/web.service";
  const std::string b = "/system.slice/docker-" + kHex + ".scope";
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", w}, {"state", "listen"}}), 2);
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", w}, {"state", "established"}}), 1);
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", b}, {"protocol", "tcp"}}), 4);
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", b}, {"protocol", "udp"}}), 1);
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", "unowned"}}), 1);
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", "removed"}}), 1);
  EXPECT_EQ(Value(out, "socket_cgroup_ephemeral_ports_used", {{"cgroup", w}}), 1);
  EXPECT_EQ(Value(out, "socket_cgroup_ephemeral_ports_used", {{"cgroup", b}, {"protocol", "tcp"}}),
            3);
  EXPECT_EQ(Value(out, "socket_cgroup_ephemeral_ports_used", {{"cgroup", b}, {"protocol", "udp"}}),
            1);
  EXPECT_EQ(Value(out, "socket_cgroup_info",
                  {{"cgroup", b}, {"unit", "docker-" + kHex + ".scope"}, {"container_id", kHex}}),
            1);
  EXPECT_EQ(Value(out, "socket_cgroup_info", {{"cgroup", "unowned"}}), -1);
  // 10.0.0.9:443: the container 2, TIME_WAIT (unowned) 1, the removed one 1.
  EXPECT_EQ(Value(out, "socket_cgroup_destination_ports_used",
                  {{"remote_address", "10.0.0.9"}, {"cgroup", b}}),
            2);
  EXPECT_EQ(Value(out, "socket_cgroup_destination_ports_used",
                  {{"remote_address", "10.0.0.9"}, {"cgroup", "unowned"}}),
            1);
}

TEST_F(CgroupsCollectorTest, TopKFoldsTheRestIntoOther) {
  std::vector<SocketRecord> records;
  for (int i = 0; i < 5; ++i) {
    const std::uint64_t id = Cgroup(fmt::format("/s.slice/app{}.service", i));
    for (int n = 0; n <= i; ++n) {
      records.push_back(In(Tcp(kTcpEstablished, "10.0.0.1", static_cast<std::uint16_t>(1000 + n),
                               "10.0.0.2", static_cast<std::uint16_t>(2000 + i)),
                           id));
    }
  }
  const auto out = Scrape(records, WithHierarchy("  top: 2\n"));
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", "/s.slice/app4.service"}}), 5);
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", "/s.slice/app3.service"}}), 4);
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", "/s.slice/app2.service"}}), -1);
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", "other"}}), 1 + 2 + 3);
  EXPECT_EQ(Value(out, "socket_cgroup_other_cgroups", {}), 3);
  EXPECT_EQ(Value(out, "socket_cgroup_info", {{"cgroup", "/s.slice/app2.service"}}), -1);

  // Grouped at depth 1, the five are one.
  const auto grouped = Scrape(records, WithHierarchy("  group_by: depth\n  depth: 1\n"));
  EXPECT_EQ(Value(grouped, "socket_cgroup_connections", {{"cgroup", "/s.slice"}}), 15);
  EXPECT_EQ(SeriesCount(grouped, "socket_cgroup_connections"), 1U);
}

TEST_F(CgroupsCollectorTest, TrackedCgroupsAreCapped) {
  std::vector<SocketRecord> records;
  for (int i = 0; i < 4; ++i) {
    records.push_back(
        In(Tcp(kTcpListen, "0.0.0.0", static_cast<std::uint16_t>(100 + i), "0.0.0.0", 0),
           Cgroup(fmt::format("/c{}.service", i))));
  }
  const auto out = Scrape(records, WithHierarchy("  max_tracked_cgroups: 2\n"));
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {{"cgroup", "other"}}), 2);
  EXPECT_EQ(Value(out, "socket_cgroup_untracked_sockets", {{"reason", "max_tracked_cgroups"}}), 2);
  EXPECT_EQ(Value(out, "socket_cgroup_connections", {}), 4);
}

TEST(CgroupsSettings, ConfigErrorsNameTheLine) {
  auto bad = ParseConfig("cgroups:\n  top: -1\n  group_by: pods\n  topp: 3\n", "c.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(
      bad.error().message.find("c.yaml:2:8: cgroups.top: expected an integer between 0 and 1000"),
      std::string::npos)
      << bad.error().message;
  EXPECT_NE(bad.error().message.find("c.yaml:3:13: cgroups.group_by: expected 'cgroup', 'depth' "
                                     "or 'workload'"),
            std::string::npos)
      << bad.error().message;
  EXPECT_NE(bad.error().message.find("c.yaml:4:3: cgroups: unknown key 'topp', did you mean 'top'"),
            std::string::npos)
      << bad.error().message;
  auto good = ParseConfig("cgroups:\n  top: 7\n  group_by: workload\n", "c.yaml");
  ASSERT_TRUE(good.has_value()) << good.error().message;
  const auto& settings = (*good)->Section<CgroupsSettings>(kCgroupsCollectorName);
  EXPECT_EQ(settings.top, 7U);
  EXPECT_EQ(settings.group_by, CgroupsSettings::GroupBy::kWorkload);
  EXPECT_EQ(DefaultConfig()->Section<CgroupsSettings>(kCgroupsCollectorName).top, 20U);
}

}  // namespace
}  // namespace socket_exporter
