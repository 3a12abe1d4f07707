package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestValidateSysctls(t *testing.T) {
	ok := []Spec{
		{Sysctls: map[string]string{"net.ipv4.ip_local_port_range": "20000 30000", "net.ipv4.conf.all.forwarding": "1"}},
		{Sysctls: map[string]string{"kernel.shm_rmid_forced": "1", "kernel.msgmax": "8192", "fs.mqueue.msg_max": "10"}},
		{HostNetwork: true, Sysctls: map[string]string{"kernel.shmmax": "1"}},
		{HostIPC: true, Sysctls: map[string]string{"net.core.somaxconn": "1024"}},
		{Sysctls: map[string]string{"net/ipv4/ip_forward": "1", "net/ipv4/conf/eth0.100/rp_filter": "1"}},
	}
	for _, s := range ok {
		if err := validateSysctls(s); err != nil {
			t.Errorf("%v refused: %v", s.Sysctls, err)
		}
	}
	bad := []struct {
		spec Spec
		why  string
	}{
		{Spec{Sysctls: map[string]string{"kernel.panic": "1"}}, "not namespaced"},
		{Spec{Sysctls: map[string]string{"vm.overcommit_memory": "1"}}, "not namespaced"},
		{Spec{HostNetwork: true, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}, "host's network namespace"},
		{Spec{HostIPC: true, Sysctls: map[string]string{"kernel.shmmax": "1"}}, "host's IPC namespace"},
		{Spec{Sysctls: map[string]string{"net.ipv4.ip_forward": "1\nkernel.core_pattern=|/evil"}}, "newline"},
		{Spec{Sysctls: map[string]string{"net.ipv4/../../../kernel/core_pattern": "x"}}, "not a sysctl name"},
		{Spec{Sysctls: map[string]string{"net.ipv4.ip forward": "1"}}, "not a sysctl name"},
	}
	for _, b := range bad {
		err := validateSysctls(b.spec)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), b.why) {
			t.Errorf("%v: %v, want InvalidArgument mentioning %q", b.spec.Sysctls, err, b.why)
		}
	}
}

func TestResolvConf(t *testing.T) {
	got, err := resolvConf(&DNS{Servers: []string{"10.96.0.10", "fd00::a"}, Searches: []string{"ns.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5", "edns0"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "nameserver 10.96.0.10\nnameserver fd00::a\nsearch ns.svc.cluster.local svc.cluster.local\noptions ndots:5 edns0\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestSpecKeyIsPerAttempt(t *testing.T) {
	a := Spec{Name: "web", Namespace: "default", UID: "u1", Attempt: 0}
	b := a
	b.Attempt = 1
	if a.Key() == b.Key() || a.Key() != "web_default_u1_0" {
		t.Fatalf("keys %q %q", a.Key(), b.Key())
	}
}

func TestSysctlPath(t *testing.T) {
	for name, want := range map[string]string{
		"net.ipv4.ip_forward":              "/proc/sys/net/ipv4/ip_forward",
		"net/ipv4/conf/eth0.100/rp_filter": "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
		"kernel.shm_rmid_forced":           "/proc/sys/kernel/shm_rmid_forced",
	} {
		if got := sysctlPath(name); got != want {
			t.Errorf("sysctlPath(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestParseNetDev(t *testing.T) {
	const netDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    9312      87    1    2    0     0          0         0     5054      42    3    4    0     0       0          0
`
	got, err := parseNetDev(strings.NewReader(netDev))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "eth0" {
		t.Fatalf("interfaces %+v, want eth0 alone (loopback and headers left out)", got)
	}
	c := got[0].Counters
	if c[0] != 9312 || c[1] != 87 || c[2] != 1 || c[3] != 2 || c[8] != 5054 || c[9] != 42 || c[10] != 3 || c[11] != 4 {
		t.Errorf("counters %v", c)
	}
}
