package validate

import (
	"errors"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/errdefs/errgrpc"
)

func pod(edit func(*runtime.PodSandboxConfig)) *runtime.PodSandboxConfig {
	c := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "web-Pod-1", Namespace: "default", Uid: "0c1f4d5e-7a3b-4c2d-9e8f-1a2b3c4d5e6f"},
		Hostname:     "web-1",
		LogDirectory: "/var/log/pods/default_web_0c1f",
		DnsConfig:    &runtime.DNSConfig{Servers: []string{"10.96.0.10", "fd00::a"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}},
		PortMappings: []*runtime.PortMapping{{ContainerPort: 80, HostPort: 8080}, {ContainerPort: 80, HostPort: 8080, Protocol: runtime.Protocol_UDP}, {ContainerPort: 53}},
		Linux: &runtime.LinuxPodSandboxConfig{CgroupParent: "/kubepods/burstable/pod0c1f",
			SecurityContext: &runtime.LinuxSandboxSecurityContext{RunAsUser: &runtime.Int64Value{Value: 65535}, SupplementalGroups: []int64{1000}}},
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func ctr(edit func(*runtime.ContainerConfig)) *runtime.ContainerConfig {
	c := &runtime.ContainerConfig{
		Metadata:   &runtime.ContainerMetadata{Name: "app"},
		Image:      &runtime.ImageSpec{Image: "registry.k8s.io/pause:3.9"},
		Command:    []string{"/bin/sh", "-c"},
		Args:       []string{"exec server"},
		WorkingDir: "/srv",
		Envs:       []*runtime.KeyValue{{Key: "PATH", Value: []byte("/bin")}, {Key: "EMPTY"}},
		LogPath:    "app/0.log",
		Mounts:     []*runtime.Mount{{ContainerPath: "/data", HostPath: "/var/lib/kubelet/pods/x/volumes/data"}},
		Devices:    []*runtime.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}},
		Linux: &runtime.LinuxContainerConfig{
			Resources:       &runtime.LinuxContainerResources{CpusetCpus: "0-1,3", CpusetMems: "0"},
			SecurityContext: &runtime.LinuxContainerSecurityContext{MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{"/proc/sys"}},
		},
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func TestSandboxRefusesEachHostileFieldByName(t *testing.T) {
	huge := strings.Repeat("a", 1<<20)
	for _, tc := range []struct {
		name  string
		edit  func(*runtime.PodSandboxConfig)
		field string // "" for accepted
	}{
		{"a pod as the kubelet sends it", nil, ""},
		{"no metadata", func(c *runtime.PodSandboxConfig) { c.Metadata = nil }, "config.metadata"},
		{"a 1 MiB name", func(c *runtime.PodSandboxConfig) { c.Metadata.Name = huge }, "config.metadata.name"},
		{"a name with a newline", func(c *runtime.PodSandboxConfig) { c.Metadata.Name = "a\nb" }, "config.metadata.name"},
		{"a namespace with '_'", func(c *runtime.PodSandboxConfig) { c.Metadata.Namespace = "a_b" }, "config.metadata.namespace"},
		{"an empty uid", func(c *runtime.PodSandboxConfig) { c.Metadata.Uid = "" }, "config.metadata.uid"},
		{"a hostname with NUL", func(c *runtime.PodSandboxConfig) { c.Hostname = "a\x00b" }, "config.hostname"},
		{"a hostname with a newline", func(c *runtime.PodSandboxConfig) { c.Hostname = "a\n1.2.3.4 evil" }, "config.hostname"},
		{"a hostname of 65 bytes", func(c *runtime.PodSandboxConfig) { c.Hostname = strings.Repeat("a", 65) }, "config.hostname"},
		{"a 64-byte hostname ending in a dot", func(c *runtime.PodSandboxConfig) { c.Hostname = strings.Repeat("a", 63) + "." }, ""},
		{"the kubelet's FQDN without a cluster domain", func(c *runtime.PodSandboxConfig) { c.Hostname = "hostfqdn-155116.t.hostfqdn-9871.svc." }, ""},
		{"a lone dot", func(c *runtime.PodSandboxConfig) { c.Hostname = "." }, "config.hostname"},
		{"two trailing dots", func(c *runtime.PodSandboxConfig) { c.Hostname = "web.." }, "config.hostname"},
		{"a dotted hostname", func(c *runtime.PodSandboxConfig) { c.Hostname = "web-1.example" }, ""},
		{"a DNS server with a newline", func(c *runtime.PodSandboxConfig) { c.DnsConfig.Servers = []string{"1.1.1.1\nnameserver 6.6.6.6"} }, "config.dns_config.servers[0]"},
		{"a DNS search with a newline", func(c *runtime.PodSandboxConfig) { c.DnsConfig.Searches = []string{"a\noptions debug"} }, "config.dns_config.searches[0]"},
		{"a DNS option with a space", func(c *runtime.PodSandboxConfig) { c.DnsConfig.Options = []string{"ndots:5 debug"} }, "config.dns_config.options[0]"},
		{"33 DNS searches", func(c *runtime.PodSandboxConfig) { c.DnsConfig.Searches = make([]string, 33) }, "config.dns_config.searches"},
		{"a relative log directory", func(c *runtime.PodSandboxConfig) { c.LogDirectory = "logs" }, "config.log_directory"},
		{"a log directory under /proc", func(c *runtime.PodSandboxConfig) { c.LogDirectory = "/proc/1" }, "config.log_directory"},
		{"a log directory under /sys", func(c *runtime.PodSandboxConfig) { c.LogDirectory = "/sys/fs/cgroup" }, "config.log_directory"},
		{"a log directory climbing out", func(c *runtime.PodSandboxConfig) { c.LogDirectory = "/var/log/../../proc/1" }, "config.log_directory"},
		{"a negative run_as_user", func(c *runtime.PodSandboxConfig) { c.Linux.SecurityContext.RunAsUser.Value = -1 }, "config.linux.security_context.run_as_user"},
		{"a run_as_group past the last ID", func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: 1 << 32}
		}, "config.linux.security_context.run_as_group"},
		{"a negative supplemental group", func(c *runtime.PodSandboxConfig) { c.Linux.SecurityContext.SupplementalGroups = []int64{-5} }, "config.linux.security_context.supplemental_groups[0]"},
		{"the same host port twice", func(c *runtime.PodSandboxConfig) {
			c.PortMappings = append(c.PortMappings, &runtime.PortMapping{ContainerPort: 81, HostPort: 8080})
		}, "config.port_mappings[3].host_port"},
		{"a host port on every address and on one", func(c *runtime.PodSandboxConfig) {
			c.PortMappings = append(c.PortMappings, &runtime.PortMapping{ContainerPort: 81, HostPort: 8080, HostIp: "127.0.0.1"})
		}, "config.port_mappings[3].host_port"},
		{"one host port on two addresses", func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostPort: 80, HostIp: "127.0.0.1"}, {ContainerPort: 80, HostPort: 80, HostIp: "127.0.0.2"}}
		}, ""},
		{"a host IP that does not parse", func(c *runtime.PodSandboxConfig) { c.PortMappings[0].HostIp = "300.1.1.1" }, "config.port_mappings[0].host_ip"},
		{"a port past 65535", func(c *runtime.PodSandboxConfig) { c.PortMappings[0].HostPort = 70000 }, "config.port_mappings[0].host_port"},
		{"a container port of 0", func(c *runtime.PodSandboxConfig) { c.PortMappings[0].ContainerPort = 0 }, "config.port_mappings[0].container_port"},
		{"an unknown protocol", func(c *runtime.PodSandboxConfig) { c.PortMappings[0].Protocol = 7 }, "config.port_mappings[0].protocol"},
		{"a relative cgroup parent", func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = "kubepods" }, "config.linux.cgroup_parent"},
		{"a cgroup parent climbing out", func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = "/kubepods/../.." }, "config.linux.cgroup_parent"},
		{"annotations of 300 KiB", func(c *runtime.PodSandboxConfig) { c.Annotations = map[string]string{"a": huge[:300<<10]} }, "config.annotations"},
		{"a pod cpuset with a newline", func(c *runtime.PodSandboxConfig) {
			c.Linux.Resources = &runtime.LinuxContainerResources{CpusetCpus: "0\n1"}
		}, "config.linux.resources.cpuset_cpus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, Sandbox(pod(tc.edit)), tc.field)
		})
	}
}

