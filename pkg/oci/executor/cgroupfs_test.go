package executor

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseOwnCgroups(t *testing.T) {
	for _, tc := range []struct {
		name              string
		mountinfo, cgroup string
		want              []cgroupHierarchy
	}{{
		name: "this host: hybrid, cpu and cpuacct apart, named systemd, unified left out",
		mountinfo: `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /var/lib/other rw - cgroup cgroup rw,pids`,
		cgroup: "9:name=systemd:/\n4:memory:/kubepods/pod1/c1\n2:cpuacct:/kubepods/pod1/c1\n1:cpu:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n",
		want: []cgroupHierarchy{
			{"cpu", "/sys/fs/cgroup/cpu/kubepods/pod1/c1"},
			{"cpuacct", "/sys/fs/cgroup/cpuacct/kubepods/pod1/c1"},
			{"memory", "/sys/fs/cgroup/memory/kubepods/pod1/c1"},
			{"systemd", "/sys/fs/cgroup/systemd"},
		},
	}, {
		name: "co-mounted controllers, listed in another order, and mount options",
		mountinfo: `32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpuacct,cpu
33 31 0:30 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio,clone_children`,
		cgroup: "3:cpu,cpuacct:/a\n2:net_cls,net_prio:/a\n",
		want: []cgroupHierarchy{
			{"cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/a"},
			{"net_cls,net_prio", "/sys/fs/cgroup/net_cls,net_prio/a"},
		},
	}, {
		name: "a mount whose root is a cgroup (crid itself in a container)",
		mountinfo: `35 31 0:32 /outer /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:33 /elsewhere /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids`,
		cgroup: "4:memory:/outer/pod/c\n3:pids:/outer/pod/c\n",
		want:   []cgroupHierarchy{{"memory", "/sys/fs/cgroup/memory/pod/c"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOwnCgroups([]byte(tc.mountinfo), []byte(tc.cgroup))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
	if _, err := parseOwnCgroups([]byte("1 0 0:1 / / rw - ext4 /dev/vda rw"), []byte("0::/\n")); err == nil || !strings.Contains(err.Error(), "no cgroup hierarchy") {
		t.Errorf("no cgroup mounts: %v", err)
	}
}
