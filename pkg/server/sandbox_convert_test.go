package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cni"
	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/errdefs"
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
		{"userns_options", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}
		}},
		{"linux.resources", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Resources = &runtime.LinuxContainerResources{CpuQuota: 5}
		}},
	}
	for _, tt := range tests {
		req := &runtime.RunPodSandboxRequest{Config: validPod()}
		tt.edit(req)
		_, err := s.sandboxSpec(req)
		if errdefs.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: %v", tt.field, err)
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