func TestContainerRefusesEachHostileFieldByName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*runtime.ContainerConfig)
		field string
	}{
		{"a container as the kubelet sends it", nil, ""},
		{"no image", func(c *runtime.ContainerConfig) { c.Image = nil }, "config.image.image"},
		{"a 1 MiB name", func(c *runtime.ContainerConfig) { c.Metadata.Name = strings.Repeat("c", 1<<20) }, "config.metadata.name"},
		{"a relative working dir", func(c *runtime.ContainerConfig) { c.WorkingDir = "srv" }, "config.working_dir"},
		{"an env key with '='", func(c *runtime.ContainerConfig) { c.Envs[0].Key = "A=B" }, "config.envs[0].key"},
		{"an empty env key", func(c *runtime.ContainerConfig) { c.Envs[1].Key = "" }, "config.envs[1].key"},
		{"an env value with NUL", func(c *runtime.ContainerConfig) { c.Envs[0].Value = []byte("a\x00b") }, "config.envs[0].value"},
		{"an argument with NUL", func(c *runtime.ContainerConfig) { c.Args = []string{"a\x00b"} }, "config.command[2]"},
		{"an argument over the kernel's limit", func(c *runtime.ContainerConfig) { c.Args = []string{strings.Repeat("a", MaxArg+1)} }, "config.command[2]"},
		{"arguments over 1 MiB in all", func(c *runtime.ContainerConfig) {
			c.Args = nil
			for range 10 {
				c.Args = append(c.Args, strings.Repeat("a", 120<<10))
			}
		}, "config.command"},
		{"a mount at /..", func(c *runtime.ContainerConfig) { c.Mounts[0].ContainerPath = "/.." }, "config.mounts[0].container_path"},
		{"a mount at /", func(c *runtime.ContainerConfig) { c.Mounts[0].ContainerPath = "//." }, "config.mounts[0].container_path"},
		{"a relative mount target", func(c *runtime.ContainerConfig) { c.Mounts[0].ContainerPath = "data" }, "config.mounts[0].container_path"},
		{"a relative host path", func(c *runtime.ContainerConfig) { c.Mounts[0].HostPath = "etc" }, "config.mounts[0].host_path"},
		{"an unknown propagation", func(c *runtime.ContainerConfig) { c.Mounts[0].Propagation = 9 }, "config.mounts[0].propagation"},
		{"a device path that is not clean", func(c *runtime.ContainerConfig) { c.Devices[0].ContainerPath = "/dev/../etc/x" }, "config.devices[0].container_path"},
		{"a device permission of x", func(c *runtime.ContainerConfig) { c.Devices[0].Permissions = "rx" }, "config.devices[0].permissions"},
		{"a log path climbing out", func(c *runtime.ContainerConfig) { c.LogPath = "../../etc/shadow" }, "config.log_path"},
		{"an absolute log path", func(c *runtime.ContainerConfig) { c.LogPath = "/etc/shadow" }, "config.log_path"},
		{"a cpuset with a newline", func(c *runtime.ContainerConfig) { c.Linux.Resources.CpusetCpus = "0\n" }, "config.linux.resources.cpuset_cpus"},
		{"a backwards cpuset range", func(c *runtime.ContainerConfig) { c.Linux.Resources.CpusetCpus = "3-1" }, "config.linux.resources.cpuset_cpus"},
		{"a cpuset past the last CPU", func(c *runtime.ContainerConfig) { c.Linux.Resources.CpusetMems = "99999" }, "config.linux.resources.cpuset_mems"},
		{"a relative masked path", func(c *runtime.ContainerConfig) { c.Linux.SecurityContext.MaskedPaths = []string{"proc/kcore"} }, "config.linux.security_context.masked_paths[0]"},
		{"a readonly path climbing out", func(c *runtime.ContainerConfig) { c.Linux.SecurityContext.ReadonlyPaths = []string{"/proc/../etc"} }, "config.linux.security_context.readonly_paths[0]"},
		{"a negative run_as_user", func(c *runtime.ContainerConfig) {
			c.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: -7}
		}, "config.linux.security_context.run_as_user"},
		{"a unified value with a newline", func(c *runtime.ContainerConfig) {
			c.Linux.Resources.Unified = map[string]string{"memory.high": "1\n2"}
		}, "config.linux.resources.unified[memory.high]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, Container(ctr(tc.edit)), tc.field)
		})
	}
}

func check(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("accepted (or refused without naming a field: %v); want %s refused", err, field)
	}
	if e.Field != field {
		t.Fatalf("refused %s (%v); want %s", e.Field, err, field)
	}
	if !errors.Is(err, errdefs.ErrInvalidArgument) || errgrpc.Code(err).String() != "InvalidArgument" {
		t.Fatalf("%v is not an InvalidArgument", err)
	}
	if len(err.Error()) > 1024 {
		t.Errorf("the message is %d bytes: a refusal must not echo a huge value back", len(err.Error()))
	}
}
