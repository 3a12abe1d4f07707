package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cni"
	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/errdefs/errgrpc"
)

func validPod() *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1", Attempt: 2},
		Hostname: "web",
		PortMappings: []*runtime.PortMapping{
			{Protocol: runtime.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"},
			{ContainerPort: 80}, // exposed only
		},
		Annotations: map[string]string{"kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "1Gi"},
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/burstable/podu1",
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
				Network: runtime.NamespaceMode_POD, Pid: runtime.NamespaceMode_POD, Ipc: runtime.NamespaceMode_NODE}},
		},
	}
}

func TestSandboxSpec(t *testing.T) {
	s := &Server{cfg: config.Default()}
	spec, err := s.sandboxSpec(&runtime.RunPodSandboxRequest{Config: validPod()})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Key() != "web_default_u1_2" || !spec.SharedPID || !spec.HostIPC || spec.HostNetwork || spec.RuntimeHandler != "crid" {
		t.Errorf("spec %+v", spec)
	}
	if len(spec.Ports) != 1 || spec.Ports[0] != (cni.PortMapping{HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"}) {
		t.Errorf("ports %+v", spec.Ports)
	}
	if spec.Bandwidth == nil || spec.Bandwidth.IngressRate != 10_000_000 || spec.Bandwidth.EgressRate != 1<<30 || spec.Bandwidth.IngressBurst == 0 {
		t.Errorf("bandwidth %+v", spec.Bandwidth)
	}
	if spec.CgroupParent != "/kubepods/burstable/podu1" || len(spec.Raw) == 0 {
		t.Errorf("cgroup parent %q, raw %d bytes", spec.CgroupParent, len(spec.Raw))
	}
}

// A handler of runtime.handlers is served, and recorded as the pod's;
// every handler is in the status the kubelet reads.
func TestSandboxSpecExtraHandler(t *testing.T) {
	cfg := config.Default()
	cfg.Runtime.Handlers = []string{"test-handler"}
	s := &Server{cfg: cfg}
	spec, err := s.sandboxSpec(&runtime.RunPodSandboxRequest{Config: validPod(), RuntimeHandler: "test-handler"})
	if err != nil || spec.RuntimeHandler != "test-handler" {
		t.Fatalf("spec handler %q, err %v", spec.RuntimeHandler, err)
	}
	if _, err := s.sandboxSpec(&runtime.RunPodSandboxRequest{Config: validPod(), RuntimeHandler: "kata"}); err == nil {
		t.Error("a handler named nowhere was accepted")
	}
	var names []string
	for _, h := range s.runtimeHandlers() {
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != ",crid,test-handler" {
		t.Errorf("status lists handlers %q", names)
	}
}

func TestSandboxSpecRefusals(t *testing.T) {
	s := &Server{cfg: config.Default()}
	tests := []struct {
		field string
		edit  func(*runtime.RunPodSandboxRequest)
	}{
		{"config", func(r *runtime.RunPodSandboxRequest) { r.Config = nil }},
		{"config.metadata", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata = nil }},
		{"config.metadata.name", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Name = "" }},
		{"config.metadata.namespace", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Namespace = "" }},
		{"config.metadata.uid", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Uid = "" }},
		{"config.metadata.name", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Name = "a_b" }},
		{"runtime_handler", func(r *runtime.RunPodSandboxRequest) { r.RuntimeHandler = "kata" }},
		{"container_port", func(r *runtime.RunPodSandboxRequest) { r.Config.PortMappings[0].ContainerPort = 0 }},
		{"host_port", func(r *runtime.RunPodSandboxRequest) { r.Config.PortMappings[0].HostPort = 70000 }},
		{"ingress-bandwidth", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Annotations["kubernetes.io/ingress-bandwidth"] = "fast"
		}},
		{"namespace_options.pid", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_TARGET
		}},
		{"userns_options", func(r *runtime.RunPodSandboxRequest) { // with the host's IPC
			r.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = podUserns()
		}},
		{"userns_options.uids", func(r *runtime.RunPodSandboxRequest) {
			userns(r).Uids = nil
		}},
		{"userns_options.gids", func(r *runtime.RunPodSandboxRequest) {
			userns(r).Gids = append(userns(r).Gids, &runtime.IDMapping{HostId: 500000, Length: 10})
		}},
		{"userns_options.uids[0].container_id", func(r *runtime.RunPodSandboxRequest) {
			userns(r).Uids[0].ContainerId = 1
		}},
		{"userns_options.uids[0].host_id", func(r *runtime.RunPodSandboxRequest) {
			userns(r).Uids[0].HostId = 0
		}},
		{"userns_options.gids[0].length", func(r *runtime.RunPodSandboxRequest) {
			userns(r).Gids[0].Length = 0
		}},
		{"userns_options.mode", func(r *runtime.RunPodSandboxRequest) {
			userns(r).Mode = runtime.NamespaceMode_CONTAINER
		}},
		{"userns_options.mode", func(r *runtime.RunPodSandboxRequest) {
			userns(r).Mode = runtime.NamespaceMode_TARGET
		}},
		{"userns_options", func(r *runtime.RunPodSandboxRequest) {
			userns(r).Mode = runtime.NamespaceMode_NODE
		}},
		{"linux.resources", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Resources = &runtime.LinuxContainerResources{CpuQuota: 5}
		}},
	}
	for _, tt := range tests {
		req := &runtime.RunPodSandboxRequest{Config: validPod()}
		tt.edit(req)
		_, err := s.sandboxSpec(req)
		if errgrpc.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: %v", tt.field, err)
		}
	}
}

