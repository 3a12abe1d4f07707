package nri

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/sandbox"
)

// baseSpec is a container's spec as generate makes it, cut down to what
// adjustments touch.
func baseSpec() *specs.Spec {
	return &specs.Spec{
		Process: &specs.Process{
			Args: []string{"/bin/app"},
			Env:  []string{"PATH=/bin", "KEEP=1", "DROP=1"},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/data", Type: "bind", Source: "/host/data", Options: []string{"rbind"}},
			{Destination: "/etc/hosts", Type: "bind", Source: "/pod/hosts", Options: []string{"rbind", "ro"}},
		},
		Annotations: map[string]string{"keep": "1", "drop": "1"},
		Linux:       &specs.Linux{},
	}
}

func TestAdjust(t *testing.T) {
	major, minor := int64(1), int64(9)
	tests := []struct {
		name     string
		adjust   *adaptation.ContainerAdjustment
		wantSpec func(*specs.Spec)
		wantRes  cgroups.Resources
	}{
		{
			name:     "nothing",
			adjust:   nil,
			wantSpec: func(*specs.Spec) {},
			wantRes:  cgroups.Resources{MemoryLimit: 100 << 20},
		},
		{
			name: "annotations set and removed",
			adjust: &adaptation.ContainerAdjustment{Annotations: map[string]string{
				"added": "yes", "keep": "2", api.MarkForRemoval("drop"): "",
			}},
			wantSpec: func(s *specs.Spec) { s.Annotations = map[string]string{"keep": "2", "added": "yes"} },
			wantRes:  cgroups.Resources{MemoryLimit: 100 << 20},
		},
		{
			name: "environment set, replaced and removed; args replaced",
			adjust: &adaptation.ContainerAdjustment{
				Env:  []*adaptation.KeyValue{{Key: "NEW", Value: "a=b"}, {Key: "KEEP", Value: "2"}, {Key: api.MarkForRemoval("DROP")}},
				Args: []string{"/bin/other", "--flag"},
			},
			wantSpec: func(s *specs.Spec) {
				s.Process.Env = []string{"PATH=/bin", "NEW=a=b", "KEEP=2"}
				s.Process.Args = []string{"/bin/other", "--flag"}
			},
			wantRes: cgroups.Resources{MemoryLimit: 100 << 20},
		},
		{
			name: "mounts added, replaced and removed, parents first",
			adjust: &adaptation.ContainerAdjustment{Mounts: []*adaptation.Mount{
				{Destination: "/data/cache/", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
				{Destination: "/data", Type: "bind", Source: "/plugin/data", Options: []string{"rbind", "ro"}},
				{Destination: api.MarkForRemoval("/etc/hosts")},
				{Destination: "/x", Type: "bind", Source: "/plugin/x", Options: []string{"rbind"}},
			}},
			wantSpec: func(s *specs.Spec) {
				s.Mounts = []specs.Mount{
					{Destination: "/proc", Type: "proc", Source: "proc"},
					{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
					{Destination: "/data", Type: "bind", Source: "/plugin/data", Options: []string{"rbind", "ro"}},
					{Destination: "/x", Type: "bind", Source: "/plugin/x", Options: []string{"rbind"}},
					{Destination: "/data/cache", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
				}
			},
			wantRes: cgroups.Resources{MemoryLimit: 100 << 20},
		},
		{
			name: "rlimits and a device with its cgroup rule",
			adjust: &adaptation.ContainerAdjustment{
				Rlimits: []*adaptation.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}},
				Linux: &adaptation.LinuxContainerAdjustment{Devices: []*adaptation.LinuxDevice{
					{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
					{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
					{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
					{Path: api.MarkForRemoval("/dev/random")},
					{Path: api.MarkForRemoval("/dev/full")},
				}},
			},
			wantSpec: func(s *specs.Spec) {
				s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}}
				s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9}}
				s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
					{Allow: true, Type: "c", Major: &major, Minor: &[]int64{7}[0], Access: "rwm"},
					{Allow: true, Type: "c", Major: &major, Minor: &[]int64{8}[0], Access: "rwm"},
					{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"},
				}}
			},
			wantRes: cgroups.Resources{MemoryLimit: 100 << 20},
		},
		{
			name: "device rules join the container's",
			adjust: &adaptation.ContainerAdjustment{Linux: &adaptation.LinuxContainerAdjustment{Resources: &adaptation.LinuxResources{
				Devices: []*adaptation.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: api.Int64(int64(10)), Minor: api.Int64(int64(200)), Access: "rw"}},
			}}},
			wantSpec: func(s *specs.Spec) {
				s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
					{Allow: true, Type: "c", Major: &[]int64{10}[0], Minor: &[]int64{200}[0], Access: "rw"},
				}}
			},
			wantRes: cgroups.Resources{MemoryLimit: 100 << 20},
		},
		{
			name: "resources merged over the request's",
			adjust: &adaptation.ContainerAdjustment{Linux: &adaptation.LinuxContainerAdjustment{Resources: &adaptation.LinuxResources{
				Memory: &adaptation.LinuxMemory{Limit: api.Int64(int64(200 << 20))},
				Cpu:    &adaptation.LinuxCPU{Shares: api.UInt64(uint64(512)), Cpus: "0"},
				Pids:   &api.LinuxPids{Limit: 64},
			}}},
			wantSpec: func(*specs.Spec) {},
			wantRes:  cgroups.Resources{MemoryLimit: 200 << 20, CPUShares: 512, CPUSetCPUs: "0", PidsLimit: 64},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := baseSpec(), baseSpec()
			tt.wantSpec(want)
			res := cgroups.Resources{MemoryLimit: 100 << 20}
			if err := adjust(got, &res, tt.adjust); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("spec:\n%+v\nwant\n%+v", got, want)
			}
			if !reflect.DeepEqual(res, tt.wantRes) {
				t.Errorf("resources: %+v, want %+v", res, tt.wantRes)
			}
		})
	}
}

