package generate

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const passwd = `root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/false
default-user:x:1000:1000:Default User:/home/default-user:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
`
const group = `root:x:0:
www-data:x:33:
default-user:x:1000:
group-defined-in-image:x:50000:default-user
audio:x:29:www-data,default-user
`

var daemonCaps = append(append([]string{}, DefaultCapabilities...), "CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE")

func input(edit func(*Input)) Input {
	in := Input{
		Container: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "c"}},
		Sandbox:   &runtime.PodSandboxConfig{},
		Image:     &v1.ConfigFile{Config: v1.Config{Entrypoint: []string{"/entry"}, Cmd: []string{"cmd-arg"}, Env: []string{"PATH=/bin", "FROM_IMAGE=1", "OVERRIDE=image"}}},
		Users:     ParseUsers([]byte(passwd), []byte(group)),
		Rootfs:    "/rootfs", Hostname: "pod-host",
		HostsPath: "/sb/hosts", ResolvPath: "/sb/resolv.conf", HostnamePath: "/sb/hostname", ShmPath: "/sb/shm",
		NetNS: "/sb/ns/net", IPCNS: "/sb/ns/ipc", UTSNS: "/sb/ns/uts",
		DaemonCaps: daemonCaps,
		StatDevice: func(p string) (specs.LinuxDevice, error) {
			if p == "/dev/fuse" {
				return specs.LinuxDevice{Type: "c", Major: 10, Minor: 229}, nil
			}
			return specs.LinuxDevice{}, errors.New("no such device")
		},
	}
	if edit != nil {
		edit(&in)
	}
	return in
}

func secctx(in *Input) *runtime.LinuxContainerSecurityContext {
	if in.Container.Linux == nil {
		in.Container.Linux = &runtime.LinuxContainerConfig{}
	}
	if in.Container.Linux.SecurityContext == nil {
		in.Container.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{}
	}
	return in.Container.Linux.SecurityContext
}

func TestProcessArgsFollowCRIRules(t *testing.T) {
	tests := []struct {
		name          string
		command, args []string
		want          []string
	}{
		{"image entrypoint and cmd", nil, nil, []string{"/entry", "cmd-arg"}},
		{"command replaces entrypoint and cmd", []string{"/bin/sh", "-c"}, nil, []string{"/bin/sh", "-c"}},
		{"command with args", []string{"/bin/sh"}, []string{"-c", "echo"}, []string{"/bin/sh", "-c", "echo"}},
		{"args replace cmd only", nil, []string{"other"}, []string{"/entry", "other"}},
	}
	for _, tt := range tests {
		s, err := Spec(input(func(in *Input) { in.Container.Command, in.Container.Args = tt.command, tt.args }))
		if err != nil || !reflect.DeepEqual(s.Process.Args, tt.want) {
			t.Errorf("%s: %v, %v; want %v", tt.name, s.Process.Args, err, tt.want)
		}
	}
	_, err := Spec(input(func(in *Input) { in.Image.Config = v1.Config{} }))
	if err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("no command anywhere: %v", err)
	}
}

