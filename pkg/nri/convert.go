package nri

import (
	"maps"
	"slices"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/sandbox"
)

// podSandbox is a sandbox as plugins see it.
func podSandbox(s *sandbox.Sandbox) *adaptation.PodSandbox {
	p := &adaptation.PodSandbox{
		Id: s.ID, Name: s.Spec.Name, Uid: s.Spec.UID, Namespace: s.Spec.Namespace,
		Labels: maps.Clone(s.Spec.Labels), Annotations: maps.Clone(s.Spec.Annotations), RuntimeHandler: s.Spec.RuntimeHandler,
		Pid: uint32(s.InfraPID), Ips: s.IPs,
		Linux: &adaptation.LinuxPodSandbox{CgroupParent: s.Spec.CgroupParent, CgroupsPath: s.Cgroup},
	}
	for _, ns := range []struct {
		kind specs.LinuxNamespaceType
		path string
	}{
		{specs.NetworkNamespace, s.NS.Net}, {specs.IPCNamespace, s.NS.IPC}, {specs.UTSNamespace, s.NS.UTS},
		{specs.PIDNamespace, s.NS.PID}, {specs.UserNamespace, s.NS.User},
	} {
		if ns.path != "" {
			p.Linux.Namespaces = append(p.Linux.Namespaces, &adaptation.LinuxNamespace{Type: string(ns.kind), Path: ns.path})
		}
	}
	if r := s.Spec.Resources; r != nil {
		p.Linux.PodResources = nriResources(r)
	}
	return p
}

// describe is a container as plugins see it, its spec read from its
// bundle; a container whose bundle is gone (removed) is described by its
// record alone.
func (h *Host) describe(c *container.Container) *adaptation.Container {
	spec, _ := c.Spec()
	return containerInfo(c, spec, c.Resources)
}

// containerInfo is a container as plugins see it: its record, the spec it
// runs by (when there is one) and its limits. Maps and slices are copies:
// the library edits the request it is handed as it merges the plugins'
// answers, and the spec is only to change by the adjustment.
func containerInfo(c *container.Container, spec *specs.Spec, res *cgroups.Resources) *adaptation.Container {
	out := &adaptation.Container{
		Id: c.ID, PodSandboxId: c.SandboxID, Name: c.Name, State: containerState(c),
		Labels: maps.Clone(c.Labels), Annotations: maps.Clone(c.Annotations),
		Pid: uint32(c.Pid), CreatedAt: unixNano(c.CreatedAt.UnixNano(), c.CreatedAt.IsZero()),
		StartedAt: unixNano(c.StartedAt.UnixNano(), c.StartedAt.IsZero()), FinishedAt: unixNano(c.FinishedAt.UnixNano(), c.FinishedAt.IsZero()),
		ExitCode: c.ExitCode, StatusReason: c.Reason, StatusMessage: c.Message,
		User:  &adaptation.User{Uid: c.UID, Gid: c.GID, AdditionalGids: c.Groups},
		Linux: &adaptation.LinuxContainer{CgroupsPath: c.Cgroup},
	}
	if spec != nil {
		if spec.Annotations != nil {
			out.Annotations = maps.Clone(spec.Annotations)
		}
		if p := spec.Process; p != nil {
			out.Args, out.Env = slices.Clone(p.Args), slices.Clone(p.Env)
			for _, r := range p.Rlimits {
				out.Rlimits = append(out.Rlimits, &adaptation.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
			}
			if p.OOMScoreAdj != nil {
				out.Linux.OomScoreAdj = api.Int(*p.OOMScoreAdj)
			}
		}
		out.Mounts = api.FromOCIMounts(spec.Mounts)
		out.Hooks = api.FromOCIHooks(spec.Hooks)
		if l := spec.Linux; l != nil {
			out.Linux.Namespaces = api.FromOCILinuxNamespaces(l.Namespaces)
			out.Linux.Devices = api.FromOCILinuxDevices(l.Devices)
			out.Linux.Sysctl = maps.Clone(l.Sysctl)
			if l.CgroupsPath != "" {
				out.Linux.CgroupsPath = l.CgroupsPath
			}
		}
	}
	if res != nil {
		out.Linux.Resources = nriResources(res)
	}
	return out
}

func unixNano(ns int64, zero bool) int64 {
	if zero {
		return 0
	}
	return ns
}

func containerState(c *container.Container) adaptation.ContainerState {
	switch {
	case c.Creating:
		return adaptation.ContainerState_CONTAINER_UNKNOWN
	case c.State == container.Created:
		return adaptation.ContainerState_CONTAINER_CREATED
	case c.State == container.Running:
		return adaptation.ContainerState_CONTAINER_RUNNING
	default:
		return adaptation.ContainerState_CONTAINER_STOPPED
	}
}

// nriResources are crid's limits in NRI's terms; unset (zero) fields stay
// unset.
func nriResources(r *cgroups.Resources) *adaptation.LinuxResources {
	out := &adaptation.LinuxResources{
		Memory: &adaptation.LinuxMemory{},
		Cpu:    &adaptation.LinuxCPU{Cpus: r.CPUSetCPUs, Mems: r.CPUSetMems},
	}
	if r.MemoryLimit != 0 {
		out.Memory.Limit = api.Int64(r.MemoryLimit)
	}
	if r.MemorySwapLimit != 0 {
		out.Memory.Swap = api.Int64(r.MemorySwapLimit)
	}
	if r.CPUShares != 0 {
		out.Cpu.Shares = api.UInt64(r.CPUShares)
	}
	if r.CPUQuota != 0 {
		out.Cpu.Quota = api.Int64(r.CPUQuota)
	}
	if r.CPUPeriod != 0 {
		out.Cpu.Period = api.UInt64(r.CPUPeriod)
	}
	if r.PidsLimit != 0 {
		out.Pids = &api.LinuxPids{Limit: r.PidsLimit}
	}
	for _, h := range r.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, &adaptation.HugepageLimit{PageSize: h.PageSize, Limit: h.Limit})
	}
	if len(r.Unified) > 0 {
		out.Unified = r.Unified
	}
	return out
}