func TestAdjustRefusesWhatCridCannotDo(t *testing.T) {
	linux := func(l *adaptation.LinuxContainerAdjustment) *adaptation.ContainerAdjustment {
		return &adaptation.ContainerAdjustment{Linux: l}
	}
	tests := []struct {
		name   string
		adjust *adaptation.ContainerAdjustment
		field  string
		code   error
	}{
		{"OCI hooks", &adaptation.ContainerAdjustment{Hooks: &adaptation.Hooks{Prestart: []*adaptation.Hook{{Path: "/bin/true"}}}}, "hooks", errdefs.ErrFailedPrecondition},
		{"CDI devices", &adaptation.ContainerAdjustment{CDIDevices: []*adaptation.CDIDevice{{Name: "vendor.com/gpu=0"}}}, "CDI devices", errdefs.ErrFailedPrecondition},
		{"cgroups path", linux(&adaptation.LinuxContainerAdjustment{CgroupsPath: "/elsewhere"}), "linux.cgroups_path", errdefs.ErrFailedPrecondition},
		{"sysctls", linux(&adaptation.LinuxContainerAdjustment{Sysctl: map[string]string{"net.core.somaxconn": "1"}}), "linux.sysctl", errdefs.ErrFailedPrecondition},
		{"RDT", linux(&adaptation.LinuxContainerAdjustment{Rdt: &adaptation.LinuxRdt{ClosId: api.String("gold")}}), "linux.rdt", errdefs.ErrFailedPrecondition},
		{"namespaces", linux(&adaptation.LinuxContainerAdjustment{Namespaces: []*adaptation.LinuxNamespace{{Type: "network"}}}), "linux.namespaces", errdefs.ErrFailedPrecondition},
		{"memory reservation", linux(&adaptation.LinuxContainerAdjustment{Resources: &adaptation.LinuxResources{
			Memory: &adaptation.LinuxMemory{Reservation: api.Int64(int64(1))}}}), "resources.memory.reservation", errdefs.ErrFailedPrecondition},
		{"blockio class", linux(&adaptation.LinuxContainerAdjustment{Resources: &adaptation.LinuxResources{
			BlockioClass: api.String("slow")}}), "resources.blockio_class", errdefs.ErrFailedPrecondition},
		{"a bad limit", linux(&adaptation.LinuxContainerAdjustment{Resources: &adaptation.LinuxResources{
			Cpu: &adaptation.LinuxCPU{Shares: api.UInt64(uint64(1))}}}), "cpu_shares", nil},
		{"an rlimit that is not one", &adaptation.ContainerAdjustment{Rlimits: []*adaptation.POSIXRlimit{{Type: "NOFILE"}}}, "NOFILE", errdefs.ErrInvalidArgument},
		{"a relative mount", &adaptation.ContainerAdjustment{Mounts: []*adaptation.Mount{{Destination: "data", Type: "tmpfs"}}}, `"data" is not absolute`, errdefs.ErrInvalidArgument},
		{"a device without a type", linux(&adaptation.LinuxContainerAdjustment{Devices: []*adaptation.LinuxDevice{{Path: "/dev/x"}}}), "/dev/x", errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := cgroups.Resources{}
			err := adjust(baseSpec(), &res, tt.adjust)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("adjust = %v, want an error naming %q", err, tt.field)
			}
			if tt.code != nil && !errors.Is(err, tt.code) {
				t.Errorf("adjust = %v, want it to be %v", err, tt.code)
			}
		})
	}
}