// podUserns is what the kubelet sends for hostUsers: false.
func podUserns() *runtime.UserNamespace {
	m := []*runtime.IDMapping{{ContainerId: 0, HostId: 65536 * 3, Length: 65536}}
	return &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: []*runtime.IDMapping{{ContainerId: 0, HostId: 65536 * 3, Length: 65536}}}
}

// userns gives a request a pod user namespace with everything else
// right (the pod's own IPC), and returns it for a test to break.
func userns(r *runtime.RunPodSandboxRequest) *runtime.UserNamespace {
	ns := r.Config.Linux.SecurityContext.NamespaceOptions
	ns.Ipc = runtime.NamespaceMode_POD
	if ns.UsernsOptions == nil {
		ns.UsernsOptions = podUserns()
	}
	return ns.UsernsOptions
}

func TestSandboxSpecUserNamespace(t *testing.T) {
	s := &Server{cfg: config.Default()}
	for _, mode := range []runtime.NamespaceMode{runtime.NamespaceMode_NODE, runtime.NamespaceMode_POD} {
		req := &runtime.RunPodSandboxRequest{Config: validPod()}
		if mode == runtime.NamespaceMode_POD {
			userns(req)
		} else {
			req.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: mode}
		}
		spec, err := s.sandboxSpec(req)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if mode == runtime.NamespaceMode_NODE {
			if spec.UserNS != nil {
				t.Errorf("NODE gave a user namespace: %+v", spec.UserNS)
			}
			continue
		}
		if u := spec.UserNS; u == nil || len(u.UIDs) != 1 || u.UIDs[0].HostID != 65536*3 || u.UIDs[0].Size != 65536 || u.GIDs[0].ContainerID != 0 {
			t.Errorf("POD: %+v", spec.UserNS)
		}
	}
}

func TestParseQuantity(t *testing.T) {
	for s, want := range map[string]uint64{"0": 0, "100": 100, "10k": 10_000, "10M": 10_000_000, "1Gi": 1 << 30, "2Ki": 2048} {
		if got, err := parseQuantity(s); err != nil || got != want {
			t.Errorf("parseQuantity(%q) = %d, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "1.5M", "-1", "10X", "99999999999999999999E"} {
		if _, err := parseQuantity(s); err == nil {
			t.Errorf("parseQuantity(%q) accepted", s)
		}
	}
}
