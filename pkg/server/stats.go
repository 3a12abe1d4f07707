package server

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/sandbox"
)

func u64(v uint64) *runtime.UInt64Value { return &runtime.UInt64Value{Value: v} }

// cgroupUsage reads a cgroup's CPU and memory use in the CRI's terms.
func (s *Server) cgroupUsage(path string) (*runtime.CpuUsage, *runtime.MemoryUsage, *cgroups.Stats, error) {
	m, err := s.cgroups.Manager(path)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := m.Stats()
	if err != nil {
		return nil, nil, nil, err
	}
	ts := st.Time.UnixNano()
	cpu := &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u64(st.CPU.UsageNanos)}
	mem := &runtime.MemoryUsage{Timestamp: ts, WorkingSetBytes: u64(st.Memory.WorkingSet), UsageBytes: u64(st.Memory.Usage),
		RssBytes: u64(st.Memory.RSS), PageFaults: u64(st.Memory.PageFaults), MajorPageFaults: u64(st.Memory.MajorFaults)}
	if st.Memory.Limit != ^uint64(0) && st.Memory.Limit > st.Memory.WorkingSet {
		mem.AvailableBytes = u64(st.Memory.Limit - st.Memory.WorkingSet)
	}
	return cpu, mem, st, nil
}

func (s *Server) containerStats(ctx context.Context, c *container.Container) *runtime.ContainerStats {
	out := &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{
		Id: c.ID, Metadata: containerMetadata(c), Labels: c.Labels, Annotations: c.Annotations}}
	if cpu, mem, _, err := s.cgroupUsage(c.Cgroup); err == nil {
		out.Cpu, out.Memory = cpu, mem
	} else {
		// An exited container's cgroup may hold nothing more to say.
		out.Cpu, out.Memory = &runtime.CpuUsage{}, &runtime.MemoryUsage{}
	}
	if u, err := s.usage.Get(ctx, filepath.Join(c.Layer, "upper")); err == nil {
		out.WritableLayer = &runtime.FilesystemUsage{Timestamp: u.At.UnixNano(),
			FsId:      &runtime.FilesystemIdentifier{Mountpoint: s.layout.ContainersDir()},
			UsedBytes: u64(u.Bytes), InodesUsed: u64(u.Inodes)}
	}
	return out
}

// ContainerStats reports a container's resource use from its cgroup.
func (s *Server) ContainerStats(ctx context.Context, req *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	c, err := s.containers.Get(req.ContainerId)
	if err != nil {
		return nil, err
	}
	return &runtime.ContainerStatsResponse{Stats: s.containerStats(ctx, c)}, nil
}

// ListContainerStats reports the resource use of the containers the
// filter names.
func (s *Server) ListContainerStats(ctx context.Context, req *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	out := []*runtime.ContainerStats{}
	for _, c := range s.containers.List() {
		if f.GetId() != "" && !strings.HasPrefix(c.ID, f.GetId()) ||
			f.GetPodSandboxId() != "" && !strings.HasPrefix(c.SandboxID, f.GetPodSandboxId()) ||
			!labelsMatch(c.Labels, f.GetLabelSelector()) {
			continue
		}
		out = append(out, s.containerStats(ctx, c))
	}
	return &runtime.ListContainerStatsResponse{Stats: out}, nil
}

func (s *Server) podStats(ctx context.Context, id string) (*runtime.PodSandboxStats, error) {
	sb, err := s.sandboxes.Get(id)
	if err != nil {
		return nil, err
	}
	out := &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{Id: sb.ID, Metadata: sandboxMetadata(sb), Labels: sb.Spec.Labels, Annotations: sb.Spec.Annotations},
		Linux:      &runtime.LinuxPodSandboxStats{},
	}
	if cpu, mem, st, err := s.cgroupUsage(sb.Cgroup); err == nil {
		out.Linux.Cpu, out.Linux.Memory = cpu, mem
		out.Linux.Process = &runtime.ProcessUsage{Timestamp: st.Time.UnixNano(), ProcessCount: u64(st.Pids.Current)}
	}
	out.Linux.Network = networkUsage(sb)
	for _, c := range s.containers.ForSandbox(sb.ID) {
		out.Linux.Containers = append(out.Linux.Containers, s.containerStats(ctx, c))
	}
	return out, nil
}

// networkUsage is the pod's interfaces' use, the kubelet's summary API's
// pod network stats: every interface, and among them the default, eth0
// (the interface CNI makes), else the first. Nil for a pod on the host's
// network.
func networkUsage(sb *sandbox.Sandbox) *runtime.NetworkUsage {
	ifaces, err := sandbox.Interfaces(sb)
	if err != nil || len(ifaces) == 0 {
		return nil
	}
	out := &runtime.NetworkUsage{Timestamp: time.Now().UnixNano()}
	for _, i := range ifaces {
		u := &runtime.NetworkInterfaceUsage{Name: i.Name,
			RxBytes: u64(i.Counters[0]), RxErrors: u64(i.Counters[2]), TxBytes: u64(i.Counters[8]), TxErrors: u64(i.Counters[10])}
		if i.Name == "eth0" {
			out.DefaultInterface = u
		}
		out.Interfaces = append(out.Interfaces, u)
	}
	if out.DefaultInterface == nil {
		out.DefaultInterface = out.Interfaces[0]
	}
	return out
}

// PodSandboxStats reports a pod's resource use from its cgroup.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	st, err := s.podStats(ctx, req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	return &runtime.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats reports every pod the filter names.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	out := []*runtime.PodSandboxStats{}
	for _, sb := range s.sandboxes.List() {
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) || !labelsMatch(sb.Spec.Labels, f.GetLabelSelector()) {
			continue
		}
		if st, err := s.podStats(ctx, sb.ID); err == nil {
			out = append(out, st)
		}
	}
	return &runtime.ListPodSandboxStatsResponse{Stats: out}, nil
}
