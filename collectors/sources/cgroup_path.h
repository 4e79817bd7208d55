// Workload identifiers read from a cgroup path (cgroup v2 path relative to
// the hierarchy's mount, e.g. "/system.slice/nginx.service"). Shared by the
// netns discovery (a process's container) and the cgroups collector.
//
// Thread safety: pure functions; thread-safe.
#pragma once

#include <string_view>

namespace socket_exporter {

// The container ID of a cgroup path: the last run of exactly 64 lower-case
// hex digits in the deepest path component that has one (docker-<id>.scope,
// cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope,
// /docker/<id>, /kubepods/.../pod<uid>/<id>); "" when there is none.
std::string_view ContainerIdFromCgroupPath(std::string_view path);

// The kubelet pod UID: from "kubepods-<qos>-pod<uid>.slice" (systemd
// driver; '_' in the UID stands for '-') or "pod<uid>" (cgroupfs driver).
// Returned as written in the path (see PodUidText for the dashed form).
// "" when the path is not under a pod.
std::string_view PodUidFromCgroupPath(std::string_view path);
// The UID as Kubernetes prints it: '_' turned back into '-'.
std::string PodUidText(std::string_view path);

// The deepest systemd unit of the path: a component ending in ".service" or
// ".scope"; "" if none.
std::string_view UnitFromCgroupPath(std::string_view path);

// The workload a path belongs to, as a prefix of the path: up to the pod's
// slice if under a pod, else up to the shallowest container or unit
// component, else the whole path.
std::string_view WorkloadOfCgroupPath(std::string_view path);

// The first `depth` components ("/a/b" for depth 2); the path itself if it
// has fewer; "/" stays "/". depth 0 = the whole path.
std::string_view CgroupPathAtDepth(std::string_view path, unsigned depth);

}  // namespace socket_exporter