func TestEmptyPartsOfAMergedAdjustmentAreNotAsks(t *testing.T) {
	// What the library hands over when plugins asked for nothing but a
	// memory limit: every part there, empty.
	a := &adaptation.ContainerAdjustment{
		Annotations: map[string]string{}, Mounts: []*adaptation.Mount{}, Env: []*adaptation.KeyValue{}, Hooks: &adaptation.Hooks{},
		Linux: &adaptation.LinuxContainerAdjustment{
			Resources:  &adaptation.LinuxResources{Memory: &adaptation.LinuxMemory{Limit: api.Int64(int64(1 << 30))}, Cpu: &adaptation.LinuxCPU{}},
			Rdt:        &adaptation.LinuxRdt{},
			Scheduler:  &adaptation.LinuxScheduler{},
			IoPriority: &adaptation.LinuxIOPriority{},
			Namespaces: []*adaptation.LinuxNamespace{}, Sysctl: map[string]string{},
		},
	}
	res := cgroups.Resources{}
	if err := adjust(baseSpec(), &res, a); err != nil || res.MemoryLimit != 1<<30 {
		t.Errorf("adjust = %v, memory %d", err, res.MemoryLimit)
	}
}

func TestResourcesRoundTrip(t *testing.T) {
	for _, r := range []cgroups.Resources{
		{},
		{CPUShares: 256, CPUQuota: 50000, CPUPeriod: 100000, CPUSetCPUs: "0-1", CPUSetMems: "0", MemoryLimit: 64 << 20, MemorySwapLimit: 128 << 20, PidsLimit: 99,
			HugepageLimits: []cgroups.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}}, Unified: map[string]string{"memory.high": "max"}},
		{CPUQuota: -1, MemorySwapLimit: -1, PidsLimit: -1},
	} {
		got, err := fromNRIResources(nriResources(&r))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, r) {
			t.Errorf("round trip of %+v gave %+v", r, *got)
		}
	}
}

func TestPluginsSeeWhatCridHas(t *testing.T) {
	created := time.Unix(100, 5)
	oom := 500
	s := &sandbox.Sandbox{
		ID: "pod1", InfraPID: 42, IPs: []string{"10.88.0.2"}, Cgroup: "/crid/pod1",
		Spec: sandbox.Spec{Name: "web", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "web"},
			RuntimeHandler: "crid", CgroupParent: "/kubepods/pod1"},
		NS: sandbox.Namespaces{Net: "/run/crid/ns/net", IPC: "/run/crid/ns/ipc"},
	}
	pod := podSandbox(s)
	if pod.GetId() != "pod1" || pod.GetName() != "web" || pod.GetNamespace() != "ns" || pod.GetUid() != "u1" ||
		pod.GetPid() != 42 || !reflect.DeepEqual(pod.GetIps(), s.IPs) || pod.GetLabels()["app"] != "web" ||
		pod.GetLinux().GetCgroupParent() != "/kubepods/pod1" || pod.GetLinux().GetCgroupsPath() != "/crid/pod1" {
		t.Errorf("pod: %v", pod)
	}
	if ns := pod.GetLinux().GetNamespaces(); len(ns) != 2 || ns[0].GetType() != "network" || ns[0].GetPath() != s.NS.Net || ns[1].GetType() != "ipc" {
		t.Errorf("pod namespaces: %v", ns)
	}

	c := &container.Container{ID: "c1", SandboxID: "pod1", Name: "app", State: container.Running, Pid: 77, CreatedAt: created,
		UID: 1000, GID: 1000, Groups: []uint32{5}, Cgroup: "/crid/pod1/crid-c1", Labels: map[string]string{"l": "v"}}
	spec := baseSpec()
	spec.Process.OOMScoreAdj = &oom
	spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	spec.Linux.CgroupsPath = c.Cgroup
	info := containerInfo(c, spec, &cgroups.Resources{MemoryLimit: 1 << 20})
	switch {
	case info.GetId() != "c1" || info.GetPodSandboxId() != "pod1" || info.GetName() != "app" || info.GetPid() != 77:
		t.Errorf("identity: %v", info)
	case info.GetState() != adaptation.ContainerState_CONTAINER_RUNNING:
		t.Errorf("state: %v", info.GetState())
	case info.GetCreatedAt() != created.UnixNano() || info.GetStartedAt() != 0:
		t.Errorf("times: created %d, started %d", info.GetCreatedAt(), info.GetStartedAt())
	case !reflect.DeepEqual(info.GetArgs(), spec.Process.Args) || !reflect.DeepEqual(info.GetEnv(), spec.Process.Env):
		t.Errorf("process: %v %v", info.GetArgs(), info.GetEnv())
	case len(info.GetMounts()) != len(spec.Mounts) || info.GetMounts()[2].GetDestination() != "/data":
		t.Errorf("mounts: %v", info.GetMounts())
	case info.GetAnnotations()["keep"] != "1":
		t.Errorf("annotations: %v", info.GetAnnotations())
	case info.GetLinux().GetOomScoreAdj().GetValue() != 500 || info.GetLinux().GetCgroupsPath() != c.Cgroup:
		t.Errorf("linux: %v", info.GetLinux())
	case info.GetLinux().GetResources().GetMemory().GetLimit().GetValue() != 1<<20:
		t.Errorf("resources: %v", info.GetLinux().GetResources())
	case info.GetUser().GetUid() != 1000 || !reflect.DeepEqual(info.GetUser().GetAdditionalGids(), []uint32{5}):
		t.Errorf("user: %v", info.GetUser())
	}
	for _, tt := range []struct {
		c    container.Container
		want adaptation.ContainerState
	}{
		{container.Container{State: container.Created, Creating: true}, adaptation.ContainerState_CONTAINER_UNKNOWN},
		{container.Container{State: container.Created}, adaptation.ContainerState_CONTAINER_CREATED},
		{container.Container{State: container.Exited}, adaptation.ContainerState_CONTAINER_STOPPED},
	} {
		if got := containerState(&tt.c); got != tt.want {
			t.Errorf("state of %+v: %v, want %v", tt.c, got, tt.want)
		}
	}
}