func TestEnvironment(t *testing.T) {
	s, err := Spec(input(func(in *Input) {
		in.Container.Envs = []*runtime.KeyValue{{Key: "OVERRIDE", Value: []byte("container")}, {Key: "NEW", Value: []byte("x=y")}}
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"HOSTNAME=pod-host", "PATH=/bin", "FROM_IMAGE=1", "OVERRIDE=container", "NEW=x=y", "HOME=/root"}
	if !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env %v\nwant %v", s.Process.Env, want)
	}
	s, _ = Spec(input(func(in *Input) { in.Image.Config.Env = nil }))
	if s.Process.Env[0] != defaultPath {
		t.Errorf("no PATH default: %v", s.Process.Env)
	}
}

func TestUserResolution(t *testing.T) {
	i64 := func(v int64) *runtime.Int64Value { return &runtime.Int64Value{Value: v} }
	tests := []struct {
		name      string
		imageUser string
		edit      func(*runtime.LinuxContainerSecurityContext)
		uid, gid  uint32
		extra     []uint32
		err       string
	}{
		{name: "image default is root", uid: 0, gid: 0},
		{name: "image USER by name", imageUser: "www-data", uid: 33, gid: 33, extra: []uint32{29}},
		{name: "image USER uid:gid", imageUser: "1003:1004", uid: 1003, gid: 1004},
		{name: "image user in groups of /etc/group", imageUser: "1000", uid: 1000, gid: 1000, extra: []uint32{50000, 29}},
		{name: "run_as_user overrides the image", imageUser: "www-data", edit: func(sc *runtime.LinuxContainerSecurityContext) { sc.RunAsUser = i64(1000) }, uid: 1000, gid: 1000, extra: []uint32{50000, 29}},
		{name: "run_as_user unknown to passwd", edit: func(sc *runtime.LinuxContainerSecurityContext) { sc.RunAsUser = i64(4242) }, uid: 4242, gid: 0},
		{name: "run_as_group", edit: func(sc *runtime.LinuxContainerSecurityContext) { sc.RunAsUser, sc.RunAsGroup = i64(33), i64(50) }, uid: 33, gid: 50, extra: []uint32{29}},
		{name: "run_as_username", edit: func(sc *runtime.LinuxContainerSecurityContext) { sc.RunAsUsername = "nobody" }, uid: 65534, gid: 65534},
		{name: "supplemental groups merge", imageUser: "1000", edit: func(sc *runtime.LinuxContainerSecurityContext) { sc.SupplementalGroups = []int64{5, 50000} }, uid: 1000, gid: 1000, extra: []uint32{50000, 29, 5}},
		{name: "supplemental groups strict", imageUser: "1000", edit: func(sc *runtime.LinuxContainerSecurityContext) {
			sc.SupplementalGroups = []int64{5}
			sc.SupplementalGroupsPolicy = runtime.SupplementalGroupsPolicy_Strict
		}, uid: 1000, gid: 1000, extra: []uint32{5}},
		{name: "group without user", edit: func(sc *runtime.LinuxContainerSecurityContext) { sc.RunAsGroup = i64(5) }, err: "run_as_group is set without run_as_user"},
		{name: "unknown user name", imageUser: "ghost", err: `user "ghost" is not in the image's /etc/passwd`},
	}
	for _, tt := range tests {
		s, err := Spec(input(func(in *Input) {
			in.Image.Config.User = tt.imageUser
			if tt.edit != nil {
				tt.edit(secctx(in))
			}
		}))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		u := s.Process.User
		if u.UID != tt.uid || u.GID != tt.gid || !reflect.DeepEqual(u.AdditionalGids, tt.extra) {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", tt.name, u.UID, u.GID, u.AdditionalGids, tt.uid, tt.gid, tt.extra)
		}
	}
}

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
		err        string
	}{
		{name: "default set", want: sortedCopy(DefaultCapabilities)},
		{name: "drop ALL, add one", drop: []string{"ALL"}, add: []string{"NET_ADMIN"}, want: []string{"CAP_NET_ADMIN"}},
		{name: "drop one", drop: []string{"CAP_NET_RAW"}, want: without(sortedCopy(DefaultCapabilities), "CAP_NET_RAW")},
		{name: "add ALL is what the daemon holds", add: []string{"ALL"}, want: sortedCopy(daemonCaps)},
		{name: "a capability the host withholds", add: []string{"SYS_RESOURCE"}, err: "CAP_SYS_RESOURCE is not held"},
		{name: "privileged is the daemon's set", privileged: true, want: sortedCopy(daemonCaps)},
	}
	for _, tt := range tests {
		s, err := Spec(input(func(in *Input) {
			sc := secctx(in)
			sc.Capabilities = &runtime.Capability{AddCapabilities: tt.add, DropCapabilities: tt.drop}
			sc.Privileged = tt.privileged
			in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: tt.privileged}}
		}))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(s.Process.Capabilities.Bounding, tt.want) {
			t.Errorf("%s: %v, %v\nwant %v", tt.name, s.Process.Capabilities.Bounding, err, tt.want)
		}
		for _, c := range s.Process.Capabilities.Bounding {
			if c == "CAP_SYS_RESOURCE" {
				t.Errorf("%s: CAP_SYS_RESOURCE in a set", tt.name)
			}
		}
	}
	_, err := Spec(input(func(in *Input) { secctx(in).Privileged = true }))
	if err == nil || !strings.Contains(err.Error(), "pod is not privileged") {
		t.Errorf("privileged container in an unprivileged pod: %v", err)
	}
}

