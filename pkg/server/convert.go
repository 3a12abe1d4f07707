package server

import (
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/errdefs"
)

// cgroupResources turns the CRI's container resources into crid's, with
// the configured pids limit where the request names none. The CRI's zeros
// mean "not set"; a negative quota means "no limit", as the kubelet sends
// it when a resize removes one. oom_score_adj is not a cgroup setting: the
// spec carries it (clamped by cgroups.ClampOOMScoreAdj) and the executor
// writes it for the container's init.
func cgroupResources(r *runtime.LinuxContainerResources, pidsDefault int64) (*cgroups.Resources, error) {
	out := &cgroups.Resources{PidsLimit: pidsDefault}
	if r == nil {
		return out, nil
	}
	if r.CpuShares < 0 {
		return nil, invalid("linux.resources.cpu_shares", "%d is negative", r.CpuShares)
	}
	if r.CpuPeriod < 0 {
		return nil, invalid("linux.resources.cpu_period", "%d is negative", r.CpuPeriod)
	}
	if r.MemoryLimitInBytes < 0 {
		return nil, invalid("linux.resources.memory_limit_in_bytes", "%d is negative", r.MemoryLimitInBytes)
	}
	out.CPUShares = uint64(r.CpuShares)
	out.CPUPeriod = uint64(r.CpuPeriod)
	out.CPUQuota = r.CpuQuota
	if out.CPUQuota < 0 {
		out.CPUQuota = -1
	}
	out.CPUSetCPUs, out.CPUSetMems = r.CpusetCpus, r.CpusetMems
	out.MemoryLimit = r.MemoryLimitInBytes
	out.MemorySwapLimit = r.MemorySwapLimitInBytes
	if out.MemorySwapLimit < -1 {
		return nil, invalid("linux.resources.memory_swap_limit_in_bytes", "%d: use -1 for unlimited swap", r.MemorySwapLimitInBytes)
	}
	for _, h := range r.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, cgroups.HugepageLimit{PageSize: h.PageSize, Limit: h.Limit})
	}
	if len(r.Unified) > 0 {
		out.Unified = map[string]string{}
		for k, v := range r.Unified {
			out.Unified[k] = v
		}
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("linux.resources: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// criResources is the CRI's view of the limits crid last applied to a
// container (at create, or by UpdateContainerResources): what
// ContainerStatus reports, and what the kubelet compares a resize against.
// Without it the kubelet takes a container's status resources from what it
// asked for, and fills every missing request with zero (memory "0" in the
// status of a container that asked for none, which the in-place resize
// conformance specs catch). crid's -1 (no limit) is the CRI's 0 (not set),
// but for the cpu quota, where the kubelet itself sends -1.
func criResources(r *cgroups.Resources) *runtime.ContainerResources {
	if r == nil {
		return nil
	}
	out := &runtime.LinuxContainerResources{
		CpuShares: int64(r.CPUShares), CpuPeriod: int64(r.CPUPeriod), CpuQuota: r.CPUQuota,
		CpusetCpus: r.CPUSetCPUs, CpusetMems: r.CPUSetMems,
	}
	if r.MemoryLimit > 0 {
		out.MemoryLimitInBytes = r.MemoryLimit
	}
	if r.MemorySwapLimit > 0 || r.MemorySwapLimit == -1 {
		out.MemorySwapLimitInBytes = r.MemorySwapLimit
	}
	for _, h := range r.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, &runtime.HugepageLimit{PageSize: h.PageSize, Limit: h.Limit})
	}
	if len(r.Unified) > 0 {
		out.Unified = map[string]string{}
		for k, v := range r.Unified {
			out.Unified[k] = v
		}
	}
	return &runtime.ContainerResources{Linux: out}
}