// fromNRIResources are limits a plugin gave, in crid's terms. What crid
// cannot apply is refused by name rather than dropped: a plugin that
// pins memory reservations or RDT classes must learn they did not happen.
func fromNRIResources(r *adaptation.LinuxResources) (*cgroups.Resources, error) {
	out := &cgroups.Resources{}
	if r == nil {
		return out, nil
	}
	if m := r.GetMemory(); m != nil {
		if v := m.GetLimit(); v != nil {
			out.MemoryLimit = v.GetValue()
		}
		if v := m.GetSwap(); v != nil {
			out.MemorySwapLimit = v.GetValue()
		}
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"memory.reservation", m.GetReservation() != nil},
			{"memory.kernel", m.GetKernel() != nil},
			{"memory.kernel_tcp", m.GetKernelTcp() != nil},
			{"memory.swappiness", m.GetSwappiness() != nil},
			{"memory.disable_oom_killer", m.GetDisableOomKiller() != nil},
		} {
			if f.set {
				return nil, unsupported("resources." + f.name)
			}
		}
	}
	if c := r.GetCpu(); c != nil {
		if v := c.GetShares(); v != nil {
			out.CPUShares = v.GetValue()
		}
		if v := c.GetQuota(); v != nil {
			out.CPUQuota = v.GetValue()
		}
		if v := c.GetPeriod(); v != nil {
			out.CPUPeriod = v.GetValue()
		}
		out.CPUSetCPUs, out.CPUSetMems = c.GetCpus(), c.GetMems()
		if c.GetRealtimeRuntime() != nil || c.GetRealtimePeriod() != nil {
			return nil, unsupported("resources.cpu.realtime_runtime/realtime_period")
		}
	}
	if p := r.GetPids(); p != nil {
		out.PidsLimit = p.GetLimit()
	}
	for _, h := range r.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, cgroups.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	if len(r.GetUnified()) > 0 {
		out.Unified = map[string]string{}
		for k, v := range r.GetUnified() {
			out.Unified[k] = v
		}
	}
	switch {
	case r.GetBlockioClass().GetValue() != "":
		return nil, unsupported("resources.blockio_class")
	case r.GetRdtClass().GetValue() != "":
		return nil, unsupported("resources.rdt_class")
	case len(r.GetDevices()) > 0:
		return nil, unsupported("resources.devices in an update (device rules are set when a container is created)")
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}
