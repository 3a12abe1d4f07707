package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/crid-dev/crid/pkg/netns"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// writeFiles writes the hostname, hosts and resolv.conf the pod's
// containers mount, each by rename so a reader never sees half of one.
func (m *Manager) writeFiles(s *Sandbox) error {
	// A pod on the host's network has the host's UTS namespace too.
	hostname := s.Spec.Hostname
	if s.Spec.HostNetwork || hostname == "" {
		if h, err := os.Hostname(); err == nil {
			hostname = h
		}
	}
	if err := writeAtomic(s.HostnamePath(), hostname+"\n"); err != nil {
		return err
	}
	var hosts string
	if s.Spec.HostNetwork {
		data, err := os.ReadFile("/etc/hosts")
		if err != nil {
			return fmt.Errorf("read the host's /etc/hosts: %w", err)
		}
		hosts = string(data)
	} else {
		var b strings.Builder
		b.WriteString("# Kubernetes-managed hosts file (crid).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		b.WriteString("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
		for _, ip := range s.IPs {
			fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
		}
		hosts = b.String()
	}
	if err := writeAtomic(s.HostsPath(), hosts); err != nil {
		return err
	}
	resolv, err := resolvConf(s.Spec.DNS)
	if err != nil {
		return err
	}
	return writeAtomic(s.ResolvPath(), resolv)
}

// resolvConf is the pod's resolv.conf: from its DNS config, or the host's
// when it has none (the kubelet's dnsPolicy Default sends none).
func resolvConf(dns *DNS) (string, error) {
	if dns == nil || len(dns.Servers)+len(dns.Searches)+len(dns.Options) == 0 {
		data, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("read the host's resolv.conf: %w", err)
		}
		return string(data), nil
	}
	var b strings.Builder
	for _, s := range dns.Servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.Searches, " "))
	}
	if len(dns.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.Options, " "))
	}
	return b.String(), nil
}

func writeAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mountShm gives the pod a /dev/shm of its own, as Docker sized it.
func mountShm(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("mode=1777,size=%d", size)
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount /dev/shm of the pod at %s: %w", dir, err)
	}
	return nil
}

func unmountShm(dir string) error {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// Namespaced sysctls, the ones a pod may set: they change only its own
// namespaces. The kubelet's safe and unsafe lists are both inside these.
var (
	ipcSysctls = map[string]bool{
		"kernel.shmmax": true, "kernel.shmall": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
		"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	}
	sysctlName = regexp.MustCompile(`^[a-z0-9_]+([./][a-zA-Z0-9_:-]+)+$`)
)

// sysctlKind says which namespace a sysctl belongs to, "" for none. Names
// come dotted (net.ipv4.ip_forward) or, where a component holds a dot
// (net/ipv4/conf/eth0.100/rp_filter), with slashes.
func sysctlKind(name string) string {
	if strings.Contains(name, "/") {
		name = strings.ReplaceAll(name, "/", ".")
	}
	switch {
	case ipcSysctls[name] || strings.HasPrefix(name, "fs.mqueue."):
		return "ipc"
	case strings.HasPrefix(name, "net."):
		return "net"
	}
	return ""
}

// validateSysctls refuses what a pod may not set, before anything is made.
func validateSysctls(spec Spec) error {
	for name, value := range spec.Sysctls {
		if !sysctlName.MatchString(name) || strings.Contains(name, "..") {
			return fmt.Errorf("linux.sysctls: %q is not a sysctl name: %w", name, errdefs.ErrInvalidArgument)
		}
		if strings.ContainsAny(value, "\n\x00") {
			return fmt.Errorf("linux.sysctls: the value of %s holds a newline or NUL: %w", name, errdefs.ErrInvalidArgument)
		}
		switch sysctlKind(name) {
		case "net":
			if spec.HostNetwork {
				return fmt.Errorf("linux.sysctls: %s would change the host's network namespace (the pod uses host networking): %w", name, errdefs.ErrInvalidArgument)
			}
		case "ipc":
			if spec.HostIPC {
				return fmt.Errorf("linux.sysctls: %s would change the host's IPC namespace (the pod uses host IPC): %w", name, errdefs.ErrInvalidArgument)
			}
		default:
			return fmt.Errorf("linux.sysctls: %s is not namespaced: it would change the whole node, so a pod may not set it: %w", name, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// applySysctls writes each sysctl from a thread inside the namespace it
// belongs to. The name is turned into a /proc/sys path once, after it was
// validated, and the value written as given: never a "key=value" string
// parsed again, the mistake behind CVE-2022-0811.
func applySysctls(s *Sandbox) error {
	names := make([]string, 0, len(s.Spec.Sysctls))
	for n := range s.Spec.Sysctls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		path := sysctlPath(name)
		value := s.Spec.Sysctls[name]
		write := func() error {
			if err := os.WriteFile(path, []byte(value), 0); err != nil {
				// The kernel refuses a value it cannot parse or that is out
				// of range: that is the request's fault, not the node's.
				if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE) {
					return fmt.Errorf("linux.sysctls: %s=%q: the kernel refuses the value (%v): %w", name, value, err, errdefs.ErrInvalidArgument)
				}
				return fmt.Errorf("sysctl %s=%q: %w", name, value, err)
			}
			return nil
		}
		var err error
		switch sysctlKind(name) {
		case "net":
			err = netns.InNet(s.NS.Net, write)
		case "ipc":
			err = netns.In(s.NS.IPC, unix.CLONE_NEWIPC, write)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sysctlPath is the /proc/sys file of a validated sysctl name.
func sysctlPath(name string) string {
	if strings.Contains(name, "/") {
		return filepath.Join("/proc/sys", name)
	}
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}
