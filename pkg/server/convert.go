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
// executor applies it to the process (cgroups.SetOOMScoreAdj).
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