func sortedCopy(s []string) []string {
	c := append([]string{}, s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

func without(s []string, v string) []string {
	var out []string
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

func nsTypes(s *specs.Spec) map[specs.LinuxNamespaceType]string {
	m := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		m[n.Type] = n.Path
	}
	return m
}

func TestNamespaces(t *testing.T) {
	s, _ := Spec(input(func(in *Input) {
		secctx(in).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}
	}))
	want := map[specs.LinuxNamespaceType]string{"mount": "", "network": "/sb/ns/net", "uts": "/sb/ns/uts", "ipc": "/sb/ns/ipc", "pid": ""}
	if got := nsTypes(s); !reflect.DeepEqual(got, want) {
		t.Errorf("own pid: %v", got)
	}
	s, _ = Spec(input(func(in *Input) {
		in.PIDNS = "/sb/ns/pid"
		secctx(in).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}
	}))
	if nsTypes(s)["pid"] != "/sb/ns/pid" {
		t.Errorf("shared pid: %v", nsTypes(s))
	}
	s, _ = Spec(input(func(in *Input) {
		in.HostNetwork, in.HostIPC, in.HostPID, in.CgroupV2 = true, true, true, true
		secctx(in).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE, Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE}
	}))
	if got := nsTypes(s); !reflect.DeepEqual(got, map[specs.LinuxNamespaceType]string{"mount": "", "cgroup": ""}) {
		t.Errorf("host namespaces: %v", got)
	}
	for _, mode := range []runtime.NamespaceMode{runtime.NamespaceMode_TARGET, runtime.NamespaceMode_NODE} {
		_, err := Spec(input(func(in *Input) { secctx(in).NamespaceOptions = &runtime.NamespaceOption{Pid: mode} }))
		if err == nil {
			t.Errorf("pid %v accepted", mode)
		}
	}
}

