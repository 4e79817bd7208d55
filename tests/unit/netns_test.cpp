// Tests of the netns collector's pure parts: container IDs from cgroup
// files as Docker, containerd, CRI-O, podman and Kubernetes write them; label
// values; selection order, include/exclude and the limit; and the `netns:`
// config section's validation with its exact messages.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "collectors/registry.h"
#include "collectors/sources/netns_discovery.h"
#include "config/config.h"

namespace socket_exporter {
namespace {

const std::string kId = "3f2a9c0e5b7d41e6a8c2f0b9d7e5c3a1f4b6d8e0a2c4e6f8091b3d5f7a9c1e3b";
const std::string kId2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(ContainerIdFromCgroupTest, CgroupV2Drivers) {
  EXPECT_EQ(ContainerIdFromCgroup("0::/system.slice/docker-" + kId + ".scope\n"), kId);
  EXPECT_EQ(
      ContainerIdFromCgroup("0::/kubepods.slice/kubepods-burstable.slice/"
                            "kubepods-burstable-pod0c5d1f7e_92b4_4c1e_9f3a_6d2b8e4a7c10.slice/"
                            "cri-containerd-" +
                            kId + ".scope\n"),
      kId);
  EXPECT_EQ(
      ContainerIdFromCgroup("0::/kubepods.slice/kubepods-pod1.slice/crio-" + kId + ".scope\n"),
      kId);
  // podman puts the container's processes one level below its scope.
  EXPECT_EQ(ContainerIdFromCgroup("0::/machine.slice/libpod-" + kId + ".scope/container\n"), kId);
  // Seen from inside another cgroup namespace the path is relative.
  EXPECT_EQ(ContainerIdFromCgroup("0::/../../docker-" + kId + ".scope\n"), kId);
}

TEST(ContainerIdFromCgroupTest, CgroupV1AndCgroupfsDriver) {
  EXPECT_EQ(ContainerIdFromCgroup("12:pids:/docker/" + kId + "\n11:memory:/docker/" + kId + "\n"),
            kId);
  EXPECT_EQ(ContainerIdFromCgroup("4:cpu,cpuacct:/kubepods/besteffort/"
                                  "pod0c5d1f7e-92b4-4c1e-9f3a-6d2b8e4a7c10/" +
                                  kId + "\n"),
            kId);
  // The deepest component wins: a pod sandbox's id in a parent is not it.
  EXPECT_EQ(ContainerIdFromCgroup("0::/kubepods/pod-" + kId2 + "/" + kId + "\n"), kId);
}

TEST(ContainerIdFromCgroupTest, V2LineIsPreferred) {
  EXPECT_EQ(ContainerIdFromCgroup("5:pids:/docker/" + kId2 + "\n0::/system.slice/docker-" + kId +
                                  ".scope\n"),
            kId);
  // Hybrid hierarchy whose v2 line has no id: the v1 line's.
  EXPECT_EQ(ContainerIdFromCgroup("5:pids:/docker/" + kId2 + "\n0::/init.scope\n"), kId2);
}

TEST(ContainerIdFromCgroupTest, HostProcessesHaveNone) {
  EXPECT_EQ(ContainerIdFromCgroup(""), "");
  EXPECT_EQ(ContainerIdFromCgroup("0::/\n"), "");
  EXPECT_EQ(ContainerIdFromCgroup("0::/user.slice/user-1000.slice/session-3.scope\n"), "");
  EXPECT_EQ(ContainerIdFromCgroup("1:name=systemd:/system.slice/ssh.service\n0::/init.scope"), "");
  // 63 or 65 hex digits, or upper case, are not container IDs.
  EXPECT_EQ(ContainerIdFromCgroup("0::/docker-" + kId.substr(1) + ".scope\n"), "");
  EXPECT_EQ(ContainerIdFromCgroup("0::/docker-a" + kId + ".scope\n"), "");
  std::string upper = kId;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(ContainerIdFromCgroup("0::/docker-" + upper + ".scope\n"), "");
  // Malformed lines are skipped, not fatal.
  EXPECT_EQ(ContainerIdFromCgroup("garbage\n::\n0::/docker/" + kId), kId);
}

NetnsEntry Entry(std::uint64_t inode, std::vector<std::string> names = {}, bool own = false,
                 std::string container_id = {}) {
  NetnsEntry entry;
  entry.inode = inode;
  entry.names = std::move(names);
  entry.is_own = own;
  entry.container_id = std::move(container_id);
  return entry;
}

std::vector<std::string> Labels(const std::vector<NetnsEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& entry : entries) out.push_back(entry.label);
  return out;
}

std::vector<std::string> Labels(const NetnsSelection& selection) {
  std::vector<std::string> out;
  for (const auto* entry : selection.selected) out.push_back(entry->label);
  return out;
}

TEST(NetnsLabelTest, HostNameOrInode) {
  std::vector<NetnsEntry> entries = {Entry(4026532300),
                                     Entry(4026532100, {"cni-b", "alias"}),
                                     Entry(4026531840, {"mine"}, true),
                                     Entry(4026532200, {"host"}),
                                     Entry(4026532250, {"ino:4026532300"}),
                                     Entry(4026532150, {"web"})};
  for (auto& entry : entries) std::sort(entry.names.begin(), entry.names.end());
  AssignNetnsLabels(entries);
  SortNetnsEntries(entries);
  // Own first (always "host", even if named); then named by first name, with
  // names that would be ambiguous replaced by the inode; then unnamed by inode.
  EXPECT_EQ(Labels(entries), (std::vector<std::string>{"host", "alias", "ino:4026532200",
                                                       "ino:4026532250", "web", "ino:4026532300"}));
}

std::vector<NetnsEntry> Sample() {
  std::vector<NetnsEntry> entries = {Entry(1, {}, true), Entry(2, {"cni-1111"}),
                                     Entry(3, {"cni-2222"}), Entry(4, {}, false, kId),
                                     Entry(5, {}, false, kId2)};
  AssignNetnsLabels(entries);
  SortNetnsEntries(entries);
  return entries;
}

TEST(NetnsSelectTest, EverythingByDefault) {
  const auto entries = Sample();
  const NetnsSelection selection = SelectNamespaces(entries, NetnsConfig{});
  EXPECT_EQ(Labels(selection),
            (std::vector<std::string>{"host", "cni-1111", "cni-2222", "ino:4", "ino:5"}));
  EXPECT_EQ(selection.filtered, 0U);
  EXPECT_EQ(selection.over_limit, 0U);
}

TEST(NetnsSelectTest, IncludeExcludeMatchLabelNameAndContainer) {
  const auto entries = Sample();
  NetnsConfig config;
  config.include = {"cni-*", "3f2a9c*", "host"};
  config.exclude = {"*2222"};
  const NetnsSelection selection = SelectNamespaces(entries, config);
  EXPECT_EQ(Labels(selection), (std::vector<std::string>{"host", "cni-1111", "ino:4"}));
  EXPECT_EQ(selection.filtered, 2U);

  config.include = {};
  config.exclude = {"host", "ino:[45]"};
  EXPECT_EQ(Labels(SelectNamespaces(entries, config)),
            (std::vector<std::string>{"cni-1111", "cni-2222"}));
  // A glob matches the whole string, not a substring.
  config.exclude = {"cni"};
  EXPECT_EQ(SelectNamespaces(entries, config).filtered, 0U);
}

TEST(NetnsSelectTest, LimitKeepsTheFirstInOrder) {
  const auto entries = Sample();
  NetnsConfig config;
  config.max_namespaces = 2;
  config.exclude = {"cni-1111"};
  const NetnsSelection selection = SelectNamespaces(entries, config);
  EXPECT_EQ(Labels(selection), (std::vector<std::string>{"host", "cni-2222"}));
  EXPECT_EQ(selection.filtered, 1U);
  EXPECT_EQ(selection.over_limit, 2U);
}

std::string ErrorsOf(const std::string& yaml) {
  const auto result = ParseConfig(yaml, "test.yaml");
  if (result) return "<no error>";
  return result.error().message;
}

TEST(NetnsConfigTest, DefaultsAndValues) {
  auto defaults = ParseConfig("", "test.yaml");
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ((*defaults)->netns.cache_seconds, 5U);
  EXPECT_EQ((*defaults)->netns.max_namespaces, 128U);
  EXPECT_TRUE((*defaults)->netns.include.empty());
  EXPECT_TRUE((*defaults)->netns.exclude.empty());
  EXPECT_EQ((*defaults)->netns.source, NetnsSource::kAuto);

  auto parsed = ParseConfig(
      "collectors: {netns: true}\n"
      "netns:\n"
      "  cache_seconds: 0\n"
      "  max_namespaces: 20\n"
      "  include: ['cni-*', 'host', '[a-f]*']\n"
      "  exclude: [kube-system-*, '3f2a\\*']\n"
      "  source: bpf\n",
      "test.yaml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  const NetnsConfig& netns = (*parsed)->netns;
  EXPECT_EQ(netns.cache_seconds, 0U);
  EXPECT_EQ(netns.max_namespaces, 20U);
  EXPECT_EQ(netns.include, (std::vector<std::string>{"cni-*", "host", "[a-f]*"}));
  EXPECT_EQ(netns.exclude, (std::vector<std::string>{"kube-system-*", "3f2a\\*"}));
  EXPECT_EQ(netns.source, NetnsSource::kBpf);
  EXPECT_TRUE((*parsed)->collectors.at("netns"));
}

TEST(NetnsConfigTest, Errors) {
  EXPECT_EQ(ErrorsOf("netns:\n"
                     "  cache_seconds: 3601\n"
                     "  max_namespaces: 0\n"
                     "  include: 'cni-*'\n"
                     "  exclud: []\n"),
            "test.yaml:2:18: netns.cache_seconds: expected an integer between 0 and 3600, got "
            "'3601'\n"
            "test.yaml:3:19: netns.max_namespaces: expected an integer between 1 and 10000, got "
            "'0'\n"
            "test.yaml:4:12: netns.include: expected a list of patterns (shell globs such as "
            "'cni-*'), got the string 'cni-*'\n"
            "test.yaml:5:3: netns: unknown key 'exclud', did you mean 'exclude'?");
  EXPECT_EQ(ErrorsOf("netns:\n  exclude: ['', 'a/b', '[abc', 'x\\', {a: 1}, 'ok', 'ok']\n"),
            "test.yaml:2:13: netns.exclude[0]: expected a pattern, got an empty string\n"
            "test.yaml:2:17: netns.exclude[1]: pattern 'a/b' contains '/', which no namespace "
            "name or container ID can contain\n"
            "test.yaml:2:24: netns.exclude[2]: pattern '[abc': '[' at position 1 is never closed "
            "by ']'\n"
            "test.yaml:2:32: netns.exclude[3]: pattern 'x\\': ends with an unescaped '\\'\n"
            "test.yaml:2:38: netns.exclude[4]: expected a pattern (a string), got a map\n"
            "test.yaml:2:52: netns.exclude[6]: duplicate pattern 'ok'");
  EXPECT_EQ(ErrorsOf("netns: [1]\n"), "test.yaml:1:8: netns: expected a map, got a list");
  EXPECT_EQ(ErrorsOf("netns: {source: ebpf}\n"),
            "test.yaml:1:17: netns.source: expected 'auto', 'netlink' or 'bpf', got 'ebpf'");
  // ']' right after '[' is a member, so this bracket is closed by the second.
  EXPECT_EQ(ErrorsOf("netns: {include: ['[]x]*', '[!]]']}\n"), "<no error>");
}

}  // namespace
}  // namespace socket_exporter