func TestOffHostDoesNothing(t *testing.T) {
	// NRI turned off (or no host at all): every hook is a no-op that lets
	// the request through.
	for _, h := range []*Host{nil, {}} {
		if err := h.RunPodSandbox(t.Context(), &sandbox.Sandbox{}); err != nil {
			t.Error(err)
		}
		spec := baseSpec()
		if err := h.CreateContainer(t.Context(), &sandbox.Sandbox{}, &container.Container{}, spec, &cgroups.Resources{}); err != nil || !reflect.DeepEqual(spec, baseSpec()) {
			t.Errorf("createContainer: %v, spec changed: %v", err, !reflect.DeepEqual(spec, baseSpec()))
		}
		res := &cgroups.Resources{CPUShares: 2}
		if got, err := h.UpdateContainer(t.Context(), &container.Container{}, res); err != nil || got != res {
			t.Errorf("UpdateContainer: %v %v", got, err)
		}
		h.BlockSync()()
		h.Stop()
	}
}

func TestALaterStopWaitsForTheFirstToBeTold(t *testing.T) {
	h := &Host{stopped: map[string]chan struct{}{}}
	told, first := h.claimStop("c1")
	if !first {
		t.Fatal("the first claim is not first")
	}
	h.running.Store(true)
	h.nri = new(adaptation.Adaptation)
	returned := make(chan struct{})
	go func() {
		h.StopContainer(t.Context(), &container.Container{ID: "c1"})
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("a second StopContainer returned while the first was still telling plugins")
	case <-time.After(50 * time.Millisecond):
	}
	close(told)
	<-returned
}

func TestNoEventWithoutPlugins(t *testing.T) {
	// Started, with no plugin connected: no event is built (this host has
	// no managers to build one from, and would panic).
	h := &Host{nri: new(adaptation.Adaptation), stopped: map[string]chan struct{}{}}
	h.running.Store(true)
	c := &container.Container{ID: "c1", SandboxID: "pod1"}
	if err := h.StartContainer(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	h.StopContainer(t.Context(), c)
	h.StopContainer(t.Context(), c) // told: returns at once
	if _, first := h.claimStop(c.ID); first {
		t.Error("a told stop was not remembered")
	}
	h.RemoveContainer(t.Context(), c)
	if _, first := h.claimStop(c.ID); !first {
		t.Error("a removed container's stop is still remembered")
	}
	if err := h.RunPodSandbox(t.Context(), &sandbox.Sandbox{}); err != nil {
		t.Fatal(err)
	}
	// The library's count turns events on, and off again.
	pluginCount{n: &h.plugins}.UpdatePluginCount(2)
	if !h.active() {
		t.Error("two plugins and the host is not active")
	}
	pluginCount{n: &h.plugins}.UpdatePluginCount(0)
	if h.active() {
		t.Error("no plugin and the host is active")
	}
}