func TestMounts(t *testing.T) {
	s, err := Spec(input(func(in *Input) {
		secctx(in).ReadonlyRootfs = true
		in.TerminationMessageHostPath = "/ctr/termination-log"
		in.Container.Mounts = []*runtime.Mount{
			{ContainerPath: "/data/sub", HostPath: "/host/sub", Readonly: true},
			{ContainerPath: "/data", HostPath: "/host/data", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			{ContainerPath: "/etc/resolv.conf", HostPath: "/custom/resolv.conf"},
			{ContainerPath: "/rro", HostPath: "/host/rro", Readonly: true, RecursiveReadOnly: true},
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	byDst := map[string]specs.Mount{}
	var order []string
	for _, m := range s.Mounts {
		byDst[m.Destination] = m
		order = append(order, m.Destination)
	}
	if m := byDst["/etc/hosts"]; m.Source != "/sb/hosts" || !contains(m.Options, "ro") {
		t.Errorf("/etc/hosts %+v (a read-only rootfs makes it read-only)", m)
	}
	if m := byDst["/etc/resolv.conf"]; m.Source != "/custom/resolv.conf" {
		t.Errorf("a requested mount must win over the pod's file: %+v", m)
	}
	if m := byDst["/data/sub"]; !contains(m.Options, "ro") || contains(m.Options, "rro") {
		t.Errorf("/data/sub %+v", m)
	}
	if m := byDst["/rro"]; !contains(m.Options, "rro") || !contains(m.Options, "rprivate") {
		t.Errorf("/rro %+v", m)
	}
	if m := byDst["/data"]; !contains(m.Options, "rslave") || contains(m.Options, "ro") {
		t.Errorf("/data %+v", m)
	}
	if m := byDst["/dev/shm"]; m.Source != "/sb/shm" {
		t.Errorf("/dev/shm %+v", m)
	}
	if m := byDst["/dev/termination-log"]; m.Source != "/ctr/termination-log" {
		t.Errorf("termination log %+v", m)
	}
	if idx(order, "/data") > idx(order, "/data/sub") || idx(order, "/dev") > idx(order, "/dev/pts") {
		t.Errorf("mounts out of order: %v", order)
	}
	if m := byDst["/sys"]; !contains(m.Options, "ro") {
		t.Errorf("/sys is writable in an unprivileged container")
	}
	bad := []*runtime.Mount{
		{ContainerPath: "relative", HostPath: "/h"},
		{ContainerPath: "/c", HostPath: "relative"},
		{ContainerPath: "/c", HostPath: "/h", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		{ContainerPath: "/c", HostPath: "/h", RecursiveReadOnly: true},
		{ContainerPath: "/c", HostPath: "/h", Readonly: true, RecursiveReadOnly: true, Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
	}
	for _, m := range bad {
		if _, err := Spec(input(func(in *Input) { in.Container.Mounts = []*runtime.Mount{m} })); err == nil {
			t.Errorf("mount %+v accepted", m)
		}
	}
}

func TestMaskedPathsSeccompDevices(t *testing.T) {
	s, _ := Spec(input(nil))
	if !reflect.DeepEqual(s.Linux.MaskedPaths, DefaultMaskedPaths) || !reflect.DeepEqual(s.Linux.ReadonlyPaths, DefaultReadonlyPaths) {
		t.Errorf("default masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if s.Linux.Seccomp != nil {
		t.Error("no seccomp asked, one given")
	}
	s, _ = Spec(input(func(in *Input) { secctx(in).MaskedPaths = []string{"/bin/ls"} }))
	if !reflect.DeepEqual(s.Linux.MaskedPaths, []string{"/bin/ls"}) {
		t.Errorf("requested masked paths %v", s.Linux.MaskedPaths)
	}
	s, err := Spec(input(func(in *Input) {
		secctx(in).Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	}))
	if err != nil || s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction == "" || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Fatalf("RuntimeDefault seccomp: %v %+v", err, s.Linux.Seccomp)
	}
	s, _ = Spec(input(func(in *Input) {
		secctx(in).Privileged = true
		secctx(in).Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
		in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
	}))
	if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || len(s.Linux.Resources.Devices) != 1 || !s.Linux.Resources.Devices[0].Allow {
		t.Errorf("privileged: seccomp %v masked %v devices %+v", s.Linux.Seccomp != nil, s.Linux.MaskedPaths, s.Linux.Resources.Devices)
	}
	s, err = Spec(input(func(in *Input) {
		in.Container.Devices = []*runtime.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rw"}}
	}))
	if err != nil || len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Major != 10 || s.Linux.Devices[0].Path != "/dev/fuse" {
		t.Fatalf("device: %v %+v", err, s.Linux.Devices)
	}
	// Deny all, the defaults, then the device asked for.
	rules := s.Linux.Resources.Devices
	last := rules[len(rules)-1]
	if len(rules) != 2+len(DefaultDeviceRules) || rules[0].Allow || rules[0].Type != "" ||
		!last.Allow || *last.Major != 10 || *last.Minor != 229 || last.Access != "rw" {
		t.Errorf("device rules %+v", rules)
	}
	for _, r := range rules[1 : len(rules)-1] {
		// Only mknod on everything; use of a few, each by number.
		if !r.Allow || (r.Major == nil && r.Access != "m") {
			t.Errorf("a default rule allows too much: %+v", r)
		}
	}
	if _, err := Spec(input(func(in *Input) {
		in.Container.Devices = []*runtime.Device{{ContainerPath: "/dev/x", HostPath: "/dev/missing"}}
	})); err == nil {
		t.Error("a missing host device was accepted")
	}
}

func TestWorkingDir(t *testing.T) {
	s, _ := Spec(input(func(in *Input) { in.Image.Config.WorkingDir = "/app" }))
	if s.Process.Cwd != "/app" {
		t.Errorf("cwd %q", s.Process.Cwd)
	}
	s, _ = Spec(input(func(in *Input) { in.Container.WorkingDir = "/override" }))
	if s.Process.Cwd != "/override" {
		t.Errorf("cwd %q", s.Process.Cwd)
	}
	if _, err := Spec(input(func(in *Input) { in.Container.WorkingDir = "rel" })); err == nil {
		t.Error("relative working dir accepted")
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func idx(list []string, v string) int {
	for i, x := range list {
		if x == v {
			return i
		}
	}
	return -1
}

func TestBindSourcesAreResolvedAtCreate(t *testing.T) {
	real := map[string]string{"/var/run/x": "/run/x", "/host/link": "/host/real"}
	s, err := Spec(input(func(in *Input) {
		in.Container.Mounts = []*runtime.Mount{
			{ContainerPath: "/a", HostPath: "/host/link"},
			{ContainerPath: "/b", HostPath: "/var/run/x"},
			{ContainerPath: "/c", HostPath: "/missing"},
		}
		in.ResolveSource = func(p string) (string, error) {
			if r, ok := real[p]; ok {
				return r, nil
			}
			return "", os.ErrNotExist
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/a": "/host/real", "/b": "/run/x", "/c": "/missing"}
	for _, m := range s.Mounts {
		if w, ok := want[m.Destination]; ok && m.Source != w {
			t.Errorf("%s: source %s, want %s (resolved at create, so start can refuse a symlink)", m.Destination, m.Source, w)
		}
	}
}

// BenchmarkSpec is CreateContainer's spec generation for a container as
// the kubelet sends one: env, mounts, limits and a security context.
func BenchmarkSpec(b *testing.B) {
	in := input(func(in *Input) {
		c := in.Container
		for i := range 20 {
			c.Envs = append(c.Envs, &runtime.KeyValue{Key: "K8S_ENV_" + string(rune('A'+i)), Value: []byte("value")})
		}
		c.Mounts = []*runtime.Mount{{ContainerPath: "/var/run/secrets/kubernetes.io/serviceaccount", HostPath: "/var/lib/kubelet/pods/x/volumes/token", Readonly: true},
			{ContainerPath: "/etc/hosts", HostPath: "/var/lib/kubelet/pods/x/etc-hosts"}, {ContainerPath: "/dev/termination-log", HostPath: "/var/lib/kubelet/pods/x/term"}}
		c.Linux = &runtime.LinuxContainerConfig{
			Resources:       &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 256 << 20, OomScoreAdj: 984},
			SecurityContext: &runtime.LinuxContainerSecurityContext{RunAsUser: &runtime.Int64Value{Value: 1000}, Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}},
		}
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Spec(in); err != nil {
			b.Fatal(err)
		}
	}
}
