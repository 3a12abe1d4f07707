package validate

import (
	"path"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The fuzz targets decode arbitrary bytes as the CRI messages a hostile
// client sends and check that what validation accepts is safe to write
// into files, paths and kernel interfaces. `go test` runs the seeds and
// the kept corpus under testdata/fuzz; `go test -fuzz=FuzzSandbox` searches.

func FuzzSandbox(f *testing.F) {
	for _, c := range []*runtime.PodSandboxConfig{
		pod(nil),
		pod(func(c *runtime.PodSandboxConfig) { c.Hostname = "a\nb" }),
		pod(func(c *runtime.PodSandboxConfig) { c.DnsConfig.Searches = []string{"x y"} }),
		pod(func(c *runtime.PodSandboxConfig) { c.LogDirectory = "/proc/self" }),
	} {
		data, _ := proto.Marshal(c)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c runtime.PodSandboxConfig
		if proto.Unmarshal(data, &c) != nil {
			return
		}
		if Sandbox(&c) != nil {
			return
		}
		md := c.Metadata
		for _, v := range []string{md.Name, md.Namespace, md.Uid} {
			if v == "" || len(v) > MaxName || strings.ContainsAny(v, "\n\x00/ _") {
				t.Fatalf("accepted the name %q", v)
			}
		}
		if len(c.Hostname) > MaxHostname || strings.ContainsAny(c.Hostname, "\n\x00 ") {
			t.Fatalf("accepted the hostname %q", c.Hostname)
		}
		// Under /proc, /sys or /dev is refused; /proc00000 is a directory
		// of its own, which the fuzzer found this oracle refusing.
		under := func(d, top string) bool { return d == top || strings.HasPrefix(d, top+"/") }
		if d := c.LogDirectory; d != "" && (path.Clean(d) != d || !path.IsAbs(d) || under(d, "/proc") || under(d, "/sys") || under(d, "/dev")) {
			t.Fatalf("accepted the log directory %q", d)
		}
		if dns := c.DnsConfig; dns != nil {
			for _, v := range append(append(append([]string(nil), dns.Servers...), dns.Searches...), dns.Options...) {
				if v == "" || strings.ContainsAny(v, " \t\n\r\x00") {
					t.Fatalf("accepted the resolv.conf word %q", v)
				}
			}
		}
		if sc := c.GetLinux().GetSecurityContext(); sc.GetRunAsUser() != nil && sc.RunAsUser.Value < 0 {
			t.Fatalf("accepted run_as_user %d", sc.RunAsUser.Value)
		}
		seen := map[string]bool{}
		for _, pm := range c.PortMappings {
			if pm.HostPort == 0 {
				continue
			}
			k := pm.Protocol.String() + "/" + pm.HostIp + "/" + string(rune(pm.HostPort))
			if seen[k] || pm.HostPort > 65535 || pm.HostPort < 0 {
				t.Fatalf("accepted the port mapping %v", pm)
			}
			seen[k] = true
		}
	})
}

func FuzzContainer(f *testing.F) {
	for _, c := range []*runtime.ContainerConfig{
		ctr(nil),
		ctr(func(c *runtime.ContainerConfig) { c.Mounts[0].ContainerPath = "/.." }),
		ctr(func(c *runtime.ContainerConfig) { c.Envs[0].Key = "A=B" }),
		ctr(func(c *runtime.ContainerConfig) { c.WorkingDir = "/proc/self/fd/7" }),
	} {
		data, _ := proto.Marshal(c)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c runtime.ContainerConfig
		if proto.Unmarshal(data, &c) != nil {
			return
		}
		if Container(&c) != nil {
			return
		}
		for _, m := range c.Mounts {
			if !path.IsAbs(m.ContainerPath) || path.Clean(m.ContainerPath) == "/" || strings.Contains(m.ContainerPath, "\x00") {
				t.Fatalf("accepted the mount target %q", m.ContainerPath)
			}
		}
		for _, kv := range c.Envs {
			if kv.Key == "" || strings.ContainsAny(kv.Key, "=\x00") || strings.Contains(string(kv.Value), "\x00") {
				t.Fatalf("accepted the variable %q=%q", kv.Key, kv.Value)
			}
		}
		for _, a := range append(append([]string(nil), c.Command...), c.Args...) {
			if strings.Contains(a, "\x00") || len(a) > MaxArg {
				t.Fatalf("accepted an argument of %d bytes holding NUL or too long", len(a))
			}
		}
		// A path climbing out is refused; a file named "..log" is not.
		if lp := c.LogPath; lp != "" && (path.IsAbs(lp) || path.Clean(lp) == ".." || strings.HasPrefix(path.Clean(lp), "../")) {
			t.Fatalf("accepted the log path %q", lp)
		}
	})
}

func FuzzCpuset(f *testing.F) {
	for _, s := range []string{"0", "0-3,5", "3-1", "0\n", "1,,2", "8191", "-1", "0-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Cpuset("cpuset", s) != nil || s == "" {
			return
		}
		// What the kernel's cpulist parser takes: digits, '-' and ','.
		if strings.Trim(s, "0123456789,-") != "" || strings.HasPrefix(s, ",") || strings.HasSuffix(s, ",") || strings.Contains(s, ",,") {
			t.Fatalf("accepted the cpuset %q", s)
		}
	})
}
